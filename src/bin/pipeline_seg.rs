//! `pipeline_seg`: run the segmentation engine on files (`infer`), on a bag (`replay`) or time it
//! (`bench`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline_seg::engine::processor::{FrameProcessor, LoopOptions};
use pipeline_seg::eval::{bench, calibrate, infer, replay, select, state, Problem, Progress};
use pipeline_seg::outputs::{Topic, TopicSet};
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
    /// Run every frame of a bag topic through model and gate; write the node's topics, frames.csv, metrics.json, state.json.
    Replay(ReplayArgs),
    /// Combine replay runs (one per bag, e.g. from a cluster) into metrics.json, frames.csv and report.html of them all.
    Merge(MergeArgs),
    /// Choose score_method and thresholds from labelled bags; print the trade-off, write a parameter file.
    Calibrate(CalibrateArgs),
    /// Export the K most uncertain frames of bags as PNGs plus manifest.csv for labelling.
    Select(SelectArgs),
    /// Make an output bag of a killed replay whole: cut after its last complete chunk, close it, write metadata.yaml.
    Reindex(ReindexArgs),
}

/// Flags of every subcommand that runs the model.
#[derive(Args)]
struct Shared {
    /// ONNX model (default: the installed package's, else models/ of the checkout).
    #[arg(long)]
    model: Option<PathBuf>,
    /// MC-Dropout samples T per frame at most (default: the model's default_samples).
    #[arg(long)]
    samples: Option<usize>,
    /// Samples before the first look at whether a frame is settled, and between looks
    /// (default 4; ≥ --samples draws every sample).
    #[arg(long)]
    min_samples: Option<usize>,
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

#[derive(Args)]
struct InferArgs {
    #[command(flatten)]
    shared: Shared,
    /// Resolution of the written maps.
    #[arg(long, default_value = "input", value_parser = ["input", "model"])]
    resolution: String,
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
    /// Run the whole network once per sample (the baseline of the shared-trunk graph).
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
    /// Comma-separated output topics to write (e.g. mask,confidence, or all; default:
    /// confident,confidence,mask,entropy_color,review,review/image, ~0.2 MB per 640x480 frame).
    #[arg(long)]
    write: Option<String>,
    /// Output directory (created if missing; DIR/output must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    /// The bags: directories with metadata.yaml, or .mcap/.db3 files; replayed in this order, the
    /// gate starting over at each.
    #[arg(required = true)]
    bags: Vec<PathBuf>,
}

#[derive(Args)]
struct MergeArgs {
    /// Output directory (created if missing): metrics.json, frames.csv, report.html, state.json.
    #[arg(long)]
    out: PathBuf,
    /// Replay output directories (each with state.json), merged in this order.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

/// The bags and camera topic of `calibrate` and `select`.
#[derive(Args)]
struct Bags {
    /// Camera topic (sensor_msgs/msg/Image or CompressedImage).
    #[arg(long)]
    topic: String,
    /// The bags: directories with metadata.yaml, or .mcap/.db3 files; or replay output
    /// directories (with state.json), whose recorded frames are used without replaying again.
    #[arg(required = true)]
    bags: Vec<PathBuf>,
}

#[derive(Args)]
struct CalibrateArgs {
    #[command(flatten)]
    shared: Shared,
    #[command(flatten)]
    bags: Bags,
    /// Ground-truth mask topic (mono8, 0/255), matched to frames by header stamp.
    #[arg(long)]
    gt_topic: String,
    /// Largest acceptable fraction of good frames flagged.
    #[arg(long, default_value_t = 0.1)]
    max_good_flagged: f64,
    /// Smallest acceptable fraction of bad frames flagged.
    #[arg(long, default_value_t = 0.9)]
    min_bad_flagged: f64,
    /// Choose by a bound instead of the flagging target: the loosest threshold_high whose
    /// Clopper-Pearson upper bound on P(bad | confident) is <= this (alone: 0.05).
    #[arg(long, num_args = 0..=1, default_missing_value = "0.05")]
    max_risk: Option<f64>,
    /// With --max-risk: the bound holds with confidence 1 - delta.
    #[arg(long, default_value_t = 0.1)]
    delta: f64,
    /// With --max-risk: frames of a bag closer than this [s] count as one trial of the bound.
    #[arg(long, default_value_t = 2.0)]
    min_gap: f64,
    /// Refit the trust score on these bags and write it as trust_model.
    #[arg(long)]
    fit_trust: bool,
    /// Parameter file to write (ROS 2 format, docs/interfaces.md §5).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ReindexArgs {
    /// The bag directory (a replay's DIR/output).
    bag: PathBuf,
}

#[derive(Args)]
struct SelectArgs {
    #[command(flatten)]
    shared: Shared,
    #[command(flatten)]
    bags: Bags,
    /// Number of frames to export.
    #[arg(long)]
    top_k: usize,
    /// No two picks of one bag closer than this [s, header stamps].
    #[arg(long, default_value_t = 2.0)]
    min_gap: f64,
    /// The map that score_method is applied to.
    #[arg(long, default_value = "mi", value_parser = ["mi", "entropy"])]
    by: String,
    /// Output directory (created if missing): <stamp_ns>.png and manifest.csv.
    #[arg(long)]
    out: PathBuf,
}

/// A fatal error: exit code 2 (docs/interfaces.md §6).
type Fatal = anyhow::Error;

fn params(shared: &Shared) -> Result<Params, Fatal> {
    let mut p = Params::default();
    if let Some(cfg) = &shared.config {
        p.apply_file(cfg)?;
    }
    p.model_path = shared.model.clone().or(p.model_path);
    p.samples = shared.samples.or(p.samples);
    p.min_samples = shared.min_samples.unwrap_or(p.min_samples);
    p.seed = shared.seed.unwrap_or(p.seed);
    p.device = shared.device.as_deref().map(str::parse).transpose()?.unwrap_or(p.device);
    p.allow_cpu_fallback |= shared.allow_cpu_fallback;
    p.intra_threads = shared.threads.unwrap_or(p.intra_threads);
    Ok(p)
}

/// The library's progress as an indicatif bar (a spinner when the total is unknown).
#[derive(Default)]
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, what: &str, total: Option<u64>) {
        let bar = total.filter(|&n| n > 0).map_or_else(ProgressBar::new_spinner, ProgressBar::new);
        let template = match bar.length() {
            Some(_) => format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}} {{msg}}"),
            None => format!("{{spinner}} {what} {{pos}} frames {{per_sec}} {{elapsed}} {{msg}}"),
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
    // First Ctrl-C: finish the outputs of what was processed; a second one exits at once.
    let flag = pipeline_seg::eval::interrupt_flag();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    let result = match Cli::parse().command {
        Command::Infer(args) => infer(args),
        Command::Bench(args) => bench(args),
        Command::Replay(args) => replay(args),
        Command::Merge(args) => merge(args),
        Command::Calibrate(args) => calibrate(args),
        Command::Select(args) => select(args),
        Command::Reindex(args) => reindex(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Prints the process's peak resident memory (Linux's VmHWM): what a vehicle computer must hold
/// for this run. A parent's rusage would not do: it counts the memory of the process that forked us.
fn print_peak_memory() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok());
    if let Some(kb) = kb {
        eprintln!("peak memory: {:.1} MB", kb as f64 / 1024.0);
    }
}

/// Prints the problems; exit 1 if any is more than a warning.
fn report(problems: &[Problem]) -> ExitCode {
    problems.iter().for_each(|p| eprintln!("{p}"));
    ExitCode::from(problems.iter().any(|p| !p.is_warning()) as u8)
}

fn infer(args: InferArgs) -> Result<ExitCode, Fatal> {
    let resolution: Resolution = args.resolution.parse()?;
    let cfg = infer::InferConfig { inputs: args.inputs, out: args.out, resolution, save_samples: args.save_samples };
    let summary = infer::run(&params(&args.shared)?, &cfg, &mut Bar::default())?;
    eprintln!("{summary}");
    print_peak_memory();
    summary.failures.iter().for_each(|f| eprintln!("failed: {f}"));
    Ok(ExitCode::from(!summary.failures.is_empty() as u8))
}

fn bench(args: BenchArgs) -> Result<ExitCode, Fatal> {
    let (n, one_pass) = (args.frames, args.one_pass_per_sample);
    let report = bench::run(&params(&args.shared)?, args.input.as_deref(), n, one_pass, &mut Bar::default())?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

fn replay(args: ReplayArgs) -> Result<ExitCode, Fatal> {
    let params = params(&args.shared)?;
    let write = args.write.as_deref().map_or(Ok(TopicSet::CAMPAIGN), |l| Topic::parse_list(l).map(TopicSet::of))?;
    let cfg =
        replay::ReplayConfig { bags: args.bags, topic: args.topic, gt_topic: args.gt_topic, write, out: args.out };
    // Fail on a missing or unreadable bag before loading the model.
    let mut total = Some(0);
    for bag in &cfg.bags {
        replay::BagFrames::open(bag, &cfg.topic, cfg.gt_topic.as_deref())?;
        total = total.zip(replay::expected_messages(bag, &cfg.topic)).map(|(a, b)| a + b);
    }
    let mut processor = FrameProcessor::new(Pipeline::new(&params)?, LoopOptions::default());
    let mut bar = Bar::default();
    bar.start("replay", total);
    let started = Instant::now();
    let outcome = replay::run(&mut processor, &cfg, &mut |row| bar.step(row.decision.reason.name()))?;
    bar.finish();
    eprintln!("{}", outcome.summary(started.elapsed().as_secs_f64()));
    print_peak_memory();
    outcome.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
    outcome.failures.iter().for_each(|f| eprintln!("failed: {f}"));
    if matches!(outcome.stopped, Some(replay::Stop::Interrupted)) && outcome.finish_errors.is_empty() {
        eprintln!("interrupted after {} frames: outputs written for them in {}", outcome.frames, outcome.out.display());
        return Ok(ExitCode::from(130));
    }
    if let Some(error) = outcome.error() {
        eprintln!("error: replay stopped early after {} frames: {error}", outcome.frames);
        return Ok(ExitCode::from(if outcome.frames == 0 { 2 } else { 1 }));
    }
    Ok(ExitCode::from(!outcome.failures.is_empty() as u8))
}

fn merge(args: MergeArgs) -> Result<ExitCode, Fatal> {
    let merged = state::merge(&args.runs, &args.out)?;
    let m = merged.state.metrics();
    eprintln!(
        "merged {} runs: {} bags, {} frames ({} with ground truth); outputs in {} (metrics.json, frames.csv, report.html, state.json)",
        args.runs.len(),
        merged.state.bags.len(),
        m.frames,
        m.frames_with_gt,
        args.out.display()
    );
    merged.errors.iter().for_each(|e| eprintln!("error: {e}"));
    if let Some(e) = &m.error {
        eprintln!("warning: some runs did not finish their bags: {e}");
    }
    Ok(ExitCode::from(!merged.errors.is_empty() as u8))
}

fn reindex(args: ReindexArgs) -> Result<ExitCode, Fatal> {
    for f in replay::reindex(&args.bag)? {
        let what = if f.complete {
            "complete, left as it was".to_string()
        } else {
            format!("closed, {} bytes cut", f.cut_bytes)
        };
        eprintln!("{}: {} messages ({what})", f.file.display(), f.messages);
    }
    eprintln!("wrote {}", args.bag.join("metadata.yaml").display());
    Ok(ExitCode::SUCCESS)
}

fn calibrate(args: CalibrateArgs) -> Result<ExitCode, Fatal> {
    let rule = match args.max_risk {
        Some(max_risk) => {
            calibrate::Rule::Risk(calibrate::RiskTarget { max_risk, delta: args.delta, min_gap_s: args.min_gap })
        }
        None => calibrate::Rule::Target(calibrate::Target {
            max_good_flagged: args.max_good_flagged,
            min_bad_flagged: args.min_bad_flagged,
        }),
    };
    let cfg = calibrate::CalibrateConfig {
        bags: args.bags.bags,
        topic: args.bags.topic,
        gt_topic: args.gt_topic,
        rule,
        fit_trust: args.fit_trust,
        out: args.out,
    };
    let cal = calibrate::run(&params(&args.shared)?, &cfg, &mut Bar::default())?;
    eprintln!("{} frames with ground truth: {} bad, {} good", cal.frames, cal.bad, cal.frames - cal.bad);
    println!("{cal}");
    eprintln!("parameter file: {}", cfg.out.display());
    let code = report(&cal.problems);
    // A bound that is not met is a failed calibration (docs/interfaces.md §9): exit 1, file written.
    let unmet = matches!(cfg.rule, calibrate::Rule::Risk(_)) && !cal.met();
    Ok(if unmet { ExitCode::from(1) } else { code })
}

fn select(args: SelectArgs) -> Result<ExitCode, Fatal> {
    let cfg = select::SelectConfig {
        bags: args.bags.bags,
        topic: args.bags.topic,
        top_k: args.top_k,
        min_gap_s: args.min_gap,
        by: args.by.parse()?,
        out: args.out,
    };
    let sel = select::run(&params(&args.shared)?, &cfg, &mut Bar::default())?;
    eprintln!("{sel}");
    Ok(report(&sel.problems))
}
