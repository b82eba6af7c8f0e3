//! What the node publishes for a frame, in one place for the ROS node and `replay`
//! (INTERFACES §4): the values of `~/confidence` and `~/review`, the overlay caption and when a
//! review is requested, and the messages themselves (in the CDR types of `bag::cdr`; the node
//! converts them to r2r types at the ROS boundary).

use std::time::Duration;

use crate::bag::cdr;

use crate::config::Settings;
use crate::gate::Reason;
use crate::pipeline::Segmentation;

/// Status name of `~/confidence`.
pub const CONFIDENCE_STATUS: &str = "pipeline_seg/confidence";
/// Status name of `~/review`.
pub const REVIEW_STATUS: &str = "pipeline_seg/review";

/// The KeyValues of the `~/confidence` status. `seg` is the frame's segmentation and whether
/// the pipeline is visible; `None` for a frame that failed (decode error) or a stale decision.
pub fn confidence_values(settings: &Settings, seg: Option<(&Segmentation, bool)>, latency_ms: f64) -> Vec<(&'static str, String)> {
    let g = &settings.gate;
    // T of the frame's own run: a parameter change may land while a frame is processed.
    let (score, fraction, visible, samples) = match seg {
        Some((seg, visible)) => (seg.score.to_string(), seg.pipeline_fraction.to_string(), visible.to_string(), seg.samples),
        None => (String::new(), String::new(), "false".into(), settings.samples),
    };
    vec![
        ("score", score),
        ("score_method", settings.score.method.name().to_string()),
        ("threshold_high", g.threshold_high.to_string()),
        ("threshold_low", g.threshold_low.to_string()),
        ("pipeline_fraction", fraction),
        ("pipeline_visible", visible),
        ("samples", samples.to_string()),
        ("latency_ms", format!("{latency_ms:.3}")),
    ]
}

/// The KeyValues of the `~/review` status.
pub fn review_values(seg: &Segmentation, bundle: Option<&str>) -> Vec<(&'static str, String)> {
    vec![("score", seg.score.to_string()), ("bundle", bundle.unwrap_or_default().to_string())]
}

/// The caption of `~/overlay`.
pub fn overlay_caption(seg: &Segmentation, reason: Reason) -> String {
    format!("score {:.3} {}", seg.score, reason.name())
}

/// Whether a frame decided with `reason` requests a review: the gate is unconfident because of
/// the model (`uncertain`) or the image (`image_quality`), and the last review was at least
/// `min_interval` ago (`since_last` = `None`: no review yet). The node measures the interval in
/// wall time, `replay` in bag time.
pub fn review_due(reason: Reason, since_last: Option<Duration>, min_interval: Duration) -> bool {
    matches!(reason, Reason::Uncertain | Reason::ImageQuality) && since_last.is_none_or(|d| d >= min_interval)
}

/// An 8-bit image (`mono8`, `rgb8` or `bgr8`) with the given header.
pub fn image_u8(header: &cdr::Header, encoding: &str, w: usize, h: usize, data: Vec<u8>) -> cdr::Image {
    let channels = data.len() / (w * h).max(1);
    cdr::Image {
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
pub fn image_f32(header: &cdr::Header, w: usize, h: usize, map: &[f32]) -> cdr::Image {
    cdr::Image {
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
pub fn diagnostic(header: &cdr::Header, name: &str, level: u8, message: &str, values: Vec<(&str, String)>) -> cdr::DiagnosticArray {
    cdr::DiagnosticArray {
        header: header.clone(),
        status: vec![cdr::DiagnosticStatus {
            level,
            name: name.into(),
            message: message.into(),
            hardware_id: String::new(),
            values: values.into_iter().map(|(key, value)| cdr::KeyValue { key: key.into(), value }).collect(),
        }],
    }
}

/// The `~/review/image` for a frame: the input message itself when it was raw, else the decoded
/// frame as rgb8.
pub fn review_image(input: &crate::bag::read::FrameMsg, frame: &crate::image::Frame) -> cdr::Image {
    match input {
        crate::bag::read::FrameMsg::Raw(m) => m.clone(),
        crate::bag::read::FrameMsg::Compressed(m) => image_u8(&m.header, "rgb8", frame.width, frame.height, frame.rgb.clone()),
    }
}
