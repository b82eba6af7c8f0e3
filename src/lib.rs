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
pub mod msg;
pub mod num;
pub mod outputs;
#[cfg(feature = "ros")]
pub mod ros;
pub mod view;

pub use engine::config::{Params, Settings};
pub use engine::pipeline::{Pipeline, Resolution, Segmentation};
pub use error::{Error, Result};

/// Directories that may hold the source checkout (models/, .venv): the build's own source
/// directory, `PIPELINE_SEG_ROOT`, and the ancestors of the running executable.
pub fn project_roots() -> Vec<std::path::PathBuf> {
    let mut roots = Vec::new();
    if let Some(r) = std::env::var_os("PIPELINE_SEG_ROOT") {
        roots.push(r.into());
    }
    roots.push(env!("CARGO_MANIFEST_DIR").into());
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(4).map(|p| p.to_path_buf()));
    }
    roots
}
