//! `pipeline_seg`: pipeline segmentation with Monte-Carlo-Dropout uncertainty for subsea
//! inspection vehicles.
//!
//! One path for every entry point. An input camera message ([`msg::FrameMsg`]) or file is
//! decoded to RGB, resized and normalised into the model input, and run through the U-Net T
//! times in one ONNX Runtime call with seeded channel-dropout masks as inputs; the T softmax
//! samples become mean probability, normalised entropy, mutual information and frame scores
//! ([`engine::pipeline::Pipeline`]). [`engine::processor::FrameProcessor`] adds the gate (score
//! hysteresis, sanity, staleness) and the review clock: it is the one frame loop that the ROS 2
//! node, `replay`, `calibrate`, `select` and `infer` drive. [`outputs`] turns each frame's
//! result into the node's messages, which the node publishes and `replay` writes to a bag.
//!
//! Layers, lowest first (a module imports only from layers below it or its own; see
//! ARCHITECTURE.md): [`error`] and [`num`] → [`msg`] → [`engine`] → [`io`] → [`view`] →
//! [`outputs`] → [`eval`] → `ros`.
#![deny(missing_docs)]

pub mod engine;
pub mod error;
pub mod eval;
pub mod io;
pub mod lifecycle;
pub mod msg;
pub mod num;
pub mod outputs;
#[cfg(feature = "ros")]
pub mod ros;
pub mod view;

pub use engine::config::{Params, Settings};
pub use engine::pipeline::{Pipeline, Resolution, Segmentation};
pub use error::{Error, Result};

pub use engine::model::project_roots;
