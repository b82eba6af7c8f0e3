//! A bound on how often "confident" is wrong, from a finite number of labelled frames
//! (docs/interfaces.md §9): the one-sided Clopper–Pearson upper bound, and the count of
//! effective (roughly independent) frames behind it.

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error < 1e-13 here).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let s = C[1..].iter().enumerate().fold(C[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = if d.abs() < TINY { TINY } else { d };
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=500 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))] {
            d = 1.0 + aa * d;
            d = if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function I_x(a, b).
pub fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// One-sided Clopper–Pearson upper bound on a rate from `k` events in `n` trials at confidence
/// 1 − `delta`: the p with P(Binomial(n, p) ≤ k) = delta. 1 when n = 0 (nothing is known).
pub fn clopper_pearson_upper(k: u64, n: u64, delta: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    if k == 0 {
        return 1.0 - delta.powf(1.0 / n as f64);
    }
    // P(Bin(n, p) ≤ k) = 1 − I_p(k + 1, n − k), decreasing in p: bisection.
    let (a, b) = ((k + 1) as f64, (n - k) as f64);
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if 1.0 - beta_inc(a, b, mid) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The fewest trials for which `k = 0` events give a bound ≤ `max_risk`: ⌈ln δ / ln(1 − A)⌉
/// (45 for A = 0.05, δ = 0.1).
pub fn min_trials(max_risk: f64, delta: f64) -> u64 {
    if max_risk >= 1.0 {
        return 0;
    }
    let n = (delta.ln() / (1.0 - max_risk).ln()).ceil();
    // Guard against the ceiling of a value a hair above an integer.
    let n = n as u64;
    if n > 0 && clopper_pearson_upper(0, n - 1, delta) <= max_risk {
        n - 1
    } else {
        n
    }
}

/// Frames of one bag a few frames apart show nearly the same scene, so they are not
/// independent trials. Effective trials: the accepted frames grouped into windows of
/// `gap_ns` (from the bag's first frame); a window is one trial, and an event when any of its
/// accepted frames is bad. Returns (events, trials).
pub fn effective_counts(frames: impl IntoIterator<Item = (usize, i64, bool)>, gap_ns: i64) -> (u64, u64) {
    let mut win = Windows::new(gap_ns);
    let mut windows: std::collections::BTreeMap<(usize, i64), bool> = std::collections::BTreeMap::new();
    for (bag, stamp, bad) in frames {
        let w = if gap_ns > 0 { win.index(bag, stamp) } else { windows.len() as i64 };
        *windows.entry((bag, w)).or_insert(false) |= bad;
    }
    (windows.values().filter(|&&b| b).count() as u64, windows.len() as u64)
}

/// Time windows of `gap_ns` counted from each bag's first frame seen.
pub struct Windows {
    gap_ns: i64,
    first: Vec<(usize, i64)>,
}

impl Windows {
    /// Windows of `gap_ns` (> 0).
    pub fn new(gap_ns: i64) -> Windows {
        Windows { gap_ns: gap_ns.max(1), first: Vec::new() }
    }

    /// The window of a frame of `bag` at `stamp_ns` (frames come in bag order).
    pub fn index(&mut self, bag: usize, stamp_ns: i64) -> i64 {
        let t0 = match self.first.iter().find(|(b, _)| *b == bag) {
            Some(&(_, t)) => t,
            None => {
                self.first.push((bag, stamp_ns));
                stamp_ns
            }
        };
        (stamp_ns - t0).div_euclid(self.gap_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(Binomial(n, p) ≤ k) by direct summation.
    fn binom_cdf(k: u64, n: u64, p: f64) -> f64 {
        (0..=k)
            .map(|i| {
                let ln_c = ln_gamma(n as f64 + 1.0) - ln_gamma(i as f64 + 1.0) - ln_gamma((n - i) as f64 + 1.0);
                (ln_c + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp()
            })
            .sum()
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        for (x, f) in [(1.0, 1.0f64), (2.0, 1.0), (5.0, 24.0), (11.0, 3_628_800.0)] {
            assert!((ln_gamma(x) - f.ln()).abs() < 1e-12, "{x}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn upper_bound_is_where_the_binomial_tail_is_delta() {
        for (k, n) in [(1, 10), (2, 45), (5, 200), (30, 100), (99, 100)] {
            let u = clopper_pearson_upper(k, n, 0.1);
            assert!(u > k as f64 / n as f64 && u < 1.0);
            assert!((binom_cdf(k, n, u) - 0.1).abs() < 1e-9, "k {k} n {n}: {u}");
        }
        // Zero events: the closed form; k = n or n = 0: nothing bounded.
        assert!((clopper_pearson_upper(0, 45, 0.1) - (1.0 - 0.1f64.powf(1.0 / 45.0))).abs() < 1e-15);
        assert_eq!(clopper_pearson_upper(3, 3, 0.1), 1.0);
        assert_eq!(clopper_pearson_upper(0, 0, 0.1), 1.0);
        // Known value: 1 event in 20 at 95 %: 0.2161 (one-sided).
        assert!((clopper_pearson_upper(1, 20, 0.05) - 0.216_08).abs() < 1e-4);
    }

    #[test]
    fn min_trials_is_the_issue_s_45() {
        assert_eq!(min_trials(0.05, 0.1), 45);
        assert!(clopper_pearson_upper(0, 45, 0.1) <= 0.05);
        assert!(clopper_pearson_upper(0, 44, 0.1) > 0.05);
        assert_eq!(min_trials(0.03, 0.1), 76);
    }

    #[test]
    fn effective_counts_group_frames_per_window_and_bag() {
        let s = 1_000_000_000i64;
        // Bag 0: 0.0, 0.5, 1.2 s (gap 1 s: windows 0, 0, 1; the bad one in window 0).
        // Bag 1: 0.0 s good.
        let frames = [(0, 10 * s, false), (0, 10 * s + s / 2, true), (0, 11 * s + s / 5, false), (1, 3 * s, false)];
        assert_eq!(effective_counts(frames, s), (1, 3));
        assert_eq!(effective_counts(frames, 0), (1, 4), "gap 0: every frame is a trial");
    }
}
