//! The one path from a decoded frame to mask, uncertainty maps and frame score.

use ndarray::{Array4, ArrayView4};

use crate::engine::anytime::{checkpoints, interval, mask_settled, settled};
use crate::engine::config::{Params, Settings};
use crate::engine::gate::Observation;
use crate::engine::image::Frame;
use crate::engine::model::Model;
use crate::engine::preprocess::{crop, resize_map, to_tensor, Placement};
use crate::engine::sampler::{frame_key, Sampler};
use crate::engine::sanity::{check, image_stats, ImageStats, SanityFailure};
use crate::engine::score::{frame_score, ScoreMethod, ScoreParams};
use crate::engine::trust::{Signals, FEATURE_DISTANCE};
use crate::engine::uncertainty::{Maps, Running};
use crate::error::{Error, Result};

impl std::str::FromStr for Resolution {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "input" => Ok(Resolution::Input),
            "model" => Ok(Resolution::Model),
            other => Err(crate::error::Error::param("resolution", format!("'{other}' unknown; use input or model"))),
        }
    }
}

/// The samples as one slice; arrays made here and by `from_shape` are in standard layout.
fn standard<'a>(a: ArrayView4<'a, f32>) -> &'a [f32] {
    a.to_slice().expect("arrays made by the pipeline are contiguous")
}

/// At which resolution maps are returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The frame's own size (letterbox removed): what the node publishes.
    Input,
    /// The model's input size, as the network saw it.
    Model,
}

/// The result for one frame; maps are `width`×`height`, row-major.
#[derive(Clone, Debug)]
pub struct Segmentation {
    /// Map width [px].
    pub width: usize,
    /// Map height [px].
    pub height: usize,
    /// Mean pipeline probability.
    pub prob: Vec<f32>,
    /// Normalised predictive entropy, 0..1.
    pub entropy: Vec<f32>,
    /// Mutual information (epistemic part), 0..entropy.
    pub mi: Vec<f32>,
    /// 255 where `prob` > 0.5, else 0.
    pub mask: Vec<u8>,
    /// Frame score (docs/interfaces.md §2) under the configured `score_method`, from the entropy at
    /// model resolution.
    pub score: f32,
    /// The frame score under every method (in [`ScoreMethod::ALL`] order), with the
    /// configured `pixel_threshold` and `band_px`: `calibrate` compares them in one pass.
    /// `trust` is NaN for a model without a trust model (the gate reads NaN as uncertain).
    pub scores: [f32; ScoreMethod::ALL.len()],
    /// The frame's signals (docs/interfaces.md §9, [`crate::engine::trust::SIGNALS`] order).
    pub signals: Signals,
    /// The configured `score_method` applied to the mutual information at model resolution
    /// (`select --by mi`).
    pub mi_score: f32,
    /// The limit the frame broke, when it failed the input sanity check.
    pub sanity: std::result::Result<(), SanityFailure>,
    /// Fraction of mask pixels that are pipeline.
    pub pipeline_fraction: f32,
    /// MC-Dropout samples T this frame drew (anytime sampling may stop before `samples`).
    pub samples: usize,
    /// The raw samples [T, C, h, w] at model resolution, when asked for.
    pub probs: Option<Array4<f32>>,
}

impl Segmentation {
    /// What this frame tells the gate.
    pub fn observation(&self) -> Observation {
        if self.sanity.is_err() {
            Observation::ImageQuality
        } else {
            Observation::Score(self.score)
        }
    }

    /// The model's `feature_distance` output, when it has one (NaN in `signals` otherwise).
    pub fn feature_distance(&self) -> Option<f32> {
        Some(self.signals[FEATURE_DISTANCE]).filter(|d| !d.is_nan())
    }

    /// The trust score, when the settings have a trust model (NaN in `scores` otherwise).
    pub fn trust(&self) -> Option<f32> {
        Some(self.scores[ScoreMethod::Trust.index()]).filter(|t| !t.is_nan())
    }

    /// Whether the pipeline is visible enough to follow (`min_pipeline_fraction`).
    pub fn pipeline_visible(&self, settings: &Settings) -> bool {
        self.pipeline_fraction >= settings.min_pipeline_fraction
    }
}

/// Model and settings: everything that turns frames into segmentations.
pub struct Pipeline {
    /// The loaded model.
    pub model: Model,
    settings: Settings,
    /// Run the T samples as T separate passes of the whole network (benchmark baseline).
    pub one_pass_per_sample: bool,
}

impl Pipeline {
    /// Loads the model named by `params` and resolves the settings against its metadata.
    pub fn new(params: &Params) -> Result<Pipeline> {
        let model = Model::load(&params.resolve_model_path()?, &params.model_options())?;
        match (&model.split_problem, model.is_split()) {
            (Some(why), _) => eprintln!("warning: {why}"),
            (None, false) => eprintln!(
                "note: no {{stem}}.trunk.onnx/.head.onnx beside {}: each chunk of samples reruns the whole graph \
                 (training/split.py writes them)",
                model.path.display()
            ),
            (None, true) => {}
        }
        let settings = params.resolve(&model.info)?;
        check_trust(&settings, &model)?;
        Ok(Pipeline { model, settings, one_pass_per_sample: false })
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the settings after validating them; the old ones stay on error.
    pub fn set_settings(&mut self, settings: Settings) -> Result<()> {
        settings.validate()?;
        check_trust(&settings, &self.model)?;
        self.settings = settings;
        Ok(())
    }

    /// Segments one frame: samples in chunks of `min_samples` until the decision is settled
    /// ([`crate::engine::anytime`]) or `samples` are drawn. The masks come from a stream keyed by
    /// the seed and the frame ([`frame_key`]), and the masks of all `samples` are drawn, so the
    /// seed and the frame alone fix its samples and its stopping point: not the frames before it.
    pub fn segment(&mut self, frame: &Frame, resolution: Resolution, keep_samples: bool) -> Result<Segmentation> {
        let info = &self.model.info;
        let (mw, mh) = (info.width, info.height);
        let t = self.settings.samples;
        let (tensor, place) = to_tensor(frame, &info.input())?;
        let key = frame_key(frame.width, frame.height, standard(tensor.view()));
        let mut sampler = Sampler::for_frame(self.settings.seed, key, info.dropout_p);
        let sites = info.dropout_sites.clone();
        let stats = image_stats(&frame.rgb, frame.width, frame.height);
        let mut running = Running::new(2, mw * mh);
        let mut feature_distance = None;
        let (model, settings) = (&mut self.model, &self.settings);
        if self.one_pass_per_sample {
            for _ in 0..t {
                let masks = sampler.masks(&sites, 1);
                model.run_chunks(tensor.view(), &masks, [1], |p, d| {
                    running.add(standard(p));
                    feature_distance = d;
                    Ok(true)
                })?;
            }
        } else {
            let masks = sampler.masks(&sites, t);
            let thresholds = [settings.gate.threshold_high, settings.gate.threshold_low];
            let method = settings.score.method;
            model.run_chunks(tensor.view(), &masks, checkpoints(settings.min_samples, t), |p, d| {
                running.add(standard(p));
                feature_distance = d;
                let n = running.samples();
                if n >= t {
                    return Ok(false);
                }
                // The score of all n samples and its n delete-one replicates (the jackknife).
                let all = Cropped::new(&running.maps(None), mw, &place);
                let score = all.score(method, settings, &stats, d)?;
                let replicates = (0..n)
                    .map(|i| Cropped::new(&running.maps(Some(i)), mw, &place).score(method, settings, &stats, d))
                    .collect::<Result<Vec<f32>>>()?;
                if !settled(interval(score, &replicates, settings.anytime_z), &thresholds) {
                    return Ok(true);
                }
                let flips: f32 = crop(&running.flip_chance(), mw, &place).iter().sum();
                Ok(!mask_settled(flips, all.prob.iter().filter(|&&p| p > 0.5).count()))
            })?;
        }
        let samples = running.samples();
        let maps = Cropped::new(&running.maps(None), mw, &place);
        let (scores, signals) = maps.scores(&self.settings, &stats, feature_distance)?;
        let params = self.settings.score;
        let score = scores[params.method.index()];
        let mi_score = frame_score(&maps.mi, &maps.prob, maps.width, maps.height, &params)?;
        let (width, height) = match resolution {
            Resolution::Input => (frame.width, frame.height),
            Resolution::Model => (place.width, place.height),
        };
        let up = |m: &[f32]| resize_map(m, place.width, place.height, width, height);
        let (prob, entropy, mi) = (up(&maps.prob)?, up(&maps.entropy)?, up(&maps.mi)?);
        let mask: Vec<u8> = prob.iter().map(|&p| if p > 0.5 { 255 } else { 0 }).collect();
        let pipeline_fraction = mask.iter().filter(|&&m| m > 0).count() as f32 / mask.len().max(1) as f32;
        let probs = match keep_samples {
            true => Some(
                Array4::from_shape_vec((samples, 2, mh, mw), running.probs().to_vec())
                    .map_err(|e| Error::Inference(format!("samples: {e}")))?,
            ),
            false => None,
        };
        Ok(Segmentation {
            width,
            height,
            prob,
            entropy,
            mi,
            mask,
            score,
            scores,
            signals,
            mi_score,
            sanity: check(&stats, &self.settings.sanity),
            pipeline_fraction,
            samples,
            probs,
        })
    }
}

/// Maps at model resolution with the letterbox removed: what every score is computed on.
struct Cropped {
    prob: Vec<f32>,
    entropy: Vec<f32>,
    mi: Vec<f32>,
    width: usize,
    height: usize,
}

impl Cropped {
    fn new(maps: &Maps, mw: usize, place: &Placement) -> Cropped {
        Cropped {
            prob: crop(&maps.prob, mw, place),
            entropy: crop(&maps.entropy, mw, place),
            mi: crop(&maps.mi, mw, place),
            width: place.width,
            height: place.height,
        }
    }

    /// The frame score under one method (the trust score needs every signal).
    fn score(&self, method: ScoreMethod, settings: &Settings, stats: &ImageStats, fd: Option<f32>) -> Result<f32> {
        match method {
            ScoreMethod::Trust => Ok(self.scores(settings, stats, fd)?.0[method.index()]),
            _ => frame_score(
                &self.entropy,
                &self.prob,
                self.width,
                self.height,
                &ScoreParams { method, ..settings.score },
            ),
        }
    }

    /// The score under every method and the frame's signals (docs/interfaces.md §9).
    fn scores(
        &self,
        settings: &Settings,
        stats: &ImageStats,
        feature_distance: Option<f32>,
    ) -> Result<([f32; ScoreMethod::ALL.len()], Signals)> {
        let (pw, ph, params) = (self.width, self.height, settings.score);
        let mut scores = [0.0; ScoreMethod::ALL.len()];
        for (out, method) in scores.iter_mut().zip(ScoreMethod::ALL) {
            *out = frame_score(&self.entropy, &self.prob, pw, ph, &ScoreParams { method, ..params })?;
        }
        let on_mi = |method| frame_score(&self.mi, &self.prob, pw, ph, &ScoreParams { method, ..params });
        let model_fraction = self.prob.iter().filter(|&&p| p > 0.5).count() as f32 / self.prob.len().max(1) as f32;
        let signals: Signals = [
            scores[ScoreMethod::Mean.index()],
            scores[ScoreMethod::P95.index()],
            scores[ScoreMethod::FractionAbove.index()],
            scores[ScoreMethod::PipelineMean.index()],
            on_mi(ScoreMethod::Mean)?,
            on_mi(ScoreMethod::PipelineMean)?,
            feature_distance.unwrap_or(f32::NAN),
            model_fraction,
            (stats.luma_mean / 255.0) as f32,
            (stats.luma_std / 255.0) as f32,
            stats.saturated as f32,
            stats.clipped as f32,
        ];
        scores[ScoreMethod::Trust.index()] = settings.trust.as_ref().map_or(f32::NAN, |m| m.score(&signals));
        Ok((scores, signals))
    }
}

/// `score_method: trust` needs a trust model in the model's metadata (docs/interfaces.md §9).
fn check_trust(settings: &Settings, model: &Model) -> Result<()> {
    if settings.trust.as_ref().is_some_and(|t| t.needs_feature_distance()) && !model.info.feature_distance {
        return Err(Error::param("trust_model", "uses feature_distance, but the model has no feature_distance output"));
    }
    if settings.score.method == ScoreMethod::Trust && settings.trust.is_none() {
        let why = if model.info.feature_distance {
            "the model has no trust model (metadata trust_*)"
        } else {
            "the model has no trust model (metadata trust_*) and no feature_distance output"
        };
        return Err(Error::param("score_method", format!("trust: {why}; use another method or a newer model")));
    }
    Ok(())
}
