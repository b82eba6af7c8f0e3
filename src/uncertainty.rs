//! Per-pixel uncertainty from T softmax samples and the frame score (INTERFACES §2).

use std::str::FromStr;

use opencv::{core, imgproc, prelude::*};

use crate::error::{Error, Result};

/// Probabilities are clamped to [EPS, 1] before logs.
pub const EPS: f32 = 1e-7;

/// Maps at model resolution: mean pipeline probability, normalised entropy, mutual information.
#[derive(Clone, Debug, Default)]
pub struct Maps {
    pub prob: Vec<f32>,
    pub entropy: Vec<f32>,
    pub mi: Vec<f32>,
}

/// Natural log for normal positive floats (Cephes `logf`, max error about 1e-7), branch-free so
/// that the aggregation loop vectorises.
#[inline(always)]
pub fn fast_ln(x: f32) -> f32 {
    const SQRTHF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // [0.5, 1)
    let small = m < SQRTHF;
    e -= small as i32;
    let x = if small { m + m } else { m } - 1.0;
    let e = e as f32;
    let z = x * x;
    let mut y = 7.037_683_6E-2;
    y = y * x - 1.151_461_03E-1;
    y = y * x + 1.167_699_874E-1;
    y = y * x - 1.242_014_084_6E-1;
    y = y * x + 1.424_932_278_7E-1;
    y = y * x - 1.666_805_766_5E-1;
    y = y * x + 2.000_071_476_5E-1;
    y = y * x - 2.499_999_399_3E-1;
    y = y * x + 3.333_333_117_4E-1;
    y *= x * z;
    y += -2.121_944_4E-4 * e;
    y += -0.5 * z;
    x + y + 0.693_359_375 * e
}

/// Mean probability, entropy and MI from `probs` laid out [T, C, hw], normalised by log C.
pub fn aggregate(probs: &[f32], t: usize, c: usize, hw: usize) -> Maps {
    assert!(probs.len() == t * c * hw && t > 0 && c > 1, "probs must be [T, C, hw]");
    let mut sum_p = vec![0.0f32; c * hw];
    let mut sum_h = vec![0.0f32; hw]; // Σ_t H(p_t), unnormalised
    for sample in probs.chunks_exact(c * hw) {
        for (class, row) in sample.chunks_exact(hw).enumerate() {
            let acc = &mut sum_p[class * hw..(class + 1) * hw];
            for ((s, h), &p) in acc.iter_mut().zip(sum_h.iter_mut()).zip(row) {
                *s += p;
                let q = p.clamp(EPS, 1.0);
                *h -= q * fast_ln(q);
            }
        }
    }
    let inv_t = 1.0 / t as f32;
    let inv_log_c = 1.0 / (c as f32).ln();
    let mut entropy = vec![0.0f32; hw];
    for class in 0..c {
        for (h, &s) in entropy.iter_mut().zip(&sum_p[class * hw..(class + 1) * hw]) {
            let q = (s * inv_t).clamp(EPS, 1.0);
            *h -= q * fast_ln(q);
        }
    }
    let mut mi = vec![0.0f32; hw];
    for ((h, m), &hs) in entropy.iter_mut().zip(mi.iter_mut()).zip(&sum_h) {
        let total = *h * inv_log_c;
        *m = (total - hs * inv_t * inv_log_c).clamp(0.0, total.max(0.0));
        *h = total.clamp(0.0, 1.0);
    }
    let prob = sum_p[hw..2 * hw].iter().map(|&s| s * inv_t).collect();
    Maps { prob, entropy, mi }
}

/// How a frame's entropy map becomes one score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMethod {
    Mean,
    P95,
    FractionAbove,
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
    pub method: ScoreMethod,
    pub pixel_threshold: f32,
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
    pub min_luma: f32,
    pub max_luma: f32,
    pub min_contrast: f32,
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
