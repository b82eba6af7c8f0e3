//! `bench`: decode → segmentation timed on one image (no output encoding or writing).

use serde::Serialize;

use crate::engine::config::Params;
use crate::engine::image::decode_compressed;
use crate::engine::pipeline::{Pipeline, Resolution};
use std::path::Path;

use crate::error::{Error, Result};
use crate::eval::Progress;
use crate::io::files::collect_inputs;
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
    /// MC-Dropout samples T: the most a frame draws.
    pub samples: usize,
    /// Mean samples a frame drew (anytime sampling stops early on settled frames).
    pub samples_mean: f64,
    /// Samples drawn before the first look at whether a frame is settled.
    pub min_samples: usize,
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
/// frame; a directory: its images in turn) and segmenting it.
pub fn run(
    params: &Params,
    input: Option<&Path>,
    frames: usize,
    one_pass_per_sample: bool,
    progress: &mut dyn Progress,
) -> Result<BenchReport> {
    let (images, input) = match input {
        Some(p) => {
            let files = collect_inputs(&[p.to_path_buf()]);
            let read =
                |f: &std::path::PathBuf| std::fs::read(f).map_err(|source| Error::Io { path: f.clone(), source });
            (files.iter().map(read).collect::<Result<Vec<_>>>()?, p.display().to_string())
        }
        None => (vec![BENCH_FRAME.to_vec()], "bundled val/00000.jpg".to_string()),
    };
    if images.is_empty() {
        return Err(Error::param("input", format!("{input}: no .png/.jpg/.jpeg images")));
    }
    let mut pipeline = Pipeline::new(params)?;
    pipeline.one_pass_per_sample = one_pass_per_sample;
    let max_pixels = pipeline.settings().max_image_pixels;
    let mut next = images.iter().cycle();
    let mut run_once = || -> Result<(f64, usize)> {
        let bytes = next.next().map(Vec::as_slice).unwrap_or_default();
        let start = std::time::Instant::now();
        let frame = decode_compressed("", bytes, max_pixels)?;
        let seg = std::hint::black_box(pipeline.segment(&frame, Resolution::Input, false)?);
        Ok((start.elapsed().as_secs_f64() * 1e3, seg.samples))
    };
    for _ in 0..3 {
        run_once()?;
    }
    let mut drawn = Vec::with_capacity(frames);
    progress.start("bench", Some(frames as u64));
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames.max(1) {
        let (ms, samples) = run_once()?;
        times.push(ms);
        drawn.push(samples);
        progress.step("");
    }
    progress.finish();
    let samples_mean = drawn.iter().sum::<usize>() as f64 / drawn.len().max(1) as f64;
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let q = |p: f64| round(percentile(&times, p).unwrap_or(f64::NAN));
    Ok(BenchReport {
        p50_ms: q(0.50),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        fps: round(1000.0 / mean),
        samples: pipeline.settings().samples,
        samples_mean: round(samples_mean),
        min_samples: pipeline.settings().min_samples,
        execution_provider: pipeline.model.execution_provider,
        frames: times.len(),
        input,
        one_pass_per_sample,
    })
}
