//! `replay`: every frame of a bag topic through the one frame loop
//! ([`crate::engine::processor`]), in time order, with the gate's full hysteresis (no staleness:
//! time is the bag's), the node's output messages written to an MCAP bag, `frames.csv` and the
//! metrics of docs/interfaces.md §7 in `metrics.json`.
//!
//! [`BagFrames`] reads the camera topic and matches ground truth (a mono8 0/255 mask topic) to
//! frames by header stamp in the same pass, through small bounded buffers ([`MATCH_WINDOW`]):
//! memory does not grow with the bag. `calibrate` and `select` drive the same stream without
//! writing anything. `latency_ms` (in `frames.csv` and in the `~/confidence` values) is wall
//! time from decode to decision and the only thing that differs between two runs with the same
//! seed.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::pipeline::Segmentation;
use crate::engine::processor::{Arrival, FrameFailure, FrameProcessor, FrameResult, Source};
use crate::eval::metrics::{is_bad, FrameMetrics, GateSummary};
use crate::eval::state::{self, BagRun, FrameRecord, RunKey, RunState, Seen};
use crate::eval::Problem;
use crate::io::bag_read::{self, BagError, BagMessage, MessagePos};
use crate::io::bag_write::{BagWriteError, BagWriter, TopicId};
use crate::msg::cdr::CdrMessage;
use crate::msg::{FrameMsg, Header, Image, Qos, Time};
use crate::outputs::{self, Message, Topic, TopicSet};
use crate::view::render;
use crate::view::report::{self, Gallery, GalleryItem};

/// Frames waiting for their ground truth (and masks waiting for their frame) at most.
pub const MATCH_WINDOW: usize = 16;

/// An error before anything was replayed (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The bag cannot be opened or read.
    #[error("cannot read bag: {0}")]
    Bag(#[from] BagError),
    /// A topic asked for is not in the bag.
    #[error("{}: no topic {topic}; topics: {available}", bag.display())]
    NoTopic {
        /// The bag.
        bag: PathBuf,
        /// The missing topic.
        topic: String,
        /// The bag's topics with their types.
        available: String,
    },
    /// An output file or directory cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The output bag cannot be started.
    #[error(transparent)]
    BagWrite(#[from] BagWriteError),
    /// The model or a parameter is unusable.
    #[error(transparent)]
    Engine(#[from] crate::error::Error),
    /// A run directory that cannot be used (`calibrate`, `select`).
    #[error(transparent)]
    State(#[from] crate::eval::state::StateError),
    /// No frame of the bags has ground truth (`calibrate`).
    #[error("no frame of {topic} has ground truth on {gt_topic}")]
    NoGroundTruth {
        /// The camera topic.
        topic: String,
        /// The ground-truth topic.
        gt_topic: String,
    },
}

/// A problem that did not fail a frame.
#[derive(Debug, thiserror::Error)]
pub enum Warning {
    /// A ground-truth message that cannot be used.
    #[error("{pos}: {detail}")]
    GroundTruth {
        /// Where the message is.
        pos: MessagePos,
        /// What is wrong with it.
        detail: String,
    },
    /// Ground truth whose size is not the frame's.
    #[error(
        "{pos}: ground truth {}x{} does not match the frame {}x{}; frame evaluated without it",
        gt.0, gt.1, frame.0, frame.1
    )]
    GroundTruthSize {
        /// The frame's message.
        pos: MessagePos,
        /// Ground truth width, height.
        gt: (usize, usize),
        /// Frame width, height.
        frame: (usize, usize),
    },
    /// The report thumbnail of a frame could not be made.
    #[error("{pos}: report thumbnail: {error}")]
    Thumbnail {
        /// The frame's message.
        pos: MessagePos,
        /// Why.
        error: crate::error::Error,
    },
}

/// A frame that produced no segmentation, and where it is.
#[derive(Debug, thiserror::Error)]
#[error("{pos}: {failure}")]
pub struct Failure {
    /// The frame's message.
    pub pos: MessagePos,
    /// Decode or inference failure.
    pub failure: FrameFailure,
}

/// Why a replay stopped before the end of the bag.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// The bag could not be read further.
    #[error("{error} (reading topic {topics})")]
    Bag {
        /// The bag error (it names file, topic and position).
        error: Box<BagError>,
        /// The topics being read.
        topics: String,
    },
    /// An output could not be written.
    #[error("{0}")]
    Output(String),
    /// The user interrupted the run (SIGINT); what was processed is written out.
    #[error("interrupted")]
    Interrupted,
}

/// A mono8 ground-truth mask (rows without padding).
#[derive(Clone, Debug)]
pub struct GtMask {
    /// Header stamp [ns].
    pub stamp: i64,
    /// Width [px].
    pub width: usize,
    /// Height [px].
    pub height: usize,
    /// 0 = background, 255 = pipeline.
    pub data: Vec<u8>,
}

fn decode_gt(msg: &BagMessage) -> Result<GtMask, String> {
    let img = Image::decode(&msg.data).map_err(|e| e.to_string())?;
    if img.encoding != "mono8" {
        return Err(format!("ground truth must be mono8, not {}", img.encoding));
    }
    let (w, h, step) = (img.width as usize, img.height as usize, img.step as usize);
    if step < w || img.data.len() < step * h {
        return Err(format!("ground truth {w}x{h} with step {step} has {} bytes", img.data.len()));
    }
    let data = img.data.chunks(step.max(1)).take(h).flat_map(|row| &row[..w]).copied().collect();
    Ok(GtMask { stamp: img.header.stamp.nanos(), width: w, height: h, data })
}

/// A camera message of the bag with its matched ground truth.
pub struct BagFrame {
    /// The message's log time [ns].
    pub log_time_ns: i64,
    /// Where the message is.
    pub pos: MessagePos,
    /// The camera message, or why it could not be read as one.
    pub msg: Result<FrameMsg, BagError>,
    /// The ground truth with the same stamp, if any.
    pub gt: Option<GtMask>,
}

impl BagFrame {
    fn stamp(&self) -> Option<i64> {
        self.msg.as_ref().ok().map(|m| m.header().stamp.nanos())
    }

    /// The frame as the frame loop takes it.
    pub fn source(&self) -> Source<'_> {
        match &self.msg {
            Ok(m) => Source::Msg(m),
            Err(e) => Source::Unreadable {
                header: Header { stamp: Time::from_nanos(self.log_time_ns), frame_id: String::new() },
                // The failure is reported under this frame's position: the text without it.
                error: Box::new(BagErrorText(e.to_string().trim_start_matches(&format!("{}: ", self.pos)).to_string())),
            },
        }
    }
}

/// A bag error as text (the error itself stays with the frame).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BagErrorText(String);

/// The frames of one camera topic of a bag, in log-time order, with ground truth matched by
/// header stamp.
pub struct BagFrames {
    bag: bag_read::Bag,
    topic: String,
    gt_topic: Option<String>,
}

/// The message count of `topic` from the bag's `metadata.yaml`, when the bag has one.
pub fn expected_messages(bag: &Path, topic: &str) -> Option<u64> {
    let meta = if bag.is_dir() {
        bag.join("metadata.yaml")
    } else if bag.file_name()? == "metadata.yaml" {
        bag.to_path_buf()
    } else {
        return None;
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(meta).ok()?).ok()?;
    let topics = doc.get("rosbag2_bagfile_information")?.get("topics_with_message_count")?.as_sequence()?;
    topics.iter().find_map(|t| {
        (t.get("topic_metadata")?.get("name")?.as_str()? == topic).then(|| t.get("message_count")?.as_u64()).flatten()
    })
}

impl BagFrames {
    /// Opens `bag` and checks that it has `topic` (and `gt_topic`).
    pub fn open(bag: &Path, topic: &str, gt_topic: Option<&str>) -> Result<BagFrames, ReplayError> {
        let b = bag_read::open(bag)?;
        let topics = b.topics();
        for t in std::iter::once(topic).chain(gt_topic) {
            if !topics.iter().any(|i| i.name == t) {
                let names: Vec<String> = topics.iter().map(|i| format!("{} ({})", i.name, i.type_name)).collect();
                return Err(ReplayError::NoTopic {
                    bag: bag.to_path_buf(),
                    topic: t.to_string(),
                    available: names.join(", "),
                });
            }
        }
        Ok(BagFrames { bag: b, topic: topic.to_string(), gt_topic: gt_topic.map(str::to_string) })
    }

    /// Hands every frame to `f` in order. A bag error stops the stream after the frames read
    /// before it (they are complete); an error from `f` stops it at once.
    pub fn for_each(
        self,
        warnings: &mut Vec<Warning>,
        f: &mut dyn FnMut(BagFrame) -> Result<(), Stop>,
    ) -> Option<Stop> {
        let mut wanted: Vec<&str> = vec![&self.topic];
        wanted.extend(self.gt_topic.as_deref());
        let with_gt = self.gt_topic.is_some();
        let mut pending: VecDeque<BagFrame> = VecDeque::new();
        let mut gts: VecDeque<GtMask> = VecDeque::new();
        let mut stop = None;
        for item in self.bag.messages(&wanted) {
            let msg = match item {
                Ok(m) => m,
                Err(error) => {
                    stop = Some(Stop::Bag { error: Box::new(error), topics: wanted.join(" and ") });
                    break;
                }
            };
            if msg.topic == self.topic {
                let decoded = bag_read::decode_frame(&msg);
                let mut frame = BagFrame { log_time_ns: msg.log_time_ns, pos: msg.pos(), msg: decoded, gt: None };
                if let Some(i) = frame.stamp().and_then(|s| gts.iter().position(|g| g.stamp == s)) {
                    frame.gt = gts.remove(i);
                }
                pending.push_back(frame);
            } else {
                match decode_gt(&msg) {
                    Ok(gt) => match pending.iter_mut().find(|p| p.gt.is_none() && p.stamp() == Some(gt.stamp)) {
                        Some(p) => p.gt = Some(gt),
                        None => {
                            gts.push_back(gt);
                            if gts.len() > MATCH_WINDOW {
                                gts.pop_front();
                            }
                        }
                    },
                    Err(detail) => warnings.push(Warning::GroundTruth { pos: msg.pos(), detail }),
                }
            }
            while let Some(front) = pending.front() {
                if with_gt && front.gt.is_none() && front.stamp().is_some() && pending.len() <= MATCH_WINDOW {
                    break;
                }
                let p = pending.pop_front().expect("front exists");
                if let Err(e) = f(p) {
                    return Some(e);
                }
            }
        }
        // Frames read before a bag error are complete: they are processed too.
        while let Some(p) = pending.pop_front() {
            if let Err(e) = f(p) {
                return Some(stop.unwrap_or(e));
            }
        }
        stop
    }
}

/// What to replay and where to write.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// The bags (directory, `metadata.yaml` or storage file), replayed in this order; the gate
    /// and the review clock start over at each bag, as in separate runs.
    pub bags: Vec<PathBuf>,
    /// The camera topic (Image or CompressedImage).
    pub topic: String,
    /// The ground-truth mask topic (mono8, 0/255), if any.
    pub gt_topic: Option<String>,
    /// Output topics to write.
    pub write: TopicSet,
    /// Output directory: `output/`, `frames.csv`, `metrics.json`, `report.html`, `state.json`.
    pub out: PathBuf,
}

/// One row of `frames.csv`.
#[derive(Clone, Debug)]
pub struct FrameRow {
    /// Header stamp [ns] (the log time when the message could not be decoded at all).
    pub stamp_ns: i64,
    /// Frame score; `None` for a failed frame.
    pub score: Option<f32>,
    /// The gate's decision.
    pub decision: crate::engine::gate::Decision,
    /// Fraction of pipeline pixels; `None` for a failed frame.
    pub pipeline_fraction: Option<f32>,
    /// Decode + segmentation time [ms].
    pub latency_ms: f64,
    /// Metrics against the ground truth, when the frame has some.
    pub metrics: Option<FrameMetrics>,
    /// The model's `feature_distance`, when it has that output.
    pub feature_distance: Option<f32>,
    /// The trust score, when the model has a trust model.
    pub trust: Option<f32>,
    /// MC-Dropout samples the frame drew; `None` for a failed frame.
    pub samples: Option<usize>,
}

/// `metrics.json`: docs/interfaces.md §7 over the frames with ground truth, and what ran.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayMetrics {
    /// Σ|∩| / Σ|∪|; `None` without ground truth.
    pub pooled_iou: Option<f64>,
    /// Mean per-frame IoU.
    pub mean_iou: Option<f64>,
    /// Pooled Dice.
    pub dice: Option<f64>,
    /// Pixel-error AUROC of the entropy.
    pub auroc_entropy: Option<f64>,
    /// Pixel-error AUROC of the mutual information.
    pub auroc_mi: Option<f64>,
    /// Expected calibration error.
    pub ece: Option<f64>,
    /// ECE over pipeline pixels.
    pub ece_pipe: Option<f64>,
    /// Area under the risk–coverage curve.
    pub aurc: Option<f64>,
    /// Pooled pixel error rate.
    pub pixel_error_rate: Option<f64>,
    /// Spearman correlation of frame score and IoU.
    pub spearman_score_iou: Option<f64>,
    /// Gate statistics.
    #[serde(flatten)]
    pub gate: GateSummary,
    /// Frames processed (failed ones included).
    pub frames: u64,
    /// Frames with matched ground truth.
    pub frames_with_gt: u64,
    /// Frames that could not be decoded.
    pub decode_errors: u64,
    /// Frames on which the model failed.
    pub inference_errors: u64,
    /// MC-Dropout samples T.
    pub samples: usize,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// Frame score method.
    pub score_method: &'static str,
    /// Gate thresholds in force.
    pub thresholds: Thresholds,
    /// The model file.
    pub model: PathBuf,
    /// ONNX Runtime execution provider.
    pub execution_provider: String,
    /// The (first) bag.
    pub bag: PathBuf,
    /// Every bag, in order.
    pub bags: Vec<PathBuf>,
    /// The camera topic.
    pub topic: String,
    /// The ground-truth topic.
    pub gt_topic: Option<String>,
    /// Whether the replay stopped before the end of the bag.
    pub stopped_early: bool,
    /// Why it stopped (or an output that could not be finished).
    pub error: Option<String>,
}

/// The gate thresholds as written to `metrics.json`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Thresholds {
    /// `threshold_high`.
    pub threshold_high: f64,
    /// `threshold_low`.
    pub threshold_low: f64,
    /// `recover_frames`.
    pub recover_frames: u32,
}

/// How a replay ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Frames processed (failed ones included).
    pub frames: u64,
    /// Frames with matched ground truth.
    pub frames_with_gt: u64,
    /// Frames that could not be decoded.
    pub decode_errors: u64,
    /// Frames on which the model failed.
    pub inference_errors: u64,
    /// Each failed frame.
    pub failures: Vec<Failure>,
    /// Problems that did not fail a frame.
    pub warnings: Vec<Warning>,
    /// Why the replay stopped early (the last bag, an interrupt or an output), if it did.
    pub stopped: Option<Stop>,
    /// Bags that could not be read to their end, before the last one (the run went on).
    pub bag_stops: Vec<Stop>,
    /// Outputs that could not be finished.
    pub finish_errors: Vec<String>,
    /// Output directory.
    pub out: PathBuf,
}

impl Outcome {
    /// Counts a frame and keeps its failure, if any.
    pub fn count(&mut self, pos: &MessagePos, r: FrameResult) {
        self.frames += 1;
        if let Err(failure) = r.outcome {
            match failure {
                FrameFailure::Decode(_) => self.decode_errors += 1,
                FrameFailure::Inference(_) => self.inference_errors += 1,
            }
            self.failures.push(Failure { pos: pos.clone(), failure });
        }
    }

    /// The line the CLI prints at the end: counts, rate and where the outputs are.
    pub fn summary(&self, secs: f64) -> String {
        format!(
            "{} frames ({} with ground truth, {} decode errors, {} inference errors) in {secs:.1} s ({:.2} frames/s); \
             outputs in {} (output/, frames.csv, metrics.json, report.html, state.json)",
            self.frames,
            self.frames_with_gt,
            self.decode_errors,
            self.inference_errors,
            self.frames as f64 / secs.max(1e-9),
            self.out.display()
        )
    }

    /// Why the replay did not finish cleanly, if it did not.
    pub fn error(&self) -> Option<String> {
        let mut parts: Vec<String> = self.bag_stops.iter().chain(&self.stopped).map(|s| s.to_string()).collect();
        parts.extend(self.finish_errors.iter().cloned());
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Makes the output bag of a killed `replay` (or any rosbag2 MCAP directory) whole again
/// ([`crate::io::bag_write::reindex`]); the node's topics keep the QoS the node offers.
pub fn reindex(dir: &Path) -> Result<Vec<crate::io::bag_write::Reindexed>, BagWriteError> {
    let qos_of = |name: &str| Topic::ALL.into_iter().find(|t| t.full() == name).map_or(Qos::DEFAULT, Topic::qos);
    crate::io::bag_write::reindex(dir, &qos_of)
}

/// Runs a frame of the bag through the loop.
pub fn process(processor: &mut FrameProcessor, frame: &BagFrame) -> FrameResult {
    processor.process(frame.source(), Arrival::now(frame.log_time_ns))
}

/// Drives every frame of `bag` through `processor` without writing anything (`calibrate`,
/// `select`); `f` sees each frame with its result. Returns what went wrong on the way: failed
/// frames, unusable ground truth, an early stop.
pub fn scan(
    processor: &mut FrameProcessor,
    bag: &Path,
    topic: &str,
    gt_topic: Option<&str>,
    f: &mut dyn FnMut(&BagFrame, &FrameResult),
) -> Result<Vec<Problem>, ReplayError> {
    let (mut warnings, mut outcome) = (Vec::new(), Outcome::default());
    let stop = BagFrames::open(bag, topic, gt_topic)?.for_each(&mut warnings, &mut |bf| {
        let r = process(processor, &bf);
        f(&bf, &r);
        outcome.count(&bf.pos, r);
        Ok(())
    });
    let mut problems: Vec<Problem> = outcome.failures.into_iter().map(Problem::from).collect();
    problems.extend(warnings.into_iter().map(Problem::from));
    if let Some(stop) = stop {
        problems.push(Problem::Stopped { bag: bag.to_path_buf(), frames: outcome.frames, stop });
    }
    Ok(problems)
}

/// The output bag, with only the selected topics.
struct BagSink {
    bag: BagWriter,
    ids: Vec<(Topic, TopicId)>,
}

impl BagSink {
    fn wants(&self, t: Topic) -> bool {
        self.ids.iter().any(|(o, _)| *o == t)
    }

    fn put(&mut self, log_time_ns: i64, messages: impl IntoIterator<Item = (Topic, Message)>) -> Result<(), Stop> {
        for (t, msg) in messages {
            if let Some((_, id)) = self.ids.iter().find(|(o, _)| *o == t) {
                let (b, t) = (&mut self.bag, log_time_ns);
                match &msg {
                    Message::Bool(m) => b.write_message(*id, t, t, m),
                    Message::Image(m) => b.write_message(*id, t, t, m),
                    Message::Diagnostic(m) => b.write_message(*id, t, t, m),
                }
                .map_err(|e| Stop::Output(e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// Thumbnails of a frame for the report's gallery: input, mask and entropy colour map.
fn gallery_item(r: &FrameResult) -> crate::error::Result<Option<GalleryItem>> {
    let (Some(frame), Some(seg)) = (r.frame.as_ref(), r.segmentation()) else { return Ok(None) };
    let (w, h) = (seg.width, seg.height);
    let mask: Vec<u8> = seg.mask.iter().map(|&v| if v > 0 { 255 } else { 0 }).collect();
    Ok(Some(GalleryItem {
        stamp_ns: r.header.stamp.nanos(),
        score: seg.score as f64,
        input: report::thumbnail(&frame.to_bgr(), frame.width, frame.height, 3, ".jpg")?,
        mask: report::thumbnail(&mask, w, h, 1, ".png")?,
        entropy: report::thumbnail(&render::entropy_color(&seg.entropy, w, h)?, w, h, 3, ".jpg")?,
    }))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Replays `cfg.topic` of every bag of `cfg.bags` through `processor`; `on_frame` sees every row
/// as written. Errors before the first frame (a bag unreadable, a topic missing, output not
/// writable) are [`ReplayError`]s; a bag error later stops that bag's replay (the next bag
/// still runs), an interrupt or an output error the whole run, with every output finished
/// ([`Outcome::stopped`]).
pub fn run(
    processor: &mut FrameProcessor,
    cfg: &ReplayConfig,
    on_frame: &mut dyn FnMut(&FrameRow),
) -> Result<Outcome, ReplayError> {
    for bag in &cfg.bags {
        BagFrames::open(bag, &cfg.topic, cfg.gt_topic.as_deref())?;
    }
    std::fs::create_dir_all(&cfg.out).map_err(|source| ReplayError::Output { path: cfg.out.clone(), source })?;
    let mut bag = BagWriter::create(&cfg.out.join("output"))?;
    let mut ids = Vec::new();
    for t in cfg.write.iter() {
        ids.push((t, bag.add_topic_with_qos(&t.full(), t.type_name(), t.qos())?));
    }
    let mut sink = BagSink { bag, ids };
    let csv_path = cfg.out.join(state::FRAMES_FILE);
    let mut csv = std::fs::File::create(&csv_path)
        .map(std::io::BufWriter::new)
        .map_err(|source| ReplayError::Output { path: csv_path.clone(), source })?;
    writeln!(
        csv,
        "stamp_ns,score,confident,reason,pipeline_fraction,latency_ms,iou,dice,pixel_error_rate,feature_distance,trust,samples,bag"
    )
    .map_err(|source| ReplayError::Output { path: csv_path.clone(), source })?;
    let key = RunKey::new(processor, &cfg.topic, cfg.gt_topic.as_deref())
        .map_err(|source| ReplayError::Output { path: processor.pipeline().model.path.clone(), source })?;
    let mut state = RunState::new(key, processor.pipeline().model.path.clone());
    let mut gallery = Gallery::new(report::GALLERY_FRAMES);
    let mut outcome = Outcome { out: cfg.out.clone(), ..Outcome::default() };
    let (mut gt_warnings, mut warnings) = (Vec::new(), Vec::new());
    for (b, path) in cfg.bags.iter().enumerate() {
        processor.new_sequence();
        let mut bag_run = BagRun {
            bag: path.clone(),
            frames: 0,
            frames_with_gt: 0,
            decode_errors: 0,
            inference_errors: 0,
            error: None,
        };
        let before = (outcome.frames, outcome.frames_with_gt, outcome.decode_errors, outcome.inference_errors);
        let bag_csv = csv_field(&path.display().to_string());
        let frames = BagFrames::open(path, &cfg.topic, cfg.gt_topic.as_deref())?;
        let stop = frames.for_each(&mut gt_warnings, &mut |bf| {
            if super::interrupted() {
                return Err(Stop::Interrupted);
            }
            let r = process(processor, &bf);
            let t = bf.log_time_ns;
            let metrics = match (r.segmentation(), &bf.gt) {
                (Some(seg), Some(gt)) if (gt.width, gt.height) == (seg.width, seg.height) => {
                    let m = state.accumulator.add(&seg.prob, &seg.entropy, &seg.mi, &gt.data);
                    state.gate.add_frame(&m, r.decision.confident);
                    outcome.frames_with_gt += 1;
                    Some(m)
                }
                (Some(seg), Some(gt)) => {
                    let (gt, frame) = ((gt.width, gt.height), (seg.width, seg.height));
                    warnings.push(Warning::GroundTruthSize { pos: bf.pos.clone(), gt, frame });
                    None
                }
                _ => None,
            };
            if let Some(seg) = r.segmentation() {
                if gallery.accepts(seg.score as f64, r.header.stamp.nanos()) {
                    match gallery_item(&r) {
                        Ok(Some(item)) => gallery.offer(item),
                        Ok(None) => {}
                        Err(error) => warnings.push(Warning::Thumbnail { pos: bf.pos.clone(), error }),
                    }
                }
            }
            let seg = r.segmentation();
            let row = FrameRow {
                stamp_ns: r.header.stamp.nanos(),
                score: seg.map(|s| s.score),
                decision: r.decision,
                pipeline_fraction: seg.map(|s| s.pipeline_fraction),
                latency_ms: r.latency_ms,
                metrics,
                feature_distance: seg.and_then(Segmentation::feature_distance),
                trust: seg.and_then(Segmentation::trust),
                samples: seg.map(|s| s.samples),
            };
            let m = row.metrics;
            writeln!(
                csv,
                "{},{},{},{},{},{:.3},{},{},{},{},{},{},{}",
                row.stamp_ns,
                opt(row.score),
                row.decision.confident,
                row.decision.reason.name(),
                opt(row.pipeline_fraction),
                row.latency_ms,
                opt(m.map(|m| m.iou)),
                opt(m.map(|m| m.dice)),
                opt(m.map(|m| m.pixel_error_rate)),
                opt(row.feature_distance),
                opt(row.trust),
                row.samples.map_or_else(String::new, |n| n.to_string()),
                bag_csv,
            )
            .and_then(|()| csv.flush())
            .map_err(|e| Stop::Output(format!("{}: {e}", csv_path.display())))?;
            // The row is in the file before the frame's messages can reach the bag: a killed run
            // keeps a row for every decision its bag holds.
            sink.put(t, outputs::decision_messages(&r))?;
            let input = bf.msg.as_ref().ok();
            let msgs = outputs::frame_messages(&r, input, &|topic| sink.wants(topic), None)
                .map_err(|e| Stop::Output(e.to_string()))?;
            sink.put(t, msgs)?;
            state.frames.push(record(b, &bf, &r, m));
            outcome.count(&bf.pos, r);
            on_frame(&row);
            Ok(())
        });
        bag_run.frames = outcome.frames - before.0;
        bag_run.frames_with_gt = outcome.frames_with_gt - before.1;
        bag_run.decode_errors = outcome.decode_errors - before.2;
        bag_run.inference_errors = outcome.inference_errors - before.3;
        bag_run.error = stop.as_ref().map(|s| s.to_string());
        state.bags.push(bag_run);
        match stop {
            // A bag that cannot be read further: the next bag still runs.
            Some(s @ Stop::Bag { .. }) if b + 1 < cfg.bags.len() => outcome.bag_stops.push(s),
            Some(s) => {
                outcome.stopped = Some(s);
                break;
            }
            None => {}
        }
    }
    gt_warnings.extend(warnings);
    outcome.warnings = gt_warnings;
    let BagSink { bag, .. } = sink;
    if let Err(e) = bag.finish() {
        outcome.finish_errors.push(e.to_string());
    }
    if let Err(e) = csv.flush() {
        outcome.finish_errors.push(format!("{}: {e}", csv_path.display()));
    }
    if !outcome.finish_errors.is_empty() {
        // An output that could not be finished is part of the run's error in metrics.json.
        let last = state.bags.last_mut().expect("one bag at least");
        let text = std::iter::once(last.error.take()).flatten().chain(outcome.finish_errors.iter().cloned());
        last.error = Some(text.collect::<Vec<_>>().join("; "));
    }
    let errors = state.write(&cfg.out, gallery.into_sorted());
    outcome.finish_errors.extend(errors);
    Ok(outcome)
}

/// The state file's record of a frame (`calibrate` turns its own frames into the same).
pub fn record(bag: usize, bf: &BagFrame, r: &FrameResult, m: Option<FrameMetrics>) -> FrameRecord {
    let seen = match &r.outcome {
        Ok(seg) if seg.sanity.is_ok() => Seen::Score,
        Ok(_) => Seen::ImageQuality,
        Err(FrameFailure::Decode(_)) => Seen::DecodeError,
        Err(FrameFailure::Inference(_)) => Seen::InferenceError,
    };
    let finite = |v: f32| Some(v).filter(|v| !v.is_nan());
    let seg = r.segmentation();
    FrameRecord {
        bag,
        log_time_ns: bf.log_time_ns,
        stamp_ns: r.header.stamp.nanos(),
        seen,
        scores: seg.map(|s| s.scores.iter().map(|&v| finite(v)).collect()).unwrap_or_default(),
        mi_score: seg.and_then(|s| finite(s.mi_score)),
        signals: seg.map(|s| s.signals.iter().map(|&v| finite(v)).collect()).unwrap_or_default(),
        confident: r.decision.confident,
        review: r.review,
        iou: m.map(|m| m.iou),
        bad: m.map(|m| is_bad(m.iou, m.gt_has_pipe, m.pred_has_pipe)),
    }
}

/// A CSV field, quoted when it holds a comma or a quote.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
