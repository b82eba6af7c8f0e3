//! The frame score: one number per frame from its entropy (or MI) map (docs/interfaces.md §2).

use std::str::FromStr;

use opencv::{core, imgproc, prelude::*};

use crate::error::{Error, Result};

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
    /// The estimated probability that the frame is bad, from all its signals
    /// (docs/interfaces.md §9); needs a model with a trust model in its metadata.
    Trust,
}

impl FromStr for ScoreMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(ScoreMethod::Mean),
            "p95" => Ok(ScoreMethod::P95),
            "fraction_above" => Ok(ScoreMethod::FractionAbove),
            "pipeline_mean" => Ok(ScoreMethod::PipelineMean),
            "trust" => Ok(ScoreMethod::Trust),
            other => Err(Error::param(
                "score_method",
                format!("'{other}' unknown; use mean, p95, fraction_above, pipeline_mean or trust"),
            )),
        }
    }
}

impl ScoreMethod {
    /// Every method, in the order of [`ScoreMethod::index`].
    pub const ALL: [ScoreMethod; 5] = [
        ScoreMethod::Mean,
        ScoreMethod::P95,
        ScoreMethod::FractionAbove,
        ScoreMethod::PipelineMean,
        ScoreMethod::Trust,
    ];

    /// The method's position in [`ScoreMethod::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in parameters and outputs.
    pub fn name(self) -> &'static str {
        match self {
            ScoreMethod::Mean => "mean",
            ScoreMethod::P95 => "p95",
            ScoreMethod::FractionAbove => "fraction_above",
            ScoreMethod::PipelineMean => "pipeline_mean",
            ScoreMethod::Trust => "trust",
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

/// The 95th percentile with linear interpolation (numpy's default); 0 for no values.
pub fn percentile95(values: &[f32]) -> f32 {
    crate::num::percentile(values, 0.95).unwrap_or(0.0) as f32
}

/// The frame score of an entropy map `w`×`h` (docs/interfaces.md §2); `prob` decides pipeline pixels.
/// Defined for every frame: an empty prediction falls back to `p95`. `trust` is no aggregate of
/// one map (the pipeline computes it from all signals): on a map it is `pipeline_mean`.
pub fn frame_score(entropy: &[f32], prob: &[f32], w: usize, h: usize, params: &ScoreParams) -> Result<f32> {
    let n = entropy.len().max(1) as f32;
    Ok(match params.method {
        ScoreMethod::Mean => entropy.iter().map(|&v| v as f64).sum::<f64>() as f32 / n,
        ScoreMethod::P95 => percentile95(entropy),
        ScoreMethod::FractionAbove => entropy.iter().filter(|&&v| v > params.pixel_threshold).count() as f32 / n,
        ScoreMethod::PipelineMean | ScoreMethod::Trust => {
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
    let kernel = imgproc::get_structuring_element(
        imgproc::MORPH_ELLIPSE,
        core::Size::new(size, size),
        core::Point::new(-1, -1),
    )?;
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
