//! The trust score (docs/interfaces.md §9): the estimated probability that a frame is bad, from
//! the frame's signals through a logistic regression whose coefficients are model metadata.

/// The frame signals a trust model may use, in [`Signals`] order.
pub const SIGNALS: [&str; 12] = [
    "entropy_mean",
    "entropy_p95",
    "entropy_fraction_above",
    "entropy_pipeline_mean",
    "mi_mean",
    "mi_pipeline_mean",
    "feature_distance",
    "pipeline_fraction",
    "luma_mean",
    "luma_std",
    "saturated_fraction",
    "clipped_fraction",
];

/// Index of `feature_distance` in [`SIGNALS`].
pub const FEATURE_DISTANCE: usize = 6;

/// Index of `clipped_fraction` in [`SIGNALS`] (the clipped-area rule of [`TrustModel::clip_max`]).
pub const CLIPPED_FRACTION: usize = 11;

/// The offset of a `log:` feature, ln(max(x, 0) + LOG_EPS): the signals are fractions and
/// entropies whose informative differences are at small values.
pub const LOG_EPS: f64 = 1e-4;

/// One input of the trust model: a signal (`entropy_mean`) or its logarithm (`log:entropy_mean`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Feature {
    /// Index into [`SIGNALS`].
    pub signal: usize,
    /// Whether the model sees ln(max(x, 0) + [`LOG_EPS`]) instead of x.
    pub log: bool,
}

impl Feature {
    /// Reads `name` or `log:name`.
    pub fn parse(name: &str) -> Result<Feature, String> {
        let name = name.trim();
        let (log, signal) = name.strip_prefix("log:").map_or((false, name), |s| (true, s));
        SIGNALS
            .iter()
            .position(|s| *s == signal)
            .map(|signal| Feature { signal, log })
            .ok_or_else(|| format!("'{name}' is not a signal or log:signal; signals are {}", SIGNALS.join(", ")))
    }

    /// The name [`Feature::parse`] reads back.
    pub fn name(&self) -> String {
        format!("{}{}", if self.log { "log:" } else { "" }, SIGNALS[self.signal])
    }

    /// The feature's value for a frame (not finite when the signal is not).
    pub fn value(&self, s: &Signals) -> f64 {
        let x = s[self.signal] as f64;
        if self.log && x.is_finite() {
            (x.max(0.0) + LOG_EPS).ln()
        } else {
            x
        }
    }
}

/// One frame's signals in [`SIGNALS`] order; NaN where the model cannot give one
/// (`feature_distance` of a model without that output).
pub type Signals = [f32; SIGNALS.len()];

/// A fitted logistic regression on standardised signals:
/// trust = 1 / (1 + e^−(intercept + Σ coef_i · (x_i − mean_i) / scale_i)).
#[derive(Clone, Debug, PartialEq)]
pub struct TrustModel {
    /// The inputs.
    pub features: Vec<Feature>,
    /// Standardisation centre per feature.
    pub mean: Vec<f64>,
    /// Standardisation scale per feature (> 0).
    pub scale: Vec<f64>,
    /// Coefficient per feature.
    pub coef: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
    /// The clipped-area rule (`trust_clip_max`): a frame with more of its area clipped than this
    /// scores 1, whatever the regression says; the sensor saw nothing there. `None`: no rule.
    pub clip_max: Option<f64>,
}

impl TrustModel {
    /// Reads `trust_features`, `trust_mean`, `trust_scale`, `trust_coef`, `trust_intercept`
    /// (`None` when `trust_features` is absent: a model without a trust score).
    pub fn from_metadata(get: impl Fn(&str) -> Option<String>) -> Result<Option<TrustModel>, String> {
        let Some(names) = get("trust_features") else { return Ok(None) };
        let features = names
            .split(',')
            .map(|n| Feature::parse(n).map_err(|e| format!("metadata 'trust_features': {e}")))
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
        let clip_max = match get("trust_clip_max") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| (0.0..=1.0).contains(x))
                    .ok_or(format!("metadata 'trust_clip_max' = '{v}': needs a number in 0..1"))?,
            ),
        };
        Ok(Some(TrustModel { features, mean, scale, coef, intercept, clip_max }))
    }

    /// Whether the model uses `feature_distance`.
    pub fn needs_feature_distance(&self) -> bool {
        self.features.iter().any(|f| f.signal == FEATURE_DISTANCE)
    }

    /// The trust score in [0, 1]. A signal that is not finite (a missing or broken distance)
    /// gives 1: a frame the score cannot judge is treated as bad, never as good.
    pub fn score(&self, s: &Signals) -> f32 {
        if self.clip_max.is_some_and(|c| s[CLIPPED_FRACTION] as f64 > c) {
            return 1.0;
        }
        let mut z = self.intercept;
        for (i, f) in self.features.iter().enumerate() {
            let x = f.value(s);
            if !x.is_finite() {
                return 1.0;
            }
            z += self.coef[i] * (x - self.mean[i]) / self.scale[i];
        }
        (1.0 / (1.0 + (-z).exp())) as f32
    }

    /// Parses the `trust_model` parameter: the metadata keys without their `trust_` prefix,
    /// `;`-separated (`features=a,b;mean=..;scale=..;coef=..;intercept=..[;clip_max=..]`).
    pub fn parse(s: &str) -> Result<TrustModel, String> {
        let mut keys = std::collections::BTreeMap::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("'{part}' is not key=value"))?;
            if !["features", "mean", "scale", "coef", "intercept", "clip_max"].contains(&k.trim()) {
                return Err(format!(
                    "'{}' unknown; keys are features, mean, scale, coef, intercept, clip_max",
                    k.trim()
                ));
            }
            keys.insert(format!("trust_{}", k.trim()), v.trim().to_string());
        }
        if !keys.contains_key("trust_features") {
            return Err("needs features=...".into());
        }
        Ok(TrustModel::from_metadata(|k| keys.get(k).cloned())?.expect("features present"))
    }

    /// The `trust_model` parameter string ([`TrustModel::parse`] reads it back exactly).
    pub fn encode(&self) -> String {
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(",");
        let names: Vec<String> = self.features.iter().map(Feature::name).collect();
        let clip = self.clip_max.map_or(String::new(), |c| format!(";clip_max={c:?}"));
        format!(
            "features={};mean={};scale={};coef={};intercept={:?}{clip}",
            names.join(","),
            list(&self.mean),
            list(&self.scale),
            list(&self.coef),
            self.intercept
        )
    }

    /// Fits the logistic regression on labelled frames (as `training/trust.py`): features
    /// standardised, L2 penalty [`L2`] on the coefficients (not the intercept), Newton's method.
    /// `None` when it cannot be fitted (no frames, or only one class).
    pub fn fit(signals: &[Signals], bad: &[bool], features: &[Feature]) -> Option<TrustModel> {
        let n = signals.len();
        if n == 0 || bad.iter().all(|&b| b) || bad.iter().all(|&b| !b) {
            return None;
        }
        let d = features.len() + 1;
        let col = |f: Feature| signals.iter().map(move |s| f.value(s));
        let mean: Vec<f64> = features.iter().map(|&f| col(f).sum::<f64>() / n as f64).collect();
        let scale: Vec<f64> = features
            .iter()
            .zip(&mean)
            .map(|(&f, m)| (col(f).map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64).sqrt())
            .map(|s| if s < 1e-9 { 1.0 } else { s })
            .collect();
        let z: Vec<Vec<f64>> = signals
            .iter()
            .map(|s| {
                std::iter::once(1.0)
                    .chain(features.iter().enumerate().map(|(i, f)| (f.value(s) - mean[i]) / scale[i]))
                    .collect()
            })
            .collect();
        let mut w = vec![0.0; d];
        for _ in 0..50 {
            let mut g = vec![0.0; d];
            let mut h = vec![vec![0.0; d]; d];
            for (zi, &yi) in z.iter().zip(bad) {
                let p = 1.0 / (1.0 + (-zi.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()).exp());
                for a in 0..d {
                    g[a] += zi[a] * (p - yi as u8 as f64);
                    for b in 0..d {
                        h[a][b] += zi[a] * zi[b] * p * (1.0 - p);
                    }
                }
            }
            for a in 1..d {
                g[a] += L2 * w[a];
                h[a][a] += L2;
            }
            let step = solve(h, g)?;
            w.iter_mut().zip(&step).for_each(|(wi, s)| *wi -= s);
            if step.iter().all(|s| s.abs() < 1e-10) {
                break;
            }
        }
        Some(TrustModel {
            features: features.to_vec(),
            mean,
            scale,
            coef: w[1..].to_vec(),
            intercept: w[0],
            clip_max: None,
        })
    }
}

/// The ridge penalty of [`TrustModel::fit`] (and `training/trust.py`).
pub const L2: f64 = 1.0;

/// Solves `a x = b` by Gaussian elimination with partial pivoting (`None` if singular).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, p);
        b.swap(c, p);
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot = &top[c];
        for (i, row) in rest.iter_mut().enumerate() {
            let f = row[c] / pivot[c];
            row.iter_mut().zip(pivot).skip(c).for_each(|(x, p)| *x -= f * p);
            b[c + 1 + i] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        x[r] = (b[r] - (r + 1..n).map(|k| a[r][k] * x[k]).sum::<f64>()) / a[r][r];
    }
    Some(x)
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

        // log:x is ln(max(x, 0) + 1e-4); a negative signal counts as 0, a NaN one gives 1.
        let pairs = [
            ("trust_features", "log:entropy_mean"),
            ("trust_mean", "-2.0"),
            ("trust_scale", "1.0"),
            ("trust_coef", "1.0"),
            ("trust_intercept", "0.0"),
        ];
        let m = TrustModel::from_metadata(meta(&pairs)).unwrap().unwrap();
        assert!(!m.needs_feature_distance());
        s[0] = 0.2;
        let z = (0.2f64 + LOG_EPS).ln() + 2.0;
        assert!((m.score(&s) as f64 - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6);
        s[0] = -0.5;
        let z = LOG_EPS.ln() + 2.0;
        assert!((m.score(&s) as f64 - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6);
        s[0] = f32::NAN;
        assert_eq!(m.score(&s), 1.0);
    }

    #[test]
    fn parameter_string_round_trips_and_fit_separates() {
        // Bad frames have high entropy_mean; the fit must give it a positive coefficient.
        let mut sig = Vec::new();
        let mut bad = Vec::new();
        for i in 0..40 {
            let mut s = [0.0f32; SIGNALS.len()];
            s[0] = i as f32 / 40.0;
            s[4] = ((i * 7) % 11) as f32 / 11.0;
            sig.push(s);
            bad.push(i >= 25 || i == 10);
        }
        let plain = |signal| Feature { signal, log: false };
        let m = TrustModel::fit(&sig, &bad, &[plain(0), plain(4)]).unwrap();
        assert!(m.coef[0] > 0.5, "{m:?}");
        assert!(m.score(&sig[39]) > 0.8 && m.score(&sig[0]) < 0.2);
        assert_eq!(TrustModel::parse(&m.encode()).unwrap(), m);
        assert!(TrustModel::fit(&sig, &[false; 40], &[plain(0)]).is_none());
        let logs = TrustModel::fit(&sig, &bad, &[Feature { signal: 0, log: true }, plain(4)]).unwrap();
        assert!(logs.encode().starts_with("features=log:entropy_mean,mi_mean;"), "{}", logs.encode());
        assert_eq!(TrustModel::parse(&logs.encode()).unwrap(), logs);
        assert!(TrustModel::parse("features=entropy_mean;colour=1").unwrap_err().contains("'colour' unknown"));
    }

    #[test]
    fn clipped_area_rule_scores_one_and_round_trips() {
        let pairs = [
            ("trust_features", "entropy_mean"),
            ("trust_mean", "0.0"),
            ("trust_scale", "1.0"),
            ("trust_coef", "0.0"),
            ("trust_intercept", "-5.0"),
            ("trust_clip_max", "0.08"),
        ];
        let m = TrustModel::from_metadata(meta(&pairs)).unwrap().unwrap();
        assert_eq!(m.clip_max, Some(0.08));
        let mut s = [0.0f32; SIGNALS.len()];
        s[CLIPPED_FRACTION] = 0.05;
        assert!(m.score(&s) < 0.01);
        s[CLIPPED_FRACTION] = 0.2;
        assert_eq!(m.score(&s), 1.0);
        assert!(m.encode().ends_with(";clip_max=0.08"), "{}", m.encode());
        assert_eq!(TrustModel::parse(&m.encode()).unwrap(), m);
        let wrong = [&pairs[..5], &[("trust_clip_max", "2")]].concat();
        assert!(TrustModel::from_metadata(meta(&wrong)).unwrap_err().contains("trust_clip_max"));
        assert_eq!(TrustModel::from_metadata(meta(&pairs[..5])).unwrap().unwrap().clip_max, None);
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
