//! `calibrate`: choose `score_method`, `threshold_high` and `threshold_low` from labelled frames
//! so that the gate meets a target (docs/interfaces.md §6, §7), and write them as a parameter file (§5).
//!
//! The frames come from the bags through the one frame loop, in a single pass: every
//! segmentation carries the frame score of every method, so all four are swept from the same
//! frames. A frame counts as flagged in the sweep when it failed the
//! sanity check or its score is above `threshold_high` — the hysteresis (`threshold_low`,
//! `recover_frames`) is **not** simulated, so on a bag the gate flags somewhat more frames than
//! the sweep predicts (the frames after a flagged one until it recovers).

use std::path::PathBuf;

use crate::engine::config::{Params, Settings};
use crate::engine::gate::Reason;
use crate::engine::pipeline::Pipeline;
use crate::engine::processor::{FrameProcessor, LoopOptions};
use crate::engine::score::ScoreMethod;
use crate::eval::metrics::{is_bad, Accumulator};
use crate::eval::replay::{self, BagFrames, ReplayError};
use crate::eval::{Problem, Progress};
use crate::num::{fixed, percentile, yaml_double};

/// One labelled frame under one score method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalFrame {
    /// The frame score under the method.
    pub score: f32,
    /// Bad per docs/interfaces.md §7 (IoU < 0.5, or ground truth has pipeline and the mask none).
    pub bad: bool,
    /// Failed the input sanity check (the gate flags it whatever its score).
    pub insane: bool,
}

/// The target: flag at least `min_bad_flagged` of bad frames and at most `max_good_flagged` of
/// good ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// Largest acceptable fraction of good frames flagged.
    pub max_good_flagged: f64,
    /// Smallest acceptable fraction of bad frames flagged.
    pub min_bad_flagged: f64,
}

/// The best thresholds of one score method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MethodRow {
    /// The score method.
    pub method: ScoreMethod,
    /// Chosen high threshold.
    pub threshold_high: f32,
    /// 80th percentile of the good frames' scores, capped at `threshold_high`.
    pub threshold_low: f32,
    /// Fraction of bad frames flagged (`None` without bad frames).
    pub bad_flagged: Option<f64>,
    /// Fraction of good frames flagged (`None` without good frames).
    pub good_flagged: Option<f64>,
    /// Whether the target is met.
    pub meets: bool,
}

/// Fraction of frames flagged at `th` among those with `bad == want_bad`.
fn flagged(frames: &[CalFrame], th: f32, want_bad: bool) -> Option<f64> {
    let set: Vec<&CalFrame> = frames.iter().filter(|f| f.bad == want_bad).collect();
    if set.is_empty() {
        return None;
    }
    Some(set.iter().filter(|f| f.insane || f.score > th).count() as f64 / set.len() as f64)
}

fn meets(bad: Option<f64>, good: Option<f64>, t: &Target) -> bool {
    bad.is_none_or(|b| b >= t.min_bad_flagged) && good.is_none_or(|g| g <= t.max_good_flagged)
}

/// Sweeps `threshold_high` over every distinct score (and 0): among thresholds meeting the
/// target the one flagging the fewest good frames (then the most bad ones, then the highest
/// threshold); without one, the best `bad_flagged − good_flagged`.
pub fn sweep(method: ScoreMethod, frames: &[CalFrame], target: &Target) -> MethodRow {
    let mut cands: Vec<f32> = frames.iter().map(|f| f.score.clamp(0.0, 1.0)).chain([0.0, 1.0]).collect();
    cands.sort_by(f32::total_cmp);
    cands.dedup();
    let key = |th: f32| {
        let (b, g) = (flagged(frames, th, true), flagged(frames, th, false));
        (b, g, meets(b, g, target))
    };
    let mut best: Option<(f32, Option<f64>, Option<f64>, bool)> = None;
    for &th in &cands {
        let (b, g, ok) = key(th);
        let better = match best {
            None => true,
            Some((bth, bb, bg, bok)) => {
                let (b0, g0, bb0, bg0) = (b.unwrap_or(1.0), g.unwrap_or(0.0), bb.unwrap_or(1.0), bg.unwrap_or(0.0));
                if ok != bok {
                    ok
                } else if ok {
                    (g0, -b0, -(th as f64)) < (bg0, -bb0, -(bth as f64))
                } else {
                    (-(b0 - g0), g0, -(th as f64)) < (-(bb0 - bg0), bg0, -(bth as f64))
                }
            }
        };
        if better {
            best = Some((th, b, g, ok));
        }
    }
    let (th, b, g, ok) = best.expect("at least the candidates 0 and 1");
    let good: Vec<f32> = frames.iter().filter(|f| !f.bad && !f.insane).map(|f| f.score).collect();
    let low = percentile(&good, 0.80).map_or(th * 0.8, |v| v as f32).min(th).max(0.0);
    MethodRow { method, threshold_high: th, threshold_low: low, bad_flagged: b, good_flagged: g, meets: ok }
}

/// The chosen row: meeting the target with the lowest `good_flagged` (then the highest
/// `bad_flagged`), else the best `bad_flagged − good_flagged`.
pub fn choose(rows: &[MethodRow]) -> Option<usize> {
    let score = |r: &MethodRow| {
        let (b, g) = (r.bad_flagged.unwrap_or(1.0), r.good_flagged.unwrap_or(0.0));
        if r.meets {
            (0, g, -b)
        } else {
            (1, -(b - g), g)
        }
    };
    (0..rows.len()).min_by(|&a, &b| score(&rows[a]).partial_cmp(&score(&rows[b])).unwrap_or(std::cmp::Ordering::Equal))
}

/// The trade-off table (markdown) with the chosen row marked.
pub fn table(rows: &[MethodRow], chosen: Option<usize>) -> String {
    let mut s =
        String::from("| method | threshold_high | threshold_low | bad_flagged | good_flagged | meets target |\n");
    s += "|---|---|---|---|---|---|\n";
    for (i, r) in rows.iter().enumerate() {
        s += &format!(
            "| {}{} | {:.6} | {:.6} | {} | {} | {} |\n",
            r.method.name(),
            if Some(i) == chosen { " (chosen)" } else { "" },
            r.threshold_high,
            r.threshold_low,
            fixed(r.bad_flagged, 3),
            fixed(r.good_flagged, 3),
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
    s += &format!("    threshold_high: {}\n", yaml_double(row.threshold_high));
    s += &format!("    threshold_low: {}\n", yaml_double(row.threshold_low));
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
    /// The flagging target.
    pub target: Target,
    /// The parameter file to write.
    pub out: PathBuf,
}

/// What `calibrate` found.
#[derive(Debug)]
pub struct Calibration {
    /// One row per score method, in [`ScoreMethod::ALL`] order.
    pub rows: Vec<MethodRow>,
    /// The chosen row.
    pub chosen: usize,
    /// Frames with ground truth.
    pub frames: usize,
    /// Of those, bad ones.
    pub bad: usize,
    /// The settings the frames were segmented with.
    pub settings: Settings,
    /// The target calibrated for.
    pub target: Target,
    /// Problems met on the way.
    pub problems: Vec<Problem>,
}

impl Calibration {
    /// The chosen row.
    pub fn row(&self) -> &MethodRow {
        &self.rows[self.chosen]
    }
}

/// Segments every frame of the bags once and sweeps every score method (see the module
/// documentation); writes the chosen parameters to `cfg.out`.
pub fn run(params: &Params, cfg: &CalibrateConfig, progress: &mut dyn Progress) -> Result<Calibration, ReplayError> {
    for (name, v) in
        [("--max-good-flagged", cfg.target.max_good_flagged), ("--min-bad-flagged", cfg.target.min_bad_flagged)]
    {
        if !(0.0..=1.0).contains(&v) {
            return Err(crate::error::Error::param(name, format!("must be in [0, 1], not {v}")).into());
        }
    }
    // Every bag must open and have the topics before the model loads (exit 2 at once).
    let mut total = 0;
    for bag in &cfg.bags {
        BagFrames::open(bag, &cfg.topic, Some(&cfg.gt_topic))?;
        total += replay::expected_messages(bag, &cfg.topic).unwrap_or(0);
    }
    let mut processor = FrameProcessor::new(Pipeline::new(params)?, LoopOptions::default());
    let (mut frames, mut problems): (Vec<[CalFrame; 4]>, Vec<Problem>) = (Vec::new(), Vec::new());
    progress.start("calibrate", Some(total));
    for bag in &cfg.bags {
        let mut acc = Accumulator::new();
        problems.extend(replay::scan(&mut processor, bag, &cfg.topic, Some(&cfg.gt_topic), &mut |bf, r| {
            progress.step(r.decision.reason.name());
            if let (Some(seg), Some(gt)) = (r.segmentation(), &bf.gt) {
                if (gt.width, gt.height) == (seg.width, seg.height) {
                    let m = acc.add(&seg.prob, &seg.entropy, &seg.mi, &gt.data);
                    let bad = is_bad(m.iou, m.gt_has_pipe, m.pred_has_pipe);
                    let insane = r.decision.reason == Reason::ImageQuality;
                    frames.push(seg.scores.map(|score| CalFrame { score, bad, insane }));
                }
            }
        })?);
    }
    progress.finish();
    if frames.is_empty() {
        return Err(ReplayError::NoGroundTruth { topic: cfg.topic.clone(), gt_topic: cfg.gt_topic.clone() });
    }
    let rows: Vec<MethodRow> = ScoreMethod::ALL
        .iter()
        .map(|&method| {
            let of_method: Vec<CalFrame> = frames.iter().map(|f| f[method.index()]).collect();
            sweep(method, &of_method, &cfg.target)
        })
        .collect();
    let chosen = choose(&rows).expect("one row per method");
    let settings = processor.settings().clone();
    let bad = frames.iter().filter(|f| f[0].bad).count();
    let cal = Calibration { rows, chosen, frames: frames.len(), bad, settings, target: cfg.target, problems };
    let text = parameter_file(&file_header(cfg, &cal), cal.row(), &cal.settings);
    if let Some(dir) = cfg.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ReplayError::Output { path: dir.to_path_buf(), source })?;
    }
    std::fs::write(&cfg.out, text).map_err(|source| ReplayError::Output { path: cfg.out.clone(), source })?;
    Ok(cal)
}

impl std::fmt::Display for Calibration {
    /// The trade-off table and the chosen row, as `calibrate` prints them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (row, t) = (self.row(), &self.target);
        writeln!(f, "{}", table(&self.rows, Some(self.chosen)))?;
        write!(
            f,
            "chosen: {} threshold_high {} threshold_low {}; target (bad_flagged >= {}, good_flagged <= {}) {}",
            row.method.name(),
            yaml_double(row.threshold_high),
            yaml_double(row.threshold_low),
            t.min_bad_flagged,
            t.max_good_flagged,
            met(row)
        )
    }
}

/// "met", or what was done instead.
pub fn met(row: &MethodRow) -> &'static str {
    if row.meets {
        "met"
    } else {
        "NOT met (best bad_flagged - good_flagged trade-off instead)"
    }
}

fn file_header(cfg: &CalibrateConfig, cal: &Calibration) -> Vec<String> {
    let (row, t, s) = (cal.row(), &cfg.target, &cal.settings);
    let mut header =
        vec!["Written by `pipeline_seg calibrate`; the gate defaults for this model on these bags.".to_string()];
    header.extend(
        cfg.bags.iter().map(|b| format!("bag: {} (topic {}, ground truth {})", b.display(), cfg.topic, cfg.gt_topic)),
    );
    header.push(format!(
        "target: flag >= {} of bad frames, <= {} of good frames \
         (score > threshold_high or insane; hysteresis not simulated): {}",
        t.min_bad_flagged,
        t.max_good_flagged,
        met(row)
    ));
    header.push(format!(
        "bad_flagged {}, good_flagged {}, samples {}, seed {}",
        fixed(row.bad_flagged, 3),
        fixed(row.good_flagged, 3),
        s.samples,
        s.seed
    ));
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(score: f32, bad: bool) -> CalFrame {
        CalFrame { score, bad, insane: false }
    }

    #[test]
    fn sweep_finds_a_separating_threshold_and_caps_low() {
        let frames: Vec<CalFrame> =
            (0..10).map(|i| f(i as f32 * 0.01, false)).chain((0..10).map(|i| f(0.5 + i as f32 * 0.01, true))).collect();
        let t = Target { max_good_flagged: 0.1, min_bad_flagged: 0.9 };
        let r = sweep(ScoreMethod::Mean, &frames, &t);
        assert!(r.meets);
        assert_eq!(r.good_flagged, Some(0.0));
        assert_eq!(r.bad_flagged, Some(1.0));
        assert!(r.threshold_high >= 0.085 && r.threshold_high < 0.5, "{}", r.threshold_high);
        assert!(r.threshold_low <= r.threshold_high);
    }

    #[test]
    fn unmet_target_is_reported_and_choose_prefers_meeting_rows() {
        let frames = vec![f(0.5, false), f(0.5, true), f(0.1, true), f(0.2, false)];
        let t = Target { max_good_flagged: 0.0, min_bad_flagged: 1.0 };
        let bad = sweep(ScoreMethod::P95, &frames, &t);
        assert!(!bad.meets);
        let good = MethodRow { meets: true, ..bad };
        assert_eq!(choose(&[bad, good]), Some(1));
    }
}
