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
    /// Fraction of the area in clipped regions ([`clipped_fraction`]).
    pub clipped: f64,
}

/// The exposure statistics of a `width` × `height` frame.
pub fn image_stats(rgb: &[u8], width: usize, height: usize) -> ImageStats {
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
    let clipped = clipped_fraction(rgb, width, height);
    ImageStats { luma_mean: mean, luma_std: std, saturated: saturated as f64 / n, clipped }
}

/// The grid of [`clipped_fraction`]: 160 × 120 cells whatever the frame size (4 × 4 pixels at
/// 640 × 480), so the measure does not depend on the camera's resolution.
pub const CLIP_GRID: (usize, usize) = (160, 120);

/// The fraction of the frame's area in grid cells ([`CLIP_GRID`]) whose every pixel has a
/// channel at 250 or more: regions where the sensor is clipped and the frame shows nothing
/// (over-exposure, glare), not the isolated specks of marine snow that `saturated` also counts.
/// 0 for a malformed buffer.
pub fn clipped_fraction(rgb: &[u8], width: usize, height: usize) -> f64 {
    if width == 0 || height == 0 || rgb.len() < width * height * 3 {
        return 0.0;
    }
    let (gw, gh) = (CLIP_GRID.0.min(width), CLIP_GRID.1.min(height));
    let (mut total, mut clipped) = (vec![0u32; gw * gh], vec![0u32; gw * gh]);
    let column: Vec<usize> = (0..width).map(|x| x * gw / width).collect(); // no division per pixel
    for (y, row) in rgb.chunks_exact(width * 3).take(height).enumerate() {
        let base = y * gh / height * gw;
        for (&cx, p) in column.iter().zip(row.chunks_exact(3)) {
            total[base + cx] += 1;
            clipped[base + cx] += (p[0].max(p[1]).max(p[2]) >= 250) as u32;
        }
    }
    let area: u64 = total.iter().zip(&clipped).filter(|(t, c)| t == c).map(|(&t, _)| t as u64).sum();
    area as f64 / (width * height) as f64
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize, lit: impl Fn(usize, usize) -> bool) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                rgb.extend([if lit(x, y) { 255 } else { 90 }, 100, 110]);
            }
        }
        rgb
    }

    #[test]
    fn clipped_fraction_counts_clipped_regions_not_specks() {
        // Specks (one pixel in 25) are saturated pixels but no clipped cell.
        let snow = frame(640, 480, |x, y| x % 5 == 0 && y % 5 == 0);
        let stats = image_stats(&snow, 640, 480);
        assert!(stats.saturated > 0.03 && stats.clipped == 0.0);
        assert_eq!(clipped_fraction(&snow, 640, 480), 0.0);
        // A 160 x 120 clipped block is 1/16 of the frame, cell-aligned or not.
        let block = frame(640, 480, |x, y| (100..260).contains(&x) && (40..160).contains(&y));
        let f = clipped_fraction(&block, 640, 480);
        assert!((f - 1.0 / 16.0).abs() < 0.01, "{f}");
        // The same scene at another resolution gives about the same fraction.
        let big = frame(1280, 960, |x, y| (200..520).contains(&x) && (80..320).contains(&y));
        assert!((clipped_fraction(&big, 1280, 960) - f).abs() < 0.01);
        // Frames smaller than the grid: a cell is a pixel.
        let small = frame(10, 10, |x, _| x < 3);
        assert!((clipped_fraction(&small, 10, 10) - 0.3).abs() < 1e-12);
        assert_eq!(clipped_fraction(&small, 20, 10), 0.0); // a buffer too short for its size
    }
}
