//! `replay`: every frame of a bag topic through the one pipeline, in time order, with the gate's
//! full hysteresis (no staleness: time is the bag's), the node's output messages written to an
//! MCAP bag, `frames.csv` and the metrics of INTERFACES §7 in `metrics.json`.
//!
//! Ground truth (a mono8 0/255 mask topic) is matched to frames by header stamp in the same
//! pass, through small bounded buffers ([`MATCH_WINDOW`]): memory does not grow with the bag.
//! Every message content comes from the same helpers as the node's ([`crate::outputs`]).
//! `latency_ms` (in `frames.csv` and in the `~/confidence` values) is wall time from decode to
//! segmentation and the only thing that differs between two runs with the same seed.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bag::cdr::{self, CdrMessage};
use crate::bag::read::{self, BagError, FrameMsg, MessagePos};
use crate::bag::write::{BagWriter, Qos, TopicId};
use crate::eval::{spearman, Accumulator, FrameMetrics, GateStats};
use crate::gate::{Decision, Gate, Observation};
use crate::image::Frame;
use crate::pipeline::{Pipeline, Resolution, Segmentation};
use crate::report::{FramePoint, Gallery, GalleryItem, ReportInput};
use crate::outputs::{diagnostic, image_f32, image_u8};
use crate::{outputs, render, report};

/// Frames waiting for their ground truth (and masks waiting for their frame) at most.
pub const MATCH_WINDOW: usize = 16;

/// The node's default name: output topics are `/pipeline_seg_node/<name>`.
pub const NODE_NAMESPACE: &str = "/pipeline_seg_node";

/// An output topic of the node (INTERFACES §4, all but `/diagnostics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutTopic {
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
    /// `~/confident`, std_msgs/Bool, latched.
    Confident,
    /// `~/confidence`, DiagnosticArray.
    Confidence,
    /// `~/review`, DiagnosticArray.
    Review,
    /// `~/review/image`, Image.
    ReviewImage,
}

impl OutTopic {
    /// Every output topic, in the order the node publishes them for a frame.
    pub const ALL: [OutTopic; 10] = [
        OutTopic::Confident,
        OutTopic::Confidence,
        OutTopic::Mask,
        OutTopic::Probability,
        OutTopic::Entropy,
        OutTopic::MutualInformation,
        OutTopic::EntropyColor,
        OutTopic::Overlay,
        OutTopic::Review,
        OutTopic::ReviewImage,
    ];

    /// The name below the node, e.g. `mask`, `review/image`.
    pub fn short(self) -> &'static str {
        match self {
            OutTopic::Mask => "mask",
            OutTopic::Probability => "probability",
            OutTopic::Entropy => "entropy",
            OutTopic::MutualInformation => "mutual_information",
            OutTopic::EntropyColor => "entropy_color",
            OutTopic::Overlay => "overlay",
            OutTopic::Confident => "confident",
            OutTopic::Confidence => "confidence",
            OutTopic::Review => "review",
            OutTopic::ReviewImage => "review/image",
        }
    }

    /// The full topic name under the node's default name.
    pub fn full(self) -> String {
        format!("{NODE_NAMESPACE}/{}", self.short())
    }

    /// The message type.
    pub fn type_name(self) -> &'static str {
        match self {
            OutTopic::Confident => cdr::Bool::TYPE_NAME,
            OutTopic::Confidence | OutTopic::Review => cdr::DiagnosticArray::TYPE_NAME,
            _ => cdr::Image::TYPE_NAME,
        }
    }

    /// The QoS the node offers on it.
    pub fn qos(self) -> Qos {
        if self == OutTopic::Confident {
            Qos::LATCHED
        } else {
            Qos::DEFAULT
        }
    }

    /// Parses a comma-separated list of names (`mask`, `~/mask` or `/pipeline_seg_node/mask`).
    pub fn parse_list(list: &str) -> Result<Vec<OutTopic>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let short = name
                .strip_prefix(&format!("{NODE_NAMESPACE}/"))
                .or_else(|| name.strip_prefix("~/"))
                .unwrap_or(name);
            let topic = OutTopic::ALL.into_iter().find(|t| t.short() == short).ok_or_else(|| {
                let known: Vec<&str> = OutTopic::ALL.iter().map(|t| t.short()).collect();
                format!("--write: unknown topic '{name}' (known: {})", known.join(", "))
            })?;
            if !out.contains(&topic) {
                out.push(topic);
            }
        }
        if out.is_empty() {
            return Err("--write: no topic named".into());
        }
        Ok(out)
    }
}

/// What to replay and where to write.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// The bag (directory, `metadata.yaml` or storage file).
    pub bag: PathBuf,
    /// The camera topic (Image or CompressedImage).
    pub topic: String,
    /// The ground-truth mask topic (mono8, 0/255), if any.
    pub gt_topic: Option<String>,
    /// Output topics to write.
    pub write: Vec<OutTopic>,
    /// Output directory: `output/`, `frames.csv`, `metrics.json`.
    pub out: PathBuf,
    /// At most one review per this much bag time.
    pub review_min_interval: Duration,
}

/// One row of `frames.csv`.
#[derive(Clone, Debug)]
pub struct FrameRow {
    /// Header stamp [ns] (the log time when the message could not be decoded at all).
    pub stamp_ns: i64,
    /// Frame score; `None` for a failed frame.
    pub score: Option<f32>,
    /// The `score_method` applied to the mutual-information map (at input resolution) instead
    /// of the entropy (`select --by mi`); `None` for a failed frame.
    pub mi_score: Option<f32>,
    /// The gate's decision.
    pub decision: Decision,
    /// Fraction of pipeline pixels; `None` for a failed frame.
    pub pipeline_fraction: Option<f32>,
    /// Decode + segmentation time [ms].
    pub latency_ms: f64,
    /// Metrics against the ground truth, when the frame has some.
    pub metrics: Option<FrameMetrics>,
    /// Why the frame failed (decode error), if it did.
    pub error: Option<String>,
}

/// How a replay ended.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Frames processed (failed ones included).
    pub frames: u64,
    /// Frames with matched ground truth.
    pub frames_with_gt: u64,
    /// Frames that could not be decoded.
    pub decode_errors: u64,
    /// Each failed frame, naming file, topic and position.
    pub failures: Vec<String>,
    /// Problems that did not fail a frame (ground truth that could not be used).
    pub warnings: Vec<String>,
    /// The bag error that stopped the replay early (it names file, topic and position).
    pub stopped: Option<String>,
    /// Output directory.
    pub out: PathBuf,
}

/// An error before anything was replayed (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// The message count of `topic` from the bag's `metadata.yaml`, when the bag has one.
pub fn expected_messages(bag: &Path, topic: &str) -> Option<u64> {
    let meta = if bag.is_dir() { bag.join("metadata.yaml") } else if bag.file_name()? == "metadata.yaml" { bag.to_path_buf() } else { return None };
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(meta).ok()?).ok()?;
    let topics = doc.get("rosbag2_bagfile_information")?.get("topics_with_message_count")?.as_sequence()?;
    topics.iter().find_map(|t| {
        (t.get("topic_metadata")?.get("name")?.as_str()? == topic).then(|| t.get("message_count")?.as_u64()).flatten()
    })
}

struct GtMask {
    stamp: i64,
    width: usize,
    height: usize,
    data: Vec<u8>,
}

struct Pending {
    log_time_ns: i64,
    pos: MessagePos,
    decoded: Result<FrameMsg, BagError>,
    stamp: Option<i64>,
    gt: Option<GtMask>,
}

/// Reads a mono8 ground-truth mask (rows without padding).
fn decode_gt(msg: &read::BagMessage) -> Result<GtMask, String> {
    let img = cdr::Image::decode(&msg.data).map_err(|e| format!("{}: {e}", msg.pos()))?;
    if img.encoding != "mono8" {
        return Err(format!("{}: ground truth must be mono8, not {}", msg.pos(), img.encoding));
    }
    let (w, h, step) = (img.width as usize, img.height as usize, img.step as usize);
    if step < w || img.data.len() < step * h {
        return Err(format!("{}: ground truth {w}x{h} with step {step} has {} bytes", msg.pos(), img.data.len()));
    }
    let data = img.data.chunks(step.max(1)).take(h).flat_map(|row| &row[..w]).copied().collect();
    Ok(GtMask { stamp: img.header.stamp.nanos(), width: w, height: h, data })
}

/// The output bag, with only the selected topics.
struct Writer {
    bag: BagWriter,
    ids: Vec<(OutTopic, TopicId)>,
}

impl Writer {
    fn id(&self, t: OutTopic) -> Option<TopicId> {
        self.ids.iter().find(|(o, _)| *o == t).map(|(_, id)| *id)
    }

    fn wants(&self, t: OutTopic) -> bool {
        self.id(t).is_some()
    }

    fn put<M: CdrMessage>(&mut self, t: OutTopic, log_time_ns: i64, msg: &M) -> Result<(), String> {
        match self.id(t) {
            Some(id) => self.bag.write_message(id, log_time_ns, log_time_ns, msg).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

struct Run<'a> {
    pipeline: &'a mut Pipeline,
    cfg: &'a ReplayConfig,
    gate: Gate,
    writer: Writer,
    csv: std::io::BufWriter<std::fs::File>,
    acc: Accumulator,
    gate_stats: GateStats,
    scores: Vec<f64>,
    ious: Vec<f64>,
    last_review_ns: Option<i64>,
    outcome: Outcome,
    /// Log time of the first frame, for `report.html`'s time axes.
    first_ns: Option<i64>,
    /// One small point per frame for `report.html`'s plots.
    points: Vec<FramePoint>,
    /// The most uncertain frames' thumbnails (bounded).
    gallery: Gallery,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl Run<'_> {
    fn process(&mut self, p: Pending, on_frame: &mut dyn FnMut(&FrameRow)) -> Result<(), String> {
        let settings = self.pipeline.settings().clone();
        let start = Instant::now();
        let header = match &p.decoded {
            Ok(m) => m.header().clone(),
            Err(_) => cdr::Header { stamp: cdr::Time::from_nanos(p.log_time_ns), frame_id: String::new() },
        };
        let result: Result<(Frame, Segmentation), String> = match &p.decoded {
            Ok(m) => m
                .decode(settings.max_image_pixels)
                .and_then(|f| {
                    let seg = self.pipeline.segment(&f, Resolution::Input, false)?;
                    Ok((f, seg))
                })
                .map_err(|e| format!("{}: {e}", p.pos)),
            Err(b) => Err(b.to_string()),
        };
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        let t = p.log_time_ns;
        self.outcome.frames += 1;
        let mut flagged = false;
        let row = match result {
            Ok((frame, seg)) => {
                let decision = self.gate.update(seg.observation());
                let visible = seg.pipeline_visible(&settings);
                self.writer.put(OutTopic::Confident, t, &cdr::Bool { data: decision.confident })?;
                let values = outputs::confidence_values(&settings, Some((&seg, visible)), latency_ms);
                let msg = diagnostic(&header, outputs::CONFIDENCE_STATUS, decision.reason.level(), decision.reason.name(), values);
                self.writer.put(OutTopic::Confidence, t, &msg)?;
                let (w, h) = (seg.width, seg.height);
                if self.writer.wants(OutTopic::Mask) {
                    self.writer.put(OutTopic::Mask, t, &image_u8(&header, "mono8", w, h, seg.mask.clone()))?;
                }
                for (topic, map) in [(OutTopic::Probability, &seg.prob), (OutTopic::Entropy, &seg.entropy), (OutTopic::MutualInformation, &seg.mi)] {
                    if self.writer.wants(topic) {
                        self.writer.put(topic, t, &image_f32(&header, w, h, map))?;
                    }
                }
                if self.writer.wants(OutTopic::EntropyColor) {
                    let bgr = render::entropy_color(&seg.entropy, w, h).map_err(|e| e.to_string())?;
                    self.writer.put(OutTopic::EntropyColor, t, &image_u8(&header, "bgr8", w, h, bgr))?;
                }
                if self.writer.wants(OutTopic::Overlay) {
                    let bgr = render::overlay(&frame, &seg, &outputs::overlay_caption(&seg, decision.reason)).map_err(|e| e.to_string())?;
                    self.writer.put(OutTopic::Overlay, t, &image_u8(&header, "bgr8", w, h, bgr))?;
                }
                let since = self.last_review_ns.map(|l| Duration::from_nanos(t.saturating_sub(l).max(0) as u64));
                if outputs::review_due(decision.reason, since, self.cfg.review_min_interval) {
                    self.last_review_ns = Some(t);
                    flagged = true;
                    let values = outputs::review_values(&seg, None);
                    self.writer.put(OutTopic::Review, t, &diagnostic(&header, outputs::REVIEW_STATUS, 1, decision.reason.name(), values))?;
                    if self.writer.wants(OutTopic::ReviewImage) {
                        let image = match &p.decoded {
                            Ok(msg) => outputs::review_image(msg, &frame),
                            Err(_) => image_u8(&header, "rgb8", frame.width, frame.height, frame.rgb.clone()),
                        };
                        self.writer.put(OutTopic::ReviewImage, t, &image)?;
                    }
                }
                let metrics = match &p.gt {
                    Some(gt) if (gt.width, gt.height) == (w, h) => {
                        let m = self.acc.add(&seg.prob, &seg.entropy, &seg.mi, &gt.data);
                        self.gate_stats.add_frame(&m, decision.confident);
                        self.scores.push(seg.score as f64);
                        self.ious.push(m.iou);
                        self.outcome.frames_with_gt += 1;
                        Some(m)
                    }
                    Some(gt) => {
                        self.outcome.warnings.push(format!(
                            "{}: ground truth {}x{} does not match the frame {w}x{h}; frame evaluated without it",
                            p.pos, gt.width, gt.height
                        ));
                        None
                    }
                    None => None,
                };
                let stamp_ns = header.stamp.nanos();
                if self.gallery.accepts(seg.score as f64, stamp_ns) {
                    match gallery_item(&frame, &seg, stamp_ns) {
                        Ok(item) => self.gallery.offer(item),
                        Err(e) => self.outcome.warnings.push(format!("{}: report thumbnail: {e}", p.pos)),
                    }
                }
                FrameRow {
                    stamp_ns: header.stamp.nanos(),
                    score: Some(seg.score),
                    mi_score: crate::uncertainty::frame_score(&seg.mi, &seg.prob, w, h, &settings.score).ok(),
                    decision,
                    pipeline_fraction: Some(seg.pipeline_fraction),
                    latency_ms,
                    metrics,
                    error: None,
                }
            }
            Err(e) => {
                let decision = self.gate.update(Observation::DecodeError);
                self.writer.put(OutTopic::Confident, t, &cdr::Bool { data: decision.confident })?;
                let values = outputs::confidence_values(&settings, None, latency_ms);
                let msg = diagnostic(&header, outputs::CONFIDENCE_STATUS, decision.reason.level(), decision.reason.name(), values);
                self.writer.put(OutTopic::Confidence, t, &msg)?;
                self.outcome.decode_errors += 1;
                self.outcome.failures.push(e.clone());
                FrameRow { stamp_ns: header.stamp.nanos(), score: None, mi_score: None, decision, pipeline_fraction: None, latency_ms, metrics: None, error: Some(e) }
            }
        };
        let m = row.metrics;
        writeln!(
            self.csv,
            "{},{},{},{},{},{:.3},{},{},{}",
            row.stamp_ns,
            opt(row.score),
            row.decision.confident,
            row.decision.reason.name(),
            opt(row.pipeline_fraction),
            row.latency_ms,
            opt(m.map(|m| m.iou)),
            opt(m.map(|m| m.dice)),
            opt(m.map(|m| m.pixel_error_rate)),
        )
        .map_err(|e| format!("{}: {e}", self.cfg.out.join("frames.csv").display()))?;
        let first = *self.first_ns.get_or_insert(t);
        self.points.push(FramePoint {
            t: (t - first) as f64 * 1e-9,
            score: row.score.map(f64::from),
            confident: row.decision.confident,
            flagged,
            iou: m.map(|m| m.iou),
        });
        on_frame(&row);
        Ok(())
    }
}

/// Thumbnails of a frame for the report's gallery: input, mask and entropy colour map.
fn gallery_item(frame: &Frame, seg: &Segmentation, stamp_ns: i64) -> crate::Result<GalleryItem> {
    let (w, h) = (seg.width, seg.height);
    let mask: Vec<u8> = seg.mask.iter().map(|&v| if v > 0 { 255 } else { 0 }).collect();
    Ok(GalleryItem {
        stamp_ns,
        score: seg.score as f64,
        input: report::thumbnail(&frame.to_bgr(), frame.width, frame.height, 3, ".jpg")?,
        mask: report::thumbnail(&mask, w, h, 1, ".png")?,
        entropy: report::thumbnail(&render::entropy_color(&seg.entropy, w, h)?, w, h, 3, ".jpg")?,
    })
}

/// Replays `cfg.topic` of `cfg.bag` through `pipeline`; `on_frame` sees every row as written.
/// Errors before the first frame (bag unreadable, topic missing, output not writable) are
/// [`Fatal`]; a bag error later stops the replay with every output finished
/// ([`Outcome::stopped`]).
pub fn run(pipeline: &mut Pipeline, cfg: &ReplayConfig, on_frame: &mut dyn FnMut(&FrameRow)) -> Result<Outcome, Fatal> {
    let bag = read::open(&cfg.bag).map_err(|e| Fatal(format!("cannot read bag: {e}")))?;
    let topics = bag.topics();
    for t in std::iter::once(&cfg.topic).chain(cfg.gt_topic.as_ref()) {
        if !topics.iter().any(|i| &i.name == t) {
            let names: Vec<String> = topics.iter().map(|i| format!("{} ({})", i.name, i.type_name)).collect();
            return Err(Fatal(format!("{}: no topic {t}; topics: {}", cfg.bag.display(), names.join(", "))));
        }
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| Fatal(format!("cannot create {}: {e}", cfg.out.display())))?;
    let mut bag_writer = BagWriter::create(&cfg.out.join("output")).map_err(|e| Fatal(e.to_string()))?;
    let mut ids = Vec::new();
    for t in OutTopic::ALL.into_iter().filter(|t| cfg.write.contains(t)) {
        let id = bag_writer.add_topic_with_qos(&t.full(), t.type_name(), t.qos()).map_err(|e| Fatal(e.to_string()))?;
        ids.push((t, id));
    }
    let csv_path = cfg.out.join("frames.csv");
    let mut csv = std::fs::File::create(&csv_path)
        .map(std::io::BufWriter::new)
        .map_err(|e| Fatal(format!("cannot write {}: {e}", csv_path.display())))?;
    writeln!(csv, "stamp_ns,score,confident,reason,pipeline_fraction,latency_ms,iou,dice,pixel_error_rate")
        .map_err(|e| Fatal(format!("cannot write {}: {e}", csv_path.display())))?;
    let gate = Gate::new(pipeline.settings().gate);
    let mut run = Run {
        pipeline,
        cfg,
        gate,
        writer: Writer { bag: bag_writer, ids },
        csv,
        acc: Accumulator::new(),
        gate_stats: GateStats::new(),
        scores: Vec::new(),
        ious: Vec::new(),
        last_review_ns: None,
        outcome: Outcome { out: cfg.out.clone(), ..Outcome::default() },
        first_ns: None,
        points: Vec::new(),
        gallery: Gallery::new(report::GALLERY_FRAMES),
    };

    let mut wanted: Vec<&str> = vec![&cfg.topic];
    if let Some(g) = &cfg.gt_topic {
        wanted.push(g);
    }
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut gts: VecDeque<GtMask> = VecDeque::new();
    let with_gt = cfg.gt_topic.is_some();
    let mut stop: Option<String> = None;
    let mut output_failed = false;
    for item in bag.messages(&wanted) {
        let msg = match item {
            Ok(m) => m,
            Err(e) => {
                stop = Some(format!("{e} (reading topic {})", wanted.join(" and ")));
                break;
            }
        };
        if msg.topic == cfg.topic {
            let decoded = read::decode_frame(&msg);
            let stamp = decoded.as_ref().ok().map(|m| m.header().stamp.nanos());
            let gt = stamp.and_then(|s| gts.iter().position(|g| g.stamp == s)).and_then(|i| gts.remove(i));
            pending.push_back(Pending { log_time_ns: msg.log_time_ns, pos: msg.pos(), decoded, stamp, gt });
        } else {
            match decode_gt(&msg) {
                Ok(gt) => {
                    if let Some(p) = pending.iter_mut().find(|p| p.gt.is_none() && p.stamp == Some(gt.stamp)) {
                        p.gt = Some(gt);
                    } else {
                        gts.push_back(gt);
                        if gts.len() > MATCH_WINDOW {
                            gts.pop_front();
                        }
                    }
                }
                Err(e) => run.outcome.warnings.push(e),
            }
        }
        while let Some(front) = pending.front() {
            if with_gt && front.gt.is_none() && front.stamp.is_some() && pending.len() <= MATCH_WINDOW {
                break;
            }
            let p = pending.pop_front().expect("front exists");
            if let Err(e) = run.process(p, on_frame) {
                stop = Some(e);
                output_failed = true;
                break;
            }
        }
        if stop.is_some() {
            break;
        }
    }
    // Frames read before a bag error are complete: they are processed too (not after an
    // output error, which would only repeat).
    if !output_failed {
        while let Some(p) = pending.pop_front() {
            if let Err(e) = run.process(p, on_frame) {
                stop.get_or_insert(e);
                break;
            }
        }
    }
    let Run { pipeline, writer, mut csv, acc, gate_stats, scores, ious, mut outcome, points, gallery, .. } = run;
    outcome.stopped = stop;
    let mut finish_errors = Vec::new();
    if let Err(e) = writer.bag.finish() {
        finish_errors.push(e.to_string());
    }
    if let Err(e) = csv.flush() {
        finish_errors.push(format!("{}: {e}", csv_path.display()));
    }
    let settings = pipeline.settings();
    let m = acc.metrics();
    let gs = gate_stats.summary();
    let short = |v: f32| -> f64 { v.to_string().parse().unwrap_or(f64::NAN) };
    let metrics = serde_json::json!({
        "pooled_iou": (acc.frames() > 0).then_some(m.pooled_iou),
        "mean_iou": m.mean_iou,
        "dice": (acc.frames() > 0).then_some(m.dice),
        "auroc_entropy": m.auroc_entropy,
        "auroc_mi": m.auroc_mi,
        "ece": m.ece,
        "ece_pipe": m.ece_pipe,
        "aurc": (acc.frames() > 0).then_some(m.aurc),
        "pixel_error_rate": (acc.frames() > 0).then_some(m.pixel_error_rate),
        "spearman_score_iou": spearman(&scores, &ious),
        "bad_flagged": gs.bad_flagged,
        "good_flagged": gs.good_flagged,
        "bad_frames": gs.bad_frames,
        "good_frames": gs.good_frames,
        "frames": outcome.frames,
        "frames_with_gt": outcome.frames_with_gt,
        "decode_errors": outcome.decode_errors,
        "samples": settings.samples,
        "seed": settings.seed,
        "score_method": settings.score.method.name(),
        "thresholds": {
            "threshold_high": short(settings.gate.threshold_high),
            "threshold_low": short(settings.gate.threshold_low),
            "recover_frames": settings.gate.recover_frames,
        },
        "model": pipeline.model.path,
        "execution_provider": pipeline.model.execution_provider,
        "bag": cfg.bag,
        "topic": cfg.topic,
        "gt_topic": cfg.gt_topic,
        "stopped_early": outcome.stopped.is_some(),
        "error": outcome.stopped,
    });
    let metrics_path = cfg.out.join("metrics.json");
    let text = serde_json::to_string_pretty(&metrics).unwrap_or_default() + "\n";
    if let Err(e) = std::fs::write(&metrics_path, text) {
        finish_errors.push(format!("{}: {e}", metrics_path.display()));
    }
    let report_path = cfg.out.join("report.html");
    let report_input = ReportInput {
        metrics: &metrics,
        frames: &points,
        threshold_high: settings.gate.threshold_high as f64,
        threshold_low: settings.gate.threshold_low as f64,
        reliability: acc.reliability(),
        risk_coverage: acc.risk_coverage(),
        aurc: (acc.frames() > 0).then_some(m.aurc),
        roc: acc.error_roc(),
        auroc: m.auroc_entropy,
        gallery: gallery.into_sorted(),
    };
    if let Err(e) = report::write_report(&report_path, &report_input) {
        finish_errors.push(format!("{}: {e}", report_path.display()));
    }
    if !finish_errors.is_empty() {
        let msg = finish_errors.join("; ");
        outcome.stopped = Some(match outcome.stopped.take() {
            Some(s) => format!("{s}; {msg}"),
            None => msg,
        });
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_list_accepts_short_private_and_full_names() {
        let got = OutTopic::parse_list("mask, ~/confidence,/pipeline_seg_node/review/image,mask").unwrap();
        assert_eq!(got, vec![OutTopic::Mask, OutTopic::Confidence, OutTopic::ReviewImage]);
        assert!(OutTopic::parse_list("mask,nonsense").unwrap_err().contains("nonsense"));
        assert!(OutTopic::parse_list(" , ").is_err());
        assert_eq!(OutTopic::Confident.full(), "/pipeline_seg_node/confident");
        assert_eq!(OutTopic::Confident.qos(), Qos::LATCHED);
    }

    #[test]
    fn review_is_due_for_uncertain_and_image_quality_at_most_once_per_interval() {
        use crate::gate::Reason;
        let ten = Duration::from_secs(10);
        assert!(outputs::review_due(Reason::Uncertain, None, ten));
        assert!(outputs::review_due(Reason::ImageQuality, Some(ten), ten));
        assert!(!outputs::review_due(Reason::Uncertain, Some(Duration::from_secs(9)), ten));
        for r in [Reason::Ok, Reason::Recovering, Reason::Stale, Reason::DecodeError] {
            assert!(!outputs::review_due(r, None, ten));
        }
    }
}
