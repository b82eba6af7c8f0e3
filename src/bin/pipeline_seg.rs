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
    /// Choose score_method and thresholds from labelled bags to meet a flagging target; print
    /// the trade-off table and write a parameter file.
    Calibrate(CalibrateArgs),
    /// Export the K most uncertain frames of bags as PNGs plus manifest.csv for labelling.
    Select(SelectArgs),
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

#[derive(Args)]
struct CalibrateArgs {
    #[command(flatten)]
    shared: Shared,
    /// Camera topic (sensor_msgs/msg/Image or CompressedImage).
    #[arg(long)]
    topic: String,
    /// Ground-truth mask topic (mono8, 0/255), matched to frames by header stamp.
    #[arg(long)]
    gt_topic: String,
    /// Largest acceptable fraction of good frames flagged.
    #[arg(long, default_value_t = 0.1)]
    max_good_flagged: f64,
    /// Smallest acceptable fraction of bad frames flagged.
    #[arg(long, default_value_t = 0.9)]
    min_bad_flagged: f64,
    /// Parameter file to write (ROS 2 format, INTERFACES §5).
    #[arg(long)]
    out: PathBuf,
    /// Labelled bags.
    #[arg(required = true)]
    bags: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ByArg {
    Mi,
    Entropy,
}

#[derive(Args)]
struct SelectArgs {
    #[command(flatten)]
    shared: Shared,
    /// Camera topic (sensor_msgs/msg/Image or CompressedImage).
    #[arg(long)]
    topic: String,
    /// Number of frames to export.
    #[arg(long)]
    top_k: usize,
    /// No two picks of one bag closer than this [s, header stamps].
    #[arg(long, default_value_t = 2.0)]
    min_gap: f64,
    /// The map that score_method is applied to.
    #[arg(long, value_enum, default_value = "mi")]
    by: ByArg,
    /// Output directory (created if missing): <stamp_ns>.png and manifest.csv.
    #[arg(long)]
    out: PathBuf,
    /// Bags to select from.
    #[arg(required = true)]
    bags: Vec<PathBuf>,
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
        Command::Calibrate(args) => calibrate(args),
        Command::Select(args) => select(args),
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
        "{} frames ({} with ground truth, {} decode errors) in {secs:.1} s ({:.2} frames/s); outputs in {} (output/, frames.csv, metrics.json, report.html)",
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

/// A fresh scratch directory for a replay whose outputs are not kept.
fn scratch_dir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("pipeline_seg_{what}_{}_{n}", std::process::id()))
}

/// Checks that every bag opens and has the topics, before any model is loaded (exit 2).
fn check_bags(bags: &[PathBuf], topics: &[&str]) -> Result<u64, Fatal> {
    let mut total = 0;
    for bag in bags {
        let b = pipeline_seg::bag::read::open(bag).map_err(|e| Fatal(format!("cannot read bag: {e}")))?;
        let have = b.topics();
        for t in topics {
            if !have.iter().any(|i| i.name == *t) {
                let names: Vec<String> = have.iter().map(|i| format!("{} ({})", i.name, i.type_name)).collect();
                return Err(Fatal(format!("{}: no topic {t}; topics: {}", bag.display(), names.join(", "))));
            }
        }
        total += pipeline_seg::replay::expected_messages(bag, topics[0]).unwrap_or(0);
    }
    Ok(total)
}

/// Replays `bag` through `pipeline` writing no topics (scratch outputs removed); every row goes
/// to `on_frame`. Returns the problems to report (failed frames, an early stop).
fn replay_rows(
    pipeline: &mut Pipeline,
    bag: &Path,
    topic: &str,
    gt_topic: Option<&str>,
    what: &str,
    on_frame: &mut dyn FnMut(&pipeline_seg::replay::FrameRow),
) -> Result<Vec<String>, Fatal> {
    use pipeline_seg::replay::{self, ReplayConfig};
    let out = scratch_dir(what);
    let cfg = ReplayConfig {
        bag: bag.to_path_buf(),
        topic: topic.to_string(),
        gt_topic: gt_topic.map(str::to_string),
        write: Vec::new(),
        out: out.clone(),
        review_min_interval: std::time::Duration::from_secs(10),
    };
    let result = replay::run(pipeline, &cfg, on_frame);
    let _ = std::fs::remove_dir_all(&out);
    let outcome = result?;
    let mut problems = outcome.failures.clone();
    problems.extend(outcome.warnings.iter().map(|w| format!("warning: {w}")));
    if let Some(stop) = outcome.stopped {
        problems.push(format!("{}: stopped early after {} frames: {stop}", bag.display(), outcome.frames));
    }
    Ok(problems)
}

fn calibrate(args: CalibrateArgs) -> Result<ExitCode, Fatal> {
    use pipeline_seg::calibrate::{self, CalFrame, Target};
    use pipeline_seg::uncertainty::ScoreMethod;
    let target = Target { max_good_flagged: args.max_good_flagged, min_bad_flagged: args.min_bad_flagged };
    for (name, v) in [("--max-good-flagged", target.max_good_flagged), ("--min-bad-flagged", target.min_bad_flagged)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Fatal(format!("{name} must be in [0, 1], not {v}")));
        }
    }
    let base = params(&args.shared)?;
    let total = check_bags(&args.bags, &[&args.topic, &args.gt_topic])?;
    let methods = [ScoreMethod::Mean, ScoreMethod::P95, ScoreMethod::FractionAbove, ScoreMethod::PipelineMean];
    let bar = progress(total as usize * methods.len(), "calibrate");
    let (mut rows, mut problems) = (Vec::new(), Vec::new());
    let mut in_force = None;
    for method in methods {
        // A fresh pipeline per method: same seed, so the same dropout masks and segmentations;
        // only the score (and so nothing else the sweep uses) differs.
        let mut p = base.clone();
        p.score_method = Some(method);
        let mut pipeline = Pipeline::new(&p)?;
        in_force.get_or_insert_with(|| pipeline.settings().clone());
        let mut frames = Vec::new();
        for bag in &args.bags {
            bar.set_message(format!("{} {}", method.name(), bag.display()));
            let problems_here = replay_rows(&mut pipeline, bag, &args.topic, Some(&args.gt_topic), "calibrate", &mut |row| {
                bar.inc(1);
                if let (Some(score), Some(m)) = (row.score, row.metrics) {
                    frames.push(CalFrame {
                        score,
                        bad: pipeline_seg::eval::is_bad(m.iou, m.gt_has_pipe, m.pred_has_pipe),
                        insane: row.decision.reason == pipeline_seg::gate::Reason::ImageQuality,
                    });
                }
            })?;
            if method == methods[0] {
                problems.extend(problems_here);
            }
        }
        if frames.is_empty() {
            bar.finish_and_clear();
            return Err(Fatal(format!("no frame of {} has ground truth on {}", args.topic, args.gt_topic)));
        }
        if method == methods[0] {
            let n_bad = frames.iter().filter(|f| f.bad).count();
            eprintln!("{} frames with ground truth: {} bad, {} good", frames.len(), n_bad, frames.len() - n_bad);
        }
        rows.push(calibrate::sweep(method, &frames, &target));
    }
    bar.finish_and_clear();
    let settings = in_force.expect("methods is not empty");
    let chosen = calibrate::choose(&rows).expect("rows is not empty");
    let row = rows[chosen];
    println!("{}", calibrate::table(&rows, Some(chosen)));
    let met = if row.meets { "met" } else { "NOT met (best bad_flagged - good_flagged trade-off instead)" };
    println!(
        "chosen: {} threshold_high {} threshold_low {}; target (bad_flagged >= {}, good_flagged <= {}) {met}",
        row.method.name(),
        calibrate::yaml_double(row.threshold_high),
        calibrate::yaml_double(row.threshold_low),
        target.min_bad_flagged,
        target.max_good_flagged
    );
    let mut header = vec!["Written by `pipeline_seg calibrate`; the gate defaults for this model on these bags.".to_string()];
    header.extend(args.bags.iter().map(|b| format!("bag: {} (topic {}, ground truth {})", b.display(), args.topic, args.gt_topic)));
    header.push(format!(
        "target: flag >= {} of bad frames, <= {} of good frames (score > threshold_high or insane; hysteresis not simulated): {met}",
        target.min_bad_flagged, target.max_good_flagged
    ));
    header.push(format!(
        "bad_flagged {}, good_flagged {}, samples {}, seed {}",
        row.bad_flagged.map_or("n/a".into(), |v| format!("{v:.3}")),
        row.good_flagged.map_or("n/a".into(), |v| format!("{v:.3}")),
        settings.samples,
        settings.seed
    ));
    let text = calibrate::parameter_file(&header, &row, settings.samples, settings.score.pixel_threshold, settings.score.band_px, settings.gate.recover_frames);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Fatal(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(&args.out, text).map_err(|e| Fatal(format!("cannot write {}: {e}", args.out.display())))?;
    eprintln!("parameter file: {}", args.out.display());
    for p in &problems {
        eprintln!("{p}");
    }
    Ok(if problems.iter().any(|p| !p.starts_with("warning: ")) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn select(args: SelectArgs) -> Result<ExitCode, Fatal> {
    use pipeline_seg::select::{pick, Candidate};
    if args.top_k == 0 {
        return Err(Fatal("--top-k must be at least 1".into()));
    }
    if !(args.min_gap >= 0.0 && args.min_gap.is_finite()) {
        return Err(Fatal(format!("--min-gap must be a non-negative number of seconds, not {}", args.min_gap)));
    }
    let params = params(&args.shared)?;
    let total = check_bags(&args.bags, &[&args.topic])?;
    std::fs::create_dir_all(&args.out).map_err(|e| Fatal(format!("cannot create {}: {e}", args.out.display())))?;
    let mut pipeline = Pipeline::new(&params)?;
    let method = pipeline.settings().score.method.name();
    let max_pixels = pipeline.settings().max_image_pixels;
    // Pass 1: every frame's score through replay; only (bag, stamp, score) is kept.
    let bar = progress(total as usize, "select: scoring");
    let (mut cands, mut problems) = (Vec::new(), Vec::new());
    for (i, bag) in args.bags.iter().enumerate() {
        let p = replay_rows(&mut pipeline, bag, &args.topic, None, "select", &mut |row| {
            bar.inc(1);
            let score = match args.by {
                ByArg::Mi => row.mi_score,
                ByArg::Entropy => row.score,
            };
            if let Some(score) = score {
                cands.push(Candidate { bag: i, stamp_ns: row.stamp_ns, score });
            }
        })?;
        problems.extend(p);
    }
    bar.finish_and_clear();
    let picked = pick(cands, args.top_k, (args.min_gap * 1e9).round() as i64);
    // Pass 2: read the chosen frames again and write them losslessly.
    let bar = progress(picked.len(), "select: writing");
    let mut written = HashSet::new();
    for (i, bag) in args.bags.iter().enumerate() {
        let want: HashSet<i64> = picked.iter().filter(|c| c.bag == i).map(|c| c.stamp_ns).collect();
        if want.is_empty() {
            continue;
        }
        let b = pipeline_seg::bag::read::open(bag).map_err(|e| Fatal(format!("cannot read bag: {e}")))?;
        for msg in b.messages(&[args.topic.as_str()]) {
            let Ok(msg) = msg else { break };
            let Ok(decoded) = pipeline_seg::bag::read::decode_frame(&msg) else { continue };
            let stamp = decoded.header().stamp.nanos();
            if !want.contains(&stamp) || written.contains(&(i, stamp)) {
                continue;
            }
            match decoded.decode(max_pixels) {
                Ok(frame) => {
                    let path = args.out.join(format!("{stamp}.png"));
                    render::write_png(&path, &frame.to_bgr(), frame.width, frame.height, 3).map_err(|e| Fatal(format!("{}: {e}", path.display())))?;
                    written.insert((i, stamp));
                    bar.inc(1);
                }
                Err(e) => problems.push(format!("{}: {e}", msg.pos())),
            }
            if written.iter().filter(|(b, _)| *b == i).count() == want.len() {
                break;
            }
        }
    }
    bar.finish_and_clear();
    let manifest = args.out.join("manifest.csv");
    let mut csv = String::from("bag,topic,stamp_ns,score\n");
    for c in picked.iter().filter(|c| written.contains(&(c.bag, c.stamp_ns))) {
        let bag = args.bags[c.bag].display().to_string();
        let bag = if bag.contains([',', '"']) { format!("\"{}\"", bag.replace('"', "\"\"")) } else { bag };
        csv += &format!("{bag},{},{},{}\n", args.topic, c.stamp_ns, c.score);
    }
    std::fs::write(&manifest, csv).map_err(|e| Fatal(format!("cannot write {}: {e}", manifest.display())))?;
    let by = match args.by {
        ByArg::Mi => "mutual information",
        ByArg::Entropy => "entropy",
    };
    eprintln!(
        "{} frames selected by {method} of the {by} (min gap {} s); outputs in {} (<stamp_ns>.png, manifest.csv)",
        written.len(),
        args.min_gap,
        args.out.display()
    );
    if written.len() < picked.len() {
        problems.push(format!("{} chosen frames could not be written", picked.len() - written.len()));
    }
    for p in &problems {
        eprintln!("{p}");
    }
    Ok(if problems.iter().any(|p| !p.starts_with("warning: ")) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
