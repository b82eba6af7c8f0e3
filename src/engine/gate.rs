//! The confidence decision: sanity, staleness and score hysteresis (docs/interfaces.md §3).

/// Why a frame is (not) confident; the first that applies wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No fresh frame within `stale_timeout_ms`.
    Stale,
    /// The frame could not be decoded.
    DecodeError,
    /// ONNX Runtime failed on the decoded frame.
    InferenceError,
    /// The frame failed the input sanity check.
    ImageQuality,
    /// The frame score is above `threshold_high`.
    Uncertain,
    /// Fewer than `recover_frames` consecutive frames below `threshold_low` so far.
    Recovering,
    /// The mask can be trusted.
    Ok,
}

impl Reason {
    /// The name published in `~/confidence` and written to files.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Stale => "stale",
            Reason::DecodeError => "decode_error",
            Reason::InferenceError => "inference_error",
            Reason::ImageQuality => "image_quality",
            Reason::Uncertain => "uncertain",
            Reason::Recovering => "recovering",
            Reason::Ok => "ok",
        }
    }

    /// diagnostic_msgs level: 0 OK, 1 WARN (unconfident), 2 ERROR (stale, decode or inference
    /// error).
    pub fn level(self) -> u8 {
        match self {
            Reason::Ok => 0,
            Reason::Stale | Reason::DecodeError | Reason::InferenceError => 2,
            _ => 1,
        }
    }
}

/// What one frame contributed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Observation {
    /// The frame could not be decoded.
    DecodeError,
    /// ONNX Runtime failed on the frame.
    InferenceError,
    /// The frame failed the input sanity check.
    ImageQuality,
    /// The frame passed the sanity check; its frame score.
    Score(f32),
}

/// Hysteresis thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateParams {
    /// Score above which a frame is uncertain.
    pub threshold_high: f32,
    /// Score below which a frame counts towards recovery.
    pub threshold_low: f32,
    /// Consecutive frames below `threshold_low` to be confident again.
    pub recover_frames: u32,
}

/// The decision after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the frame's mask can be trusted.
    pub confident: bool,
    /// Why (the first reason that applies).
    pub reason: Reason,
}

/// The gate of a frame sequence; starts unconfident (recovering).
#[derive(Clone, Debug)]
pub struct Gate {
    /// The hysteresis thresholds in force.
    pub params: GateParams,
    latched: bool,
    good_run: u32,
}

impl Gate {
    /// A gate that starts unconfident.
    pub fn new(params: GateParams) -> Gate {
        Gate { params, latched: true, good_run: 0 }
    }

    /// Folds one frame into the state and returns the decision for it.
    pub fn update(&mut self, obs: Observation) -> Decision {
        let reason = match obs {
            Observation::DecodeError => Some(Reason::DecodeError),
            Observation::InferenceError => Some(Reason::InferenceError),
            Observation::ImageQuality => Some(Reason::ImageQuality),
            // Negated on purpose: a NaN score is uncertain, never confident.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            Observation::Score(s) if !(s <= self.params.threshold_high) => Some(Reason::Uncertain),
            Observation::Score(s) if s < self.params.threshold_low => {
                self.good_run += 1;
                if self.good_run >= self.params.recover_frames {
                    self.latched = false;
                }
                None
            }
            Observation::Score(_) => {
                self.good_run = 0;
                None
            }
        };
        if let Some(reason) = reason {
            self.latched = true;
            self.good_run = 0;
            return Decision { confident: false, reason };
        }
        if self.latched {
            Decision { confident: false, reason: Reason::Recovering }
        } else {
            Decision { confident: true, reason: Reason::Ok }
        }
    }

    /// No fresh frame in time: unconfident, and recovery starts over.
    pub fn stale(&mut self) -> Decision {
        self.latched = true;
        self.good_run = 0;
        Decision { confident: false, reason: Reason::Stale }
    }

    /// A frame judged on its own (CLI `infer`): sane and score ≤ `threshold_high`.
    pub fn single(params: &GateParams, obs: Observation) -> Decision {
        match obs {
            Observation::DecodeError => Decision { confident: false, reason: Reason::DecodeError },
            Observation::InferenceError => Decision { confident: false, reason: Reason::InferenceError },
            Observation::ImageQuality => Decision { confident: false, reason: Reason::ImageQuality },
            Observation::Score(s) if s <= params.threshold_high => Decision { confident: true, reason: Reason::Ok },
            Observation::Score(_) => Decision { confident: false, reason: Reason::Uncertain },
        }
    }
}
