//! Dropout masks from a seeded generator keyed by the frame: one seed reproduces a frame's
//! samples exactly, whatever frames came before it (node, `infer`, a bag or a part of it).

/// xoshiro256** seeded through SplitMix64: small, fast, the same stream on every platform.
#[derive(Clone, Debug)]
pub struct Rng([u64; 4]);

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Draws channel-dropout masks: each element kept with probability 1 − p, kept ones scaled 1/(1 − p).
#[derive(Clone, Debug)]
pub struct Sampler {
    rng: Rng,
    p: f32,
}

impl Sampler {
    /// A sampler for dropout probability `p`, fixed by `seed`.
    pub fn new(seed: u64, p: f32) -> Sampler {
        Sampler { rng: Rng::new(seed), p }
    }

    /// The sampler of one frame: its stream is fixed by `seed` and the frame's key
    /// ([`frame_key`]), so a frame draws the same masks in any run that holds it.
    pub fn for_frame(seed: u64, key: u64, p: f32) -> Sampler {
        // Rng::new's SplitMix64 expansion mixes the combined value; the multiplier keeps
        // (seed, key) and (key, seed) apart.
        Sampler::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key, p)
    }

    /// Masks for every site (`sites[k]` channels), `t` samples each: `t * sites[k]` values per site.
    pub fn masks(&mut self, sites: &[usize], t: usize) -> Vec<Vec<f32>> {
        let keep = 1.0 - self.p as f64;
        let scale = (1.0 / keep) as f32;
        sites
            .iter()
            .map(|&c| (0..t * c).map(|_| if self.rng.next_f64() < keep { scale } else { 0.0 }).collect())
            .collect()
    }
}

/// The key of a frame: a hash of its size and of the model input made from it. The same pixels
/// give the same key wherever they come from (a camera message, a bag record, an image file);
/// the hash ([`crate::num::mix64`]) is the same on every platform and Rust version.
pub fn frame_key(width: usize, height: usize, input: &[f32]) -> u64 {
    let mix = crate::num::mix64;
    let mut h = mix(mix(0x5053_4547_4652_414D, width as u64), height as u64);
    let mut pairs = input.chunks_exact(2);
    for p in &mut pairs {
        h = mix(h, (p[0].to_bits() as u64) << 32 | p[1].to_bits() as u64);
    }
    if let [last] = pairs.remainder() {
        h = mix(h, last.to_bits() as u64);
    }
    mix(h, input.len() as u64)
}

/// All-ones masks with T = 1: the deterministic network.
pub fn ones(sites: &[usize]) -> Vec<Vec<f32>> {
    sites.iter().map(|&c| vec![1.0; c]).collect()
}
