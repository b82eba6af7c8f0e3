//! Conversions between ROS messages and the library's frames, maps and decisions.

use r2r::builtin_interfaces::msg::Time;
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::sensor_msgs::msg::{CompressedImage, Image};
use r2r::std_msgs::msg::Header;

use crate::error::Result;
use crate::image::{decode_compressed, decode_raw, Frame, RawImage};

/// An input message as it arrived.
pub enum Input {
    /// A sensor_msgs/Image from `~/image`.
    Raw(Image),
    /// A sensor_msgs/CompressedImage from `~/image/compressed`.
    Compressed(CompressedImage),
}

impl Input {
    /// The message's header.
    pub fn header(&self) -> &Header {
        match self {
            Input::Raw(m) => &m.header,
            Input::Compressed(m) => &m.header,
        }
    }

    /// Decodes the message to an RGB frame.
    pub fn decode(&self, max_pixels: usize) -> Result<Frame> {
        match self {
            Input::Raw(m) => decode_raw(
                &RawImage {
                    width: m.width,
                    height: m.height,
                    encoding: &m.encoding,
                    is_bigendian: m.is_bigendian != 0,
                    step: m.step,
                    data: &m.data,
                },
                max_pixels,
            ),
            Input::Compressed(m) => decode_compressed(&m.format, &m.data, max_pixels),
        }
    }
}

/// Stamp in nanoseconds since the epoch.
pub fn stamp_ns(t: &Time) -> i64 {
    t.sec as i64 * 1_000_000_000 + t.nanosec as i64
}

/// An 8-bit image (`mono8`, `rgb8` or `bgr8`) with the given header.
pub fn image_u8(header: &Header, encoding: &str, w: usize, h: usize, data: Vec<u8>) -> Image {
    let channels = data.len() / (w * h).max(1);
    Image {
        header: header.clone(),
        height: h as u32,
        width: w as u32,
        encoding: encoding.into(),
        is_bigendian: 0,
        step: (w * channels) as u32,
        data,
    }
}

/// A `32FC1` image in the machine's byte order.
pub fn image_f32(header: &Header, w: usize, h: usize, map: &[f32]) -> Image {
    Image {
        header: header.clone(),
        height: h as u32,
        width: w as u32,
        encoding: "32FC1".into(),
        is_bigendian: cfg!(target_endian = "big") as u8,
        step: (w * 4) as u32,
        data: map.iter().flat_map(|v| v.to_ne_bytes()).collect(),
    }
}

/// A DiagnosticArray with one status.
pub fn diagnostic(header: &Header, name: &str, level: u8, message: &str, values: Vec<(&str, String)>) -> DiagnosticArray {
    DiagnosticArray {
        header: header.clone(),
        status: vec![DiagnosticStatus {
            level: level as _,
            name: name.into(),
            message: message.into(),
            hardware_id: String::new(),
            values: values.into_iter().map(|(key, value)| KeyValue { key: key.into(), value }).collect(),
        }],
    }
}
