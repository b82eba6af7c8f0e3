//! `bench`: decode → segmentation timed on one image (no output encoding or writing).

use serde::Serialize;

use crate::engine::config::Params;
use crate::engine::image::decode_compressed;
use crate::engine::pipeline::{Pipeline, Resolution};
use std::path::Path;

use crate::error::{Error, Result};
use crate::eval::Progress;
use crate::num::percentile;

/// What `bench` prints (docs/interfaces.md §6).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Median latency [ms].
    pub p50_ms: f64,
    /// 95th percentile latency [ms].
    pub p95_ms: f64,
    /// 99th percentile latency [ms].
    pub p99_ms: f64,
    /// Frames per second from the mean latency.
    pub fps: f64,
    /// MC-Dropout samples T.
    pub samples: usize,
    /// ONNX Runtime execution provider.
    pub execution_provider: &'static str,
    /// Timed frames.
    pub frames: usize,
    /// The image timed.
    pub input: String,
    /// Whether the whole network ran once per sample (the baseline).
    pub one_pass_per_sample: bool,
}

/// A bundled 640×480 frame so that `bench` runs anywhere.
const BENCH_FRAME: &[u8] = include_bytes!("../../tests/data/frames/val/image/00000.jpg");

/// Times `frames` runs (after 3 warm-up runs) of decoding `input` (default: a bundled validation
/// frame) and segmenting it.
pub fn run(
    params: &Params,
    input: Option<&Path>,
    frames: usize,
    one_pass_per_sample: bool,
    progress: &mut dyn Progress,
) -> Result<BenchReport> {
    let (bytes, input) = match input {
        Some(p) => {
            (std::fs::read(p).map_err(|source| Error::Io { path: p.to_path_buf(), source })?, p.display().to_string())
        }
        None => (BENCH_FRAME.to_vec(), "bundled val/00000.jpg".to_string()),
    };
    let bytes = bytes.as_slice();
    let mut pipeline = Pipeline::new(params)?;
    pipeline.one_pass_per_sample = one_pass_per_sample;
    let max_pixels = pipeline.settings().max_image_pixels;
    let mut run_once = || -> Result<f64> {
        let start = std::time::Instant::now();
        let frame = decode_compressed("", bytes, max_pixels)?;
        std::hint::black_box(pipeline.segment(&frame, Resolution::Input, false)?);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..3 {
        run_once()?;
    }
    progress.start("bench", Some(frames as u64));
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames.max(1) {
        times.push(run_once()?);
        progress.step("");
    }
    progress.finish();
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let q = |p: f64| round(percentile(&times, p).unwrap_or(f64::NAN));
    Ok(BenchReport {
        p50_ms: q(0.50),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        fps: round(1000.0 / mean),
        samples: pipeline.settings().samples,
        execution_provider: pipeline.model.execution_provider,
        frames: times.len(),
        input,
        one_pass_per_sample,
    })
}
