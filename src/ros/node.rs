//! `pipeline_seg_node`: camera frames in; mask, uncertainty maps, confidence, review requests
//! and diagnostics out (docs/interfaces.md §3–4).
//!
//! Threads: the spin thread only moves messages (`spin_once`); a tokio task drains the input
//! stream into a one-frame slot (older frames are dropped and counted); the inference thread
//! takes the newest frame, runs the pipeline and publishes; a timer task publishes staleness
//! and 1 Hz diagnostics; a parameter task validates run-time changes.
//!
//! With `managed:=true` the node is a ROS 2 managed (lifecycle) node ([`crate::lifecycle`]): it
//! starts unconfigured, without model or input subscription; a lifecycle task serves the
//! `lifecycle_msgs` services and runs the transitions (docs/interfaces.md §10).

use std::collections::{HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use r2r::diagnostic_msgs::msg::DiagnosticArray;
use r2r::sensor_msgs::msg::{CompressedImage, Image};
use r2r::std_msgs::msg::Bool;
use r2r::{Publisher, QosProfile, RosParams};

use super::managed::{not_active, LifecycleServices, Managed};
use super::msgs::{bool_out, compressed_in, diagnostics_out, image_out, raw_in};
use super::params::{describe_r2r_error, NodeParams, NodeSettings, Validated, FROM_MODEL};
use crate::engine::config::{Params, Settings};
use crate::engine::gate::Reason;
use crate::engine::pipeline::Pipeline;
use crate::engine::processor::{Arrival, FrameFailure, FrameProcessor, FrameResult, LoopOptions, Source};
use crate::lifecycle::{self, Machine};
use crate::msg::{FrameMsg, Header};
use crate::num::{percentile, short};
use crate::outputs::{self, diagnostic, diagnostic_of, Message, Topic, TopicSet};
use crate::view::review;

pub(super) const NODE: &str = "pipeline_seg_node";

/// Locks a mutex, taking the data even if a thread panicked while holding it.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A publisher of one of the node's topics.
enum Out {
    Bool(Publisher<Bool>),
    Image(Publisher<Image>),
    Diagnostic(Publisher<DiagnosticArray>),
}

/// Every publisher of the node: one per [`Topic`], in [`Topic::ALL`] order, and `/diagnostics`.
struct Outputs {
    topics: Vec<(Topic, Out)>,
    diagnostics: Publisher<DiagnosticArray>,
}

impl Outputs {
    /// Publishes `msg` on `topic`; a message of the wrong kind is a bug and is dropped.
    fn publish(&self, topic: Topic, msg: Message) {
        let Some((_, out)) = self.topics.iter().find(|(t, _)| *t == topic) else { return };
        let _ = match (out, msg) {
            (Out::Bool(p), Message::Bool(m)) => p.publish(&bool_out(m)),
            (Out::Image(p), Message::Image(m)) => p.publish(&image_out(m)),
            (Out::Diagnostic(p), Message::Diagnostic(m)) => p.publish(&diagnostics_out(m)),
            _ => Ok(()),
        };
    }

    fn publish_all(&self, msgs: impl IntoIterator<Item = (Topic, Message)>) {
        for (topic, msg) in msgs {
            self.publish(topic, msg);
        }
    }

    /// Whether anyone listens on an image topic (rendering costs are skipped otherwise).
    fn subscribed(&self, topic: Topic) -> bool {
        match self.topics.iter().find(|(t, _)| *t == topic) {
            Some((_, Out::Image(p))) => p.get_inter_process_subscription_count().unwrap_or(1) > 0,
            _ => true,
        }
    }
}

/// The newest unprocessed frame; a new one replaces (drops) an older one.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) frame: Mutex<Option<(FrameMsg, Instant)>>,
    pub(super) ready: Condvar,
}

/// Counters and the latency window for diagnostics.
#[derive(Default)]
struct Stats {
    received: AtomicU64,
    processed: AtomicU64,
    dropped: AtomicU64,
    decode_errors: AtomicU64,
    inference_errors: AtomicU64,
    latencies_ms: Mutex<VecDeque<f64>>,
}

/// What the timer and the worker share.
pub(super) struct State {
    /// Header of the last frame received (for stale messages).
    pub(super) last_header: Header,
    /// Arrival of the frame behind the current decision.
    pub(super) decided_at: Option<Instant>,
    /// Arrival of the last frame received.
    pub(super) last_arrival: Option<Instant>,
    pub(super) stale: bool,
    pub(super) last_stale_publish: Option<Instant>,
    /// Managed node: why the last configure failed (cleared when one succeeds).
    pub(super) configure_error: Option<String>,
    /// Managed node: when it last became active (staleness counts from there).
    pub(super) active_since: Option<Instant>,
    /// The settings in force; none while a managed node has no model (unconfigured).
    pub(super) settings: Option<Settings>,
    pub(super) node: NodeSettings,
    /// The topics the `publish_*` parameters leave on.
    pub(super) publish: TopicSet,
    /// Execution provider and model file of the loaded model (empty without one).
    pub(super) provider: &'static str,
    pub(super) model: String,
}

pub(super) struct Shared {
    /// r2r publishers are Send but not Sync.
    out: Mutex<Outputs>,
    pub(super) slot: Slot,
    stats: Stats,
    pub(super) state: Mutex<State>,
    pub(super) shutdown: AtomicBool,
    /// Settings and options for the worker's processor, from a run-time parameter change.
    pub(super) pending_settings: Mutex<Option<(Settings, LoopOptions)>>,
    /// The timer published a stale decision: the gate's recovery starts over.
    pub(super) went_stale: AtomicBool,
    /// The worker's frame processor (model and gate); none while a managed node is
    /// unconfigured. The worker holds the lock while it processes and publishes a frame.
    pub(super) processor: Mutex<Option<FrameProcessor>>,
    /// The `lifecycle_msgs/msg/State` id: always active for an unmanaged node. Frames are
    /// processed only while active.
    pub(super) lifecycle: AtomicU8,
    /// The node's fully qualified name (`/rov1/pipeline_seg_node`): the `/diagnostics` status name.
    pub(super) fqn: String,
    /// The review clock's origin.
    pub(super) started: Instant,
    /// Review bundles that could not be saved: last log line, failures since.
    pub(super) review_errors: Mutex<(Option<Instant>, u64)>,
}

pub(super) fn loop_options(node: &NodeSettings) -> LoopOptions {
    LoopOptions { stale_timeout: Some(node.stale_timeout), ..LoopOptions::default() }
}

/// Runs the node; the exit code is 2 for a bad parameter or model.
pub fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("[{NODE}] error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn qos_input(n: &NodeSettings) -> QosProfile {
    let q = QosProfile::sensor_data().keep_last(n.depth);
    if n.reliable {
        q.reliable()
    } else {
        q.best_effort()
    }
}

/// A stream of input frames.
pub(super) type Frames = std::pin::Pin<Box<dyn futures::Stream<Item = FrameMsg> + Send>>;

/// The node's parameter table (`ros2 param get` reads it).
pub(super) type ParamTable = Arc<Mutex<r2r::indexmap::IndexMap<String, r2r::Parameter>>>;

/// What only the spin thread, which owns the node, can do.
pub(super) enum NodeCmd {
    /// Subscribe to the input (a managed node's activate).
    Subscribe(tokio::sync::oneshot::Sender<Result<Frames, String>>),
}

/// The input topic and its type name.
fn input_topic(n: &NodeSettings) -> (&'static str, &'static str) {
    if n.compressed {
        ("~/image/compressed", "sensor_msgs/msg/CompressedImage")
    } else {
        ("~/image", "sensor_msgs/msg/Image")
    }
}

fn subscribe_input(node: &mut r2r::Node, n: &NodeSettings) -> Result<Frames, String> {
    let (topic, _) = input_topic(n);
    let input_qos = qos_input(n);
    Ok(if n.compressed {
        let s = node.subscribe::<CompressedImage>(topic, input_qos).map_err(|e| format!("subscribe {topic}: {e}"))?;
        Box::pin(s.map(compressed_in))
    } else {
        let s = node.subscribe::<Image>(topic, input_qos).map_err(|e| format!("subscribe {topic}: {e}"))?;
        Box::pin(s.map(raw_in))
    })
}

/// Loads and checks the model: the unmanaged node's start-up and the managed node's configure.
/// Writes the model's calibrated values back into the parameters nobody set.
pub(super) fn load_model(
    table: &ParamTable,
    params: &Arc<Mutex<Validated>>,
    lib_params: &Params,
) -> Result<Pipeline, String> {
    let pipeline = Pipeline::new(lib_params).map_err(|e| e.to_string())?;
    let settings = pipeline.settings().clone();
    write_back_model_defaults(table, params, &settings);
    let mut p = lock(params);
    p.base = Some(settings);
    p.unloaded = false;
    Ok(pipeline)
}

fn run() -> Result<(), String> {
    let ctx = r2r::Context::create().map_err(|e| format!("ROS 2 context: {e}"))?;
    let mut node = r2r::Node::create(ctx, NODE, "").map_err(|e| format!("ROS 2 node: {e}"))?;
    let set_by_user: HashSet<String> = lock(&node.params).keys().cloned().collect();
    let params = Arc::new(Mutex::new(Validated::new(NodeParams::default())));
    let (param_handler, param_events) =
        node.make_derived_parameter_handler(params.clone()).map_err(|e| describe_r2r_error(&e))?;
    let known: HashSet<&str> =
        crate::engine::config::PARAM_NAMES.iter().chain(crate::engine::config::NODE_ONLY).copied().collect();
    for unknown in set_by_user.iter().filter(|n| !known.contains(n.as_str())) {
        r2r::log_warn!(NODE, "parameter '{unknown}' is not one of this node's; ignored");
    }

    // Check everything before the first subscription, so a bad value stops the node at once.
    let (lib_params, node_settings, managed) = {
        let mut v = lock(&params);
        v.set_by_user = set_by_user.clone();
        let p = &mut v.params;
        let lib = p.library_params(&set_by_user).map_err(|e| e.to_string())?;
        (lib, p.node_settings().map_err(|e| e.to_string())?, p.managed)
    };
    // The deadline is offered once, at start: an automatic one is fixed now, so a later change
    // of stale_timeout_ms is checked against the deadline subscribers already hold.
    fix_deadline(&mut node, &params);
    let table = node.params.clone();
    // A managed node loads its model at configure; model parameters may change until then.
    let pipeline = if managed {
        lock(&params).unloaded = true;
        None
    } else {
        Some(load_model(&table, &params, &lib_params)?)
    };
    let settings = pipeline.as_ref().map(|p| p.settings().clone());
    let publish = lock(&params).params.publish_topics();

    let out = create_outputs(&mut node, &node_settings).map_err(|e| format!("cannot create publishers: {e}"))?;
    let (topic, type_name) = input_topic(&node_settings);
    let frames = if managed { None } else { Some(subscribe_input(&mut node, &node_settings)?) };
    let own_topic = format!("{}/{}", node.fully_qualified_name().unwrap_or_default(), topic.trim_start_matches("~/"));
    let full_topic = remapped(&[topic, &own_topic]).unwrap_or(own_topic);
    let (provider, model) = pipeline
        .as_ref()
        .map_or(("", String::new()), |p| (p.model.execution_provider, p.model.path.display().to_string()));
    let shared = Arc::new(Shared {
        out: Mutex::new(out),
        slot: Slot::default(),
        stats: Stats::default(),
        state: Mutex::new(State {
            last_header: Header::default(),
            decided_at: None,
            last_arrival: None,
            stale: false,
            last_stale_publish: None,
            configure_error: None,
            active_since: None,
            settings: settings.clone(),
            node: node_settings.clone(),
            publish,
            provider,
            model: model.clone(),
        }),
        shutdown: AtomicBool::new(false),
        pending_settings: Mutex::new(None),
        went_stale: AtomicBool::new(false),
        processor: Mutex::new(pipeline.map(|p| FrameProcessor::new(p, loop_options(&node_settings)))),
        lifecycle: AtomicU8::new(if managed { lifecycle::UNCONFIGURED.id } else { lifecycle::ACTIVE.id }),
        fqn: node.fully_qualified_name().unwrap_or_else(|_| format!("/{NODE}")),
        started: Instant::now(),
        review_errors: Mutex::new((None, 0)),
    });
    let services = if managed { Some(LifecycleServices::create(&mut node)?) } else { None };
    lock(&shared.out).publish(Topic::Confident, Message::Bool(crate::msg::Bool { data: false }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // Handlers before "ready": a SIGINT right after start must still end in the fail-safe path.
    // SIGINT from ros2 launch or Ctrl-C, SIGTERM from a service manager.
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        let _rt = runtime.enter();
        let handler = |kind| signal(kind).map_err(|e| format!("signal handler: {e}"));
        (handler(SignalKind::interrupt())?, handler(SignalKind::terminate())?)
    };
    let reliability = if node_settings.reliable { "reliable" } else { "best effort" };
    let outputs_under = &shared.fqn;
    let ort = crate::engine::model::onnxruntime_library().unwrap_or("?");
    if let Some(settings) = &settings {
        r2r::log_info!(
            NODE,
            "ready: input {full_topic} ({type_name}, {reliability}), outputs under {outputs_under}/; model {model} on {provider}, T = {}, {} high {} low {}; ONNX Runtime {ort}",
            settings.samples,
            settings.score.method.name(),
            settings.gate.threshold_high,
            settings.gate.threshold_low
        );
    } else {
        r2r::log_info!(
            NODE,
            "ready (managed, unconfigured): input {full_topic} ({type_name}, {reliability}) once active, outputs under \
             {outputs_under}/; the model is loaded at configure"
        );
    }

    // Every entity exists now: the node moves into its own thread, which only spins (and
    // subscribes when a managed node's activate asks).
    let (commands, command_rx) = std::sync::mpsc::channel::<NodeCmd>();
    let spin = {
        let shared = shared.clone();
        let input = node_settings.clone();
        std::thread::Builder::new()
            .name("ros_spin".into())
            .spawn(move || {
                while !shared.shutdown.load(Ordering::Relaxed) {
                    node.spin_once(Duration::from_millis(20));
                    while let Ok(NodeCmd::Subscribe(reply)) = command_rx.try_recv() {
                        let _ = reply.send(subscribe_input(&mut node, &input));
                    }
                }
                // Let the last messages (confident = false) leave before the node goes.
                node.spin_once(Duration::from_millis(100));
            })
            .map_err(|e| e.to_string())?
    };
    let worker = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || inference_loop(&shared))
            .map_err(|e| e.to_string())?
    };
    lock(&params).on_change = Some(Box::new({
        let shared = shared.clone();
        move |p: &Validated| apply_change(&shared, p)
    }));
    runtime.spawn(param_handler);
    if let Some(frames) = frames {
        runtime.spawn(drain(frames, shared.clone()));
    }
    let finalized = Arc::new(tokio::sync::Notify::new());
    if let Some(services) = services {
        let managed = Managed {
            shared: shared.clone(),
            params: params.clone(),
            table,
            machine: Arc::new(Mutex::new(Machine::default())),
            commands,
            drain: None,
            finalized: finalized.clone(),
        };
        services.spawn(&runtime, managed);
    }
    runtime.spawn(param_changes(param_events, params));
    runtime.spawn(timers(shared.clone(), full_topic, type_name));
    runtime.block_on(async {
        tokio::select! { _ = interrupt.recv() => {}, _ = terminate.recv() => {}, _ = finalized.notified() => {} }
    });

    // Fail safe on the way out: nobody may keep following a mask from a node that is gone.
    shared.shutdown.store(true, Ordering::Relaxed);
    shared.slot.ready.notify_all();
    let header = lock(&shared.state).last_header.clone();
    publish_stale(&shared, &header);
    let _ = worker.join();
    let _ = spin.join();
    runtime.shutdown_timeout(Duration::from_millis(200));
    r2r::log_info!(NODE, "shut down; published confident = false");
    Ok(())
}

fn create_outputs(node: &mut r2r::Node, settings: &NodeSettings) -> r2r::Result<Outputs> {
    use crate::msg::cdr::CdrMessage;
    let mut topics = Vec::new();
    for t in Topic::ALL {
        let q = t.qos();
        let qos = QosProfile::default().keep_last(q.depth as usize);
        let qos = if q.reliable { qos.reliable() } else { qos.best_effort() };
        let mut qos = if q.transient_local { qos.transient_local() } else { qos.volatile() };
        if matches!(t, Topic::Confident | Topic::Confidence) {
            // A gate that goes quiet loudly: a subscriber is told when the node dies (lease) or
            // stops deciding (deadline; the stale timer publishes well within it).
            qos = qos
                .liveliness(r2r::qos::LivelinessPolicy::Automatic)
                .liveliness_lease_duration(settings.liveliness_lease)
                .deadline(settings.deadline);
        }
        let name = t.private();
        let out = match t.type_name() {
            crate::msg::Bool::TYPE_NAME => Out::Bool(node.create_publisher(&name, qos)?),
            crate::msg::Image::TYPE_NAME => Out::Image(node.create_publisher(&name, qos)?),
            _ => Out::Diagnostic(node.create_publisher(&name, qos)?),
        };
        topics.push((t, out));
    }
    Ok(Outputs { topics, diagnostics: node.create_publisher("/diagnostics", QosProfile::default())? })
}

/// Where a command-line remap rule (`-r [node:]from:=to`, as ros2 launch passes them) sends one
/// of `names`: r2r does not expose the resolved name, and the logs must name the real topic.
fn remapped(names: &[&str]) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let start = args.iter().position(|a| a == "--ros-args")?;
    let rules = args[start..].windows(2).filter(|w| w[0] == "-r" || w[0] == "--remap").map(|w| &w[1]);
    rules.filter_map(|rule| rule.split_once(":=")).find_map(|(from, to)| {
        let from = if from.starts_with('~') || from.starts_with('/') {
            from
        } else {
            from.split_once(':').map_or(from, |(_, f)| f)
        };
        names.contains(&from).then(|| to.to_string())
    })
}

/// Replaces `deadline_ms` = 0 (automatic) by the deadline it stands for, in the node's table too.
fn fix_deadline(node: &mut r2r::Node, params: &Arc<Mutex<Validated>>) {
    let mut p = lock(params);
    let value = r2r::ParameterValue::Integer(p.params.deadline_ms());
    let _ = p.params.set_parameter("deadline_ms", &value);
    if let Some(entry) = lock(&node.params).get_mut("deadline_ms") {
        entry.value = value;
    }
}

/// Shows the model's calibrated values in `ros2 param get` for parameters nobody set.
fn write_back_model_defaults(table: &ParamTable, params: &Arc<Mutex<Validated>>, s: &Settings) {
    use r2r::ParameterValue as V;
    let values = [
        ("samples", V::Integer(s.samples as i64)),
        ("score_method", V::String(s.score.method.name().into())),
        ("pixel_threshold", V::Double(short(s.score.pixel_threshold))),
        ("band_px", V::Integer(s.score.band_px as i64)),
        ("threshold_high", V::Double(short(s.gate.threshold_high))),
        ("threshold_low", V::Double(short(s.gate.threshold_low))),
        ("recover_frames", V::Integer(s.gate.recover_frames as i64)),
    ];
    let mut p = lock(params);
    let mut table = lock(table);
    for (name, value) in values {
        debug_assert!(FROM_MODEL.contains(&name));
        let _ = p.params.set_parameter(name, &value);
        if let Some(entry) = table.get_mut(name) {
            entry.value = value;
        }
    }
}

/// Moves every arriving message into the slot; r2r's channel drops silently past 10 messages,
/// so it must never fill up.
pub(super) async fn drain(mut frames: Frames, shared: Arc<Shared>) {
    while let Some(input) = frames.next().await {
        let now = Instant::now();
        shared.stats.received.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = lock(&shared.state);
            st.last_header = input.header().clone();
            st.last_arrival = Some(now);
        }
        if lock(&shared.slot.frame).replace((input, now)).is_some() {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        shared.slot.ready.notify_one();
    }
}

fn inference_loop(shared: &Shared) {
    let mut last_error_log: Option<Instant> = None;
    let mut errors_since_log = 0u64;
    loop {
        let (input, arrived) = {
            let mut slot = lock(&shared.slot.frame);
            loop {
                if shared.shutdown.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(f) = slot.take() {
                    break f;
                }
                slot = shared
                    .slot
                    .ready
                    .wait_timeout(slot, Duration::from_millis(200))
                    .map(|r| r.0)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        };
        // Held while the frame is processed and published: a deactivate waits for it.
        let mut processor = lock(&shared.processor);
        let Some(processor) = processor.as_mut() else { continue };
        if shared.lifecycle.load(Ordering::Relaxed) != lifecycle::ACTIVE.id {
            continue;
        }
        if let Some((settings, options)) = lock(&shared.pending_settings).take() {
            if let Err(e) = processor.reconfigure(settings, options) {
                r2r::log_warn!(NODE, "settings refused: {e}");
            }
        }
        if shared.went_stale.swap(false, Ordering::Relaxed) {
            processor.mark_stale();
        }
        let clock_ns = arrived.saturating_duration_since(shared.started).as_nanos() as i64;
        let r = processor.process(Source::Msg(&input), Arrival { at: arrived, clock_ns });
        {
            let mut st = lock(&shared.state);
            st.decided_at = Some(arrived);
            st.stale = r.decision.reason == Reason::Stale;
        }
        match &r.outcome {
            Ok(_) => {
                shared.stats.processed.fetch_add(1, Ordering::Relaxed);
                let mut lat = lock(&shared.stats.latencies_ms);
                lat.push_back(r.latency_ms);
                while lat.len() > 200 {
                    lat.pop_front();
                }
            }
            Err(FrameFailure::Decode(e)) => {
                shared.stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                errors_since_log += 1;
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                    let stamp = r.header.stamp.nanos();
                    r2r::log_warn!(
                        NODE,
                        "bad frame (stamp {stamp} ns), skipped: {e} [{errors_since_log} since last report]"
                    );
                    last_error_log = Some(Instant::now());
                    errors_since_log = 0;
                }
            }
            Err(FrameFailure::Inference(e)) => {
                shared.stats.inference_errors.fetch_add(1, Ordering::Relaxed);
                r2r::log_error!(NODE, "inference failed (stamp {} ns): {e}", r.header.stamp.nanos());
            }
        }
        publish_frame(shared, &r, &input);
    }
}

/// `~/confident` = false and a stale `~/confidence`, with the last frame's header.
fn publish_stale(shared: &Shared, header: &Header) {
    publish_not_confident(shared, header, Reason::Stale.level(), Reason::Stale.name());
}

/// `~/confident` = false and a `~/confidence` without a frame behind it: `stale`, or a managed
/// node's `unconfigured` / `inactive` (level 1). Without a model the values are empty.
pub(super) fn publish_not_confident(shared: &Shared, header: &Header, level: u8, message: &str) {
    let settings = lock(&shared.state).settings.clone();
    let values = outputs::confidence_values(settings.as_ref(), None, 0.0);
    let status = diagnostic(header, outputs::CONFIDENCE_STATUS, level, message, values);
    let msgs = [
        (Topic::Confident, Message::Bool(crate::msg::Bool { data: false })),
        (Topic::Confidence, Message::Diagnostic(status)),
    ];
    lock(&shared.out).publish_all(msgs);
}

fn publish_frame(shared: &Shared, r: &FrameResult, input: &FrameMsg) {
    // The decision first: it is what autonomy waits for.
    lock(&shared.out).publish_all(outputs::decision_messages(r));
    let Some(seg) = r.segmentation() else { return };
    let (publish, node) = {
        let st = lock(&shared.state);
        (st.publish, st.node.clone())
    };
    let bundle = if r.review { save_bundle(shared, &node, r) } else { None };
    let out = lock(&shared.out);
    // Colour maps and overlays cost rendering time: only while someone listens.
    let rendered = [Topic::EntropyColor, Topic::Overlay];
    let wanted = |t: Topic| publish.contains(t) && (!rendered.contains(&t) || out.subscribed(t));
    match outputs::frame_messages(r, Some(input), &wanted, bundle.as_deref()) {
        Ok(msgs) => out.publish_all(msgs),
        Err(e) => r2r::log_warn!(NODE, "cannot render the outputs of frame {} ns: {e}", r.header.stamp.nanos()),
    }
    drop(out);
    if r.review {
        let (reason, stamp) = (r.decision.reason.name(), r.header.stamp.nanos());
        r2r::log_info!(NODE, "review requested: {reason} (score {:.3}, stamp {stamp} ns)", seg.score);
    }
}

/// Saves the review bundle of a frame when `review_dir` is set; its path.
fn save_bundle(shared: &Shared, node: &NodeSettings, r: &FrameResult) -> Option<String> {
    let (dir, seg, frame) = (node.review_dir.as_ref()?, r.segmentation()?, r.frame.as_ref()?);
    let meta = serde_json::json!({"frame_id": r.header.frame_id, "model": lock(&shared.state).model});
    match review::save_bundle(dir, r.header.stamp.nanos(), r.decision.reason, r.settings.score.method, frame, seg, meta)
    {
        Ok(path) => {
            if let Err(e) = review::prune(dir, node.review_max_bytes) {
                r2r::log_warn!(NODE, "cannot prune {}: {e}", dir.display());
            }
            Some(path.display().to_string())
        }
        Err(e) => {
            // A full or read-only disk must not flood the log: the review is published anyway
            // (with an empty bundle), the reason is logged once, then every 30 s with a count.
            let mut errors = lock(&shared.review_errors);
            errors.1 += 1;
            if errors.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                let n = errors.1;
                r2r::log_warn!(
                    NODE,
                    "cannot save review bundle in {} ({n} failed since the last report), review published without it: {e}",
                    dir.display()
                );
                *errors = (Some(Instant::now()), 0);
            }
            None
        }
    }
}

/// Staleness (checked every 50 ms), the no-input hint and 1 Hz diagnostics.
async fn timers(shared: Arc<Shared>, topic: String, type_name: &'static str) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let started = Instant::now();
    let mut last_diag = Instant::now();
    let mut last_hint: Option<Instant> = None;
    let (mut last_received, mut last_processed) = (0u64, 0u64);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let not_active = not_active(shared.lifecycle.load(Ordering::Relaxed));
        let stale_msg = {
            let mut st = lock(&shared.state);
            // Since the later of the last decision and (managed) the last activate.
            let reference = st.decided_at.max(st.active_since).unwrap_or(started);
            let overdue = now.duration_since(reference) > st.node.stale_timeout;
            // Repeated within the deadline offered on the decision topics.
            let every = (st.node.deadline / 2).min(Duration::from_secs(1));
            let repeat = st.last_stale_publish.is_none_or(|t| now.duration_since(t) >= every);
            if not_active.is_some() {
                // A managed node that is not active is alive and not confident: it says so
                // within the deadline, so consumers see no missed deadline (docs/interfaces.md §10).
                if repeat {
                    st.last_stale_publish = Some(now);
                    Some(st.last_header.clone())
                } else {
                    None
                }
            } else if overdue && (!st.stale || repeat) {
                st.stale = true;
                st.last_stale_publish = Some(now);
                shared.went_stale.store(true, Ordering::Relaxed);
                Some(st.last_header.clone())
            } else {
                None
            }
        };
        match (stale_msg, not_active) {
            (Some(header), Some(what)) => publish_not_confident(&shared, &header, 1, what),
            (Some(header), None) => publish_stale(&shared, &header),
            (None, _) => {}
        }
        let quiet_for = now.duration_since(lock(&shared.state).last_arrival.unwrap_or(started));
        if not_active.is_none()
            && quiet_for > Duration::from_secs(5)
            && last_hint.is_none_or(|t| now.duration_since(t) > Duration::from_secs(30))
        {
            let qos = if lock(&shared.state).node.reliable { "reliable" } else { "best effort" };
            r2r::log_warn!(
                NODE,
                "no frames on {topic} ({type_name}, QoS {qos}) for {:.0} s: check the topic remapping (image_topic:=...), \
                 input_transport and that the publisher's QoS is compatible",
                quiet_for.as_secs_f64()
            );
            last_hint = Some(now);
        }
        if now.duration_since(last_diag) >= Duration::from_secs(1) {
            let dt = now.duration_since(last_diag).as_secs_f64();
            last_diag = now;
            let stats = &shared.stats;
            let (received, processed) =
                (stats.received.load(Ordering::Relaxed), stats.processed.load(Ordering::Relaxed));
            let lat: Vec<f64> = lock(&stats.latencies_ms).iter().copied().collect();
            let (stale, samples, method, provider, model, hardware_id, configure_error) = {
                let st = lock(&shared.state);
                let (samples, method) = st
                    .settings
                    .as_ref()
                    .map_or((String::new(), ""), |s| (s.samples.to_string(), s.score.method.name()));
                let hardware_id = hardware_id(&st, &shared.fqn);
                (st.stale, samples, method, st.provider, st.model.clone(), hardware_id, st.configure_error.clone())
            };
            let values = vec![
                ("input_hz", format!("{:.2}", (received - last_received) as f64 / dt)),
                ("processed_hz", format!("{:.2}", (processed - last_processed) as f64 / dt)),
                ("received", received.to_string()),
                ("processed", processed.to_string()),
                ("dropped", stats.dropped.load(Ordering::Relaxed).to_string()),
                ("decode_errors", stats.decode_errors.load(Ordering::Relaxed).to_string()),
                ("inference_errors", stats.inference_errors.load(Ordering::Relaxed).to_string()),
                ("latency_p50_ms", format!("{:.1}", percentile(&lat, 0.5).unwrap_or(0.0))),
                ("latency_p95_ms", format!("{:.1}", percentile(&lat, 0.95).unwrap_or(0.0))),
                ("execution_provider", provider.to_string()),
                ("samples", samples),
                ("score_method", method.to_string()),
                ("model", model),
            ];
            (last_received, last_processed) = (received, processed);
            let (level, message) = if stale { (1, "stale: no fresh frames") } else { (0, "ok") };
            let (level, message) = match (not_active, configure_error) {
                // A supervisor sees why configure failed without reading the node's log.
                (Some(what), Some(e)) => (1, format!("{what}: configure failed: {e}")),
                (Some(what), None) => (1, what.to_string()),
                (None, _) => (level, message.to_string()),
            };
            let mut header = Header::default();
            let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            header.stamp.sec = since_epoch.as_secs() as i32;
            header.stamp.nanosec = since_epoch.subsec_nanos();
            let _ = lock(&shared.out).diagnostics.publish(&diagnostics_out(diagnostic_of(
                &header,
                &shared.fqn,
                &hardware_id,
                level,
                &message,
                values,
            )));
        }
    }
}

/// The `/diagnostics` hardware_id: the `hardware_id` parameter, else the camera frame's
/// `header.frame_id` once a frame with one arrived, else the node's fully qualified name.
fn hardware_id(st: &State, fqn: &str) -> String {
    if let Some(id) = &st.node.hardware_id {
        return id.clone();
    }
    if st.last_arrival.is_some() && !st.last_header.frame_id.is_empty() {
        return st.last_header.frame_id.clone();
    }
    fqn.to_string()
}

/// Applies an accepted run-time parameter change (validated by [`Validated`] before): the node
/// settings to the publishers, the library settings to the worker (whose processor holds the
/// gate). Called by [`Validated::on_change`] inside the set_parameters request, so it holds the
/// parameters' lock.
fn apply_change(shared: &Shared, p: &Validated) {
    let checked = if p.unloaded {
        // A managed node without a model: the model's parameters apply at configure.
        p.params.node_settings().map(|node| (None, node))
    } else {
        p.check(&p.params).map(|(settings, node)| (Some(settings), node))
    };
    let (settings, node) = match checked {
        Ok(c) => c,
        Err(e) => {
            r2r::log_error!(NODE, "a parameter change left an invalid set: {e}");
            return;
        }
    };
    let options = loop_options(&node);
    let mut st = lock(&shared.state);
    st.node = node;
    st.publish = p.params.publish_topics();
    if let Some(settings) = settings {
        st.settings = Some(settings.clone());
        drop(st);
        *lock(&shared.pending_settings) = Some((settings, options));
    }
}

/// Logs each accepted run-time parameter change ([`apply_change`] has applied it already).
async fn param_changes(
    mut events: impl futures::Stream<Item = (String, r2r::ParameterValue)> + Unpin,
    params: Arc<Mutex<Validated>>,
) {
    while let Some((name, value)) = events.next().await {
        if lock(&params).unloaded {
            r2r::log_info!(NODE, "parameter {name} = {value:?} (model parameters apply at configure)");
        } else {
            r2r::log_info!(NODE, "parameter {name} = {value:?}");
        }
    }
}
