//! Parameters: one set for the node and the CLI, read from a ROS 2 parameter file
//! (docs/interfaces.md §5). Precedence: flag > file > model metadata > built-in default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use crate::engine::gate::GateParams;
use crate::engine::model::{Device, ModelInfo, ModelOptions};
use crate::engine::sanity::SanityLimits;
use crate::engine::score::{ScoreMethod, ScoreParams};
use crate::engine::trust::TrustModel;
use crate::error::{Error, Result};

/// The node name whose `ros__parameters` the file holds.
pub const NODE_NAME: &str = "pipeline_seg_node";

/// Every engine parameter [`Params::set`] accepts, in the order of config/pipeline_seg.yaml.
pub const PARAM_NAMES: &[&str] = &[
    "model_path",
    "onnxruntime_lib",
    "device",
    "allow_cpu_fallback",
    "seed",
    "intra_threads",
    "gpu_device_id",
    "trt_fp16",
    "trt_cache_dir",
    "samples",
    "score_method",
    "pixel_threshold",
    "band_px",
    "threshold_high",
    "threshold_low",
    "recover_frames",
    "trust_model",
    "min_pipeline_fraction",
    "max_image_pixels",
    "min_luma",
    "max_luma",
    "min_contrast",
    "max_saturated",
    "review_min_interval_s",
    "min_samples",
    "anytime_z",
];

/// The leading entries of [`PARAM_NAMES`]: they load the model, so they take effect only at
/// start-up.
pub const LOAD_PARAMS: &[&str] = PARAM_NAMES.split_at(9).0;

/// Parameters whose default is the model's metadata (docs/interfaces.md §5): the run of
/// [`PARAM_NAMES`] from `samples` to `trust_model`.
pub const FROM_MODEL: &[&str] = PARAM_NAMES.split_at(17).0.split_at(9).1;

/// Parameters only the ROS node uses; the CLI accepts and ignores them in a shared file.
pub const NODE_ONLY: &[&str] = &[
    "input_transport",
    "input_reliability",
    "input_depth",
    "stale_timeout_ms",
    "liveliness_lease_ms",
    "deadline_ms",
    "review_dir",
    "review_max_mb",
    "hardware_id",
    "publish_probability",
    "publish_entropy",
    "publish_mutual_information",
    "publish_entropy_color",
    "publish_overlay",
    "managed",
    "use_sim_time",
];

/// Engine parameters; `None` means "the model's metadata decides".
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// ONNX model file; `None` = the installed package's or the source checkout's.
    pub model_path: Option<PathBuf>,
    /// The ONNX Runtime library (libonnxruntime.so); `None` = `ORT_DYLIB_PATH`, else the project's .venv.
    pub onnxruntime_lib: Option<PathBuf>,
    /// Execution provider that runs the model.
    pub device: Device,
    /// Run on CPU when the requested GPU provider cannot be used.
    pub allow_cpu_fallback: bool,
    /// MC-Dropout samples T per frame: the most a frame gets (see `min_samples`).
    pub samples: Option<usize>,
    /// Samples drawn before the first look, and between looks, at whether the frame's
    /// decision is settled (anytime sampling); `min_samples` ≥ `samples` draws all of them.
    pub min_samples: usize,
    /// Half-width of the score's interval in jackknife standard errors: sampling stops once
    /// the interval holds neither threshold. 0 stops at `min_samples`.
    pub anytime_z: f32,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose.
    pub intra_threads: usize,
    /// CUDA device of the `cuda` and `tensorrt` providers.
    pub gpu_device_id: u32,
    /// TensorRT builds fp16 engines.
    pub trt_fp16: bool,
    /// Where TensorRT keeps its engine and timing caches; `None` = the user's cache directory.
    pub trt_cache_dir: Option<PathBuf>,
    /// How the entropy map becomes the frame score.
    pub score_method: Option<ScoreMethod>,
    /// Entropy above which a pixel counts for `fraction_above`, 0..1.
    pub pixel_threshold: Option<f32>,
    /// Band around the predicted pipeline for `pipeline_mean` [px at model resolution].
    pub band_px: Option<u32>,
    /// Score above which a frame is uncertain.
    pub threshold_high: Option<f32>,
    /// Score below which a frame counts towards recovery.
    pub threshold_low: Option<f32>,
    /// Consecutive frames below `threshold_low` to be confident again.
    pub recover_frames: Option<u32>,
    /// The trust score's model (`trust_model`, as `calibrate --fit-trust` writes it).
    pub trust_model: Option<TrustModel>,
    /// Mask fraction at which the pipeline counts as visible, 0..1.
    pub min_pipeline_fraction: f32,
    /// Larger frames are rejected [px].
    pub max_image_pixels: usize,
    /// Limits of the input sanity check.
    pub sanity: SanityLimits,
    /// At most one review request per this much time (wall time in the node, bag time in a
    /// replay) [s].
    pub review_min_interval_s: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            model_path: None,
            onnxruntime_lib: None,
            device: Device::Cpu,
            allow_cpu_fallback: false,
            samples: None,
            min_samples: 4,
            anytime_z: 3.0,
            seed: 0,
            intra_threads: 0,
            gpu_device_id: 0,
            trt_fp16: false,
            trt_cache_dir: None,
            score_method: None,
            pixel_threshold: None,
            band_px: None,
            threshold_high: None,
            threshold_low: None,
            recover_frames: None,
            trust_model: None,
            min_pipeline_fraction: 0.005,
            max_image_pixels: 4096 * 4096,
            sanity: SanityLimits::default(),
            review_min_interval_s: 10.0,
        }
    }
}

fn as_f32(name: &str, v: &Value) -> Result<f32> {
    v.as_f64().map(|x| x as f32).ok_or_else(|| Error::param(name, format!("{v:?} is not a number")))
}

fn as_uint(name: &str, v: &Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| Error::param(name, format!("{v:?} is not a non-negative integer")))
}

/// A non-negative integer that fits a `u32`: larger values are errors, not silently wrapped
/// (`band_px: 4294967300` was stored as 4 and passed validation; found by the fuzz harness's
/// check that a parameter holds what the file says).
fn as_u32(name: &str, v: &Value) -> Result<u32> {
    let n = as_uint(name, v)?;
    u32::try_from(n).map_err(|_| Error::param(name, format!("{n} is larger than {}", u32::MAX)))
}

fn as_str<'a>(name: &str, v: &'a Value) -> Result<&'a str> {
    v.as_str().ok_or_else(|| Error::param(name, format!("{v:?} is not a string")))
}

fn as_path(name: &str, v: &Value) -> Result<Option<PathBuf>> {
    let s = as_str(name, v)?;
    Ok((!s.is_empty()).then(|| PathBuf::from(s)))
}

impl Params {
    /// Sets one parameter by name from a YAML/ROS value; unknown names are errors.
    pub fn set(&mut self, name: &str, v: &Value) -> Result<()> {
        let s = &mut self.sanity;
        match name {
            "model_path" => self.model_path = as_path(name, v)?,
            "onnxruntime_lib" => self.onnxruntime_lib = as_path(name, v)?,
            "device" => self.device = as_str(name, v)?.parse()?,
            "allow_cpu_fallback" => {
                self.allow_cpu_fallback = v.as_bool().ok_or_else(|| Error::param(name, "expects true or false"))?
            }
            "samples" => self.samples = Some(as_uint(name, v)? as usize),
            "min_samples" => self.min_samples = as_uint(name, v)? as usize,
            "anytime_z" => self.anytime_z = as_f32(name, v)?,
            "seed" => self.seed = as_uint(name, v)?,
            "intra_threads" => self.intra_threads = as_uint(name, v)? as usize,
            "gpu_device_id" => {
                self.gpu_device_id = u32::try_from(as_uint(name, v)?)
                    .ok()
                    .filter(|&d| d < 64)
                    .ok_or_else(|| Error::param(name, format!("{v:?} is outside [0, 63]")))?
            }
            "trt_fp16" => self.trt_fp16 = v.as_bool().ok_or_else(|| Error::param(name, "expects true or false"))?,
            "trt_cache_dir" => self.trt_cache_dir = as_path(name, v)?,
            "score_method" => self.score_method = Some(as_str(name, v)?.parse()?),
            "pixel_threshold" => self.pixel_threshold = Some(as_f32(name, v)?),
            "band_px" => self.band_px = Some(as_u32(name, v)?),
            "threshold_high" => self.threshold_high = Some(as_f32(name, v)?),
            "threshold_low" => self.threshold_low = Some(as_f32(name, v)?),
            "recover_frames" => self.recover_frames = Some(as_u32(name, v)?),
            "trust_model" => {
                let s = as_str(name, v)?;
                self.trust_model = match s.trim() {
                    "" => None,
                    s => Some(TrustModel::parse(s).map_err(|e| Error::param(name, e))?),
                }
            }
            "min_pipeline_fraction" => self.min_pipeline_fraction = as_f32(name, v)?,
            "max_image_pixels" => self.max_image_pixels = as_uint(name, v)? as usize,
            "min_luma" => s.min_luma = as_f32(name, v)?,
            "max_luma" => s.max_luma = as_f32(name, v)?,
            "min_contrast" => s.min_contrast = as_f32(name, v)?,
            "max_saturated" => s.max_saturated = as_f32(name, v)?,
            "review_min_interval_s" => {
                self.review_min_interval_s =
                    v.as_f64().ok_or_else(|| Error::param(name, format!("{v:?} is not a number")))?
            }
            other if NODE_ONLY.contains(&other) => {}
            other => return Err(Error::param(other, "unknown parameter (see config/pipeline_seg.yaml for the list)")),
        }
        Ok(())
    }

    /// Applies a ROS 2 parameter file (`pipeline_seg_node:` or `/**:` → `ros__parameters:`).
    pub fn apply_file(&mut self, path: &Path) -> Result<()> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::param("config", format!("{}: {e}", path.display())))?;
        let doc: Value = serde_yaml::from_str(&text)
            .map_err(|e| Error::param("config", format!("{}: not YAML: {e}", path.display())))?;
        let section = [NODE_NAME, "/**"]
            .iter()
            .find_map(|node| doc.get(*node).and_then(|n| n.get("ros__parameters")))
            .ok_or_else(|| {
                Error::param(
                    "config",
                    format!("{}: needs '{NODE_NAME}: ros__parameters:' (ROS 2 parameter file)", path.display()),
                )
            })?;
        let map: BTreeMap<String, Value> = serde_yaml::from_value(section.clone())
            .map_err(|e| Error::param("config", format!("{}: ros__parameters is not a map: {e}", path.display())))?;
        for (name, value) in &map {
            self.set(name, value)?;
        }
        Ok(())
    }

    /// Options for loading the model.
    pub fn model_options(&self) -> ModelOptions {
        ModelOptions {
            device: self.device,
            allow_cpu_fallback: self.allow_cpu_fallback,
            intra_threads: self.intra_threads,
            onnxruntime_lib: self.onnxruntime_lib.clone(),
            gpu_device_id: self.gpu_device_id,
            trt_fp16: self.trt_fp16,
            trt_cache_dir: self.trt_cache_dir.clone(),
        }
    }

    /// The model file: `model_path`, else the installed package's, else the source checkout's.
    pub fn resolve_model_path(&self) -> Result<PathBuf> {
        if let Some(p) = &self.model_path {
            return Ok(p.clone());
        }
        let file = "models/pipeline_seg_unet.onnx";
        let installed = std::env::var("AMENT_PREFIX_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(|p| Path::new(p).join("share/pipeline_seg").join(file))
            .collect::<Vec<_>>();
        let checkout = crate::engine::model::project_roots().into_iter().map(|r| r.join(file));
        installed.into_iter().chain(checkout).find(|p| p.is_file()).ok_or_else(|| {
            Error::param("model_path", format!("not set and no {file} in the installed package or the source checkout"))
        })
    }

    /// Fills what the model decides and checks every range; names the first bad parameter.
    pub fn resolve(&self, info: &ModelInfo) -> Result<Settings> {
        let g = &info.gate;
        let model = Settings {
            samples: info.default_samples,
            min_samples: self.min_samples,
            anytime_z: self.anytime_z,
            seed: self.seed,
            score: ScoreParams {
                method: metadata_score_method(&g.score_method)?,
                pixel_threshold: g.pixel_threshold,
                band_px: g.band_px,
            },
            gate: GateParams {
                threshold_high: g.threshold_high,
                threshold_low: g.threshold_low,
                recover_frames: g.recover_frames,
            },
            trust: info.trust.clone(),
            min_pipeline_fraction: self.min_pipeline_fraction,
            max_image_pixels: self.max_image_pixels,
            sanity: self.sanity,
            review_min_interval: Duration::ZERO,
        };
        self.resolve_over(&model)
    }

    /// Like [`Params::resolve`], with `base` deciding what is not set (run-time changes).
    pub fn resolve_over(&self, base: &Settings) -> Result<Settings> {
        let settings = Settings {
            samples: self.samples.unwrap_or(base.samples),
            min_samples: self.min_samples,
            anytime_z: self.anytime_z,
            seed: self.seed,
            score: ScoreParams {
                method: self.score_method.unwrap_or(base.score.method),
                pixel_threshold: self.pixel_threshold.unwrap_or(base.score.pixel_threshold),
                band_px: self.band_px.unwrap_or(base.score.band_px),
            },
            gate: GateParams {
                threshold_high: self.threshold_high.unwrap_or(base.gate.threshold_high),
                threshold_low: self.threshold_low.unwrap_or(base.gate.threshold_low),
                recover_frames: self.recover_frames.unwrap_or(base.gate.recover_frames),
            },
            trust: self.trust_model.clone().or_else(|| base.trust.clone()),
            min_pipeline_fraction: self.min_pipeline_fraction,
            max_image_pixels: self.max_image_pixels,
            sanity: self.sanity,
            review_min_interval: Duration::try_from_secs_f64(self.review_min_interval_s)
                .map_err(|_| interval_err(self.review_min_interval_s))?,
        };
        if !(0.0..=86400.0).contains(&self.review_min_interval_s) {
            return Err(interval_err(self.review_min_interval_s));
        }
        settings.validate()?;
        Ok(settings)
    }
}

/// Resolved settings of a pipeline: every value known and in range.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// MC-Dropout samples T per frame: the most a frame gets.
    pub samples: usize,
    /// Samples before the first look and between looks at whether the decision is settled.
    pub min_samples: usize,
    /// Half-width of the score's interval in jackknife standard errors.
    pub anytime_z: f32,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// How the frame score is computed.
    pub score: ScoreParams,
    /// Hysteresis thresholds of the gate.
    pub gate: GateParams,
    /// The trust score's model: the `trust_model` parameter, else the model's metadata.
    pub trust: Option<TrustModel>,
    /// Mask fraction at which the pipeline counts as visible, 0..1.
    pub min_pipeline_fraction: f32,
    /// Larger frames are rejected [px].
    pub max_image_pixels: usize,
    /// Limits of the input sanity check.
    pub sanity: SanityLimits,
    /// At most one review request per this much time.
    pub review_min_interval: Duration,
}

/// The model metadata's `score_method`, which must be one the engine knows.
fn metadata_score_method(name: &str) -> Result<ScoreMethod> {
    name.parse().map_err(|_| {
        Error::param(
            "score_method",
            format!("the model's metadata names '{name}'; known: mean, p95, fraction_above, pipeline_mean, trust"),
        )
    })
}

fn interval_err(v: f64) -> Error {
    Error::param("review_min_interval_s", format!("{v} is outside [0, 86400]"))
}

fn in_range(name: &str, v: f32, lo: f32, hi: f32) -> Result<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Error::param(name, format!("{v} is outside [{lo}, {hi}]")))
    }
}

impl Settings {
    /// Checks every range; used at start-up and for each run-time change.
    pub fn validate(&self) -> Result<()> {
        if !(1..=256).contains(&self.samples) {
            return Err(Error::param("samples", format!("{} is outside [1, 256]", self.samples)));
        }
        if !(1..=256).contains(&self.min_samples) {
            return Err(Error::param("min_samples", format!("{} is outside [1, 256]", self.min_samples)));
        }
        in_range("anytime_z", self.anytime_z, 0.0, 100.0)?;
        in_range("pixel_threshold", self.score.pixel_threshold, 0.0, 1.0)?;
        if self.score.band_px > 64 {
            return Err(Error::param("band_px", format!("{} is outside [0, 64]", self.score.band_px)));
        }
        in_range("threshold_high", self.gate.threshold_high, 0.0, 1.0)?;
        in_range("threshold_low", self.gate.threshold_low, 0.0, self.gate.threshold_high).map_err(|_| {
            Error::param(
                "threshold_low",
                format!("{} must be in [0, threshold_high = {}]", self.gate.threshold_low, self.gate.threshold_high),
            )
        })?;
        if !(1..=1000).contains(&self.gate.recover_frames) {
            return Err(Error::param("recover_frames", format!("{} is outside [1, 1000]", self.gate.recover_frames)));
        }
        in_range("min_pipeline_fraction", self.min_pipeline_fraction, 0.0, 1.0)?;
        // OpenCV refuses more than 2^30 pixels anyway; a larger limit would only mislead.
        if !(1..=1 << 30).contains(&self.max_image_pixels) {
            return Err(Error::param("max_image_pixels", format!("{} is outside [1, 2^30]", self.max_image_pixels)));
        }
        let s = &self.sanity;
        in_range("min_luma", s.min_luma, 0.0, 255.0)?;
        in_range("max_luma", s.max_luma, s.min_luma, 255.0).map_err(|_| {
            Error::param("max_luma", format!("{} must be in [min_luma = {}, 255]", s.max_luma, s.min_luma))
        })?;
        in_range("min_contrast", s.min_contrast, 0.0, 255.0)?;
        in_range("max_saturated", s.max_saturated, 0.0, 1.0)
    }
}
