//! `calibrate`: choose `score_method`, `threshold_high` and `threshold_low` from labelled frames
//! (docs/interfaces.md §6, §7, §9), and write them as a parameter file (§5).
//!
//! The frames come from the bags through the one frame loop, in a single pass: every
//! segmentation carries the frame score of every method, so every method and candidate
//! threshold is judged on the same frames. Each candidate is judged by replaying the gate as
//! the node runs it — hysteresis included (`threshold_low`, `recover_frames`, restarting per
//! bag) — over the recorded sequence, so a frame counts as confident exactly when the node
//! would have called it so.
//!
//! Two rules choose among the candidates:
//! - a flagging target (`--max-good-flagged`, `--min-bad-flagged`), the default;
//! - a risk bound (`--max-risk A --delta D`): the loosest `threshold_high` whose one-sided
//!   Clopper–Pearson upper bound on P(bad | confident) at confidence 1 − D is ≤ A, counting
//!   effective frames (one window of `--min-gap` seconds per trial, [`risk::effective_counts`]).
//!   The candidates are tested in a fixed sequence from the strictest threshold with enough
//!   frames to pass at all towards looser ones, stopping at the first that fails (fixed-sequence
//!   testing: the chosen threshold's bound holds at 1 − D without a correction over thresholds).
//!   The bound holds per method; choosing among M methods is covered at 1 − M·D (Bonferroni).

use std::path::PathBuf;

use crate::engine::config::{Params, Settings};
use crate::engine::gate::{Gate, GateParams, Observation};
use crate::engine::pipeline::Pipeline;
use crate::engine::processor::{FrameProcessor, LoopOptions};
use crate::engine::score::ScoreMethod;
use crate::engine::trust::{Feature, Signals, TrustModel, SIGNALS};
use crate::eval::metrics::Accumulator;
use crate::eval::replay::{self, BagFrames, ReplayError};
use crate::eval::risk;
use crate::eval::state::{self, FrameRecord, Seen};
use crate::eval::{Problem, Progress};
use crate::num::{fixed, percentile, yaml_double};

/// Score methods calibrated.
const METHODS: usize = ScoreMethod::ALL.len();
/// At most this many candidate thresholds per method (quantiles of the scores).
const MAX_CANDIDATES: usize = 256;

/// One frame of a calibration bag, in bag order, as the gate and the bound see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeqFrame {
    /// Index of the bag (the gate restarts at each bag).
    pub bag: usize,
    /// Header stamp [ns].
    pub stamp_ns: i64,
    /// The frame score of every method ([`ScoreMethod::index`] order), or what the gate sees
    /// instead (a decode or inference failure, a failed sanity check).
    pub obs: Result<[f32; METHODS], Observation>,
    /// Bad per docs/interfaces.md §7; `None` without ground truth (the frame still moves the gate).
    pub bad: Option<bool>,
    /// The frame's signals (for `--fit-trust`), when it was segmented.
    pub signals: Option<Signals>,
}

/// The flagging target: flag at least `min_bad_flagged` of bad frames and at most
/// `max_good_flagged` of good ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// Largest acceptable fraction of good frames flagged.
    pub max_good_flagged: f64,
    /// Smallest acceptable fraction of bad frames flagged.
    pub min_bad_flagged: f64,
}

/// The risk bound: P(bad | confident) ≤ `max_risk` with confidence 1 − `delta`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RiskTarget {
    /// A: the largest acceptable rate of bad frames among confident ones.
    pub max_risk: f64,
    /// D: the bound may fail with at most this probability.
    pub delta: f64,
    /// Frames of a bag closer than this [s] count as one trial.
    pub min_gap_s: f64,
}

/// How the thresholds are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// Meet a flagging target with the fewest good frames flagged.
    Target(Target),
    /// The loosest threshold whose bound on P(bad | confident) is ≤ the target.
    Risk(RiskTarget),
}

impl Rule {
    fn delta(&self) -> f64 {
        match self {
            Rule::Target(_) => 0.1,
            Rule::Risk(r) => r.delta,
        }
    }

    fn gap_ns(&self) -> i64 {
        match self {
            Rule::Target(_) => 2_000_000_000,
            Rule::Risk(r) => (r.min_gap_s * 1e9).round() as i64,
        }
    }
}

/// What the gate, replayed over the bags with one method and pair of thresholds, did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judged {
    /// The high threshold.
    pub threshold_high: f32,
    /// The low threshold.
    pub threshold_low: f32,
    /// Good frames (with ground truth).
    pub good: usize,
    /// Bad frames.
    pub bad: usize,
    /// Good frames the gate called confident.
    pub good_confident: usize,
    /// Bad frames the gate called confident.
    pub bad_confident: usize,
    /// Effective trials behind the bound: windows with a confident labelled frame.
    pub trials: u64,
    /// Of those, windows with a confident bad frame.
    pub events: u64,
    /// Clopper–Pearson upper bound on P(bad | confident) from (`events`, `trials`).
    pub bound: f64,
}

impl Judged {
    /// Fraction of bad frames not confident (`None` without bad frames).
    pub fn bad_flagged(&self) -> Option<f64> {
        (self.bad > 0).then(|| 1.0 - self.bad_confident as f64 / self.bad as f64)
    }

    /// Fraction of good frames not confident (`None` without good frames).
    pub fn good_flagged(&self) -> Option<f64> {
        (self.good > 0).then(|| 1.0 - self.good_confident as f64 / self.good as f64)
    }

    /// Coverage: fraction of good frames confident.
    pub fn coverage(&self) -> Option<f64> {
        self.good_flagged().map(|g| 1.0 - g)
    }

    /// Confident labelled frames.
    pub fn confident(&self) -> usize {
        self.good_confident + self.bad_confident
    }

    /// Observed P(bad | confident) over frames (`None` when none is confident).
    pub fn observed(&self) -> Option<f64> {
        (self.confident() > 0).then(|| self.bad_confident as f64 / self.confident() as f64)
    }
}

/// Replays the gate with method `m` and the thresholds over the frames and counts the result.
pub fn judge(frames: &[SeqFrame], m: usize, gate: GateParams, gap_ns: i64, delta: f64) -> Judged {
    let mut j = Judged {
        threshold_high: gate.threshold_high,
        threshold_low: gate.threshold_low,
        good: 0,
        bad: 0,
        good_confident: 0,
        bad_confident: 0,
        trials: 0,
        events: 0,
        bound: 1.0,
    };
    let (mut g, mut bag) = (Gate::new(gate), None);
    let mut accepted = Vec::new();
    for f in frames {
        if bag != Some(f.bag) {
            (g, bag) = (Gate::new(gate), Some(f.bag));
        }
        let d = g.update(match f.obs {
            Ok(s) => Observation::Score(s[m]),
            Err(o) => o,
        });
        match f.bad {
            Some(true) => j.bad += 1,
            Some(false) => j.good += 1,
            None => continue,
        }
        if d.confident {
            let bad = f.bad == Some(true);
            *(if bad { &mut j.bad_confident } else { &mut j.good_confident }) += 1;
            accepted.push((f.bag, f.stamp_ns, bad));
        }
    }
    (j.events, j.trials) = risk::effective_counts(accepted, gap_ns);
    j.bound = risk::clopper_pearson_upper(j.events, j.trials, delta);
    j
}

/// Frames of one bag within this many seconds fall in the same fold of the cross-fit (nearby
/// frames are nearly copies: one in each fold would leak the label).
pub const FOLD_WINDOW_S: f64 = 2.0;

/// `--fit-trust`: fits the trust score on the sane labelled frames (the logarithm of every
/// signal that is finite on all of them) and returns the model fitted on all; the frames' trust
/// scores are replaced by cross-fitted ones (two folds of alternating [`FOLD_WINDOW_S`]
/// windows, each scored by the model fitted on the other), so the table and the bound judge
/// trust on frames it was not fitted on. Every fit keeps `clip_max`, the model's clipped-area rule.
pub fn fit_trust(frames: &mut [SeqFrame], clip_max: Option<f64>) -> Result<TrustModel, ReplayError> {
    let refuse = |why: String| ReplayError::from(crate::error::Error::param("--fit-trust", why));
    let mut windows = risk::Windows::new((FOLD_WINDOW_S * 1e9) as i64);
    let fold: Vec<usize> = frames.iter().map(|f| (windows.index(f.bag, f.stamp_ns) % 2) as usize).collect();
    let usable = |f: &SeqFrame| f.obs.is_ok() && f.bad.is_some() && f.signals.is_some();
    let train: Vec<(Signals, bool, usize)> = frames
        .iter()
        .zip(&fold)
        .filter(|(f, _)| usable(f))
        .map(|(f, &k)| (f.signals.expect("usable"), f.bad == Some(true), k))
        .collect();
    // The logarithms of the signals, as training/trust.py fits them.
    let features: Vec<Feature> = (0..SIGNALS.len())
        .filter(|&i| !train.is_empty() && train.iter().all(|t| t.0[i].is_finite()))
        .map(|signal| Feature { signal, log: true })
        .collect();
    let fit = |keep: &dyn Fn(usize) -> bool| {
        let (x, y): (Vec<Signals>, Vec<bool>) = train.iter().filter(|t| keep(t.2)).map(|t| (t.0, t.1)).unzip();
        TrustModel::fit(&x, &y, &features).map(|m| TrustModel { clip_max, ..m })
    };
    let bad = train.iter().filter(|t| t.1).count();
    let none = || {
        refuse(format!(
            "needs good and bad labelled frames in both halves of the bags ({} labelled, {bad} bad)",
            train.len()
        ))
    };
    let all = fit(&|_| true).ok_or_else(none)?;
    let folds = [fit(&|k| k != 0).ok_or_else(none)?, fit(&|k| k != 1).ok_or_else(none)?];
    let t = ScoreMethod::Trust.index();
    for (f, &k) in frames.iter_mut().zip(&fold) {
        if let (Ok(scores), Some(s)) = (&mut f.obs, &f.signals) {
            scores[t] = folds[k].score(s);
        }
    }
    Ok(all)
}

/// The chosen thresholds of one score method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MethodRow {
    /// The score method.
    pub method: ScoreMethod,
    /// The gate with the chosen thresholds, replayed.
    pub judged: Judged,
    /// Whether the rule is met.
    pub meets: bool,
    /// The most effective trials any candidate threshold of the method had.
    pub max_trials: u64,
}

impl MethodRow {
    /// Chosen high threshold.
    pub fn threshold_high(&self) -> f32 {
        self.judged.threshold_high
    }

    /// Chosen low threshold.
    pub fn threshold_low(&self) -> f32 {
        self.judged.threshold_low
    }
}

/// Candidate high thresholds: 0, 1 and the distinct sane scores in [0, 1] (at most
/// [`MAX_CANDIDATES`] of them, as evenly spaced quantiles), ascending.
fn candidates(scores: &[f32]) -> Vec<f32> {
    let mut s: Vec<f32> = scores.iter().map(|v| v.clamp(0.0, 1.0)).filter(|v| !v.is_nan()).collect();
    s.sort_by(f32::total_cmp);
    s.dedup();
    if s.len() > MAX_CANDIDATES {
        let n = s.len() - 1;
        s = (0..MAX_CANDIDATES).map(|i| s[i * n / (MAX_CANDIDATES - 1)]).collect();
    }
    s.extend([0.0, 1.0]);
    s.sort_by(f32::total_cmp);
    s.dedup();
    s
}

fn meets_target(j: &Judged, t: &Target) -> bool {
    j.bad_flagged().is_none_or(|b| b >= t.min_bad_flagged) && j.good_flagged().is_none_or(|g| g <= t.max_good_flagged)
}

/// Sweeps `threshold_high` for method `m` and applies the rule. `threshold_low` is the 80th
/// percentile of the good sane frames' scores, capped at `threshold_high`.
pub fn sweep(method: ScoreMethod, frames: &[SeqFrame], rule: &Rule, recover_frames: u32) -> MethodRow {
    let m = method.index();
    let sane: Vec<f32> = frames.iter().filter_map(|f| f.obs.ok().map(|s| s[m])).collect();
    let good: Vec<f32> =
        frames.iter().filter(|f| f.bad == Some(false)).filter_map(|f| f.obs.ok().map(|s| s[m])).collect();
    let cands = candidates(&sane);
    let p80 = percentile(&good, 0.80);
    let low_of = |th: f32| p80.map_or(th * 0.8, |v| v as f32).min(th).max(0.0);
    let judged: Vec<Judged> = cands
        .iter()
        .map(|&th| {
            let gate = GateParams { threshold_high: th, threshold_low: low_of(th), recover_frames };
            judge(frames, m, gate, rule.gap_ns(), rule.delta())
        })
        .collect();
    let max_trials = judged.iter().map(|j| j.trials).max().unwrap_or(0);
    match rule {
        Rule::Target(t) => {
            // Meeting: fewest good flagged, then most bad flagged, then the highest threshold.
            // Not meeting: the best bad_flagged − good_flagged.
            let key = |j: &Judged| {
                let (b, g) = (j.bad_flagged().unwrap_or(1.0), j.good_flagged().unwrap_or(0.0));
                let th = -(j.threshold_high as f64);
                if meets_target(j, t) {
                    (0, g, -b, th)
                } else {
                    (1, -(b - g), g, th)
                }
            };
            let best = judged.iter().min_by(|a, b| key(a).partial_cmp(&key(b)).unwrap()).expect("candidates 0 and 1");
            MethodRow { method, judged: *best, meets: meets_target(best, t), max_trials }
        }
        Rule::Risk(r) => {
            let need = risk::min_trials(r.max_risk, r.delta);
            // Fixed-sequence testing, strictest first; thresholds with too few trials to pass
            // even without a bad frame are skipped until the first one that has enough.
            let mut passed: Option<&Judged> = None;
            for j in judged.iter() {
                if passed.is_none() && j.trials < need {
                    continue;
                }
                if j.bound <= r.max_risk {
                    passed = Some(j);
                } else {
                    break;
                }
            }
            match passed {
                Some(j) => MethodRow { method, judged: *j, meets: true, max_trials },
                None => {
                    // The best it could do: the smallest bound, then the most coverage.
                    let key = |j: &Judged| (j.bound, -j.coverage().unwrap_or(0.0));
                    let best = judged.iter().min_by(|a, b| key(a).partial_cmp(&key(b)).unwrap()).expect("candidates");
                    MethodRow { method, judged: *best, meets: false, max_trials }
                }
            }
        }
    }
}

/// The chosen row. Target rule: meeting with the fewest good flagged (then the most bad
/// flagged), else the best bad_flagged − good_flagged. Risk rule: meeting with the most
/// coverage, else the smallest bound (then the most coverage).
pub fn choose(rows: &[MethodRow], rule: &Rule) -> Option<usize> {
    let key = |r: &MethodRow| {
        let j = &r.judged;
        let (b, g, c) = (j.bad_flagged().unwrap_or(1.0), j.good_flagged().unwrap_or(0.0), j.coverage().unwrap_or(0.0));
        match (rule, r.meets) {
            (Rule::Target(_), true) => (0, g, -b),
            (Rule::Target(_), false) => (1, -(b - g), g),
            (Rule::Risk(_), true) => (0, -c, j.bound),
            (Rule::Risk(_), false) => (1, j.bound, -c),
        }
    };
    (0..rows.len()).min_by(|&a, &b| key(&rows[a]).partial_cmp(&key(&rows[b])).unwrap_or(std::cmp::Ordering::Equal))
}

/// The trade-off table (markdown) with the chosen row marked.
pub fn table(rows: &[MethodRow], chosen: Option<usize>) -> String {
    let mut s = String::from(
        "| method | threshold_high | threshold_low | bad_flagged | good_flagged | coverage | confident frames \
         | effective trials | bad trials | observed risk | risk bound | meets |\n",
    );
    s += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (i, r) in rows.iter().enumerate() {
        let j = &r.judged;
        s += &format!(
            "| {}{} | {:.6} | {:.6} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} |\n",
            r.method.name(),
            if Some(i) == chosen { " (chosen)" } else { "" },
            j.threshold_high,
            j.threshold_low,
            fixed(j.bad_flagged(), 3),
            fixed(j.good_flagged(), 3),
            fixed(j.coverage(), 3),
            j.confident(),
            j.trials,
            j.events,
            fixed(j.observed(), 4),
            j.bound,
            if r.meets { "yes" } else { "no" }
        );
    }
    s
}

/// The parameter file (docs/interfaces.md §5) `calibrate` writes; `header` lines become comments.
pub fn parameter_file(header: &[String], row: &MethodRow, settings: &Settings) -> String {
    let (samples, recover_frames) = (settings.samples, settings.gate.recover_frames);
    let (pixel_threshold, band_px) = (settings.score.pixel_threshold, settings.score.band_px);
    let mut s = String::new();
    for h in header {
        s += &format!("# {h}\n");
    }
    s += "pipeline_seg_node:\n  ros__parameters:\n";
    // The thresholds hold for the T they were measured with (docs/interfaces.md §5: written explicitly).
    s += &format!("    samples: {samples}\n");
    s += &format!("    score_method: {}\n", row.method.name());
    s += &format!("    pixel_threshold: {}\n", yaml_double(pixel_threshold));
    s += &format!("    band_px: {band_px}\n");
    s += &format!("    threshold_high: {}\n", yaml_double(row.threshold_high()));
    s += &format!("    threshold_low: {}\n", yaml_double(row.threshold_low()));
    s += &format!("    recover_frames: {recover_frames}\n");
    s
}

/// What to calibrate on.
#[derive(Clone, Debug)]
pub struct CalibrateConfig {
    /// Labelled bags.
    pub bags: Vec<PathBuf>,
    /// Camera topic.
    pub topic: String,
    /// Ground-truth mask topic.
    pub gt_topic: String,
    /// How to choose.
    pub rule: Rule,
    /// Refit the trust score on these bags (cross-fitted for the table, see [`fit_trust`]).
    pub fit_trust: bool,
    /// The parameter file to write.
    pub out: PathBuf,
}

/// What `calibrate` found.
#[derive(Debug)]
pub struct Calibration {
    /// One row per score method the model can compute, in [`ScoreMethod::ALL`] order.
    pub rows: Vec<MethodRow>,
    /// The chosen row.
    pub chosen: usize,
    /// Frames with ground truth.
    pub frames: usize,
    /// Of those, bad ones.
    pub bad: usize,
    /// The settings the frames were segmented with.
    pub settings: Settings,
    /// The rule calibrated for.
    pub rule: Rule,
    /// The trust model fitted on these bags (`--fit-trust`), written as `trust_model`.
    pub trust: Option<TrustModel>,
    /// Problems met on the way.
    pub problems: Vec<Problem>,
}

impl Calibration {
    /// The chosen row.
    pub fn row(&self) -> &MethodRow {
        &self.rows[self.chosen]
    }

    /// Whether the chosen row meets the rule.
    pub fn met(&self) -> bool {
        self.row().meets
    }
}

fn check_params(rule: &Rule) -> Result<(), ReplayError> {
    let fraction = |name: &str, v: f64, open: bool| {
        let ok = if open { v > 0.0 && v < 1.0 } else { (0.0..=1.0).contains(&v) };
        if ok {
            Ok(())
        } else {
            let range = if open { "(0, 1)" } else { "[0, 1]" };
            Err(crate::error::Error::param(name, format!("must be in {range}, not {v}")))
        }
    };
    match rule {
        Rule::Target(t) => {
            fraction("--max-good-flagged", t.max_good_flagged, false)?;
            fraction("--min-bad-flagged", t.min_bad_flagged, false)?;
        }
        Rule::Risk(r) => {
            fraction("--max-risk", r.max_risk, true)?;
            fraction("--delta", r.delta, true)?;
            if !(r.min_gap_s >= 0.0 && r.min_gap_s.is_finite()) {
                let msg = format!("must be a non-negative number of seconds, not {}", r.min_gap_s);
                return Err(crate::error::Error::param("--min-gap", msg).into());
            }
        }
    }
    Ok(())
}

/// Segments every frame of the bags once, replays the gate for every method and candidate
/// threshold (see the module documentation), and writes the chosen parameters to `cfg.out`
/// — also when the rule is not met (the best it could do; [`Calibration::met`] says).
pub fn run(params: &Params, cfg: &CalibrateConfig, progress: &mut dyn Progress) -> Result<Calibration, ReplayError> {
    check_params(&cfg.rule)?;
    // Every bag must open and have the topics before the model loads (exit 2 at once).
    let mut total = 0;
    for bag in cfg.bags.iter().filter(|b| !state::is_run_dir(b)) {
        BagFrames::open(bag, &cfg.topic, Some(&cfg.gt_topic))?;
        total += replay::expected_messages(bag, &cfg.topic).unwrap_or(0);
    }
    let mut processor = FrameProcessor::new(Pipeline::new(params)?, LoopOptions::default());
    let (mut frames, mut problems): (Vec<SeqFrame>, Vec<Problem>) = (Vec::new(), Vec::new());
    progress.start("calibrate", Some(total));
    let mut b = 0;
    let mut matching = state::Matching::new(&cfg.topic, Some(&cfg.gt_topic));
    for bag in &cfg.bags {
        if state::is_run_dir(bag) {
            // A replay run: its recorded frames, bag by bag, instead of replaying again.
            let run = matching.load(bag, &processor)?;
            frames.extend(run.frames.iter().map(|f| seq_frame(b + f.bag, f)));
            b += run.bags.len();
            continue;
        }
        let mut acc = Accumulator::new();
        problems.extend(replay::scan(&mut processor, bag, &cfg.topic, Some(&cfg.gt_topic), &mut |bf, r| {
            progress.step(r.decision.reason.name());
            let m = match (r.segmentation(), &bf.gt) {
                (Some(seg), Some(gt)) if (gt.width, gt.height) == (seg.width, seg.height) => {
                    Some(acc.add(&seg.prob, &seg.entropy, &seg.mi, &gt.data))
                }
                _ => None,
            };
            // The same record a replay keeps in state.json, so both paths see a frame alike.
            frames.push(seq_frame(b, &replay::record(b, bf, r, m)));
        })?);
        b += 1;
    }
    progress.finish();
    let labelled = frames.iter().filter(|f| f.bad.is_some()).count();
    if labelled == 0 {
        return Err(ReplayError::NoGroundTruth { topic: cfg.topic.clone(), gt_topic: cfg.gt_topic.clone() });
    }
    let settings = processor.settings().clone();
    // The clipped-area rule is the sensor's, not fitted: the refit keeps the model's.
    let clip_max = settings.trust.as_ref().and_then(|t| t.clip_max);
    let trust = if cfg.fit_trust { Some(fit_trust(&mut frames, clip_max)?) } else { None };
    // A method the model cannot compute (trust without a trust model) has no row.
    let rows: Vec<MethodRow> = ScoreMethod::ALL
        .iter()
        .filter(|m| frames.iter().any(|f| f.obs.is_ok_and(|s| !s[m.index()].is_nan())))
        .map(|&method| sweep(method, &frames, &cfg.rule, settings.gate.recover_frames))
        .collect();
    if rows.is_empty() {
        return Err(ReplayError::NoGroundTruth { topic: cfg.topic.clone(), gt_topic: cfg.gt_topic.clone() });
    }
    let chosen = choose(&rows, &cfg.rule).expect("one row per method");
    let bad = frames.iter().filter(|f| f.bad == Some(true)).count();
    let cal = Calibration { rows, chosen, frames: labelled, bad, settings, rule: cfg.rule, trust, problems };
    let mut text = parameter_file(&file_header(cfg, &cal), cal.row(), &cal.settings);
    if let Some(t) = &cal.trust {
        text += &format!("    trust_model: \"{}\"\n", t.encode());
    }
    if let Some(dir) = cfg.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ReplayError::Output { path: dir.to_path_buf(), source })?;
    }
    std::fs::write(&cfg.out, text).map_err(|source| ReplayError::Output { path: cfg.out.clone(), source })?;
    Ok(cal)
}

/// A recorded frame of a replay run as the gate and the bound see it.
fn seq_frame(bag: usize, f: &FrameRecord) -> SeqFrame {
    let nan = |v: &[Option<f32>]| v.iter().map(|x| x.unwrap_or(f32::NAN)).collect::<Vec<f32>>();
    let scores = || nan(&f.scores).try_into().unwrap_or([f32::NAN; METHODS]);
    let obs = match f.seen {
        Seen::Score => Ok(scores()),
        Seen::ImageQuality => Err(Observation::ImageQuality),
        Seen::DecodeError => Err(Observation::DecodeError),
        Seen::InferenceError => Err(Observation::InferenceError),
    };
    // A run recorded before a signal existed has fewer: the missing ones are NaN.
    let signals = (!f.signals.is_empty()).then(|| {
        let mut s = [f32::NAN; SIGNALS.len()];
        s.iter_mut().zip(nan(&f.signals)).for_each(|(a, b)| *a = b);
        s
    });
    SeqFrame { bag, stamp_ns: f.stamp_ns, obs, bad: f.bad, signals }
}

impl std::fmt::Display for Calibration {
    /// The trade-off table, the chosen row and what it means, as `calibrate` prints them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = self.row();
        writeln!(f, "{}", table(&self.rows, Some(self.chosen)))?;
        if let Some(t) = &self.trust {
            let names: Vec<String> = t.features.iter().map(Feature::name).collect();
            writeln!(
                f,
                "trust refitted on these bags ({}); its row judges cross-fitted scores (two folds of {} s windows); \
                 the file holds the fit on all frames as trust_model",
                names.join(", "),
                FOLD_WINDOW_S
            )?;
        }
        write!(
            f,
            "chosen: {} threshold_high {} threshold_low {}; {}",
            row.method.name(),
            yaml_double(row.threshold_high()),
            yaml_double(row.threshold_low()),
            verdict(self)
        )
    }
}

/// What the chosen row means, in words: the rule and whether it is met, and if not, why.
pub fn verdict(cal: &Calibration) -> String {
    let (row, j) = (cal.row(), &cal.row().judged);
    match &cal.rule {
        Rule::Target(t) => format!(
            "target (bad_flagged >= {}, good_flagged <= {}, gate replayed with hysteresis) {}",
            t.min_bad_flagged,
            t.max_good_flagged,
            if row.meets { "met" } else { "NOT met (best bad_flagged - good_flagged trade-off instead)" }
        ),
        Rule::Risk(r) => {
            let need = risk::min_trials(r.max_risk, r.delta);
            let head = format!(
                "P(bad | confident) <= {:.4} with confidence {} ({} bad of {} effective trials, {}; \
                 observed {} over {} confident frames; coverage {})",
                j.bound,
                1.0 - r.delta,
                j.events,
                j.trials,
                if r.min_gap_s > 0.0 {
                    format!("one per {} s of a bag", r.min_gap_s)
                } else {
                    "every frame one".into()
                },
                fixed(j.observed(), 4),
                j.confident(),
                fixed(j.coverage(), 3)
            );
            if row.meets {
                format!("{head}: max risk {} met", r.max_risk)
            } else {
                let trials = cal.rows.iter().map(|r| r.max_trials).max().unwrap_or(0);
                let why = if trials < need {
                    format!(
                        "too few frames: a bound <= {} at confidence {} needs >= {need} effective trials even with no \
                         bad frame, and these bags give at most {trials} under any threshold; record more, or \
                         pass a smaller --min-gap if frames that far apart are independent",
                        r.max_risk,
                        1.0 - r.delta
                    )
                } else {
                    format!("no threshold of any method has a bound <= {} on these bags", r.max_risk)
                };
                format!("{head}: max risk {} NOT met ({why}); the best it could do is written", r.max_risk)
            }
        }
    }
}

fn file_header(cfg: &CalibrateConfig, cal: &Calibration) -> Vec<String> {
    let (j, s) = (&cal.row().judged, &cal.settings);
    let mut header =
        vec!["Written by `pipeline_seg calibrate`; the gate defaults for this model on these bags.".to_string()];
    header.extend(
        cfg.bags.iter().map(|b| format!("bag: {} (topic {}, ground truth {})", b.display(), cfg.topic, cfg.gt_topic)),
    );
    header.push(verdict(cal));
    header.push(format!(
        "bad_flagged {}, good_flagged {}, risk bound {:.4}, samples {}, seed {}",
        fixed(j.bad_flagged(), 3),
        fixed(j.good_flagged(), 3),
        j.bound,
        s.samples,
        s.seed
    ));
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    /// Frame i of bag 0 at i seconds with the same score under every method.
    fn f(i: i64, score: f32, bad: bool) -> SeqFrame {
        SeqFrame { bag: 0, stamp_ns: i * S, obs: Ok([score; METHODS]), bad: Some(bad), signals: None }
    }

    fn target(g: f64, b: f64) -> Rule {
        Rule::Target(Target { max_good_flagged: g, min_bad_flagged: b })
    }

    #[test]
    fn the_gate_is_replayed_with_its_hysteresis() {
        // Recovery takes 3 frames below low: the first 2 good frames are not confident, nor
        // the 2 good frames after the uncertain one.
        let frames: Vec<SeqFrame> = [0.1, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1]
            .iter()
            .enumerate()
            .map(|(i, &s)| f(i as i64, s, s > 0.5))
            .collect();
        let gate = GateParams { threshold_high: 0.5, threshold_low: 0.2, recover_frames: 3 };
        let j = judge(&frames, 0, gate, 0, 0.1);
        assert_eq!((j.good, j.bad, j.good_confident, j.bad_confident), (7, 1, 3, 0));
        assert_eq!(j.bad_flagged(), Some(1.0));
        assert!((j.good_flagged().unwrap() - 4.0 / 7.0).abs() < 1e-12);
        // A new bag starts recovering again.
        let mut two = frames.clone();
        two[3..].iter_mut().for_each(|f| f.bag = 1);
        assert_eq!(judge(&two, 0, gate, 0, 0.1).good_confident, 2);
    }

    #[test]
    fn target_sweep_finds_a_separating_threshold_and_caps_low() {
        let frames: Vec<SeqFrame> = (0..10)
            .map(|i| f(i, i as f32 * 0.01, false))
            .chain((10..20).map(|i| f(i, 0.5 + i as f32 * 0.01, true)))
            .collect();
        let r = sweep(ScoreMethod::Mean, &frames, &target(0.4, 0.9), 1);
        assert!(r.meets, "{r:?}");
        assert_eq!(r.judged.bad_flagged(), Some(1.0));
        assert!(r.threshold_high() >= 0.085 && r.threshold_high() < 0.6, "{}", r.threshold_high());
        assert!(r.threshold_low() <= r.threshold_high());
    }

    #[test]
    fn unmet_target_is_reported_and_choose_prefers_meeting_rows() {
        let frames = vec![f(0, 0.5, false), f(1, 0.5, true), f(2, 0.1, true), f(3, 0.2, false)];
        let rule = target(0.0, 1.0);
        let bad = sweep(ScoreMethod::P95, &frames, &rule, 1);
        assert!(!bad.meets);
        let good = MethodRow { meets: true, ..bad };
        assert_eq!(choose(&[bad, good], &rule), Some(1));
    }

    #[test]
    fn risk_rule_picks_the_loosest_threshold_that_keeps_the_bound() {
        // 100 good frames with scores 0..0.5, then 10 bad ones at 0.6..0.7, one per second.
        let mut frames: Vec<SeqFrame> = (0..100).map(|i| f(i, i as f32 * 0.005, false)).collect();
        frames.extend((100..110).map(|i| f(i, 0.6 + (i - 100) as f32 * 0.01, true)));
        let rule = Rule::Risk(RiskTarget { max_risk: 0.05, delta: 0.1, min_gap_s: 0.0 });
        let r = sweep(ScoreMethod::Mean, &frames, &rule, 1);
        assert!(r.meets, "{r:?}");
        assert!(r.judged.bound <= 0.05);
        // Every good frame is kept; one bad frame still fits under the bound (1 in 101: 0.038),
        // two do not (0.052), so the sequence stops there.
        assert_eq!((r.judged.good_confident, r.judged.bad_confident), (100, 1));
        assert_eq!(r.threshold_high(), 0.6);
    }

    #[test]
    fn risk_rule_says_too_few_when_no_threshold_can_pass() {
        let frames: Vec<SeqFrame> = (0..20).map(|i| f(i, i as f32 * 0.01, false)).collect();
        let rule = Rule::Risk(RiskTarget { max_risk: 0.05, delta: 0.1, min_gap_s: 0.0 });
        let r = sweep(ScoreMethod::Mean, &frames, &rule, 1);
        assert!(!r.meets);
        assert_eq!(r.judged.trials, 20);
        assert!((r.judged.bound - (1.0 - 0.1f64.powf(1.0 / 20.0))).abs() < 1e-12);
        // With a 5 s gap the 20 frames are 4 trials.
        let gapped = Rule::Risk(RiskTarget { max_risk: 0.05, delta: 0.1, min_gap_s: 5.0 });
        assert_eq!(sweep(ScoreMethod::Mean, &frames, &gapped, 1).judged.trials, 4);
    }

    #[test]
    fn candidates_are_capped_and_keep_the_ends() {
        let scores: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        let c = candidates(&scores);
        assert!(c.len() <= MAX_CANDIDATES + 2);
        assert_eq!((c[0], *c.last().unwrap()), (0.0, 1.0));
        assert!(c.windows(2).all(|w| w[0] < w[1]));
    }
}
