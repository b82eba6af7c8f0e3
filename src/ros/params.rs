//! The node's parameters: declared with descriptions (`ros2 param describe`), turned into the
//! library's [`Params`] and checked before anything runs.

use std::collections::HashSet;

use r2r::{ParameterValue, RosParams};

use crate::engine::config::Params;
use crate::error::{Error, Result};

/// Parameters of `pipeline_seg_node` (see config/pipeline_seg.yaml for defaults and ranges).
#[derive(RosParams, Debug, Clone, PartialEq)]
pub struct NodeParams {
    /// ONNX model file; empty = share/pipeline_seg/models/ of the installed package
    pub model_path: String,
    /// libonnxruntime.so; empty = $ORT_DYLIB_PATH, the install space, the checkout's .venv, python3's onnxruntime, the system library path
    pub onnxruntime_lib: String,
    /// Execution provider: cpu | cuda | tensorrt
    pub device: String,
    /// Run on CPU when the requested GPU provider cannot be used (else: exit)
    pub allow_cpu_fallback: bool,
    /// MC-Dropout samples T per frame at most, 1..256 (default: the model's metadata)
    pub samples: i64,
    /// Samples before the first look at whether the frame is settled, and between looks, 1..256
    pub min_samples: i64,
    /// Stop sampling once the score's interval (this many jackknife standard errors) clears both thresholds, 0..100
    pub anytime_z: f64,
    /// Seed of the dropout masks; one seed reproduces a run
    pub seed: i64,
    /// ONNX Runtime intra-op threads; 0 = ONNX Runtime decides
    pub intra_threads: i64,
    /// CUDA device of the cuda and tensorrt providers, 0..63
    pub gpu_device_id: i64,
    /// TensorRT builds fp16 engines
    pub trt_fp16: bool,
    /// TensorRT engine and timing cache directory; empty = ~/.cache/pipeline_seg/tensorrt
    pub trt_cache_dir: String,
    /// Input: raw (~/image, sensor_msgs/Image) | compressed (~/image/compressed)
    pub input_transport: String,
    /// Input QoS reliability: best_effort | reliable
    pub input_reliability: String,
    /// Input QoS depth (keep last), 1..100
    pub input_depth: i64,
    /// Frame score: mean | p95 | fraction_above | pipeline_mean | trust (default: the model's)
    pub score_method: String,
    /// Entropy above which a pixel counts for fraction_above, 0..1 (default: the model's)
    pub pixel_threshold: f64,
    /// Band around the predicted pipeline for pipeline_mean [px at model resolution], 0..64
    pub band_px: i64,
    /// Score above which a frame is uncertain, 0..1 (default: the model's)
    pub threshold_high: f64,
    /// Score below which a frame counts towards recovery, 0..threshold_high (default: the model's)
    pub threshold_low: f64,
    /// Consecutive frames below threshold_low to be confident again, 1..1000 (default: the model's)
    pub recover_frames: i64,
    /// Trust score model, as calibrate --fit-trust writes it; empty = the model's (docs/interfaces.md §9)
    pub trust_model: String,
    /// Mask fraction at which pipeline_visible is true, 0..1
    pub min_pipeline_fraction: f64,
    /// No fresh decision for this long means not confident, reason stale [ms]
    pub stale_timeout_ms: i64,
    /// Liveliness lease of ~/confident and ~/confidence (automatic): subscribers learn within it that the node is gone [ms]
    pub liveliness_lease_ms: i64,
    /// Deadline offered on ~/confident and ~/confidence: one of each at least this often, >= stale_timeout_ms + 100; 0 = stale_timeout_ms + 1000 [ms]
    pub deadline_ms: i64,
    /// Larger frames are rejected [pixels]
    pub max_image_pixels: i64,
    /// Lowest mean luma, 0..255
    pub min_luma: f64,
    /// Highest mean luma, 0..255
    pub max_luma: f64,
    /// Lowest standard deviation of luma, 0..255
    pub min_contrast: f64,
    /// Highest fraction of pixels with a channel >= 250, 0..1
    pub max_saturated: f64,
    /// Directory for review bundles; empty = do not save
    pub review_dir: String,
    /// At most one review request per interval [s]
    pub review_min_interval_s: f64,
    /// review_dir is kept under this size by deleting the oldest bundles [MB]
    pub review_max_mb: f64,
    /// hardware_id of the /diagnostics status; empty = the camera frame's header.frame_id once a frame arrived, else the node's name
    pub hardware_id: String,
    /// Publish ~/probability
    pub publish_probability: bool,
    /// Publish ~/entropy
    pub publish_entropy: bool,
    /// Publish ~/mutual_information
    pub publish_mutual_information: bool,
    /// Publish ~/entropy_color (rendered only while subscribed)
    pub publish_entropy_color: bool,
    /// Publish ~/overlay (rendered only while subscribed)
    pub publish_overlay: bool,
    /// Run as a managed (lifecycle) node: no model and no input until configure and activate (start-up only)
    pub managed: bool,
}

pub use crate::engine::config::FROM_MODEL;

/// Parameters read only at start-up; every other one can change while the node runs.
pub const START_ONLY: [&[&str]; 2] = [
    crate::engine::config::LOAD_PARAMS,
    &["input_transport", "input_reliability", "input_depth", "liveliness_lease_ms", "deadline_ms", "managed"],
];

impl Default for NodeParams {
    fn default() -> Self {
        let p = Params::default();
        let s = p.sanity;
        NodeParams {
            model_path: String::new(),
            onnxruntime_lib: String::new(),
            device: p.device.name().into(),
            allow_cpu_fallback: p.allow_cpu_fallback,
            samples: 0,
            min_samples: p.min_samples as i64,
            anytime_z: p.anytime_z as f64,
            seed: p.seed as i64,
            intra_threads: 0,
            gpu_device_id: p.gpu_device_id as i64,
            trt_fp16: p.trt_fp16,
            trt_cache_dir: String::new(),
            input_transport: "raw".into(),
            input_reliability: "best_effort".into(),
            input_depth: 5,
            score_method: String::new(),
            pixel_threshold: 0.0,
            band_px: 0,
            threshold_high: 0.0,
            threshold_low: 0.0,
            recover_frames: 0,
            trust_model: String::new(),
            min_pipeline_fraction: p.min_pipeline_fraction as f64,
            stale_timeout_ms: 1000,
            liveliness_lease_ms: 1000,
            deadline_ms: 0,
            max_image_pixels: p.max_image_pixels as i64,
            min_luma: s.min_luma as f64,
            max_luma: s.max_luma as f64,
            min_contrast: s.min_contrast as f64,
            max_saturated: s.max_saturated as f64,
            review_dir: String::new(),
            review_min_interval_s: 10.0,
            review_max_mb: 500.0,
            hardware_id: String::new(),
            publish_probability: true,
            publish_entropy: true,
            publish_mutual_information: true,
            publish_entropy_color: true,
            publish_overlay: true,
            managed: false,
        }
    }
}

fn to_yaml(v: &ParameterValue) -> serde_yaml::Value {
    match v {
        ParameterValue::Bool(b) => (*b).into(),
        ParameterValue::Integer(i) => (*i).into(),
        ParameterValue::Double(d) => (*d).into(),
        ParameterValue::String(s) => s.as_str().into(),
        _ => serde_yaml::Value::Null,
    }
}

/// The node-only settings, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSettings {
    /// Subscribe to `~/image/compressed` instead of `~/image`.
    pub compressed: bool,
    /// Input QoS reliability: reliable, else best effort.
    pub reliable: bool,
    /// Input QoS depth (keep last).
    pub depth: usize,
    /// No fresh decision for this long means not confident, reason stale.
    pub stale_timeout: std::time::Duration,
    /// Liveliness lease of the decision topics.
    pub liveliness_lease: std::time::Duration,
    /// Deadline offered on the decision topics.
    pub deadline: std::time::Duration,
    /// Directory for review bundles; `None` = do not save.
    pub review_dir: Option<std::path::PathBuf>,
    /// `review_dir` is kept under this size by deleting the oldest bundles [bytes].
    pub review_max_bytes: u64,
    /// `hardware_id` of the `/diagnostics` status; `None` = the camera frame's, else the node's name.
    pub hardware_id: Option<String>,
}

impl NodeParams {
    /// The library parameters; model-derived ones only if `set_by_user` names them.
    pub fn library_params(&mut self, set_by_user: &HashSet<String>) -> Result<Params> {
        let mut params = Params::default();
        for name in crate::engine::config::PARAM_NAMES {
            if FROM_MODEL.contains(name) && !set_by_user.contains(*name) {
                continue;
            }
            let value = self.get_parameter(name).map_err(|e| Error::param(name, e.to_string()))?;
            let value = to_yaml(&value);
            if let (serde_yaml::Value::Number(n), true) = (
                &value,
                [
                    "samples",
                    "min_samples",
                    "seed",
                    "intra_threads",
                    "gpu_device_id",
                    "band_px",
                    "recover_frames",
                    "max_image_pixels",
                ]
                .contains(name),
            ) {
                if n.as_i64().is_some_and(|i| i < 0) {
                    return Err(Error::param(name, format!("{n} must not be negative")));
                }
            }
            params.set(name, &value)?;
        }
        Ok(params)
    }

    /// The deadline offered [ms]: `deadline_ms`, or `stale_timeout_ms` + 1000 when it is 0.
    pub fn deadline_ms(&self) -> i64 {
        if self.deadline_ms == 0 {
            self.stale_timeout_ms.saturating_add(1000)
        } else {
            self.deadline_ms
        }
    }

    /// The output topics the `publish_*` parameters leave on.
    pub fn publish_topics(&self) -> crate::outputs::TopicSet {
        use crate::outputs::{Topic, TopicSet};
        TopicSet::ALL
            .with(Topic::Probability, self.publish_probability)
            .with(Topic::Entropy, self.publish_entropy)
            .with(Topic::MutualInformation, self.publish_mutual_information)
            .with(Topic::EntropyColor, self.publish_entropy_color)
            .with(Topic::Overlay, self.publish_overlay)
    }

    /// Checks the node-only parameters.
    pub fn node_settings(&self) -> Result<NodeSettings> {
        let compressed = match self.input_transport.as_str() {
            "raw" => false,
            "compressed" => true,
            other => return Err(Error::param("input_transport", format!("'{other}' unknown; use raw or compressed"))),
        };
        let reliable = match self.input_reliability.as_str() {
            "best_effort" => false,
            "reliable" => true,
            other => {
                return Err(Error::param(
                    "input_reliability",
                    format!("'{other}' unknown; use best_effort or reliable"),
                ))
            }
        };
        if !(1..=100).contains(&self.input_depth) {
            return Err(Error::param("input_depth", format!("{} is outside [1, 100]", self.input_depth)));
        }
        if !(1..=3_600_000).contains(&self.stale_timeout_ms) {
            return Err(Error::param("stale_timeout_ms", format!("{} is outside [1, 3600000]", self.stale_timeout_ms)));
        }
        if !(100..=3_600_000).contains(&self.liveliness_lease_ms) {
            let v = self.liveliness_lease_ms;
            return Err(Error::param("liveliness_lease_ms", format!("{v} is outside [100, 3600000]")));
        }
        let deadline_ms = self.deadline_ms();
        if !(self.stale_timeout_ms + 100..=3_700_000).contains(&deadline_ms) {
            return Err(Error::param(
                "deadline_ms",
                format!(
                    "{deadline_ms} is outside [stale_timeout_ms + 100 = {}, 3700000]: the stale timer must publish \
                     before the deadline",
                    self.stale_timeout_ms + 100
                ),
            ));
        }
        if !(self.review_max_mb > 0.0 && self.review_max_mb <= 1e7) {
            return Err(Error::param("review_max_mb", format!("{} must be > 0", self.review_max_mb)));
        }
        Ok(NodeSettings {
            compressed,
            reliable,
            depth: self.input_depth as usize,
            stale_timeout: std::time::Duration::from_millis(self.stale_timeout_ms as u64),
            liveliness_lease: std::time::Duration::from_millis(self.liveliness_lease_ms as u64),
            deadline: std::time::Duration::from_millis(deadline_ms as u64),
            review_dir: (!self.review_dir.is_empty()).then(|| self.review_dir.clone().into()),
            review_max_bytes: (self.review_max_mb * 1e6) as u64,
            hardware_id: (!self.hardware_id.is_empty()).then(|| self.hardware_id.clone()),
        })
    }
}

/// The parameters as ROS serves them: a change that would leave the set invalid, or one that
/// only takes effect at start-up, is refused (set_parameters answers successful = false with
/// the reason) and the previous value stays in force.
pub struct Validated {
    /// The parameter values in force.
    pub params: NodeParams,
    /// The settings in force; fills nothing here, but anchors `resolve_over`.
    pub base: Option<crate::engine::config::Settings>,
    /// A managed node without a model (unconfigured): the model's parameters may change too;
    /// they are checked one by one now and together by the next configure.
    pub unloaded: bool,
    /// Parameters given at start-up or set since: the model's metadata decides the others.
    pub set_by_user: HashSet<String>,
    /// Runs after each accepted change, before set_parameters answers: a change the client saw
    /// accepted applies to the next frame. (r2r's parameter event stream is read by another task
    /// later, and drops events past ten queued.)
    pub on_change: Option<OnChange>,
}

/// What [`Validated::on_change`] runs.
pub type OnChange = Box<dyn Fn(&Validated) + Send>;

impl Validated {
    /// The parameters before the model is loaded.
    pub fn new(params: NodeParams) -> Validated {
        Validated { params, base: None, unloaded: false, set_by_user: HashSet::new(), on_change: None }
    }

    /// The library settings and node settings of a full parameter set.
    pub fn check(&self, params: &NodeParams) -> Result<(crate::engine::config::Settings, NodeSettings)> {
        let base = self.base.as_ref().ok_or_else(|| Error::param("parameters", "not ready yet"))?;
        let all: HashSet<String> = FROM_MODEL.iter().map(|s| s.to_string()).collect();
        let lib = params.clone().library_params(&all)?;
        Ok((lib.resolve_over(base)?, params.node_settings()?))
    }

    fn try_set(&self, name: &str, value: &ParameterValue) -> r2r::Result<NodeParams> {
        let refuse = |msg: String| r2r::Error::ParameterValueConv { name: name.to_string(), msg };
        let at_configure = self.unloaded && crate::engine::config::LOAD_PARAMS.contains(&name);
        if START_ONLY.iter().any(|names| names.contains(&name)) && !at_configure {
            let msg = if self.params.managed && crate::engine::config::LOAD_PARAMS.contains(&name) {
                "takes effect at configure; change it while the node is unconfigured (cleanup first)"
            } else {
                "takes effect only at start-up; restart the node to change it"
            };
            return Err(refuse(msg.into()));
        }
        let mut next = self.params.clone();
        next.set_parameter(name, value)?;
        if self.unloaded {
            // No model to resolve against: the value alone, and the node's own settings.
            let mut named = self.set_by_user.clone();
            named.insert(name.to_string());
            next.clone().library_params(&named).map_err(|e| refuse(e.to_string()))?;
            next.node_settings().map_err(|e| refuse(e.to_string()))?;
        } else {
            self.check(&next).map_err(|e| refuse(e.to_string()))?;
        }
        Ok(next)
    }
}

impl RosParams for Validated {
    fn register_parameters(
        &mut self,
        prefix: &str,
        param: Option<r2r::Parameter>,
        params: &mut r2r::indexmap::IndexMap<String, r2r::Parameter>,
    ) -> r2r::Result<()> {
        self.params.register_parameters(prefix, param, params)
    }

    fn get_parameter(&mut self, name: &str) -> r2r::Result<ParameterValue> {
        self.params.get_parameter(name)
    }

    fn set_parameter(&mut self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        self.params = self.try_set(name, value)?;
        self.set_by_user.insert(name.to_string());
        if let Some(f) = &self.on_change {
            f(self);
        }
        Ok(())
    }

    fn check_parameter(&self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        self.try_set(name, value).map(drop)
    }
}

/// A start-up parameter error in words ("write 1.0" for a double given as an integer).
pub fn describe_r2r_error(e: &r2r::Error) -> String {
    match e {
        r2r::Error::InvalidParameterType { name, ty } => {
            let hint = if ty.contains("Double") { " (write a decimal point, e.g. 1.0)" } else { "" };
            format!("parameter {name}: wrong type, expected {}{hint}", ty.trim_start_matches("ParameterValue::"))
        }
        other => format!("parameter error: {other}"),
    }
}
