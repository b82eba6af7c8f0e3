//! `pipeline_seg`: run the segmentation engine on files (`infer`), on a bag (`replay`) or time it
//! (`bench`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline_seg::gate::{Gate, Observation};
use pipeline_seg::{image, npy, render, Error, Params, Pipeline, Resolution};
use serde_json::json;

/// Pipeline segmentation with Monte-Carlo-Dropout uncertainty (see README.md).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segment image files; write mask, probability, entropy, MI, overlay and summary.json.
    Infer(InferArgs),
    /// Time decode -> segmentation on one image and print latency percentiles as JSON.
    Bench(BenchArgs),
    /// Run every frame of a bag topic through the model and the gate; write the node's topics
    /// to DIR/output/, frames.csv and metrics.json.
    Replay(ReplayArgs),
}

/// Flags of every subcommand that runs the model.
#[derive(Args)]
struct Shared {
    /// ONNX model (default: the installed package's, else models/ of the checkout).
    #[arg(long)]
    model: Option<PathBuf>,
    /// MC-Dropout samples T per frame (default: the model's default_samples).
    #[arg(long)]
    samples: Option<usize>,
    /// Seed of the dropout masks; one seed reproduces a run exactly.
    #[arg(long)]
    seed: Option<u64>,
    /// Execution provider.
    #[arg(long, value_parser = ["cpu", "cuda", "tensorrt"])]
    device: Option<String>,
    /// Run on CPU when the requested GPU provider cannot be used (otherwise an error).
    #[arg(long)]
    allow_cpu_fallback: bool,
    /// ONNX Runtime intra-op threads (0 = ONNX Runtime decides).
    #[arg(long)]
    threads: Option<usize>,
    /// ROS 2 parameter file (config/pipeline_seg.yaml format); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ResolutionArg {
    Input,
    Model,
}

#[derive(Args)]
struct InferArgs {
    #[command(flatten)]
    shared: Shared,
    /// Resolution of the written maps.
    #[arg(long, value_enum, default_value = "input")]
    resolution: ResolutionArg,
    /// Also write the raw samples `<stem>_samples.npy` [T,C,h,w] at model resolution.
    #[arg(long)]
    save_samples: bool,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Image files, or directories searched for .png/.jpg/.jpeg.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    shared: Shared,
    /// Timed frames (after 3 warm-up frames).
    #[arg(long, default_value_t = 50)]
    frames: usize,
    /// Image to time (default: a bundled 640x480 validation frame).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Run the whole network once per sample instead of once per frame (the baseline that the
    /// shared-trunk graph is compared against).
    #[arg(long)]
    one_pass_per_sample: bool,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    shared: Shared,
    /// Camera topic (sensor_msgs/msg/Image or CompressedImage).
    #[arg(long)]
    topic: String,
    /// Ground-truth mask topic (mono8, 0/255), matched to frames by header stamp.
    #[arg(long)]
    gt_topic: Option<String>,
    /// Comma-separated output topics to write (e.g. mask,confidence; default: all).
    #[arg(long)]
    write: Option<String>,
    /// Output directory (created if missing; DIR/output must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    /// The bag: a directory with metadata.yaml, or an .mcap/.db3 file.
    bag: PathBuf,
}

/// A bundled frame so that `bench` runs anywhere.
const BENCH_FRAME: &[u8] = include_bytes!("../../tests/data/frames/val/image/00000.jpg");

/// A fatal error: exit code 2 (INTERFACES §6).
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

fn params(shared: &Shared) -> Result<Params, Fatal> {
    let mut p = Params::default();
    if let Some(cfg) = &shared.config {
        p.apply_file(cfg)?;
    }
    if shared.model.is_some() {
        p.model_path = shared.model.clone();
    }
    if let Some(t) = shared.samples {
        p.samples = Some(t);
    }
    if let Some(s) = shared.seed {
        p.seed = s;
    }
    if let Some(d) = &shared.device {
        p.device = d.parse()?;
    }
    if shared.allow_cpu_fallback {
        p.allow_cpu_fallback = true;
    }
    if let Some(t) = shared.threads {
        p.intra_threads = t;
    }
    Ok(p)
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let style = format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&style) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Infer(args) => infer(args),
        Command::Bench(args) => bench(args),
        Command::Replay(args) => replay(args),
    };
    match result {
        Ok(code) => code,
        Err(Fatal(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn is_image(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    matches!(ext.as_str(), "png" | "jpg" | "jpeg")
}

/// Files named on the command line, with directories expanded (sorted, images only).
fn collect_inputs(args: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for arg in args {
        match std::fs::read_dir(arg) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file() && is_image(p)).collect();
                files.sort();
                out.extend(files);
            }
            Err(_) => out.push(arg.clone()), // a file, or a missing path that fails when read
        }
    }
    out
}

/// `<stem>`, made unique when two inputs share a file stem.
fn unique_stem(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path.file_stem().map_or_else(|| "frame".to_string(), |s| s.to_string_lossy().into_owned());
    let mut name = stem.clone();
    let mut k = 2;
    while !used.insert(name.clone()) {
        name = format!("{stem}_{k}");
        k += 1;
    }
    name
}

fn infer(args: InferArgs) -> Result<ExitCode, Fatal> {
    let params = params(&args.shared)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Fatal(format!("cannot create output directory {}: {e}", args.out.display())))?;
    let inputs = collect_inputs(&args.inputs);
    if inputs.is_empty() {
        return Err(Fatal("no .png/.jpg/.jpeg inputs found".into()));
    }
    let mut pipeline = Pipeline::new(&params)?;
    let settings = pipeline.settings().clone();
    let resolution = match args.resolution {
        ResolutionArg::Input => Resolution::Input,
        ResolutionArg::Model => Resolution::Model,
    };
    let bar = progress(inputs.len(), "infer");
    let (mut frames, mut failures, mut used) = (Vec::new(), Vec::new(), HashSet::new());
    for input in &inputs {
        bar.set_message(input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let stem = unique_stem(input, &mut used);
        let start = Instant::now();
        let result = image::read_file(input, settings.max_image_pixels).and_then(|frame| {
            let seg = pipeline.segment(&frame, resolution, args.save_samples)?;
            Ok((frame, seg))
        });
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        let record = match result {
            Ok((frame, seg)) => {
                let decision = Gate::single(&settings.gate, seg.observation());
                let caption = format!("score {:.3} {} ({})", seg.score, settings.score.method.name(), decision.reason.name());
                write_outputs(&args.out, &stem, &frame, &seg, &caption)?;
                json!({"input": input, "score": short(seg.score), "confident": decision.confident,
                       "reason": decision.reason.name(), "pipeline_fraction": short(seg.pipeline_fraction),
                       "latency_ms": latency_ms, "error": null})
            }
            Err(e) if e.is_frame_error() => {
                let decision = Gate::single(&settings.gate, Observation::DecodeError);
                // An I/O error already names its path.
                failures.push(if matches!(e, Error::Io { .. }) { e.to_string() } else { format!("{}: {e}", input.display()) });
                json!({"input": input, "score": null, "confident": decision.confident, "reason": decision.reason.name(),
                       "pipeline_fraction": null, "latency_ms": null, "error": e.to_string()})
            }
            Err(e) => return Err(Fatal(format!("{}: {e}", input.display()))),
        };
        frames.push(record);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let summary = json!({
        "model": pipeline.model.path, "samples": settings.samples, "seed": settings.seed,
        "execution_provider": pipeline.model.execution_provider, "score_method": settings.score.method.name(),
        "threshold_high": short(settings.gate.threshold_high), "frames": frames,
    });
    let summary_path = args.out.join("summary.json");
    std::fs::write(&summary_path, serde_json::to_string_pretty(&summary)? + "\n")
        .map_err(|e| Fatal(format!("cannot write {}: {e}", summary_path.display())))?;
    let ok = inputs.len() - failures.len();
    eprintln!("{ok}/{} frames segmented; outputs in {} (summary.json)", inputs.len(), args.out.display());
    for f in &failures {
        eprintln!("failed: {f}");
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// An f32 as the shortest decimal that reads back to it (0.9, not 0.8999999761581421).
fn short(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::NAN)
}

fn write_outputs(
    out: &Path,
    stem: &str,
    frame: &image::Frame,
    seg: &pipeline_seg::Segmentation,
    caption: &str,
) -> Result<(), Error> {
    let (w, h) = (seg.width, seg.height);
    let file = |suffix: &str| out.join(format!("{stem}{suffix}"));
    render::write_png(&file("_mask.png"), &seg.mask, w, h, 1)?;
    npy::write_f32(&file("_prob.npy"), &[h, w], &seg.prob)?;
    npy::write_f32(&file("_entropy.npy"), &[h, w], &seg.entropy)?;
    npy::write_f32(&file("_mi.npy"), &[h, w], &seg.mi)?;
    render::write_png(&file("_entropy.png"), &render::entropy_color(&seg.entropy, w, h)?, w, h, 3)?;
    render::write_png(&file("_overlay.png"), &render::overlay(frame, seg, caption)?, w, h, 3)?;
    if let Some(samples) = &seg.probs {
        let data = samples.as_standard_layout();
        npy::write_f32(&file("_samples.npy"), samples.shape(), data.as_slice().unwrap_or_default())?;
    }
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len().saturating_sub(1)) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    match (sorted.get(lo), sorted.get(hi)) {
        (Some(a), Some(b)) => a + (b - a) * (pos - lo as f64),
        _ => f64::NAN,
    }
}

fn bench(args: BenchArgs) -> Result<ExitCode, Fatal> {
    let params = params(&args.shared)?;
    let (bytes, name) = match &args.input {
        Some(p) => (std::fs::read(p).map_err(|e| Fatal(format!("{}: {e}", p.display())))?, p.display().to_string()),
        None => (BENCH_FRAME.to_vec(), "bundled val/00000.jpg".to_string()),
    };
    let mut pipeline = Pipeline::new(&params)?;
    pipeline.one_pass_per_sample = args.one_pass_per_sample;
    let max_pixels = pipeline.settings().max_image_pixels;
    let mut run_once = || -> Result<f64, Fatal> {
        let start = Instant::now();
        let frame = image::decode_compressed("", &bytes, max_pixels)?;
        let seg = pipeline.segment(&frame, Resolution::Input, false)?;
        std::hint::black_box(&seg);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..3 {
        run_once()?;
    }
    let bar = progress(args.frames, "bench");
    let mut times = Vec::with_capacity(args.frames);
    for _ in 0..args.frames.max(1) {
        times.push(run_once()?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let report = json!({
        "p50_ms": round(percentile(&times, 0.50)), "p95_ms": round(percentile(&times, 0.95)),
        "p99_ms": round(percentile(&times, 0.99)), "fps": round(1000.0 / mean),
        "samples": pipeline.settings().samples, "execution_provider": pipeline.model.execution_provider,
        "frames": times.len(), "input": name, "one_pass_per_sample": args.one_pass_per_sample,
    });
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// `review_min_interval_s` of the parameter file (a node-only parameter), default 10 s.
fn review_min_interval(config: Option<&Path>) -> Result<std::time::Duration, Fatal> {
    let mut seconds = 10.0;
    if let Some(path) = config {
        let text = std::fs::read_to_string(path).map_err(|e| Fatal(format!("{}: {e}", path.display())))?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| Fatal(format!("{}: {e}", path.display())))?;
        let value = ["pipeline_seg_node", "/**"]
            .iter()
            .find_map(|n| doc.get(*n).and_then(|n| n.get("ros__parameters")).and_then(|p| p.get("review_min_interval_s")));
        if let Some(v) = value {
            seconds = v
                .as_f64()
                .filter(|s| (0.0..=86400.0).contains(s))
                .ok_or_else(|| Fatal(format!("{}: review_min_interval_s must be a number in [0, 86400]", path.display())))?;
        }
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

fn replay(args: ReplayArgs) -> Result<ExitCode, Fatal> {
    use pipeline_seg::replay::{self, OutTopic, ReplayConfig};
    let params = params(&args.shared)?;
    let write = match &args.write {
        Some(list) => OutTopic::parse_list(list)?,
        None => OutTopic::ALL.to_vec(),
    };
    let cfg = ReplayConfig {
        bag: args.bag.clone(),
        topic: args.topic.clone(),
        gt_topic: args.gt_topic.clone(),
        write,
        out: args.out.clone(),
        review_min_interval: review_min_interval(args.shared.config.as_deref())?,
    };
    // Fail on a missing or unreadable bag before loading the model.
    pipeline_seg::bag::read::open(&cfg.bag).map_err(|e| Fatal(format!("cannot read bag: {e}")))?;
    let mut pipeline = Pipeline::new(&params)?;
    let bar = match replay::expected_messages(&cfg.bag, &cfg.topic) {
        Some(n) => progress(n as usize, "replay"),
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} replay {pos} frames {per_sec} {elapsed} {msg}") {
                bar.set_style(style);
            }
            bar
        }
    };
    let started = Instant::now();
    let outcome = replay::run(&mut pipeline, &cfg, &mut |row| {
        bar.set_message(row.decision.reason.name());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} frames ({} with ground truth, {} decode errors) in {secs:.1} s ({:.2} frames/s); outputs in {} (output/, frames.csv, metrics.json)",
        outcome.frames,
        outcome.frames_with_gt,
        outcome.decode_errors,
        outcome.frames as f64 / secs.max(1e-9),
        outcome.out.display()
    );
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    for f in &outcome.failures {
        eprintln!("failed: {f}");
    }
    if let Some(stop) = &outcome.stopped {
        eprintln!("error: replay stopped early after {} frames: {stop}", outcome.frames);
        return Ok(ExitCode::from(if outcome.frames == 0 { 2 } else { 1 }));
    }
    Ok(if outcome.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
