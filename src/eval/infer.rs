//! `infer`: image files through the one frame loop, each judged on its own (no hysteresis),
//! with mask, maps, overlay and `summary.json` written (docs/interfaces.md §6).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::config::Params;
use crate::engine::pipeline::{Pipeline, Resolution, Segmentation};
use crate::engine::processor::{Arrival, FrameFailure, FrameProcessor, GateMode, LoopOptions, Source};
use crate::engine::trust::SIGNALS;
use crate::error::{Error, Result};
use crate::eval::Progress;
use crate::io::files::{collect_inputs, unique_stem};
use crate::io::npy;
use crate::num::short;
use crate::view::render;

/// What to segment and where to write.
#[derive(Clone, Debug)]
pub struct InferConfig {
    /// Files, or directories searched for .png/.jpg/.jpeg.
    pub inputs: Vec<PathBuf>,
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Resolution of the written maps.
    pub resolution: Resolution,
    /// Also write the raw samples.
    pub save_samples: bool,
}

/// One frame of `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct InferFrame {
    /// The input file.
    pub input: PathBuf,
    /// Frame score; `None` for a failed input.
    pub score: Option<f64>,
    /// The decision.
    pub confident: bool,
    /// Why.
    pub reason: &'static str,
    /// Fraction of pipeline pixels.
    pub pipeline_fraction: Option<f64>,
    /// Decode + segmentation time [ms]; `None` for a failed input.
    pub latency_ms: Option<f64>,
    /// The trust score (docs/interfaces.md §9); `None` for a failed input or a model without one.
    pub trust: Option<f64>,
    /// The frame's signals by name (`null` where the model has none); `None` for a failed input.
    pub signals: Option<std::collections::BTreeMap<&'static str, Option<f64>>>,
    /// MC-Dropout samples the frame drew (anytime sampling: `min_samples`..`samples`); `None`
    /// for a failed input.
    pub samples: Option<usize>,
    /// Why the input failed.
    pub error: Option<String>,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct InferSummary {
    /// The model file.
    pub model: PathBuf,
    /// MC-Dropout samples T: the most a frame draws.
    pub samples: usize,
    /// Samples before the first look at whether a frame is settled.
    pub min_samples: usize,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// ONNX Runtime execution provider.
    pub execution_provider: &'static str,
    /// Frame score method.
    pub score_method: &'static str,
    /// The gate's threshold.
    pub threshold_high: f64,
    /// Every input, in order.
    pub frames: Vec<InferFrame>,
    /// Each failed input, naming its file.
    #[serde(skip)]
    pub failures: Vec<String>,
    /// Output directory.
    #[serde(skip)]
    pub out: PathBuf,
}

impl std::fmt::Display for InferSummary {
    /// The line `infer` prints at the end.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, out) = (self.frames.len(), self.out.display());
        write!(f, "{}/{n} frames segmented; outputs in {out} (summary.json)", n - self.failures.len())
    }
}

/// Segments every input; a failed input is listed and the rest written. Errors are fatal
/// (model, output directory, no inputs).
pub fn run(params: &Params, cfg: &InferConfig, progress: &mut dyn Progress) -> Result<InferSummary> {
    std::fs::create_dir_all(&cfg.out).map_err(|source| Error::Io { path: cfg.out.clone(), source })?;
    let inputs = collect_inputs(&cfg.inputs);
    if inputs.is_empty() {
        return Err(Error::param("inputs", "no .png/.jpg/.jpeg inputs found"));
    }
    let options = LoopOptions {
        gate: GateMode::Single,
        resolution: cfg.resolution,
        keep_samples: cfg.save_samples,
        ..LoopOptions::default()
    };
    let mut processor = FrameProcessor::new(Pipeline::new(params)?, options);
    let s = processor.settings().clone();
    let model = &processor.pipeline().model;
    let mut summary = InferSummary {
        model: model.path.clone(),
        samples: s.samples,
        min_samples: s.min_samples,
        seed: s.seed,
        execution_provider: model.execution_provider,
        score_method: s.score.method.name(),
        threshold_high: short(s.gate.threshold_high),
        frames: Vec::new(),
        failures: Vec::new(),
        out: cfg.out.clone(),
    };
    let mut used = HashSet::new();
    progress.start("infer", Some(inputs.len() as u64));
    for input in &inputs {
        let stem = unique_stem(input, &mut used);
        let r = processor.process(Source::File(input), Arrival::now(0));
        let (d, seg, frame) = (r.decision, r.segmentation(), r.frame.as_ref());
        let record = match (seg, frame) {
            (Some(seg), Some(frame)) => {
                let caption = render::caption(seg.score, s.score.method, d.reason);
                write_outputs(&cfg.out, &stem, frame, seg, &caption)?;
                InferFrame {
                    input: input.clone(),
                    score: Some(short(seg.score)),
                    confident: d.confident,
                    reason: d.reason.name(),
                    pipeline_fraction: Some(short(seg.pipeline_fraction)),
                    latency_ms: Some(r.latency_ms),
                    trust: seg.trust().map(f64::from),
                    signals: Some(
                        SIGNALS
                            .iter()
                            .zip(seg.signals)
                            .map(|(&n, v)| (n, Some(v as f64).filter(|v| !v.is_nan())))
                            .collect(),
                    ),
                    samples: Some(seg.samples),
                    error: None,
                }
            }
            _ => {
                let error = match &r.outcome {
                    Err(FrameFailure::Decode(e)) => e.to_string(),
                    Err(FrameFailure::Inference(e)) => e.to_string(),
                    Ok(_) => String::new(),
                };
                // An I/O error already names its path.
                let names_path = match &r.outcome {
                    Err(FrameFailure::Decode(e)) => matches!(e.downcast_ref(), Some(Error::Io { .. })),
                    _ => false,
                };
                summary.failures.push(if names_path { error.clone() } else { format!("{}: {error}", input.display()) });
                let (confident, reason) = (d.confident, d.reason.name());
                InferFrame {
                    input: input.clone(),
                    score: None,
                    confident,
                    reason,
                    pipeline_fraction: None,
                    latency_ms: None,
                    trust: None,
                    signals: None,
                    samples: None,
                    error: Some(error),
                }
            }
        };
        summary.frames.push(record);
        progress.step(&input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    }
    progress.finish();
    let path = cfg.out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n";
    std::fs::write(&path, text).map_err(|source| Error::Io { path, source })?;
    Ok(summary)
}

fn write_outputs(
    out: &Path,
    stem: &str,
    frame: &crate::engine::image::Frame,
    seg: &Segmentation,
    caption: &str,
) -> Result<()> {
    let (w, h) = (seg.width, seg.height);
    let file = |suffix: &str| out.join(format!("{stem}{suffix}"));
    render::write_png(&file("_mask.png"), &seg.mask, w, h, 1)?;
    npy::write_f32(&file("_prob.npy"), &[h, w], &seg.prob)?;
    npy::write_f32(&file("_entropy.npy"), &[h, w], &seg.entropy)?;
    npy::write_f32(&file("_mi.npy"), &[h, w], &seg.mi)?;
    render::write_png(&file("_entropy.png"), &render::entropy_color(&seg.entropy, w, h)?, w, h, 3)?;
    render::write_png(&file("_overlay.png"), &render::overlay(frame, seg, caption)?, w, h, 3)?;
    if let Some(samples) = &seg.probs {
        let data = samples.as_standard_layout();
        npy::write_f32(&file("_samples.npy"), samples.shape(), data.as_slice().unwrap_or_default())?;
    }
    Ok(())
}
