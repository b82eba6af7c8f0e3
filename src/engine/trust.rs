//! The trust score (docs/interfaces.md §9): the estimated probability that a frame is bad, from
//! the frame's signals through a logistic regression whose coefficients are model metadata.

/// The frame signals a trust model may use, in [`Signals`] order.
pub const SIGNALS: [&str; 8] = [
    "entropy_mean",
    "entropy_p95",
    "entropy_fraction_above",
    "entropy_pipeline_mean",
    "mi_mean",
    "mi_pipeline_mean",
    "feature_distance",
    "pipeline_fraction",
];

/// Index of `feature_distance` in [`SIGNALS`].
pub const FEATURE_DISTANCE: usize = 6;

/// One frame's signals in [`SIGNALS`] order; NaN where the model cannot give one
/// (`feature_distance` of a model without that output).
pub type Signals = [f32; SIGNALS.len()];

/// A fitted logistic regression on standardised signals:
/// trust = 1 / (1 + e^−(intercept + Σ coef_i · (x_i − mean_i) / scale_i)).
#[derive(Clone, Debug, PartialEq)]
pub struct TrustModel {
    /// Indices into [`SIGNALS`].
    pub features: Vec<usize>,
    /// Standardisation centre per feature.
    pub mean: Vec<f64>,
    /// Standardisation scale per feature (> 0).
    pub scale: Vec<f64>,
    /// Coefficient per feature.
    pub coef: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
}

impl TrustModel {
    /// Reads `trust_features`, `trust_mean`, `trust_scale`, `trust_coef`, `trust_intercept`
    /// (`None` when `trust_features` is absent: a model without a trust score).
    pub fn from_metadata(get: impl Fn(&str) -> Option<String>) -> Result<Option<TrustModel>, String> {
        let Some(names) = get("trust_features") else { return Ok(None) };
        let features = names
            .split(',')
            .map(|n| {
                SIGNALS.iter().position(|s| *s == n.trim()).ok_or_else(|| {
                    format!(
                        "metadata 'trust_features': '{}' is not a signal; signals are {}",
                        n.trim(),
                        SIGNALS.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let list = |key: &str| -> Result<Vec<f64>, String> {
            let v = get(key).ok_or_else(|| format!("metadata '{key}' missing (trust_features is set)"))?;
            let vals: Vec<f64> = v
                .split(',')
                .map(|s| s.trim().parse::<f64>().map_err(|_| format!("metadata '{key}' = '{v}': not numbers")))
                .collect::<Result<_, _>>()?;
            if vals.len() != features.len() || vals.iter().any(|x| !x.is_finite()) {
                return Err(format!("metadata '{key}' needs {} finite numbers, has '{v}'", features.len()));
            }
            Ok(vals)
        };
        let (mean, scale, coef) = (list("trust_mean")?, list("trust_scale")?, list("trust_coef")?);
        if scale.iter().any(|&s| s <= 0.0) {
            return Err("metadata 'trust_scale' must be > 0".into());
        }
        let icpt = get("trust_intercept").ok_or("metadata 'trust_intercept' missing (trust_features is set)")?;
        let intercept: f64 = icpt
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or(format!("metadata 'trust_intercept' = '{icpt}'"))?;
        Ok(Some(TrustModel { features, mean, scale, coef, intercept }))
    }

    /// Whether the model uses `feature_distance`.
    pub fn needs_feature_distance(&self) -> bool {
        self.features.contains(&FEATURE_DISTANCE)
    }

    /// The trust score in [0, 1]. A signal that is not finite (a missing or broken distance)
    /// gives 1: a frame the score cannot judge is treated as bad, never as good.
    pub fn score(&self, s: &Signals) -> f32 {
        let mut z = self.intercept;
        for (i, &f) in self.features.iter().enumerate() {
            let x = s[f] as f64;
            if !x.is_finite() {
                return 1.0;
            }
            z += self.coef[i] * (x - self.mean[i]) / self.scale[i];
        }
        (1.0 / (1.0 + (-z).exp())) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(a, _)| *a == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn reads_metadata_and_scores_a_logistic() {
        let pairs = [
            ("trust_features", "entropy_mean,feature_distance"),
            ("trust_mean", "0.1,1.0"),
            ("trust_scale", "0.05,0.5"),
            ("trust_coef", "2.0,1.0"),
            ("trust_intercept", "-1.0"),
        ];
        let m = TrustModel::from_metadata(meta(&pairs)).unwrap().unwrap();
        assert!(m.needs_feature_distance());
        let mut s = [0.0f32; SIGNALS.len()];
        s[0] = 0.2;
        s[FEATURE_DISTANCE] = 1.5;
        // z = -1 + 2 * 2 + 1 * 1 = 4
        assert!((m.score(&s) - 1.0 / (1.0 + (-4.0f32).exp())).abs() < 1e-7);
        s[FEATURE_DISTANCE] = f32::NAN;
        assert_eq!(m.score(&s), 1.0);
    }

    #[test]
    fn absent_or_broken_metadata() {
        assert_eq!(TrustModel::from_metadata(meta(&[])).unwrap(), None);
        let bad = [("trust_features", "entropy_mean,colour")];
        assert!(TrustModel::from_metadata(meta(&bad)).unwrap_err().contains("'colour' is not a signal"));
        let short = [
            ("trust_features", "entropy_mean,mi_mean"),
            ("trust_mean", "0.1"),
            ("trust_scale", "1,1"),
            ("trust_coef", "1,1"),
            ("trust_intercept", "0"),
        ];
        assert!(TrustModel::from_metadata(meta(&short)).unwrap_err().contains("trust_mean"));
    }
}
