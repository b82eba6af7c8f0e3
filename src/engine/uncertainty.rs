//! Per-pixel uncertainty maps from T softmax samples (docs/interfaces.md §2).

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

/// Mean probability, entropy and MI from `probs` laid out [T, C, hw], normalised by log C: the
/// maps of [`Running`] with every sample added at once.
pub fn aggregate(probs: &[f32], t: usize, c: usize, hw: usize) -> Maps {
    assert!(probs.len() == t * c * hw && t > 0 && c > 1, "probs must be [T, C, hw]");
    let mut running = Running::new(c, hw);
    running.add(probs);
    running.maps(None)
}

/// Turns the sums over `t` samples into the maps: `sum_p` [C, n] = Σ_t p_t per class, and
/// `mi` holding Σ_t H(p_t) (unnormalised) on entry, the mutual information on return.
#[inline(always)]
fn finish_portable(sum_p: &[f32], t: usize, c: usize, prob: &mut [f32], entropy: &mut [f32], mi: &mut [f32]) {
    let n = prob.len();
    let inv_t = 1.0 / t as f32;
    let inv_log_c = 1.0 / (c as f32).ln();
    entropy.fill(0.0);
    for class in 0..c {
        for (h, &s) in entropy.iter_mut().zip(&sum_p[class * n..(class + 1) * n]) {
            let q = (s * inv_t).clamp(EPS, 1.0);
            *h -= q * fast_ln(q);
        }
    }
    for (h, m) in entropy.iter_mut().zip(mi.iter_mut()) {
        let total = *h * inv_log_c;
        *m = (total - *m * inv_t * inv_log_c).clamp(0.0, total.max(0.0));
        *h = total.clamp(0.0, 1.0);
    }
    for (out, &s) in prob.iter_mut().zip(&sum_p[n..2 * n]) {
        *out = s * inv_t;
    }
}

/// Unnormalised entropy H(p) of each pixel of one sample laid out [C, hw], into `out` [hw].
#[inline(always)]
fn sample_entropy_portable(sample: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for plane in sample.chunks_exact(out.len()) {
        for (h, &p) in out.iter_mut().zip(plane) {
            let q = p.clamp(EPS, 1.0);
            *h -= q * fast_ln(q);
        }
    }
}

/// The maps from samples that arrive in chunks (anytime sampling): keeps every sample and its
/// entropy, so that the maps of all samples, or of all but one (the jackknife replicates behind
/// the stopping rule), cost one pass over the pixels and no pass over the samples.
#[derive(Clone, Debug, Default)]
pub struct Running {
    c: usize,
    hw: usize,
    /// Every sample so far, [n, C, hw].
    probs: Vec<f32>,
    /// Unnormalised entropy of every sample, [n, hw].
    h: Vec<f32>,
    sum_p: Vec<f32>,
    sum_h: Vec<f32>,
    /// Σ_t p_t² of class 1 (pipeline: the class of `Maps::prob` and the mask), for the
    /// per-pixel spread of the mean.
    sum_p2: Vec<f32>,
}

impl Running {
    /// An empty accumulator for `c` classes on `hw` pixels.
    pub fn new(c: usize, hw: usize) -> Running {
        assert!(c > 1, "at least two classes");
        Running { c, hw, sum_p: vec![0.0; c * hw], sum_h: vec![0.0; hw], sum_p2: vec![0.0; hw], ..Running::default() }
    }

    /// Samples added so far.
    pub fn samples(&self) -> usize {
        self.h.len() / self.hw.max(1)
    }

    /// Every sample so far, [n, C, hw].
    pub fn probs(&self) -> &[f32] {
        &self.probs
    }

    /// Adds samples laid out [k, C, hw].
    pub fn add(&mut self, chunk: &[f32]) {
        let (c, hw) = (self.c, self.hw);
        assert!(chunk.len().is_multiple_of(c * hw), "samples must be [k, C, hw]");
        for sample in chunk.chunks_exact(c * hw) {
            let at = self.h.len();
            self.h.resize(at + hw, 0.0);
            let h = &mut self.h[at..];
            sample_entropy(sample, h);
            for (s, &v) in self.sum_h.iter_mut().zip(h.iter()) {
                *s += v;
            }
            for (s, &p) in self.sum_p.iter_mut().zip(sample) {
                *s += p;
            }
            for (s, &p) in self.sum_p2.iter_mut().zip(&sample[hw..2 * hw]) {
                *s += p * p;
            }
            self.probs.extend_from_slice(sample);
        }
    }

    /// Per pixel, the chance that the mask (mean pipeline probability > 0.5) would flip with
    /// many more samples: Φ(−|p̄ − 0.5| / se), se = the samples' standard deviation / √n (a
    /// normal approximation of the mean). All 1 with fewer than two samples.
    pub fn flip_chance(&self) -> Vec<f32> {
        let (hw, n) = (self.hw, self.samples());
        if n < 2 {
            return vec![1.0; hw];
        }
        let nf = n as f32;
        let mean = &self.sum_p[hw..2 * hw];
        mean.iter()
            .zip(&self.sum_p2)
            .map(|(&s, &s2)| {
                let m = s / nf;
                let var = ((s2 - s * m) / (nf - 1.0)).max(0.0);
                let se = (var / nf).sqrt();
                let gap = (m - 0.5).abs();
                match gap >= 6.0 * se {
                    true => 0.0,
                    false => normal_tail(gap / se.max(f32::MIN_POSITIVE)),
                }
            })
            .collect()
    }

    /// The maps of every sample so far, or of all but sample `leave_out`.
    pub fn maps(&self, leave_out: Option<usize>) -> Maps {
        let (c, hw, n) = (self.c, self.hw, self.samples());
        let mut sum_p = self.sum_p.clone();
        let mut mi = self.sum_h.clone();
        let mut t = n;
        if let Some(i) = leave_out.filter(|&i| i < n && n > 1) {
            for (s, &p) in sum_p.iter_mut().zip(&self.probs[i * c * hw..(i + 1) * c * hw]) {
                *s -= p;
            }
            for (s, &v) in mi.iter_mut().zip(&self.h[i * hw..(i + 1) * hw]) {
                *s -= v;
            }
            t -= 1;
        }
        let mut maps = Maps { prob: vec![0.0; hw], entropy: vec![0.0; hw], mi };
        finish(&sum_p, t.max(1), c, &mut maps.prob, &mut maps.entropy, &mut maps.mi);
        maps
    }
}

/// Φ(−x), the standard normal's upper tail at x ≥ 0 (Abramowitz & Stegun 7.1.26 for erfc,
/// absolute error < 1e-7).
#[allow(clippy::excessive_precision)]
pub fn normal_tail(x: f32) -> f32 {
    let z = x as f64 / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (0.5 * poly * (-z * z).exp()) as f32
}

/// [`sample_entropy_portable`] with the widest vectors the CPU has.
#[allow(unsafe_code, reason = "calls the target_feature variants after checking the CPU has the features")]
fn sample_entropy(sample: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { wide::sample_entropy_avx512(sample, out) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { wide::sample_entropy_avx2(sample, out) };
        }
    }
    sample_entropy_portable(sample, out)
}

/// [`finish_portable`] with the widest vectors the CPU has.
#[allow(unsafe_code, reason = "calls the target_feature variants after checking the CPU has the features")]
fn finish(sum_p: &[f32], t: usize, c: usize, prob: &mut [f32], entropy: &mut [f32], mi: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { wide::finish_avx512(sum_p, t, c, prob, entropy, mi) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { wide::finish_avx2(sum_p, t, c, prob, entropy, mi) };
        }
    }
    finish_portable(sum_p, t, c, prob, entropy, mi)
}

/// The running kernels compiled for wider vectors (called after a run-time CPU check).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "a target_feature function is unsafe to call; its body is safe code")]
mod wide {
    use super::{finish_portable, sample_entropy_portable};

    #[target_feature(enable = "avx512f")]
    pub unsafe fn sample_entropy_avx512(sample: &[f32], out: &mut [f32]) {
        sample_entropy_portable(sample, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sample_entropy_avx2(sample: &[f32], out: &mut [f32]) {
        sample_entropy_portable(sample, out)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn finish_avx512(sum_p: &[f32], t: usize, c: usize, p: &mut [f32], e: &mut [f32], m: &mut [f32]) {
        finish_portable(sum_p, t, c, p, e, m)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn finish_avx2(sum_p: &[f32], t: usize, c: usize, p: &mut [f32], e: &mut [f32], m: &mut [f32]) {
        finish_portable(sum_p, t, c, p, e, m)
    }
}
