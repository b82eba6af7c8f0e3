//! Criterion benches of the CPU stages around the model: decoding, preprocessing (and the
//! frame's exposure statistics), and the uncertainty aggregation against a plain copy of the
//! same bytes (BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pipeline_seg::engine::image::{decode_compressed, decode_raw, RawImage};
use pipeline_seg::engine::model::{GateDefaults, ModelInfo};
use pipeline_seg::engine::preprocess::to_tensor;
use pipeline_seg::engine::preprocess::ResizeMode;
use pipeline_seg::engine::sampler::Rng;
use pipeline_seg::engine::sanity::{clipped_fraction, image_stats};
use pipeline_seg::engine::score::{frame_score, ScoreMethod, ScoreParams};
use pipeline_seg::engine::uncertainty::aggregate;
use std::hint::black_box;

const JPEG: &[u8] = include_bytes!("../tests/data/frames/val/image/00000.jpg");
const MAX_PIXELS: usize = 4096 * 4096;

fn shipped_info() -> ModelInfo {
    ModelInfo {
        height: 192,
        width: 256,
        mean: [0.3643, 0.517, 0.402],
        std: [0.1419, 0.2016, 0.1493],
        resize: ResizeMode::Stretch,
        dropout_p: 0.2,
        dropout_sites: vec![16],
        dropout_placement: "last_block".into(),
        default_samples: 16,
        gate: GateDefaults {
            score_method: "pipeline_mean".into(),
            pixel_threshold: 0.5,
            band_px: 4,
            threshold_high: 0.5878,
            threshold_low: 0.4074,
            recover_frames: 3,
        },
        feature_distance: false,
        trust: None,
    }
}

fn decoding(c: &mut Criterion) {
    let frame = decode_compressed("jpeg", JPEG, MAX_PIXELS).expect("bundled frame decodes");
    let (w, h) = (frame.width as u32, frame.height as u32);
    let bgr = frame.to_bgr();
    let mono: Vec<u8> = frame.rgb.chunks_exact(3).map(|p| p[1]).collect();
    let yuv: Vec<u8> = mono.chunks_exact(2).flat_map(|p| [128, p[0], 128, p[1]]).collect();
    let mut g = c.benchmark_group("decode_640x480");
    g.bench_function("jpeg", |b| b.iter(|| decode_compressed("jpeg", black_box(JPEG), MAX_PIXELS)));
    let raw = |encoding: &'static str, data: &'static [u8], bpp: u32| RawImage {
        width: w,
        height: h,
        encoding,
        is_bigendian: false,
        step: w * bpp,
        data,
    };
    let bgr: &'static [u8] = Box::leak(bgr.into_boxed_slice());
    let mono: &'static [u8] = Box::leak(mono.into_boxed_slice());
    let yuv: &'static [u8] = Box::leak(yuv.into_boxed_slice());
    for img in [raw("bgr8", bgr, 3), raw("bayer_rggb8", mono, 1), raw("yuv422", yuv, 2)] {
        g.bench_function(img.encoding, |b| b.iter(|| decode_raw(black_box(&img), MAX_PIXELS)));
    }
    g.finish();
}

fn preprocessing(c: &mut Criterion) {
    let frame = decode_compressed("jpeg", JPEG, MAX_PIXELS).expect("bundled frame decodes");
    let info = shipped_info();
    c.bench_function("preprocess_640x480_to_256x192", |b| b.iter(|| to_tensor(black_box(&frame), &info.input())));
    // The exposure statistics of every frame, and their clipped-area part alone (the trust signal
    // clipped_fraction, issue 11).
    let (w, h) = (frame.width, frame.height);
    c.bench_function("image_stats_640x480", |b| b.iter(|| image_stats(black_box(&frame.rgb), w, h)));
    c.bench_function("clipped_fraction_640x480", |b| b.iter(|| clipped_fraction(black_box(&frame.rgb), w, h)));
}

/// Random two-class softmax samples [T, 2, hw].
fn samples(t: usize, hw: usize) -> Vec<f32> {
    let mut rng = Rng::new(7);
    let mut out = vec![0.0f32; t * 2 * hw];
    for s in out.chunks_exact_mut(2 * hw) {
        let (p0, p1) = s.split_at_mut(hw);
        for (a, b) in p0.iter_mut().zip(p1.iter_mut()) {
            *b = rng.next_f64() as f32;
            *a = 1.0 - *b;
        }
    }
    out
}

fn aggregation(c: &mut Criterion) {
    let hw = 192 * 256;
    let mut g = c.benchmark_group("aggregate_256x192");
    for t in [1usize, 8, 16] {
        let probs = samples(t, hw);
        let mut copy = vec![0.0f32; probs.len()];
        g.throughput(Throughput::Bytes((probs.len() * 4) as u64));
        g.bench_with_input(BenchmarkId::new("uncertainty", t), &probs, |b, p| {
            b.iter(|| aggregate(black_box(p), t, 2, hw))
        });
        g.bench_with_input(BenchmarkId::new("copy", t), &probs, |b, p| b.iter(|| copy.copy_from_slice(black_box(p))));
    }
    g.finish();
    let maps = aggregate(&samples(16, hw), 16, 2, hw);
    let info = shipped_info();
    let params = ScoreParams { method: ScoreMethod::PipelineMean, pixel_threshold: 0.5, band_px: info.gate.band_px };
    c.bench_function("score_pipeline_mean_256x192", |b| {
        b.iter(|| frame_score(black_box(&maps.entropy), &maps.prob, 256, 192, &params))
    });
}

criterion_group!(benches, decoding, preprocessing, aggregation);
criterion_main!(benches);
