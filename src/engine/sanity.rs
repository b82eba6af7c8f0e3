//! Input sanity: exposure and contrast of the decoded frame, checked before the model
//! (docs/interfaces.md §2). A frame that fails is unconfident with reason `image_quality`.

/// Limits of the input sanity check.
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

/// Which limit a frame broke, with the measured value.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum SanityFailure {
    /// Mean luma outside [`min_luma`, `max_luma`]: too dark or too bright.
    #[error("mean luma {mean:.1} outside [{min}, {max}]")]
    Exposure {
        /// The frame's mean luma, 0..255.
        mean: f64,
        /// `min_luma`.
        min: f32,
        /// `max_luma`.
        max: f32,
    },
    /// Standard deviation of luma below `min_contrast`.
    #[error("luma std {std:.2} below min_contrast {min}")]
    Contrast {
        /// The frame's luma standard deviation, 0..255.
        std: f64,
        /// `min_contrast`.
        min: f32,
    },
    /// More saturated pixels than `max_saturated`.
    #[error("saturated fraction {fraction:.2} above max_saturated {max}")]
    Saturated {
        /// Fraction of pixels with a channel >= 250.
        fraction: f64,
        /// `max_saturated`.
        max: f32,
    },
}

/// Exposure statistics of an RGB frame (luma Y = 0.299 R + 0.587 G + 0.114 B on 0–255).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageStats {
    /// Mean luma, 0..255.
    pub luma_mean: f64,
    /// Standard deviation of luma, 0..255.
    pub luma_std: f64,
    /// Fraction of pixels with any channel >= 250.
    pub saturated: f64,
}

/// The frame's exposure statistics (one pass over the pixels).
pub fn image_stats(rgb: &[u8]) -> ImageStats {
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
    ImageStats { luma_mean: mean, luma_std: std, saturated: saturated as f64 / n }
}

/// Checks exposure and contrast of an RGB frame; the error says which limit failed.
pub fn sanity(rgb: &[u8], limits: &SanityLimits) -> Result<(), SanityFailure> {
    check(&image_stats(rgb), limits)
}

/// Checks statistics already computed against the limits.
pub fn check(stats: &ImageStats, limits: &SanityLimits) -> Result<(), SanityFailure> {
    let (mean, std, fraction) = (stats.luma_mean, stats.luma_std, stats.saturated);
    if !(limits.min_luma as f64..=limits.max_luma as f64).contains(&mean) {
        return Err(SanityFailure::Exposure { mean, min: limits.min_luma, max: limits.max_luma });
    }
    if std < limits.min_contrast as f64 {
        return Err(SanityFailure::Contrast { std, min: limits.min_contrast });
    }
    if fraction > limits.max_saturated as f64 {
        return Err(SanityFailure::Saturated { fraction, max: limits.max_saturated });
    }
    Ok(())
}
