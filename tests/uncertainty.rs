//! Uncertainty maps and frame score (docs/interfaces.md §2): properties of `aggregate` on random
//! softmax samples, agreement with a plain f64 reference, `fast_ln` accuracy, and every score
//! method on degenerate maps.

use pipeline_seg::engine::score::{frame_score, percentile95, ScoreMethod, ScoreParams};
use pipeline_seg::engine::uncertainty::{aggregate, fast_ln, normal_tail, Running, EPS};
use proptest::prelude::*;

/// docs/interfaces.md §2 written out in f64: probs [T, C, hw] → (mean p_1, H, MI), normalised by ln C.
fn reference(probs: &[f32], t: usize, c: usize, hw: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let p = |s: usize, k: usize, i: usize| probs[(s * c + k) * hw + i] as f64;
    let plogp = |q: f64| {
        let q = q.clamp(EPS as f64, 1.0);
        -q * q.ln()
    };
    let ln_c = (c as f64).ln();
    let (mut prob, mut ent, mut mi) = (vec![], vec![], vec![]);
    for i in 0..hw {
        let mean: Vec<f64> = (0..c).map(|k| (0..t).map(|s| p(s, k, i)).sum::<f64>() / t as f64).collect();
        let h = mean.iter().map(|&q| plogp(q)).sum::<f64>() / ln_c;
        let expected_h = (0..t).map(|s| (0..c).map(|k| plogp(p(s, k, i))).sum::<f64>()).sum::<f64>() / t as f64 / ln_c;
        prob.push(mean[1]);
        ent.push(h.clamp(0.0, 1.0));
        mi.push((h - expected_h).clamp(0.0, h));
    }
    (prob, ent, mi)
}

/// Two-class samples [T, 2, hw] from the pipeline probabilities p1 (laid out [T, hw]).
fn two_class(p1: &[f32], t: usize, hw: usize) -> Vec<f32> {
    (0..t)
        .flat_map(|s| {
            let row = &p1[s * hw..(s + 1) * hw];
            row.iter().map(|&p| 1.0 - p).chain(row.iter().copied()).collect::<Vec<_>>()
        })
        .collect()
}

fn samples() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    (1..20usize, 1..50usize).prop_flat_map(|(t, hw)| {
        let p = prop_oneof![6 => 0.0f32..=1.0, 1 => Just(0.0f32), 1 => Just(1.0f32)];
        (Just(t), Just(hw), proptest::collection::vec(p, t * hw))
    })
}

proptest! {
    #[test]
    fn maps_stay_in_range_and_match_the_f64_reference((t, hw, p1) in samples()) {
        let probs = two_class(&p1, t, hw);
        let m = aggregate(&probs, t, 2, hw);
        let (prob, ent, mi) = reference(&probs, t, 2, hw);
        prop_assert_eq!((m.prob.len(), m.entropy.len(), m.mi.len()), (hw, hw, hw));
        for i in 0..hw {
            prop_assert!((0.0..=1.0).contains(&m.prob[i]), "prob {}", m.prob[i]);
            prop_assert!(0.0 <= m.mi[i] && m.mi[i] <= m.entropy[i] && m.entropy[i] <= 1.0, "MI {} H {}", m.mi[i], m.entropy[i]);
            prop_assert!((m.prob[i] as f64 - prob[i]).abs() < 1e-5, "prob {} vs {}", m.prob[i], prob[i]);
            prop_assert!((m.entropy[i] as f64 - ent[i]).abs() < 1e-5, "H {} vs {}", m.entropy[i], ent[i]);
            prop_assert!((m.mi[i] as f64 - mi[i]).abs() < 1e-5, "MI {} vs {}", m.mi[i], mi[i]);
        }
    }

    #[test]
    fn more_than_two_classes_match_the_reference(t in 1..8usize, c in 2..5usize, w in proptest::collection::vec(0.01f32..1.0, 40 * 8 * 4)) {
        let hw = 10;
        // Normalise random weights into softmax vectors over the C classes of each (sample, pixel).
        let mut probs = vec![0.0f32; t * c * hw];
        for s in 0..t {
            for i in 0..hw {
                let sum: f32 = (0..c).map(|k| w[(s * c + k) * hw + i]).sum();
                for k in 0..c {
                    probs[(s * c + k) * hw + i] = w[(s * c + k) * hw + i] / sum;
                }
            }
        }
        let m = aggregate(&probs, t, c, hw);
        let (_, ent, mi) = reference(&probs, t, c, hw);
        for i in 0..hw {
            prop_assert!((m.entropy[i] as f64 - ent[i]).abs() < 1e-5 && (m.mi[i] as f64 - mi[i]).abs() < 1e-5);
        }
    }

    #[test]
    fn identical_one_hot_samples_are_certain(t in 1..20usize, hw in 1..50usize, class in 0..2usize) {
        let m = aggregate(&two_class(&vec![class as f32; t * hw], t, hw), t, 2, hw);
        // Not exactly 0: the ε = 1e-7 clamp leaves ε·ln(1/ε)/ln 2 ≈ 2.3e-6.
        prop_assert!(m.entropy.iter().chain(&m.mi).all(|&v| (0.0..3e-6).contains(&v)), "{:?}", m);
        prop_assert!(m.prob.iter().all(|&p| p == class as f32));
    }

    #[test]
    fn uniform_samples_have_full_entropy_and_no_mutual_information(t in 1..20usize, hw in 1..50usize) {
        let m = aggregate(&two_class(&vec![0.5; t * hw], t, hw), t, 2, hw);
        prop_assert!(m.entropy.iter().all(|&h| (h - 1.0).abs() < 1e-5), "{:?}", m.entropy);
        prop_assert!(m.mi.iter().all(|&v| v.abs() < 1e-5), "{:?}", m.mi);
    }

    #[test]
    fn disagreeing_one_hot_samples_are_all_mutual_information(half in 1..10usize, hw in 1..50usize) {
        let t = 2 * half;
        let p1: Vec<f32> = (0..t * hw).map(|i| (i / hw < half) as u8 as f32).collect();
        let m = aggregate(&two_class(&p1, t, hw), t, 2, hw);
        prop_assert!(m.entropy.iter().all(|&h| (h - 1.0).abs() < 1e-5), "{:?}", m.entropy);
        prop_assert!(m.mi.iter().all(|&v| (v - 1.0).abs() < 1e-5), "{:?}", m.mi);
        prop_assert!(m.prob.iter().all(|&p| p == 0.5));
    }
}

#[test]
fn fast_ln_is_within_two_ulp_of_ln_on_every_float_in_1e_minus_7_to_1() {
    // Exhaustive over the ~195 M floats in [1e-7, 1]. The atanh-series log (chosen for speed:
    // 30 % faster aggregation than Cephes' logf, which measured 1.19e-7 / 8.1e-8 here) measured
    // a max relative error of 1.72e-7 against f32::ln; entropy needs only ~1e-6 absolute.
    let (mut rel32, mut rel64) = (0.0f64, 0.0f64);
    for bits in 1e-7f32.to_bits()..=1.0f32.to_bits() {
        let x = f32::from_bits(bits);
        let (got, ln32, ln64) = (fast_ln(x) as f64, x.ln() as f64, (x as f64).ln());
        if ln32 == 0.0 {
            assert_eq!(got, 0.0, "fast_ln({x})");
            continue;
        }
        rel32 = rel32.max(((got - ln32) / ln32).abs());
        rel64 = rel64.max(((got - ln64) / ln64).abs());
    }
    assert!(rel32 < 2.0e-7, "max relative error vs f32::ln {rel32:e}");
    assert!(rel64 < 2.0e-7, "max relative error vs exact ln {rel64:e}");
    assert_eq!(fast_ln(1.0), 0.0);
}

#[test]
fn percentile95_matches_numpy_linear_interpolation() {
    // Expected values from numpy 2.4.6: np.percentile(np.array(a, dtype=np.float64), 95).
    let cases: [(&[f32], f32); 6] = [
        (&[0.1, 0.5, 0.2, 0.9, 0.3], 0.82),
        (&[0.42], 0.42),
        (&[0.0, 1.0], 0.95),
        (&[0.3, 0.8, 0.1, 0.95, 0.2, 0.6, 0.55, 0.05, 0.7, 0.4], 0.8825),
        (&[0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.75], 0.575),
        (
            &[
                0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
                0.95, 1.0,
            ],
            0.95,
        ),
    ];
    for (values, want) in cases {
        let got = percentile95(values);
        assert!((got - want).abs() < 1e-6, "{values:?}: {got} vs numpy {want}");
    }
}

fn params(method: ScoreMethod, band_px: u32) -> ScoreParams {
    ScoreParams { method, pixel_threshold: 0.5, band_px }
}

const METHODS: [ScoreMethod; 4] =
    [ScoreMethod::Mean, ScoreMethod::P95, ScoreMethod::FractionAbove, ScoreMethod::PipelineMean];

#[test]
fn every_score_method_is_defined_on_empty_full_and_random_maps() {
    let mut x = 12345u32;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 8) as f32 / (1 << 24) as f32
    };
    for (w, h) in [(1, 1), (2, 1), (7, 5), (64, 48)] {
        let n = w * h;
        let random_entropy: Vec<f32> = (0..n).map(|_| rand()).collect();
        let random_prob: Vec<f32> = (0..n).map(|_| rand()).collect();
        for entropy in [vec![0.0; n], vec![1.0; n], random_entropy] {
            for prob in [vec![0.0; n], vec![1.0; n], random_prob.clone()] {
                for method in METHODS {
                    for band in [0, 3, 64] {
                        let s = frame_score(&entropy, &prob, w, h, &params(method, band)).unwrap();
                        assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{method:?} band {band} {w}x{h}: {s}");
                    }
                }
            }
        }
    }
}

#[test]
fn score_methods_compute_what_their_names_say() {
    // 2x2 map; only pixel (0,0) is predicted pipeline.
    let entropy = [0.1, 0.2, 0.3, 0.9];
    let prob = [0.9, 0.1, 0.5, 0.2];
    let score = |m, band| frame_score(&entropy, &prob, 2, 2, &params(m, band)).unwrap();
    assert!((score(ScoreMethod::Mean, 0) - 0.375).abs() < 1e-6);
    assert!((score(ScoreMethod::P95, 0) - percentile95(&entropy)).abs() < 1e-7);
    assert_eq!(score(ScoreMethod::FractionAbove, 0), 0.25, "strictly above pixel_threshold 0.5");
    assert!((score(ScoreMethod::PipelineMean, 0) - 0.1).abs() < 1e-7, "band 0: the predicted pixels only");
    // Radius 1 ellipse = 3x3 cross: (0,0), (1,0), (0,1); the diagonal (1,1) stays out.
    assert!((score(ScoreMethod::PipelineMean, 1) - 0.2).abs() < 1e-6);
    assert!((score(ScoreMethod::PipelineMean, 2) - 0.375).abs() < 1e-6);
    // No predicted pipeline (prob 0.5 is not > 0.5): falls back to p95.
    let none = frame_score(&entropy, &[0.5; 4], 2, 2, &params(ScoreMethod::PipelineMean, 3)).unwrap();
    assert_eq!(none, percentile95(&entropy));
}

proptest! {
    /// Anytime sampling: samples added in chunks give the maps of all of them, and leaving one out
    /// gives the maps of the others (the jackknife replicates), both within 1e-5 of the reference.
    #[test]
    fn running_maps_in_chunks_and_without_one_sample((t, hw, p1) in samples(), cut in 0..20usize) {
        prop_assume!(t >= 2);
        let probs = two_class(&p1, t, hw);
        let mut running = Running::new(2, hw);
        let cut = cut.min(t);
        running.add(&probs[..cut * 2 * hw]);
        running.add(&probs[cut * 2 * hw..]);
        prop_assert_eq!(running.samples(), t);
        let close = |a: &[f32], b: &[f64]| a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() < 1e-5);
        let all = running.maps(None);
        let (rp, re, rm) = reference(&probs, t, 2, hw);
        prop_assert!(close(&all.prob, &rp) && close(&all.entropy, &re) && close(&all.mi, &rm));
        let leave = cut.min(t - 1);
        let others: Vec<f32> = (0..t).filter(|&s| s != leave).flat_map(|s| probs[s * 2 * hw..(s + 1) * 2 * hw].to_vec()).collect();
        let without = running.maps(Some(leave));
        let (rp, re, rm) = reference(&others, t - 1, 2, hw);
        prop_assert!(close(&without.prob, &rp) && close(&without.entropy, &re) && close(&without.mi, &rm));
    }
}

#[test]
fn flip_chance_is_high_near_one_half_and_nil_far_from_it() {
    // 4 samples: pixel 0 always 0.9 (no spread), pixel 1 around 0.5, pixel 2 around 0.1 with spread.
    let p1 = [0.9, 0.45, 0.05, 0.9, 0.55, 0.15, 0.9, 0.48, 0.1, 0.9, 0.56, 0.1];
    let mut running = Running::new(2, 3);
    running.add(&two_class(&p1, 4, 3));
    let f = running.flip_chance();
    assert_eq!(f[0], 0.0, "{f:?}");
    assert!(f[1] > 0.2 && f[1] <= 0.5, "{f:?}");
    assert!(f[2] < 1e-6, "{f:?}");
    assert!((normal_tail(0.0) - 0.5).abs() < 1e-6 && (normal_tail(1.959_964) - 0.025).abs() < 1e-5);
    assert_eq!(Running::new(2, 3).flip_chance(), vec![1.0; 3], "no samples: anything may flip");
}
