//! What the node publishes for a frame, in one place for the ROS node and `replay`
//! (INTERFACES §4): the values of `~/confidence` and `~/review`, the overlay caption and when a
//! review is requested.

use std::time::Duration;

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
