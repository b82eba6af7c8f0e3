//! Per-pixel uncertainty from T softmax samples and the frame score (INTERFACES §2).

use std::str::FromStr;

use opencv::{core, imgproc, prelude::*};

use crate::error::{Error, Result};

/// Probabilities are clamped to [EPS, 1] before logs.
pub const EPS: f32 = 1e-7;

/// Maps at model resolution: mean pipeline probability, normalised entropy, mutual information.
#[derive(Clone, Debug, Default)]
pub struct Maps {
    /// Mean pipeline probability over the T samples, 0..1.
    pub prob: Vec<f32>,
    /// Normalised predictive entropy, 0..1.
    pub entropy: Vec<f32>,
    /// Mutual information (epistemic part), 0..entropy.
    pub mi: Vec<f32>,
}

/// Natural log for normal positive floats, branch-free so that the aggregation loop
/// vectorises: ln(m·2^e) = 2·atanh((m − 1)/(m + 1)) + e·ln 2 with m in [√½, √2), the series
/// to z⁹ (relative error ≤ 1.8e-7 on [1e-7, 1], measured exhaustively).
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn fast_ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    let big = m > std::f32::consts::SQRT_2;
    e += big as i32;
    let m = if big { m * 0.5 } else { m };
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let tail = z2 * (1.0 / 3.0 + z2 * (1.0 / 5.0 + z2 * (1.0 / 7.0 + z2 * (1.0 / 9.0))));
    let e = e as f32;
    // ln 2 split in two so that e·ln 2 keeps full precision (0.693359375 is exact in f32).
    (2.0 * z + 2.0 * z * tail) + e * 0.693_359_375 + e * -2.121_944_4e-4
}

/// Mean probability, entropy and MI from `probs` laid out [T, C, hw], normalised by log C.
///
/// Large sample sets are split by pixel range over two cores (the model is idle meanwhile).
pub fn aggregate(probs: &[f32], t: usize, c: usize, hw: usize) -> Maps {
    assert!(probs.len() == t * c * hw && t > 0 && c > 1, "probs must be [T, C, hw]");
    let mut maps = Maps { prob: vec![0.0; hw], entropy: vec![0.0; hw], mi: vec![0.0; hw] };
    let parallel = t * c * hw >= 1 << 20 && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let split = if parallel { (hw / 2).next_multiple_of(64).min(hw) } else { hw };
    let (p0, p1) = maps.prob.split_at_mut(split);
    let (e0, e1) = maps.entropy.split_at_mut(split);
    let (m0, m1) = maps.mi.split_at_mut(split);
    std::thread::scope(|scope| {
        if split < hw {
            scope.spawn(move || aggregate_range(probs, t, c, hw, split, p1, e1, m1));
        }
        aggregate_range(probs, t, c, hw, 0, p0, e0, m0);
    });
    maps
}

/// Fills the maps of pixels `start..start + prob.len()`, with the widest vectors the CPU has.
#[allow(clippy::too_many_arguments)]
fn aggregate_range(probs: &[f32], t: usize, c: usize, hw: usize, start: usize, prob: &mut [f32], entropy: &mut [f32], mi: &mut [f32]) {
    // The same loop, compiled for wider vectors where the CPU has them (checked at run time).
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { aggregate_avx512(probs, t, c, hw, start, prob, entropy, mi) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { aggregate_avx2(probs, t, c, hw, start, prob, entropy, mi) };
        }
    }
    aggregate_portable(probs, t, c, hw, start, prob, entropy, mi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn aggregate_avx512(probs: &[f32], t: usize, c: usize, hw: usize, start: usize, prob: &mut [f32], entropy: &mut [f32], mi: &mut [f32]) {
    aggregate_portable(probs, t, c, hw, start, prob, entropy, mi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn aggregate_avx2(probs: &[f32], t: usize, c: usize, hw: usize, start: usize, prob: &mut [f32], entropy: &mut [f32], mi: &mut [f32]) {
    aggregate_portable(probs, t, c, hw, start, prob, entropy, mi)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn aggregate_portable(probs: &[f32], t: usize, c: usize, hw: usize, start: usize, prob: &mut [f32], entropy: &mut [f32], mi: &mut [f32]) {
    let n = prob.len();
    let mut sum_p = vec![0.0f32; c * n];
    let sum_h = mi; // Σ_t H(p_t), unnormalised, until the last loop turns it into MI
    for sample in probs.chunks_exact(c * hw) {
        for (class, plane) in sample.chunks_exact(hw).enumerate() {
            let row = &plane[start..start + n];
            let acc = &mut sum_p[class * n..(class + 1) * n];
            for ((s, h), &p) in acc.iter_mut().zip(sum_h.iter_mut()).zip(row) {
                *s += p;
                let q = p.clamp(EPS, 1.0);
                *h -= q * fast_ln(q);
            }
        }
    }
    let inv_t = 1.0 / t as f32;
    let inv_log_c = 1.0 / (c as f32).ln();
    for class in 0..c {
        for (h, &s) in entropy.iter_mut().zip(&sum_p[class * n..(class + 1) * n]) {
            let q = (s * inv_t).clamp(EPS, 1.0);
            *h -= q * fast_ln(q);
        }
    }
    for (h, m) in entropy.iter_mut().zip(sum_h.iter_mut()) {
        let total = *h * inv_log_c;
        *m = (total - *m * inv_t * inv_log_c).clamp(0.0, total.max(0.0));
        *h = total.clamp(0.0, 1.0);
    }
    for (out, &s) in prob.iter_mut().zip(&sum_p[n..2 * n]) {
        *out = s * inv_t;
    }
}

/// How a frame's entropy map becomes one score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMethod {
    /// Mean entropy.
    Mean,
    /// 95th percentile of the entropy.
    P95,
    /// Fraction of pixels with entropy above `pixel_threshold`.
    FractionAbove,
    /// Mean entropy over predicted-pipeline pixels dilated by `band_px` (`p95` when none).
    PipelineMean,
}

impl FromStr for ScoreMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(ScoreMethod::Mean),
            "p95" => Ok(ScoreMethod::P95),
            "fraction_above" => Ok(ScoreMethod::FractionAbove),
            "pipeline_mean" => Ok(ScoreMethod::PipelineMean),
            other => Err(Error::param("score_method", format!("'{other}' unknown; use mean, p95, fraction_above or pipeline_mean"))),
        }
    }
}

impl ScoreMethod {
    /// The name used in parameters and outputs.
    pub fn name(self) -> &'static str {
        match self {
            ScoreMethod::Mean => "mean",
            ScoreMethod::P95 => "p95",
            ScoreMethod::FractionAbove => "fraction_above",
            ScoreMethod::PipelineMean => "pipeline_mean",
        }
    }
}

/// Settings of the frame score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreParams {
    /// How the entropy map becomes one score.
    pub method: ScoreMethod,
    /// Entropy above which a pixel counts for `fraction_above`, 0..1.
    pub pixel_threshold: f32,
    /// Band around the predicted pipeline for `pipeline_mean` [px at model resolution].
    pub band_px: u32,
}

/// The 95th percentile with linear interpolation (numpy's default).
pub fn percentile95(values: &[f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    let pos = 0.95 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = (pos - lo as f64) as f32;
    let (_, &mut a, rest) = v.select_nth_unstable_by(lo, f32::total_cmp);
    let b = rest.iter().copied().min_by(f32::total_cmp).unwrap_or(a);
    a + (b - a) * frac
}

/// The frame score of an entropy map `w`×`h` (INTERFACES §2); `prob` decides pipeline pixels.
/// Defined for every frame: an empty prediction falls back to `p95`.
pub fn frame_score(entropy: &[f32], prob: &[f32], w: usize, h: usize, params: &ScoreParams) -> Result<f32> {
    let n = entropy.len().max(1) as f32;
    Ok(match params.method {
        ScoreMethod::Mean => entropy.iter().map(|&v| v as f64).sum::<f64>() as f32 / n,
        ScoreMethod::P95 => percentile95(entropy),
        ScoreMethod::FractionAbove => entropy.iter().filter(|&&v| v > params.pixel_threshold).count() as f32 / n,
        ScoreMethod::PipelineMean => {
            let pred: Vec<u8> = prob.iter().map(|&p| (p > 0.5) as u8).collect();
            if !pred.contains(&1) {
                return Ok(percentile95(entropy));
            }
            let band = dilate(&pred, w, h, params.band_px)?;
            let (sum, count) = entropy
                .iter()
                .zip(&band)
                .filter(|(_, &b)| b > 0)
                .fold((0.0f64, 0usize), |(s, c), (&v, _)| (s + v as f64, c + 1));
            (sum / count as f64) as f32
        }
    })
}

/// Dilates a 0/1 mask with an elliptical kernel of radius `r` (OpenCV, as the Python side).
fn dilate(mask: &[u8], w: usize, h: usize, r: u32) -> Result<Vec<u8>> {
    if r == 0 {
        return Ok(mask.to_vec());
    }
    let src = Mat::new_rows_cols_with_data(h as i32, w as i32, mask)?;
    let size = 2 * r as i32 + 1;
    let kernel = imgproc::get_structuring_element(imgproc::MORPH_ELLIPSE, core::Size::new(size, size), core::Point::new(-1, -1))?;
    let mut dst = Mat::default();
    imgproc::dilate(
        &src,
        &mut dst,
        &kernel,
        core::Point::new(-1, -1),
        1,
        core::BORDER_CONSTANT,
        imgproc::morphology_default_border_value()?,
    )?;
    Ok(dst.data_bytes()?.to_vec())
}

/// Limits of the input sanity check (INTERFACES §2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SanityLimits {
    /// Lowest mean luma, 0..255.
    pub min_luma: f32,
    /// Highest mean luma, 0..255.
    pub max_luma: f32,
    /// Lowest standard deviation of luma, 0..255.
    pub min_contrast: f32,
    /// Highest fraction of pixels with a channel >= 250, 0..1.
    pub max_saturated: f32,
}

impl Default for SanityLimits {
    fn default() -> Self {
        SanityLimits { min_luma: 8.0, max_luma: 247.0, min_contrast: 3.0, max_saturated: 0.6 }
    }
}

/// Checks exposure and contrast of an RGB frame; `Err` says which limit failed.
pub fn sanity(rgb: &[u8], limits: &SanityLimits) -> std::result::Result<(), String> {
    let n = (rgb.len() / 3).max(1) as f64;
    let (mut sum, mut sum_sq, mut saturated) = (0.0f64, 0.0f64, 0usize);
    for p in rgb.chunks_exact(3) {
        let y = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
        sum += y;
        sum_sq += y * y;
        saturated += (p.iter().any(|&v| v >= 250)) as usize;
    }
    let mean = sum / n;
    let std = (sum_sq / n - mean * mean).max(0.0).sqrt();
    let sat = saturated as f64 / n;
    if !(limits.min_luma as f64..=limits.max_luma as f64).contains(&mean) {
        return Err(format!("mean luma {mean:.1} outside [{}, {}]", limits.min_luma, limits.max_luma));
    }
    if std < limits.min_contrast as f64 {
        return Err(format!("luma std {std:.2} below min_contrast {}", limits.min_contrast));
    }
    if sat > limits.max_saturated as f64 {
        return Err(format!("saturated fraction {sat:.2} above max_saturated {}", limits.max_saturated));
    }
    Ok(())
}
