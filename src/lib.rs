//! `pipeline_seg`: pipeline segmentation with Monte-Carlo-Dropout uncertainty for subsea
//! inspection vehicles.
//!
//! A frame (raw sensor_msgs buffer, JPEG/PNG bytes or file) is decoded to RGB ([`image`]),
//! resized and normalised into the model input ([`preprocess`]), and run through the U-Net T
//! times in one ONNX Runtime call with seeded channel-dropout masks as inputs ([`model`],
//! [`sampler`]). The T softmax samples become mean probability, normalised entropy and mutual
//! information plus a frame score ([`uncertainty`]), mapped back to the input resolution
//! ([`pipeline::Pipeline`] drives all of this), and the score, input sanity and staleness decide
//! whether the mask can be trusted ([`gate`]). The CLI and the ROS 2 node both drive the same
//! [`pipeline::Pipeline`].
#![deny(missing_docs)]

pub mod bag;
pub mod calibrate;
pub mod config;
pub mod error;
pub mod eval;
pub mod gate;
pub mod image;
pub mod model;
pub mod npy;
pub mod outputs;
pub mod pipeline;
pub mod preprocess;
pub mod render;
pub mod report;
#[cfg(feature = "ros")]
pub mod ros;
pub mod replay;
pub mod review;
pub mod sampler;
pub mod select;
pub mod uncertainty;

pub use config::{Params, Settings};
pub use error::{Error, Result};
pub use pipeline::{Pipeline, Resolution, Segmentation};

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
