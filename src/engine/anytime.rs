//! When to stop drawing MC-Dropout samples: the frame's decision is settled once the score's
//! interval from the samples so far lies clear of the gate's thresholds and few of the mask's
//! pixels may still flip ([`mask_settled`]).
//!
//! The interval is a delete-one jackknife of the score over the samples drawn: the replicates
//! (the score without sample i) give a standard error and a bias estimate. The bias matters:
//! the entropy of a mean of few samples is lower than with many, so a small-T score leans
//! towards "confident"; the interval spans the score and its bias-corrected value, widened by
//! `z` standard errors on both sides.

/// The expected share of the mask that more samples would still flip, at most this for a
/// settled frame: the pixels' flip chances summed, over the pixels predicted pipeline (at least
/// one). It keeps frames with a small or ambiguous mask sampling, where the frame score can jump
/// (`pipeline_mean` falls back to `p95` when the mask empties) and IoU moves most.
pub const MASK_TOLERANCE: f32 = 0.05;

/// Whether the mask is settled: the expected flips (Σ of the pixels' flip chances) are at most
/// [`MASK_TOLERANCE`] of the predicted pipeline pixels (at least one).
pub fn mask_settled(expected_flips: f32, predicted: usize) -> bool {
    expected_flips <= MASK_TOLERANCE * predicted.max(1) as f32
}

/// The sample counts at which the rule is asked: `min_samples`, then every `min_samples` more,
/// up to `samples` (the last chunk may be shorter).
pub fn checkpoints(min_samples: usize, samples: usize) -> impl Iterator<Item = usize> {
    let step = min_samples.clamp(1, samples.max(1));
    (1..).map(move |k| (k * step).min(samples)).take(samples.div_ceil(step))
}

/// The score's interval from the score of all `n` samples and its `n` delete-one replicates:
/// the score and its bias-corrected value, `z` jackknife standard errors either side.
/// `None` when it cannot say (fewer than two replicates, or a NaN).
pub fn interval(score: f32, replicates: &[f32], z: f32) -> Option<(f32, f32)> {
    let n = replicates.len();
    if n < 2 || !score.is_finite() || replicates.iter().any(|r| !r.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let mean = replicates.iter().map(|&r| r as f64).sum::<f64>() / nf;
    let var = (nf - 1.0) / nf * replicates.iter().map(|&r| (r as f64 - mean).powi(2)).sum::<f64>();
    let corrected = score as f64 - (nf - 1.0) * (mean - score as f64);
    let half = z as f64 * var.sqrt();
    let (lo, hi) = (corrected.min(score as f64) - half, corrected.max(score as f64) + half);
    Some((lo as f32, hi as f32))
}

/// Whether the interval decides the frame: it contains none of the thresholds, so more samples
/// would not move the score across `threshold_high` or `threshold_low`.
pub fn settled(interval: Option<(f32, f32)>, thresholds: &[f32]) -> bool {
    interval.is_some_and(|(lo, hi)| thresholds.iter().all(|&t| !(lo..=hi).contains(&t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_step_by_min_samples_and_end_at_samples() {
        assert_eq!(checkpoints(4, 16).collect::<Vec<_>>(), [4, 8, 12, 16]);
        assert_eq!(checkpoints(5, 16).collect::<Vec<_>>(), [5, 10, 15, 16]);
        assert_eq!(checkpoints(16, 16).collect::<Vec<_>>(), [16]);
        assert_eq!(checkpoints(32, 16).collect::<Vec<_>>(), [16]);
        assert_eq!(checkpoints(1, 3).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(checkpoints(0, 2).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn jackknife_of_a_mean_is_its_standard_error() {
        // For the sample mean the jackknife is exact: no bias, se = sd / sqrt(n).
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mean = 2.5f32;
        let reps: Vec<f32> = (0..4).map(|i| (x.iter().sum::<f32>() - x[i]) / 3.0).collect();
        let (lo, hi) = interval(mean, &reps, 1.0).unwrap();
        let se = (x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 3.0 / 4.0).sqrt();
        assert!((lo - (mean - se)).abs() < 1e-5 && (hi - (mean + se)).abs() < 1e-5, "{lo} {hi} {se}");
    }

    #[test]
    fn bias_widens_the_interval_towards_the_corrected_score() {
        // Replicates (fewer samples) below the score: the score grows with T, as the entropy of
        // a mean does; the interval reaches up to the corrected 0.36, and down in the mirror case.
        let (lo, hi) = interval(0.30, &[0.32, 0.32, 0.32, 0.32], 0.0).unwrap();
        assert!((lo - 0.24).abs() < 1e-5 && (hi - 0.30).abs() < 1e-6, "{lo} {hi}");
        let (lo, hi) = interval(0.30, &[0.28, 0.28, 0.28, 0.28], 0.0).unwrap();
        assert!((lo - 0.30).abs() < 1e-6 && (hi - 0.36).abs() < 1e-5, "{lo} {hi}");
    }

    #[test]
    fn settled_only_when_clear_of_every_threshold() {
        assert!(settled(Some((0.1, 0.2)), &[0.5, 0.3]));
        assert!(!settled(Some((0.1, 0.35)), &[0.5, 0.3]));
        assert!(!settled(Some((0.45, 0.6)), &[0.5, 0.3]));
        assert!(settled(Some((0.6, 0.9)), &[0.5, 0.3]));
        assert!(settled(Some((0.35, 0.45)), &[0.5, 0.3]), "between the thresholds is a decision too");
        assert!(!settled(None, &[0.5]));
    }

    #[test]
    fn a_mask_is_settled_when_few_of_its_pixels_may_flip() {
        assert!(mask_settled(40.0, 1000));
        assert!(!mask_settled(60.0, 1000));
        assert!(!mask_settled(0.5, 3), "a small mask that may flip or vanish is not settled");
        assert!(mask_settled(0.01, 0));
    }

    #[test]
    fn no_interval_from_nan_or_one_replicate() {
        assert_eq!(interval(0.2, &[0.2], 3.0), None);
        assert_eq!(interval(f32::NAN, &[0.2, 0.3], 3.0), None);
        assert_eq!(interval(0.2, &[0.2, f32::NAN], 3.0), None);
    }
}
