//! What the node publishes for a frame, in one place for the ROS node and `replay`
//! (docs/interfaces.md §4): the topic registry ([`Topic`]: name, type, QoS) and the messages of a
//! [`FrameResult`], in the library's message types ([`crate::msg`]); the node converts them to
//! r2r types at the ROS boundary, `replay` writes them to a bag.

use crate::engine::config::Settings;
use crate::engine::gate::Decision;
use crate::engine::pipeline::Segmentation;
use crate::engine::processor::FrameResult;
use crate::error::{Error, Result};
use crate::msg::{cdr::CdrMessage, Bool, DiagnosticArray, DiagnosticStatus, FrameMsg, Header, Image, KeyValue, Qos};
use crate::view::render;

/// Status name of `~/confidence`.
pub const CONFIDENCE_STATUS: &str = "pipeline_seg/confidence";
/// Status name of `~/review`.
pub const REVIEW_STATUS: &str = "pipeline_seg/review";
/// The node's default name: replayed topics are `/pipeline_seg_node/<name>`.
pub const NODE_NAME: &str = "pipeline_seg_node";

/// An output topic of the node (docs/interfaces.md §4, all but `/diagnostics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `~/confident`, std_msgs/Bool, latched.
    Confident,
    /// `~/confidence`, DiagnosticArray.
    Confidence,
    /// `~/mask`, mono8.
    Mask,
    /// `~/probability`, 32FC1.
    Probability,
    /// `~/entropy`, 32FC1.
    Entropy,
    /// `~/mutual_information`, 32FC1.
    MutualInformation,
    /// `~/entropy_color`, bgr8.
    EntropyColor,
    /// `~/overlay`, bgr8.
    Overlay,
    /// `~/review`, DiagnosticArray.
    Review,
    /// `~/review/image`, Image.
    ReviewImage,
}

impl Topic {
    /// Every output topic, in the order the messages of a frame are published.
    pub const ALL: [Topic; 10] = [
        Topic::Confident,
        Topic::Confidence,
        Topic::Mask,
        Topic::Probability,
        Topic::Entropy,
        Topic::MutualInformation,
        Topic::EntropyColor,
        Topic::Overlay,
        Topic::Review,
        Topic::ReviewImage,
    ];

    /// The name below the node, e.g. `mask`, `review/image`.
    pub fn short(self) -> &'static str {
        match self {
            Topic::Confident => "confident",
            Topic::Confidence => "confidence",
            Topic::Mask => "mask",
            Topic::Probability => "probability",
            Topic::Entropy => "entropy",
            Topic::MutualInformation => "mutual_information",
            Topic::EntropyColor => "entropy_color",
            Topic::Overlay => "overlay",
            Topic::Review => "review",
            Topic::ReviewImage => "review/image",
        }
    }

    /// The node-private name the node creates, e.g. `~/mask`.
    pub fn private(self) -> String {
        format!("~/{}", self.short())
    }

    /// The full name under the node's default name, e.g. `/pipeline_seg_node/mask`.
    pub fn full(self) -> String {
        format!("/{NODE_NAME}/{}", self.short())
    }

    /// The message type.
    pub fn type_name(self) -> &'static str {
        match self {
            Topic::Confident => Bool::TYPE_NAME,
            Topic::Confidence | Topic::Review => DiagnosticArray::TYPE_NAME,
            _ => Image::TYPE_NAME,
        }
    }

    /// The QoS the node offers: `~/confident` is latched so that a late subscriber (autonomy
    /// starting after us) gets the current state at once; the rest is the ROS default.
    pub fn qos(self) -> Qos {
        if self == Topic::Confident {
            Qos::LATCHED
        } else {
            Qos::DEFAULT
        }
    }

    /// Parses a comma-separated list of names (`mask`, `~/mask` or `/pipeline_seg_node/mask`).
    pub fn parse_list(list: &str) -> Result<Vec<Topic>> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                out = Topic::ALL.to_vec();
                continue;
            }
            let short =
                name.strip_prefix(&format!("/{NODE_NAME}/")).or_else(|| name.strip_prefix("~/")).unwrap_or(name);
            let topic = Topic::ALL.into_iter().find(|t| t.short() == short).ok_or_else(|| {
                let known: Vec<&str> = Topic::ALL.iter().map(|t| t.short()).collect();
                Error::param("--write", format!("unknown topic '{name}' (known: {}, or all)", known.join(", ")))
            })?;
            if !out.contains(&topic) {
                out.push(topic);
            }
        }
        if out.is_empty() {
            return Err(Error::param("--write", "no topic named"));
        }
        Ok(out)
    }
}

/// A set of output topics: what the node publishes, what `replay` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicSet(u16);

impl TopicSet {
    /// Every topic.
    pub const ALL: TopicSet = TopicSet((1 << Topic::ALL.len()) - 1);

    /// What `replay` writes by default: the decisions, the mask, the colour entropy map and the
    /// review requests, ~0.2 MB per 640 x 480 frame (BENCHMARKS.md). The float maps and the
    /// overlay barely compress (~4 MB per frame together) and are asked for by name or `all`.
    pub const CAMPAIGN: TopicSet = TopicSet(
        1 << Topic::Confident as u16
            | 1 << Topic::Confidence as u16
            | 1 << Topic::Mask as u16
            | 1 << Topic::EntropyColor as u16
            | 1 << Topic::Review as u16
            | 1 << Topic::ReviewImage as u16,
    );

    /// The set of these topics.
    pub fn of(topics: impl IntoIterator<Item = Topic>) -> TopicSet {
        TopicSet(topics.into_iter().fold(0, |bits, t| bits | 1 << t as u16))
    }

    /// Whether `t` is in the set.
    pub fn contains(self, t: Topic) -> bool {
        self.0 & 1 << t as u16 != 0
    }

    /// The set with `t` in it or not.
    pub fn with(self, t: Topic, on: bool) -> TopicSet {
        if on {
            TopicSet(self.0 | 1 << t as u16)
        } else {
            TopicSet(self.0 & !(1 << t as u16))
        }
    }

    /// The topics in the set, in [`Topic::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Topic> {
        Topic::ALL.into_iter().filter(move |&t| self.contains(t))
    }
}

/// One output message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// std_msgs/Bool.
    Bool(Bool),
    /// sensor_msgs/Image.
    Image(Image),
    /// diagnostic_msgs/DiagnosticArray.
    Diagnostic(DiagnosticArray),
}

impl Message {
    /// The CDR bytes, as a bag stores them.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Bool(m) => m.encode(),
            Message::Image(m) => m.encode(),
            Message::Diagnostic(m) => m.encode(),
        }
    }
}

/// The KeyValues of the `~/confidence` status. `seg` is the frame's segmentation and whether
/// the pipeline is visible; `None` for a frame that failed or a stale decision. `settings` is
/// `None` for a managed node without a model: every value but `pipeline_visible` and
/// `latency_ms` is then empty.
pub fn confidence_values(
    settings: Option<&Settings>,
    seg: Option<(&Segmentation, bool)>,
    latency_ms: f64,
) -> Vec<(&'static str, String)> {
    let setting = |f: &dyn Fn(&Settings) -> String| settings.map_or_else(String::new, f);
    // T of the frame's own run: a parameter change may land while a frame is processed.
    let (score, fraction, visible, samples) = match seg {
        Some((seg, visible)) => {
            (seg.score.to_string(), seg.pipeline_fraction.to_string(), visible, seg.samples.to_string())
        }
        None => (String::new(), String::new(), false, setting(&|s| s.samples.to_string())),
    };
    // Empty when the frame or the model has none (docs/interfaces.md §9).
    let s = seg.map(|(s, _)| s);
    let distance = s.and_then(Segmentation::feature_distance).map_or_else(String::new, |d| d.to_string());
    let trust = s.and_then(Segmentation::trust);
    vec![
        ("score", score),
        ("score_method", setting(&|s| s.score.method.name().to_string())),
        ("threshold_high", setting(&|s| s.gate.threshold_high.to_string())),
        ("threshold_low", setting(&|s| s.gate.threshold_low.to_string())),
        ("pipeline_fraction", fraction),
        ("pipeline_visible", visible.to_string()),
        ("samples", samples),
        ("latency_ms", format!("{latency_ms:.3}")),
        ("feature_distance", distance),
        ("trust", trust.map_or_else(String::new, |t| t.to_string())),
    ]
}

/// `~/confident` and `~/confidence` for a decision (also one without a frame: stale).
pub fn decision_messages_for(
    header: &Header,
    d: Decision,
    settings: &Settings,
    seg: Option<(&Segmentation, bool)>,
    latency_ms: f64,
) -> [(Topic, Message); 2] {
    let values = confidence_values(Some(settings), seg, latency_ms);
    let status = diagnostic(header, CONFIDENCE_STATUS, d.reason.level(), d.reason.name(), values);
    [(Topic::Confident, Message::Bool(Bool { data: d.confident })), (Topic::Confidence, Message::Diagnostic(status))]
}

/// `~/confident` and `~/confidence` for a frame: what autonomy waits for, published first.
pub fn decision_messages(r: &FrameResult) -> [(Topic, Message); 2] {
    let seg = r.segmentation().map(|s| (s, r.pipeline_visible));
    decision_messages_for(&r.header, r.decision, &r.settings, seg, r.latency_ms)
}

/// The maps and the review of a frame (everything after [`decision_messages`]), for the topics
/// `wanted` says yes to. `bundle` is the saved review bundle's path, if any. A failed frame has
/// none.
pub fn frame_messages(
    r: &FrameResult,
    input: Option<&FrameMsg>,
    wanted: &dyn Fn(Topic) -> bool,
    bundle: Option<&str>,
) -> Result<Vec<(Topic, Message)>> {
    let (Some(seg), Some(frame)) = (r.segmentation(), r.frame.as_ref()) else {
        return Ok(Vec::new());
    };
    let (h, w, header) = (seg.height, seg.width, &r.header);
    let mut out = Vec::new();
    if wanted(Topic::Mask) {
        out.push((Topic::Mask, Message::Image(image_u8(header, "mono8", w, h, seg.mask.clone()))));
    }
    for (topic, map) in
        [(Topic::Probability, &seg.prob), (Topic::Entropy, &seg.entropy), (Topic::MutualInformation, &seg.mi)]
    {
        if wanted(topic) {
            out.push((topic, Message::Image(image_f32(header, w, h, map))));
        }
    }
    if wanted(Topic::EntropyColor) {
        out.push((
            Topic::EntropyColor,
            Message::Image(image_u8(header, "bgr8", w, h, render::entropy_color(&seg.entropy, w, h)?)),
        ));
    }
    if wanted(Topic::Overlay) {
        let bgr = render::overlay(frame, seg, &render::caption(seg.score, r.settings.score.method, r.decision.reason))?;
        out.push((Topic::Overlay, Message::Image(image_u8(header, "bgr8", w, h, bgr))));
    }
    if r.review {
        if wanted(Topic::Review) {
            let values = vec![("score", seg.score.to_string()), ("bundle", bundle.unwrap_or_default().to_string())];
            let status = diagnostic(header, REVIEW_STATUS, 1, r.decision.reason.name(), values);
            out.push((Topic::Review, Message::Diagnostic(status)));
        }
        if wanted(Topic::ReviewImage) {
            // The input message itself when it was raw, else the decoded frame as rgb8.
            let image = match input {
                Some(FrameMsg::Raw(m)) => m.clone(),
                _ => image_u8(header, "rgb8", frame.width, frame.height, frame.rgb.clone()),
            };
            out.push((Topic::ReviewImage, Message::Image(image)));
        }
    }
    Ok(out)
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
pub fn diagnostic(
    header: &Header,
    name: &str,
    level: u8,
    message: &str,
    values: Vec<(&str, String)>,
) -> DiagnosticArray {
    diagnostic_of(header, name, "", level, message, values)
}

/// [`diagnostic`] with a `hardware_id`.
pub fn diagnostic_of(
    header: &Header,
    name: &str,
    hardware_id: &str,
    level: u8,
    message: &str,
    values: Vec<(&str, String)>,
) -> DiagnosticArray {
    DiagnosticArray {
        header: header.clone(),
        status: vec![DiagnosticStatus {
            level,
            name: name.into(),
            message: message.into(),
            hardware_id: hardware_id.into(),
            values: values.into_iter().map(|(key, value)| KeyValue { key: key.into(), value }).collect(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_list_accepts_short_private_and_full_names() {
        let got = Topic::parse_list("mask, ~/confidence,/pipeline_seg_node/review/image,mask").unwrap();
        assert_eq!(got, vec![Topic::Mask, Topic::Confidence, Topic::ReviewImage]);
        assert!(Topic::parse_list("mask,nonsense").unwrap_err().to_string().contains("nonsense"));
        assert!(Topic::parse_list(" , ").is_err());
        assert_eq!(Topic::Confident.full(), "/pipeline_seg_node/confident");
        assert_eq!(Topic::ReviewImage.private(), "~/review/image");
        assert_eq!(Topic::Confident.qos(), Qos::LATCHED);
        let set = TopicSet::of(got);
        assert!(set.contains(Topic::Mask) && set.contains(Topic::ReviewImage) && !set.contains(Topic::Overlay));
        assert_eq!(set.iter().collect::<Vec<_>>(), [Topic::Confidence, Topic::Mask, Topic::ReviewImage]);
        assert_eq!(TopicSet::ALL.with(Topic::Overlay, false).iter().count(), Topic::ALL.len() - 1);
        assert_eq!(TopicSet::ALL.with(Topic::Overlay, false).with(Topic::Overlay, true), TopicSet::ALL);
    }
}
