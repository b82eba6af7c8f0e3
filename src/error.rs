//! Typed errors of the library; each message names the value and what to do.

use std::path::PathBuf;

/// Camera encodings accepted for raw frames (sensor_msgs/Image, REP 118 names).
pub const SUPPORTED_ENCODINGS: &str = "rgb8, bgr8, rgba8, bgra8, mono8, mono16, bayer_rggb8, \
bayer_bggr8, bayer_gbrg8, bayer_grbg8, yuv422 (uyvy), uyvy, yuv422_yuy2 (yuyv)";

/// Everything that can go wrong between a buffer or file and a segmentation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The frame's encoding is not one the decoder knows.
    #[error("encoding '{0}' not supported; supported: {SUPPORTED_ENCODINGS}")]
    UnsupportedEncoding(String),
    /// The frame's geometry does not match its data.
    #[error("inconsistent image: {0}")]
    BadGeometry(String),
    /// The frame has more pixels than allowed.
    #[error("image is {width}x{height} = {pixels} pixels, over max_image_pixels = {max}")]
    TooLarge {
        /// Frame width [px].
        width: usize,
        /// Frame height [px].
        height: usize,
        /// Frame size, `width * height` [px].
        pixels: usize,
        /// The `max_image_pixels` limit [px].
        max: usize,
    },
    /// A compressed image could not be decoded in full.
    #[error("corrupt {format} image: {detail}")]
    Corrupt {
        /// The compressed format: `jpeg` or `png`.
        format: &'static str,
        /// What is wrong with the data.
        detail: String,
    },
    /// A compressed format other than JPEG or PNG.
    #[error("compressed format '{0}' not supported; supported: jpeg, png")]
    UnsupportedFormat(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory that could not be read or written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The model file is missing, unreadable or does not honour the model contract.
    #[error("model {path}: {detail}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is missing or differs from the model contract.
        detail: String,
    },
    /// The ONNX Runtime library could not be found or loaded.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// A requested execution provider cannot be used.
    #[error("execution provider '{device}' cannot be used: {detail}")]
    Provider {
        /// The requested device: `cuda` or `tensorrt`.
        device: String,
        /// Why the provider cannot be used.
        detail: String,
    },
    /// A parameter is out of range or a parameter file is malformed.
    #[error("parameter {name}: {detail}")]
    Param {
        /// The parameter's name (or `config` for the parameter file).
        name: String,
        /// What is wrong with its value.
        detail: String,
    },
    /// ONNX Runtime failed while running the model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// OpenCV failed on an operation that should not fail for valid input.
    #[error("OpenCV: {0}")]
    OpenCv(#[from] opencv::Error),
}

impl Error {
    /// True for errors about one input frame (the run can go on with the next one).
    pub fn is_frame_error(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedEncoding(_)
                | Error::BadGeometry(_)
                | Error::TooLarge { .. }
                | Error::Corrupt { .. }
                | Error::UnsupportedFormat(_)
                | Error::Io { .. }
                | Error::OpenCv(_)
        )
    }

    pub(crate) fn param(name: &str, detail: impl Into<String>) -> Self {
        Error::Param { name: name.to_string(), detail: detail.into() }
    }
}

/// Result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
