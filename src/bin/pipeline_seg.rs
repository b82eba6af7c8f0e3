//! `pipeline_seg`: run the segmentation engine on files (`infer`), on a bag (`replay`) or time it
//! (`bench`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline_seg::engine::processor::{FrameProcessor, LoopOptions};
use pipeline_seg::eval::{bench, calibrate, infer, replay, select, Problem, Progress};
use pipeline_seg::outputs::Topic;
use pipeline_seg::{Params, Pipeline, Resolution};

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
    p.model_path = shared.model.clone().or(p.model_path);
    p.samples = shared.samples.or(p.samples);
    p.seed = shared.seed.unwrap_or(p.seed);
    if let Some(d) = &shared.device {
        p.device = d.parse()?;
    }
    p.allow_cpu_fallback |= shared.allow_cpu_fallback;
    p.intra_threads = shared.threads.unwrap_or(p.intra_threads);
    Ok(p)
}

/// The library's progress as an indicatif bar (a spinner when the total is unknown).
#[derive(Default)]
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, what: &str, total: Option<u64>) {
        let (bar, template) = match total {
            Some(n) if n > 0 => (ProgressBar::new(n), format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}} {{msg}}")),
            _ => (ProgressBar::new_spinner(), format!("{{spinner}} {what} {{pos}} frames {{per_sec}} {{elapsed}} {{msg}}")),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        self.0 = Some(bar);
    }
    fn step(&mut self, note: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(note.to_string());
            bar.inc(1);
        }
    }
    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Infer(args) => infer(args),
        Command::Bench(args) => bench(args),
        Command::Replay(args) => replay(args),
        Command::Calibrate(args) => calibrate(args),
        Command::Select(args) => select(args),
    };
    result.unwrap_or_else(|Fatal(msg)| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    })
}

/// Prints the problems; exit 1 if any is more than a warning.
fn report(problems: &[Problem]) -> ExitCode {
    for p in problems {
        eprintln!("{p}");
    }
    if problems.iter().any(|p| !p.is_warning()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn infer(args: InferArgs) -> Result<ExitCode, Fatal> {
    let resolution = match args.resolution {
        ResolutionArg::Input => Resolution::Input,
        ResolutionArg::Model => Resolution::Model,
    };
    let cfg = infer::InferConfig { inputs: args.inputs, out: args.out, resolution, save_samples: args.save_samples };
    let summary = infer::run(&params(&args.shared)?, &cfg, &mut Bar::default())?;
    let ok = summary.frames.len() - summary.failures.len();
    eprintln!("{ok}/{} frames segmented; outputs in {} (summary.json)", summary.frames.len(), cfg.out.display());
    for f in &summary.failures {
        eprintln!("failed: {f}");
    }
    Ok(if summary.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn bench(args: BenchArgs) -> Result<ExitCode, Fatal> {
    let params = params(&args.shared)?;
    let (bytes, name) = match &args.input {
        Some(p) => (std::fs::read(p).map_err(|e| Fatal(format!("{}: {e}", p.display())))?, p.display().to_string()),
        None => (BENCH_FRAME.to_vec(), "bundled val/00000.jpg".to_string()),
    };
    let report = bench::run(&params, &bytes, &name, args.frames, args.one_pass_per_sample, &mut Bar::default())?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

fn replay(args: ReplayArgs) -> Result<ExitCode, Fatal> {
    let params = params(&args.shared)?;
    let write = args.write.as_deref().map_or(Ok(Topic::ALL.to_vec()), Topic::parse_list)?;
    let cfg = replay::ReplayConfig { bag: args.bag, topic: args.topic, gt_topic: args.gt_topic, write, out: args.out };
    // Fail on a missing or unreadable bag before loading the model.
    replay::BagFrames::open(&cfg.bag, &cfg.topic, cfg.gt_topic.as_deref())?;
    let mut processor = FrameProcessor::new(Pipeline::new(&params)?, LoopOptions::default());
    let mut bar = Bar::default();
    bar.start("replay", replay::expected_messages(&cfg.bag, &cfg.topic));
    let started = Instant::now();
    let outcome = replay::run(&mut processor, &cfg, &mut |row| bar.step(row.decision.reason.name()))?;
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} frames ({} with ground truth, {} decode errors, {} inference errors) in {secs:.1} s ({:.2} frames/s); outputs in {} \
         (output/, frames.csv, metrics.json, report.html)",
        outcome.frames,
        outcome.frames_with_gt,
        outcome.decode_errors,
        outcome.inference_errors,
        outcome.frames as f64 / secs.max(1e-9),
        outcome.out.display()
    );
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    for f in &outcome.failures {
        eprintln!("failed: {f}");
    }
    if let Some(error) = outcome.error() {
        eprintln!("error: replay stopped early after {} frames: {error}", outcome.frames);
        return Ok(ExitCode::from(if outcome.frames == 0 { 2 } else { 1 }));
    }
    Ok(if outcome.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn calibrate(args: CalibrateArgs) -> Result<ExitCode, Fatal> {
    let target = calibrate::Target { max_good_flagged: args.max_good_flagged, min_bad_flagged: args.min_bad_flagged };
    let cfg = calibrate::CalibrateConfig { bags: args.bags, topic: args.topic, gt_topic: args.gt_topic, target, out: args.out };
    let cal = calibrate::run(&params(&args.shared)?, &cfg, &mut Bar::default())?;
    eprintln!("{} frames with ground truth: {} bad, {} good", cal.frames, cal.bad, cal.frames - cal.bad);
    println!("{}", calibrate::table(&cal.rows, Some(cal.chosen)));
    let row = cal.row();
    println!(
        "chosen: {} threshold_high {} threshold_low {}; target (bad_flagged >= {}, good_flagged <= {}) {}",
        row.method.name(),
        pipeline_seg::num::yaml_double(row.threshold_high),
        pipeline_seg::num::yaml_double(row.threshold_low),
        target.min_bad_flagged,
        target.max_good_flagged,
        calibrate::met(row)
    );
    eprintln!("parameter file: {}", cfg.out.display());
    Ok(report(&cal.problems))
}

fn select(args: SelectArgs) -> Result<ExitCode, Fatal> {
    let by = match args.by {
        ByArg::Mi => select::By::Mi,
        ByArg::Entropy => select::By::Entropy,
    };
    let cfg = select::SelectConfig { bags: args.bags, topic: args.topic, top_k: args.top_k, min_gap_s: args.min_gap, by, out: args.out };
    let sel = select::run(&params(&args.shared)?, &cfg, &mut Bar::default())?;
    eprintln!(
        "{} frames selected by {} of the {} (min gap {} s); outputs in {} (<stamp_ns>.png, manifest.csv)",
        sel.written.len(),
        sel.method,
        by.describe(),
        cfg.min_gap_s,
        cfg.out.display()
    );
    Ok(report(&sel.problems))
}
