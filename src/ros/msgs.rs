//! The ROS boundary: r2r messages to and from the library's CDR message types (`crate::msg`), so
//! the node and `replay` decode inputs and build outputs with the same code (`outputs`).

use r2r::builtin_interfaces::msg::Time;
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::sensor_msgs::msg::{CompressedImage, Image};
use r2r::std_msgs::msg::{Bool, Header};

use crate::msg;
use crate::msg::FrameMsg;

/// An r2r header as the library's.
pub fn header_in(h: Header) -> msg::Header {
    msg::Header { stamp: msg::Time { sec: h.stamp.sec, nanosec: h.stamp.nanosec }, frame_id: h.frame_id }
}

fn header_out(h: msg::Header) -> Header {
    Header { stamp: Time { sec: h.stamp.sec, nanosec: h.stamp.nanosec }, frame_id: h.frame_id }
}

/// The same Image fields from one message type to the other (the pixel data is moved).
macro_rules! image_fields {
    ($m:expr, $to:path, $header:expr) => {{
        let m = $m;
        $to {
            header: $header(m.header),
            height: m.height,
            width: m.width,
            encoding: m.encoding,
            is_bigendian: m.is_bigendian,
            step: m.step,
            data: m.data,
        }
    }};
}

/// A raw camera message as an input frame (the pixel data is moved, not copied).
pub fn raw_in(m: Image) -> FrameMsg {
    FrameMsg::Raw(image_fields!(m, msg::Image, header_in))
}

/// A compressed camera message as an input frame.
pub fn compressed_in(m: CompressedImage) -> FrameMsg {
    FrameMsg::Compressed(msg::CompressedImage { header: header_in(m.header), format: m.format, data: m.data })
}

/// An image built by `outputs` as an r2r message.
pub fn image_out(m: msg::Image) -> Image {
    image_fields!(m, Image, header_out)
}

/// A DiagnosticArray built by `outputs` as an r2r message.
pub fn diagnostics_out(m: msg::DiagnosticArray) -> DiagnosticArray {
    let status = m.status.into_iter().map(|s| DiagnosticStatus {
        level: s.level as _,
        name: s.name,
        message: s.message,
        hardware_id: s.hardware_id,
        values: s.values.into_iter().map(|kv| KeyValue { key: kv.key, value: kv.value }).collect(),
    });
    DiagnosticArray { header: header_out(m.header), status: status.collect() }
}

/// A Bool built by `outputs` as an r2r message.
pub fn bool_out(m: msg::Bool) -> Bool {
    Bool { data: m.data }
}
