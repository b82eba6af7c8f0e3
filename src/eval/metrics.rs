//! Streaming evaluation metrics of docs/interfaces.md §7 over frames with ground truth, defined exactly
//! as `training/mcd.py` (`Accumulator`, `spearman`) and `training/evaluate.py` (gate summary).
//!
//! Memory is O(bins): 1,000-bin histograms of entropy and mutual information split by
//! wrong/right pixels and 15 confidence bins for the ECE; no pixel is kept. Bin indices are
//! computed in f32 like numpy does on the float32 maps (`(v * 1000).astype(int)`, truncation,
//! then clipped), so every pixel lands in the same bin as in Python; sums are f64.

use serde::{Deserialize, Serialize};

use crate::view::report::ReliabilityBin;

/// Histogram bins of the entropy and MI maps (`mcd.BINS`).
pub const BINS: usize = 1000;
/// Equal-width confidence bins over [0.5, 1] for the ECE.
pub const ECE_BINS: usize = 15;

/// Metrics of one frame, returned by [`Accumulator::add`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FrameMetrics {
    /// |pred ∩ gt| / |pred ∪ gt|; 1.0 when both are empty.
    pub iou: f64,
    /// 2|pred ∩ gt| / (|pred| + |gt|); 1.0 when both are empty.
    pub dice: f64,
    /// Fraction of pixels with pred ≠ gt (0.0 for a frame without pixels).
    pub pixel_error_rate: f64,
    /// Whether any ground-truth pixel is pipeline (gt > 127).
    pub gt_has_pipe: bool,
    /// Whether any predicted pixel is pipeline (prob > 0.5).
    pub pred_has_pipe: bool,
}

/// Pooled metrics over all frames added so far (`mcd.Accumulator.metrics`); `None` where
/// Python gives NaN, so it serializes as JSON `null`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Σ|∩| / Σ|∪| over frames; 1.0 when the union is empty.
    pub pooled_iou: f64,
    /// Mean of per-frame IoU; `None` without frames.
    pub mean_iou: Option<f64>,
    /// Pooled dice 2Σ|∩| / (Σ|pred| + Σ|gt|); 1.0 when both sums are 0.
    pub dice: f64,
    /// AUROC of pixel entropy for wrong vs right pixels (histogram form, ties count half);
    /// `None` when either class is empty.
    pub auroc_entropy: Option<f64>,
    /// AUROC of pixel MI for wrong vs right pixels; `None` when either class is empty.
    pub auroc_mi: Option<f64>,
    /// Expected calibration error over all pixels; `None` without pixels.
    pub ece: Option<f64>,
    /// ECE over pixels where prediction or ground truth is pipeline; `None` without such pixels.
    pub ece_pipe: Option<f64>,
    /// Area under the risk–coverage curve of the entropy histogram; 0.0 without pixels (as mcd).
    pub aurc: f64,
    /// Pooled fraction of wrong pixels; 0.0 without pixels (as mcd).
    pub pixel_error_rate: f64,
}

/// ECE bin sums: count, Σ confidence, count correct.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct EceBin {
    n: u64,
    conf: f64,
    correct: u64,
}

/// Streaming accumulator of docs/interfaces.md §7 pixel metrics (`mcd.Accumulator`). Its
/// state is counts and sums, so it serializes (`state.json`) and merges exactly
/// ([`Accumulator::merge`], docs/interfaces.md §11).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    inter: u64,
    union: u64,
    pred_sum: u64,
    gt_sum: u64,
    frames: u64,
    iou_sum: f64,
    h_err: Vec<u64>,
    h_ok: Vec<u64>,
    mi_err: Vec<u64>,
    mi_ok: Vec<u64>,
    /// [all pixels, pred|gt pixels] × bins.
    ece: [[EceBin; ECE_BINS]; 2],
}

impl Default for Accumulator {
    fn default() -> Self {
        Self::new()
    }
}

/// Histogram bin of a map value in [0, 1]: f32 `v * 1000` truncated, clipped to [0, 999].
#[inline]
fn hist_bin(v: f32) -> usize {
    ((v * BINS as f32) as i64).clamp(0, BINS as i64 - 1) as usize
}

/// ECE bin of a confidence in [0.5, 1]: f32 `(c - 0.5) / 0.5 * 15` truncated, clipped to [0, 14].
#[inline]
fn ece_bin(conf: f32) -> usize {
    (((conf - 0.5) / 0.5 * ECE_BINS as f32) as i64).clamp(0, ECE_BINS as i64 - 1) as usize
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Accumulator {
            inter: 0,
            union: 0,
            pred_sum: 0,
            gt_sum: 0,
            frames: 0,
            iou_sum: 0.0,
            h_err: vec![0; BINS],
            h_ok: vec![0; BINS],
            mi_err: vec![0; BINS],
            mi_ok: vec![0; BINS],
            ece: [[EceBin::default(); ECE_BINS]; 2],
        }
    }

    /// Adds one frame at input resolution: mean pipeline probability, entropy and MI maps (finite,
    /// in [0, 1]) and the ground-truth mask (pipeline where > 127), all the same length.
    ///
    /// # Panics
    /// When the four slices differ in length.
    pub fn add(&mut self, prob: &[f32], entropy: &[f32], mi: &[f32], gt: &[u8]) -> FrameMetrics {
        let n = prob.len();
        assert!(
            entropy.len() == n && mi.len() == n && gt.len() == n,
            "eval: maps differ in length (prob {n}, entropy {}, mi {}, gt {})",
            entropy.len(),
            mi.len(),
            gt.len()
        );
        let (mut inter, mut union, mut pred_n, mut gt_n, mut wrong_n) = (0u64, 0u64, 0u64, 0u64, 0u64);
        // Per-frame ECE sums, added to the totals afterwards (numpy's bincount per frame, then +=).
        let mut ece = [[EceBin::default(); ECE_BINS]; 2];
        for i in 0..n {
            let p = prob[i];
            let pred = p > 0.5;
            let g = gt[i] > 127;
            let wrong = pred != g;
            inter += (pred & g) as u64;
            union += (pred | g) as u64;
            pred_n += pred as u64;
            gt_n += g as u64;
            wrong_n += wrong as u64;
            let (h, m) = (hist_bin(entropy[i]), hist_bin(mi[i]));
            if wrong {
                self.h_err[h] += 1;
                self.mi_err[m] += 1;
            } else {
                self.h_ok[h] += 1;
                self.mi_ok[m] += 1;
            }
            let conf = p.max(1.0 - p);
            let b = ece_bin(conf);
            for (k, sel) in [true, pred | g].into_iter().enumerate() {
                if sel {
                    let e = &mut ece[k][b];
                    e.n += 1;
                    e.conf += conf as f64;
                    e.correct += !wrong as u64;
                }
            }
        }
        for (tot, frame) in self.ece.iter_mut().zip(&ece) {
            for (t, f) in tot.iter_mut().zip(frame) {
                t.n += f.n;
                t.conf += f.conf;
                t.correct += f.correct;
            }
        }
        self.inter += inter;
        self.union += union;
        self.pred_sum += pred_n;
        self.gt_sum += gt_n;
        self.frames += 1;
        let iou = if union == 0 { 1.0 } else { inter as f64 / union as f64 };
        self.iou_sum += iou;
        let dice = if pred_n + gt_n == 0 { 1.0 } else { 2.0 * inter as f64 / (pred_n + gt_n) as f64 };
        FrameMetrics {
            iou,
            dice,
            pixel_error_rate: wrong_n as f64 / n.max(1) as f64,
            gt_has_pipe: gt_n > 0,
            pred_has_pipe: pred_n > 0,
        }
    }

    /// Adds the frames of another accumulator, as if they had been added here. Counts add
    /// exactly; the f64 sums (per-frame IoU, ECE confidence) add in another order than one
    /// stream would, which changes them by rounding only (~1e-16 relative).
    ///
    /// # Errors
    /// When `other` has another histogram size (a state file from another version).
    pub fn merge(&mut self, other: &Accumulator) -> Result<(), String> {
        let sizes = [&other.h_err, &other.h_ok, &other.mi_err, &other.mi_ok];
        if sizes.iter().any(|h| h.len() != BINS) {
            return Err(format!("histograms of {} bins, expected {BINS}", other.h_err.len()));
        }
        self.inter += other.inter;
        self.union += other.union;
        self.pred_sum += other.pred_sum;
        self.gt_sum += other.gt_sum;
        self.frames += other.frames;
        self.iou_sum += other.iou_sum;
        let pairs = [
            (&mut self.h_err, &other.h_err),
            (&mut self.h_ok, &other.h_ok),
            (&mut self.mi_err, &other.mi_err),
            (&mut self.mi_ok, &other.mi_ok),
        ];
        for (a, b) in pairs {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
        for (tot, o) in self.ece.iter_mut().zip(&other.ece) {
            for (t, f) in tot.iter_mut().zip(o) {
                t.n += f.n;
                t.conf += f.conf;
                t.correct += f.correct;
            }
        }
        Ok(())
    }

    /// Frames added so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Pixels added so far.
    pub fn pixels(&self) -> u64 {
        self.h_err.iter().chain(&self.h_ok).sum()
    }

    /// AUROC of a histogrammed score for positives vs negatives, ties counting half
    /// (`mcd.Accumulator.auroc`); `None` when either class is empty.
    pub fn auroc(pos: &[u64], neg: &[u64]) -> Option<f64> {
        let (p_tot, n_tot): (u64, u64) = (pos.iter().sum(), neg.iter().sum());
        if p_tot == 0 || n_tot == 0 {
            return None;
        }
        let (mut below, mut acc) = (0.0f64, 0.0f64);
        for (&p, &q) in pos.iter().zip(neg) {
            let q = q as f64;
            acc += (below + 0.5 * q) * p as f64;
            below += q;
        }
        Some(acc / (p_tot as f64 * n_tot as f64))
    }

    /// The ECE bins over all pixels, for a reliability diagram: bins without pixels are left out.
    pub fn reliability(&self) -> Vec<ReliabilityBin> {
        let width = 0.5 / ECE_BINS as f64;
        self.ece[0]
            .iter()
            .enumerate()
            .filter(|(_, b)| b.n > 0)
            .map(|(i, b)| ReliabilityBin {
                lo: 0.5 + i as f64 * width,
                hi: 0.5 + (i + 1) as f64 * width,
                count: b.n,
                confidence: b.conf / b.n as f64,
                accuracy: b.correct as f64 / b.n as f64,
            })
            .collect()
    }

    /// The risk–coverage curve of the entropy histogram: pixels kept in order of increasing
    /// entropy, one `(coverage, risk)` point per non-empty bin (coverage = kept fraction, risk =
    /// error rate of the kept pixels), the same cumulative sums as `aurc`. Empty without pixels.
    pub fn risk_coverage(&self) -> Vec<(f64, f64)> {
        let total = self.pixels();
        if total == 0 {
            return Vec::new();
        }
        let (mut cum_err, mut cum_tot) = (0u64, 0u64);
        let mut out = Vec::new();
        for (&e, &o) in self.h_err.iter().zip(&self.h_ok) {
            if e + o == 0 {
                continue;
            }
            cum_err += e;
            cum_tot += e + o;
            out.push((cum_tot as f64 / total as f64, cum_err as f64 / cum_tot as f64));
        }
        out
    }

    /// The ROC of entropy as a detector of wrong pixels: one `(false positive rate, true positive
    /// rate)` point per entropy threshold (bin edge, from the highest), starting at (0, 0) and
    /// ending at (1, 1). Empty when either class is empty (no AUROC either).
    pub fn error_roc(&self) -> Vec<(f64, f64)> {
        let (p_tot, n_tot): (u64, u64) = (self.h_err.iter().sum(), self.h_ok.iter().sum());
        if p_tot == 0 || n_tot == 0 {
            return Vec::new();
        }
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut out = vec![(0.0, 0.0)];
        for (&e, &o) in self.h_err.iter().zip(&self.h_ok).rev() {
            if e + o == 0 {
                continue;
            }
            tp += e;
            fp += o;
            out.push((fp as f64 / n_tot as f64, tp as f64 / p_tot as f64));
        }
        out
    }

    /// Pooled metrics of every frame added so far.
    pub fn metrics(&self) -> Metrics {
        let ece = |k: usize| {
            let tot: u64 = self.ece[k].iter().map(|b| b.n).sum();
            if tot == 0 {
                return None;
            }
            let tot = tot as f64;
            Some(self.ece[k].iter().filter(|b| b.n > 0).map(|b| (b.correct as f64 - b.conf).abs() / tot).sum())
        };
        // risk = cumsum(err) / max(cumsum(total), 1); aurc = Σ risk·total / max(Σ total, 1).
        let (mut cum_err, mut cum_tot, mut aurc_num, mut total) = (0.0f64, 0.0f64, 0.0f64, 0u64);
        for (&e, &o) in self.h_err.iter().zip(&self.h_ok) {
            let t = e + o;
            cum_err += e as f64;
            cum_tot += t as f64;
            aurc_num += cum_err / cum_tot.max(1.0) * t as f64;
            total += t;
        }
        let err: u64 = self.h_err.iter().sum();
        let denom = total.max(1) as f64;
        Metrics {
            pooled_iou: if self.union == 0 { 1.0 } else { self.inter as f64 / self.union as f64 },
            mean_iou: (self.frames > 0).then(|| self.iou_sum / self.frames as f64),
            dice: match self.pred_sum + self.gt_sum {
                0 => 1.0,
                s => 2.0 * self.inter as f64 / s as f64,
            },
            auroc_entropy: Self::auroc(&self.h_err, &self.h_ok),
            auroc_mi: Self::auroc(&self.mi_err, &self.mi_ok),
            ece: ece(0),
            ece_pipe: ece(1),
            aurc: aurc_num / denom,
            pixel_error_rate: err as f64 / denom,
        }
    }
}

/// Spearman rank correlation with average ranks for ties (`mcd.spearman`): Pearson correlation
/// of the ranks. `None` with fewer than 2 values or when either input is constant. NaNs rank
/// last, each distinct (as numpy's argsort and `v == val` treat them).
///
/// # Panics
/// When `a` and `b` differ in length.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "spearman: inputs differ in length");
    let n = a.len();
    if n < 2 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    if ra.iter().all(|&r| r == ra[0]) || rb.iter().all(|&r| r == rb[0]) {
        return None;
    }
    // np.corrcoef: cov / sqrt(var_a) / sqrt(var_b), clipped to [-1, 1].
    let mean = |r: &[f64]| r.iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(&ra), mean(&rb));
    let (mut sab, mut saa, mut sbb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in ra.iter().zip(&rb) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let d = (n - 1) as f64;
    Some((sab / d / (saa / d).sqrt() / (sbb / d).sqrt()).clamp(-1.0, 1.0))
}

/// Ranks 0..n−1 in stable ascending order, NaN last; equal (non-NaN) values share their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| match (v[i].is_nan(), v[j].is_nan()) {
        (false, false) => v[i].partial_cmp(&v[j]).unwrap(),
        (a, b) => a.cmp(&b),
    });
    let mut r = vec![0.0; v.len()];
    let mut s = 0;
    while s < order.len() {
        let mut e = s + 1;
        while e < order.len() && v[order[e]] == v[order[s]] {
            e += 1;
        }
        let avg = (s + e - 1) as f64 / 2.0;
        order[s..e].iter().for_each(|&i| r[i] = avg);
        s = e;
    }
    r
}

/// Whether a frame is bad for the gate (docs/interfaces.md §7): IoU < 0.5, or the ground truth has
/// pipeline and the mask has none.
pub fn is_bad(iou: f64, gt_has_pipe: bool, pred_has_pipe: bool) -> bool {
    iou < 0.5 || (gt_has_pipe && !pred_has_pipe)
}

/// Gate statistics of docs/interfaces.md §7: how often bad frames and good frames were flagged
/// (confident = false).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateStats {
    /// Bad frames seen.
    pub bad_frames: u64,
    /// Bad frames with confident = false.
    pub bad_unconfident: u64,
    /// Good frames seen.
    pub good_frames: u64,
    /// Good frames with confident = false.
    pub good_unconfident: u64,
}

/// Serializable summary of [`GateStats`]; `None` (JSON `null`) where there are no such frames.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GateSummary {
    /// Bad frames seen.
    pub bad_frames: u64,
    /// Good frames seen.
    pub good_frames: u64,
    /// Fraction of bad frames with confident = false.
    pub bad_flagged: Option<f64>,
    /// Fraction of good frames with confident = false.
    pub good_flagged: Option<f64>,
}

impl GateStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one frame; returns whether it is bad (see [`is_bad`]).
    pub fn add(&mut self, iou: f64, gt_has_pipe: bool, pred_has_pipe: bool, confident: bool) -> bool {
        let bad = is_bad(iou, gt_has_pipe, pred_has_pipe);
        if bad {
            self.bad_frames += 1;
            self.bad_unconfident += !confident as u64;
        } else {
            self.good_frames += 1;
            self.good_unconfident += !confident as u64;
        }
        bad
    }

    /// Adds the counts of another run.
    pub fn merge(&mut self, other: &GateStats) {
        self.bad_frames += other.bad_frames;
        self.bad_unconfident += other.bad_unconfident;
        self.good_frames += other.good_frames;
        self.good_unconfident += other.good_unconfident;
    }

    /// Counts one frame from its [`FrameMetrics`]; returns whether it is bad.
    pub fn add_frame(&mut self, frame: &FrameMetrics, confident: bool) -> bool {
        self.add(frame.iou, frame.gt_has_pipe, frame.pred_has_pipe, confident)
    }

    /// Fraction of bad frames with confident = false; `None` without bad frames.
    pub fn bad_flagged(&self) -> Option<f64> {
        (self.bad_frames > 0).then(|| self.bad_unconfident as f64 / self.bad_frames as f64)
    }

    /// Fraction of good frames with confident = false; `None` without good frames.
    pub fn good_flagged(&self) -> Option<f64> {
        (self.good_frames > 0).then(|| self.good_unconfident as f64 / self.good_frames as f64)
    }

    /// The counts and both fractions, for a JSON report.
    pub fn summary(&self) -> GateSummary {
        GateSummary {
            bad_frames: self.bad_frames,
            good_frames: self.good_frames,
            bad_flagged: self.bad_flagged(),
            good_flagged: self.good_flagged(),
        }
    }
}

#[cfg(test)]
mod curve_tests {
    use super::*;

    #[test]
    fn curves_match_the_pooled_metrics() {
        let mut acc = Accumulator::new();
        assert!(acc.reliability().is_empty() && acc.risk_coverage().is_empty() && acc.error_roc().is_empty());
        let prob = [0.9f32, 0.8, 0.3, 0.6, 0.1, 0.55];
        let ent = [0.1f32, 0.4, 0.7, 0.9, 0.05, 0.95];
        let gt = [255u8, 0, 255, 255, 0, 0];
        acc.add(&prob, &ent, &ent, &gt);
        let m = acc.metrics();
        let rel = acc.reliability();
        assert_eq!(rel.iter().map(|b| b.count).sum::<u64>(), 6);
        assert!(rel.iter().all(|b| b.lo < b.hi && (0.0..=1.0).contains(&b.accuracy)));
        let rc = acc.risk_coverage();
        assert!((rc.last().unwrap().0 - 1.0).abs() < 1e-12);
        assert!((rc.last().unwrap().1 - m.pixel_error_rate).abs() < 1e-12);
        let roc = acc.error_roc();
        assert_eq!(roc[0], (0.0, 0.0));
        assert_eq!(*roc.last().unwrap(), (1.0, 1.0));
        // Trapezoidal area of the ROC = the histogram AUROC (ties count half).
        let area: f64 = roc.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert!((area - m.auroc_entropy.unwrap()).abs() < 1e-12, "{area} vs {:?}", m.auroc_entropy);
    }
}
