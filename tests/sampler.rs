//! Seeded channel-dropout masks: reproducible, seed-dependent, the right values and rate.

use pipeline_seg::engine::sampler::{ones, Sampler};

const SITES: [usize; 3] = [16, 32, 64];

/// 1/(1 − p) as the sampler computes it: in f64, rounded once to f32.
fn scale(p: f32) -> f32 {
    (1.0 / (1.0 - p as f64)) as f32
}

#[test]
fn same_seed_gives_the_same_masks() {
    let (mut a, mut b) = (Sampler::new(42, 0.2), Sampler::new(42, 0.2));
    for t in [1, 8, 8, 3] {
        let (ma, mb) = (a.masks(&SITES, t), b.masks(&SITES, t));
        assert_eq!(ma, mb);
        assert_eq!(ma.iter().map(Vec::len).collect::<Vec<_>>(), SITES.map(|c| c * t));
    }
}

#[test]
fn different_seeds_and_successive_draws_differ() {
    let first = Sampler::new(0, 0.5).masks(&SITES, 8);
    for seed in [1, 2, 1 << 40, u64::MAX] {
        assert_ne!(Sampler::new(seed, 0.5).masks(&SITES, 8), first, "seed {seed}");
    }
    let mut s = Sampler::new(0, 0.5);
    assert_eq!(s.masks(&SITES, 8), first);
    assert_ne!(s.masks(&SITES, 8), first, "the next frame draws fresh masks");
}

#[test]
fn mask_values_are_zero_or_the_inverse_keep_rate() {
    for p in [0.1f32, 0.2, 0.25, 0.5, 0.75] {
        let masks = Sampler::new(7, p).masks(&SITES, 16);
        let values: Vec<f32> = masks.concat();
        assert!(values.iter().all(|&v| v == 0.0 || v == scale(p)), "p = {p}");
        assert!(values.contains(&0.0) && values.contains(&scale(p)), "p = {p}: both values occur");
    }
    assert_eq!(scale(0.5), 2.0);
    assert!(Sampler::new(3, 0.0).masks(&SITES, 4).concat().iter().all(|&v| v == 1.0), "p = 0 keeps everything");
    assert_eq!(ones(&SITES), SITES.map(|c| vec![1.0f32; c]).to_vec());
}

#[test]
fn kept_fraction_is_within_three_sigma_of_one_minus_p() {
    for (seed, p) in [(0u64, 0.1f32), (1, 0.2), (2, 0.5), (3, 0.8)] {
        let mut s = Sampler::new(seed, p);
        let draws: Vec<f32> = (0..100).flat_map(|_| s.masks(&SITES, 16).concat()).collect();
        let n = draws.len() as f64;
        let kept = draws.iter().filter(|&&v| v != 0.0).count() as f64;
        let q = 1.0 - p as f64;
        let sigma = (n * q * (1.0 - q)).sqrt();
        assert!(
            (kept - n * q).abs() < 3.0 * sigma,
            "p = {p}: kept {kept} of {n}, expected {} ± {}",
            n * q,
            3.0 * sigma
        );
        // The mean of a mask element is 1 (what MC-Dropout's scaling is for).
        let mean = draws.iter().map(|&v| v as f64).sum::<f64>() / n;
        assert!((mean - 1.0).abs() < 3.0 * sigma / n / q, "p = {p}: mean {mean}");
    }
}

#[test]
fn a_frames_masks_are_fixed_by_seed_and_frame_key() {
    use pipeline_seg::engine::sampler::frame_key;
    let a: Vec<f32> = (0..3 * 192 * 256).map(|i| (i % 251) as f32 / 251.0).collect();
    let mut b = a.clone();
    b[1000] += 1e-6;
    let (ka, kb) = (frame_key(640, 480, &a), frame_key(640, 480, &b));
    assert_eq!(ka, frame_key(640, 480, &a.clone()), "a pure function of the frame");
    assert_ne!(ka, kb, "one changed value changes the key");
    assert_ne!(ka, frame_key(480, 640, &a), "the size is part of the key");
    assert_ne!(ka, frame_key(640, 480, &a[..a.len() - 1]), "so is the length");
    let draw = |seed, key| Sampler::for_frame(seed, key, 0.5).masks(&SITES, 8);
    assert_eq!(draw(3, ka), draw(3, ka));
    assert_ne!(draw(3, ka), draw(3, kb), "another frame draws other masks");
    assert_ne!(draw(3, ka), draw(4, ka), "another seed draws other masks");
    assert_ne!(draw(ka, 3), draw(3, ka), "seed and key are not interchangeable");
}
