//! The one frame loop: decode → segment → gate → review clock, for every entry point.
//!
//! The node, `replay`, `calibrate`, `select` and `infer` all hand their frames to
//! [`FrameProcessor::process`] and consume the typed [`FrameResult`] it returns (publishers,
//! bag writer, CSV, metrics, collectors). What differs between them is only what they pass in:
//! the arrival time and clock ([`Arrival`]), whether staleness applies, and whether frames are a
//! sequence (hysteresis) or independent files ([`GateMode`]).

use std::time::{Duration, Instant};

use crate::engine::config::Settings;
use crate::engine::gate::{Decision, Gate, Observation, Reason};
use crate::engine::image::{decode_msg, Frame};
use crate::engine::pipeline::{Pipeline, Resolution, Segmentation};
use crate::error::{Error, Result};
use crate::msg::{FrameMsg, Header};

/// When a frame arrived.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// On this process's monotonic clock: latency and staleness are measured from here.
    pub at: Instant,
    /// On the review clock [ns]: wall time in the node, the bag's log time in a replay.
    pub clock_ns: i64,
}

impl Arrival {
    /// A frame arriving now, at `clock_ns` on the review clock.
    pub fn now(clock_ns: i64) -> Arrival {
        Arrival { at: Instant::now(), clock_ns }
    }
}

/// What a frame is, as the driver received it.
#[derive(Debug)]
pub enum Source<'a> {
    /// A camera message (node, bag).
    Msg(&'a FrameMsg),
    /// An image file (`infer`); its header is empty.
    File(&'a std::path::Path),
    /// A message that could not even be read as a camera message (a bag record whose CDR is
    /// corrupt): a decode error with this header.
    Unreadable {
        /// The header to report it under (the bag's log time as stamp).
        header: Header,
        /// Why it could not be read.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a frame produced no segmentation.
#[derive(Debug, thiserror::Error)]
pub enum FrameFailure {
    /// The message or file could not be decoded to a frame (counted as a decode error).
    #[error("{0}")]
    Decode(Box<dyn std::error::Error + Send + Sync>),
    /// ONNX Runtime (or a map operation) failed on a decoded frame (counted as an inference
    /// error, never as a decode error).
    #[error("{0}")]
    Inference(Error),
}

impl FrameFailure {
    /// The gate's view of the failure.
    pub fn observation(&self) -> Observation {
        match self {
            FrameFailure::Decode(_) => Observation::DecodeError,
            FrameFailure::Inference(_) => Observation::InferenceError,
        }
    }
}

/// Everything one frame produced; sinks turn it into messages, rows and statistics.
#[derive(Debug)]
pub struct FrameResult {
    /// The input's header, copied to every output.
    pub header: Header,
    /// The frame's time on the review clock [ns] (see [`Arrival::clock_ns`]).
    pub clock_ns: i64,
    /// The decoded frame, when decoding succeeded.
    pub frame: Option<Frame>,
    /// The segmentation, or why there is none.
    pub outcome: std::result::Result<Segmentation, FrameFailure>,
    /// The gate's decision for this frame.
    pub decision: Decision,
    /// Whether the pipeline is visible enough to follow (`min_pipeline_fraction`).
    pub pipeline_visible: bool,
    /// Arrival → decision [ms].
    pub latency_ms: f64,
    /// Whether this frame asks a human to review it (see [`review_due`]).
    pub review: bool,
    /// The settings the frame was processed with.
    pub settings: Settings,
}

impl FrameResult {
    /// The segmentation, if the frame has one.
    pub fn segmentation(&self) -> Option<&Segmentation> {
        self.outcome.as_ref().ok()
    }
}

/// How the gate judges frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateMode {
    /// Frames are a sequence (node, replay): full hysteresis.
    Sequence,
    /// Frames are independent files (`infer`): confident = sane and score ≤ `threshold_high`.
    Single,
}

/// What a driver sets beyond the pipeline's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoopOptions {
    /// Sequence or single-frame gate.
    pub gate: GateMode,
    /// A decision later than this after arrival is stale (node); `None`: never (replay, files).
    pub stale_timeout: Option<Duration>,
    /// Resolution of the returned maps.
    pub resolution: Resolution,
    /// Keep the raw samples in the segmentation (`infer --save-samples`).
    pub keep_samples: bool,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            gate: GateMode::Sequence,
            stale_timeout: None,
            resolution: Resolution::Input,
            keep_samples: false,
        }
    }
}

/// Whether a frame decided with `reason` requests a review: the gate is unconfident because of
/// the model (`uncertain`) or the image (`image_quality`), and the last review was at least
/// `min_interval` ago (`since_last` = `None`: no review yet).
pub fn review_due(reason: Reason, since_last: Option<Duration>, min_interval: Duration) -> bool {
    matches!(reason, Reason::Uncertain | Reason::ImageQuality) && since_last.is_none_or(|d| d >= min_interval)
}

/// Pipeline, gate and review clock: turns each frame into a [`FrameResult`].
pub struct FrameProcessor {
    pipeline: Pipeline,
    gate: Gate,
    options: LoopOptions,
    last_review_ns: Option<i64>,
}

impl FrameProcessor {
    /// A processor whose gate starts unconfident (recovering).
    pub fn new(pipeline: Pipeline, options: LoopOptions) -> FrameProcessor {
        let gate = Gate::new(pipeline.settings().gate);
        FrameProcessor { pipeline, gate, options, last_review_ns: None }
    }

    /// The pipeline (model, settings).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        self.pipeline.settings()
    }

    /// The driver's options in force.
    pub fn options(&self) -> &LoopOptions {
        &self.options
    }

    /// Starts a new frame sequence (the next bag of a replay): the gate starts unconfident
    /// again and the review clock over, as in a fresh run, so that a run over several bags
    /// decides every bag as separate runs would (docs/interfaces.md §11).
    pub fn new_sequence(&mut self) {
        self.gate = Gate::new(self.pipeline.settings().gate);
        self.last_review_ns = None;
    }

    /// Replaces the settings (validated first; the old ones stay on error) and the options.
    pub fn reconfigure(&mut self, settings: Settings, options: LoopOptions) -> Result<()> {
        self.pipeline.set_settings(settings)?;
        self.gate.params = self.pipeline.settings().gate;
        self.options = options;
        Ok(())
    }

    /// No fresh frame in time (the node's timer said so): recovery starts over.
    pub fn mark_stale(&mut self) {
        self.gate.stale();
    }

    /// Runs one frame through decode → segment → gate → review clock.
    pub fn process(&mut self, source: Source<'_>, arrival: Arrival) -> FrameResult {
        let settings = self.pipeline.settings().clone();
        let (header, frame) = match source {
            Source::Msg(m) => (m.header().clone(), decode_msg(m, settings.max_image_pixels).map_err(boxed)),
            Source::File(path) => {
                (Header::default(), crate::engine::image::read_file(path, settings.max_image_pixels).map_err(boxed))
            }
            Source::Unreadable { header, error } => (header, Err(error)),
        };
        let (frame, outcome) = match frame {
            Ok(frame) => {
                let o = self.options;
                let seg = self.pipeline.segment(&frame, o.resolution, o.keep_samples).map_err(FrameFailure::Inference);
                (Some(frame), seg)
            }
            Err(e) => (None, Err(FrameFailure::Decode(e))),
        };
        let observation = match &outcome {
            Ok(seg) => seg.observation(),
            Err(f) => f.observation(),
        };
        let latency_ms = arrival.at.elapsed().as_secs_f64() * 1e3;
        let decision = match (self.options.gate, self.options.stale_timeout) {
            (GateMode::Single, _) => Gate::single(&settings.gate, observation),
            (GateMode::Sequence, Some(timeout)) if arrival.at.elapsed() > timeout => self.gate.stale(),
            (GateMode::Sequence, _) => self.gate.update(observation),
        };
        let since = self.last_review_ns.map(|l| Duration::from_nanos(arrival.clock_ns.saturating_sub(l).max(0) as u64));
        let review = outcome.is_ok() && review_due(decision.reason, since, settings.review_min_interval);
        if review {
            self.last_review_ns = Some(arrival.clock_ns);
        }
        let pipeline_visible = outcome.as_ref().is_ok_and(|s| s.pipeline_visible(&settings));
        FrameResult {
            header,
            clock_ns: arrival.clock_ns,
            frame,
            outcome,
            decision,
            pipeline_visible,
            latency_ms,
            review,
            settings,
        }
    }
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}
