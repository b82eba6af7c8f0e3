//! `pipeline_seg_node`: camera frames in; mask, uncertainty maps, confidence, review requests
//! and diagnostics out (INTERFACES §3–4).
//!
//! Threads: the spin thread only moves messages (`spin_once`); a tokio task drains the input
//! stream into a one-frame slot (older frames are dropped and counted); the inference thread
//! takes the newest frame, runs the pipeline and publishes; a timer task publishes staleness
//! and 1 Hz diagnostics; a parameter task validates run-time changes.

use std::collections::{HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use r2r::diagnostic_msgs::msg::DiagnosticArray;
use r2r::sensor_msgs::msg::{CompressedImage, Image};
use r2r::std_msgs::msg::Bool;
use r2r::{Publisher, QosProfile, RosParams};

use super::msgs::{compressed_in, diagnostics_out, image_out, raw_in};
use super::params::{describe_r2r_error, NodeParams, NodeSettings, Validated, FROM_MODEL};
use crate::bag::cdr;
use crate::bag::read::FrameMsg;
use crate::config::Settings;
use crate::gate::{Decision, Gate, Observation, Reason};
use crate::pipeline::{Pipeline, Resolution, Segmentation};
use crate::outputs::{diagnostic, image_f32, image_u8};
use crate::{outputs, render, review};

const NODE: &str = "pipeline_seg_node";

/// Locks a mutex, taking the data even if a thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every publisher of the node.
struct Outputs {
    mask: Publisher<Image>,
    probability: Publisher<Image>,
    entropy: Publisher<Image>,
    mutual_information: Publisher<Image>,
    entropy_color: Publisher<Image>,
    overlay: Publisher<Image>,
    confident: Publisher<Bool>,
    confidence: Publisher<DiagnosticArray>,
    review: Publisher<DiagnosticArray>,
    review_image: Publisher<Image>,
    diagnostics: Publisher<DiagnosticArray>,
}

/// The newest unprocessed frame; a new one replaces (drops) an older one.
#[derive(Default)]
struct Slot {
    frame: Mutex<Option<(FrameMsg, Instant)>>,
    ready: Condvar,
}

/// Counters and the latency window for diagnostics.
#[derive(Default)]
struct Stats {
    received: AtomicU64,
    processed: AtomicU64,
    dropped: AtomicU64,
    decode_errors: AtomicU64,
    latencies_ms: Mutex<VecDeque<f64>>,
}

/// What the gate, the timer and the worker share.
struct State {
    gate: Gate,
    /// Header of the last frame received (for stale messages).
    last_header: cdr::Header,
    /// Arrival of the frame behind the current decision.
    decided_at: Option<Instant>,
    /// Arrival of the last frame received.
    last_arrival: Option<Instant>,
    stale: bool,
    last_stale_publish: Option<Instant>,
    last_review: Option<Instant>,
    settings: Settings,
    node: NodeSettings,
    publish: [bool; 5],
}

struct Shared {
    /// r2r publishers are Send but not Sync.
    out: Mutex<Outputs>,
    slot: Slot,
    stats: Stats,
    state: Mutex<State>,
    shutdown: AtomicBool,
    pending_settings: Mutex<Option<Settings>>,
    provider: &'static str,
    model: String,
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

fn run() -> Result<(), String> {
    let ctx = r2r::Context::create().map_err(|e| format!("ROS 2 context: {e}"))?;
    let mut node = r2r::Node::create(ctx, NODE, "").map_err(|e| format!("ROS 2 node: {e}"))?;
    let set_by_user: HashSet<String> = lock(&node.params).keys().cloned().collect();
    let params = Arc::new(Mutex::new(Validated { params: NodeParams::default(), base: None }));
    let (param_handler, param_events) =
        node.make_derived_parameter_handler(params.clone()).map_err(|e| describe_r2r_error(&e))?;
    let known: HashSet<&str> = crate::config::PARAM_NAMES.iter().chain(crate::config::NODE_ONLY).copied().collect();
    for unknown in set_by_user.iter().filter(|n| !known.contains(n.as_str())) {
        r2r::log_warn!(NODE, "parameter '{unknown}' is not one of this node's; ignored");
    }

    // Check everything before the first subscription, so a bad value stops the node at once.
    let (lib_params, node_settings) = {
        let p = &mut lock(&params).params;
        (p.library_params(&set_by_user).map_err(|e| e.to_string())?, p.node_settings().map_err(|e| e.to_string())?)
    };
    let mut pipeline = Pipeline::new(&lib_params).map_err(|e| e.to_string())?;
    let settings = pipeline.settings().clone();
    write_back_model_defaults(&mut node, &params, &settings);
    let good_params = {
        let mut p = lock(&params);
        p.base = Some(settings.clone());
        p.params.clone()
    };

    let out = create_outputs(&mut node).map_err(|e| format!("cannot create publishers: {e}"))?;
    let input_qos = qos_input(&node_settings);
    let (topic, type_name) = if node_settings.compressed {
        ("~/image/compressed", "sensor_msgs/msg/CompressedImage")
    } else {
        ("~/image", "sensor_msgs/msg/Image")
    };
    let frames: std::pin::Pin<Box<dyn futures::Stream<Item = FrameMsg> + Send>> = if node_settings.compressed {
        let s = node.subscribe::<CompressedImage>(topic, input_qos).map_err(|e| format!("subscribe {topic}: {e}"))?;
        Box::pin(s.map(compressed_in))
    } else {
        let s = node.subscribe::<Image>(topic, input_qos).map_err(|e| format!("subscribe {topic}: {e}"))?;
        Box::pin(s.map(raw_in))
    };
    let own_topic = format!("{}/{}", node.fully_qualified_name().unwrap_or_default(), topic.trim_start_matches("~/"));
    let full_topic = remapped(&[topic, &own_topic]).unwrap_or(own_topic);
    let p = &good_params;
    let shared = Arc::new(Shared {
        out: Mutex::new(out),
        slot: Slot::default(),
        stats: Stats::default(),
        state: Mutex::new(State {
            gate: Gate::new(settings.gate),
            last_header: cdr::Header::default(),
            decided_at: None,
            last_arrival: None,
            stale: false,
            last_stale_publish: None,
            last_review: None,
            settings: settings.clone(),
            node: node_settings.clone(),
            publish: [p.publish_probability, p.publish_entropy, p.publish_mutual_information, p.publish_entropy_color, p.publish_overlay],
        }),
        shutdown: AtomicBool::new(false),
        pending_settings: Mutex::new(None),
        provider: pipeline.model.execution_provider,
        model: pipeline.model.path.display().to_string(),
    });
    let _ = lock(&shared.out).confident.publish(&Bool { data: false });
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
    r2r::log_info!(
        NODE,
        "ready: input {full_topic} ({type_name}, {}), outputs under {}/; model {} on {}, T = {}, {} high {} low {}",
        if node_settings.reliable { "reliable" } else { "best effort" },
        node.fully_qualified_name().unwrap_or_default(),
        shared.model,
        shared.provider,
        settings.samples,
        settings.score.method.name(),
        settings.gate.threshold_high,
        settings.gate.threshold_low
    );


    // Every entity exists now: the node moves into its own thread, which only spins.
    let spin = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("ros_spin".into())
            .spawn(move || {
                while !shared.shutdown.load(Ordering::Relaxed) {
                    node.spin_once(Duration::from_millis(20));
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
            .spawn(move || inference_loop(&shared, &mut pipeline))
            .map_err(|e| e.to_string())?
    };
    runtime.spawn(param_handler);
    runtime.spawn(drain(frames, shared.clone()));
    runtime.spawn(param_changes(param_events, params, shared.clone()));
    runtime.spawn(timers(shared.clone(), full_topic, type_name));
    runtime.block_on(async {
        tokio::select! { _ = interrupt.recv() => {}, _ = terminate.recv() => {} }
    });

    // Fail safe on the way out: nobody may keep following a mask from a node that is gone.
    shared.shutdown.store(true, Ordering::Relaxed);
    shared.slot.ready.notify_all();
    let _ = lock(&shared.out).confident.publish(&Bool { data: false });
    let header = lock(&shared.state).last_header.clone();
    publish_confidence(&shared, &header, Decision { confident: false, reason: Reason::Stale }, None, 0.0);
    let _ = worker.join();
    let _ = spin.join();
    runtime.shutdown_timeout(Duration::from_millis(200));
    r2r::log_info!(NODE, "shut down; published confident = false");
    Ok(())
}

fn create_outputs(node: &mut r2r::Node) -> r2r::Result<Outputs> {
    let q = QosProfile::default();
    // A late subscriber (autonomy starting after us) must get the current state at once.
    let latched = QosProfile::default().reliable().transient_local().keep_last(1);
    Ok(Outputs {
        mask: node.create_publisher("~/mask", q.clone())?,
        probability: node.create_publisher("~/probability", q.clone())?,
        entropy: node.create_publisher("~/entropy", q.clone())?,
        mutual_information: node.create_publisher("~/mutual_information", q.clone())?,
        entropy_color: node.create_publisher("~/entropy_color", q.clone())?,
        overlay: node.create_publisher("~/overlay", q.clone())?,
        confident: node.create_publisher("~/confident", latched)?,
        confidence: node.create_publisher("~/confidence", q.clone())?,
        review: node.create_publisher("~/review", q.clone())?,
        review_image: node.create_publisher("~/review/image", q.clone())?,
        diagnostics: node.create_publisher("/diagnostics", q)?,
    })
}

/// Where a command-line remap rule (`-r [node:]from:=to`, as ros2 launch passes them) sends one
/// of `names`: r2r does not expose the resolved name, and the logs must name the real topic.
fn remapped(names: &[&str]) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let start = args.iter().position(|a| a == "--ros-args")?;
    let rules = args[start..].windows(2).filter(|w| w[0] == "-r" || w[0] == "--remap").map(|w| &w[1]);
    rules.filter_map(|rule| rule.split_once(":=")).find_map(|(from, to)| {
        let from = if from.starts_with('~') || from.starts_with('/') { from } else { from.split_once(':').map_or(from, |(_, f)| f) };
        names.contains(&from).then(|| to.to_string())
    })
}

/// An f32 parameter as the decimal a person typed (0.5878, not 0.5878000259399414).
fn as_double(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

/// Shows the model's calibrated values in `ros2 param get` for parameters nobody set.
fn write_back_model_defaults(node: &mut r2r::Node, params: &Arc<Mutex<Validated>>, s: &Settings) {
    use r2r::ParameterValue as V;
    let values = [
        ("samples", V::Integer(s.samples as i64)),
        ("score_method", V::String(s.score.method.name().into())),
        ("pixel_threshold", V::Double(as_double(s.score.pixel_threshold))),
        ("band_px", V::Integer(s.score.band_px as i64)),
        ("threshold_high", V::Double(as_double(s.gate.threshold_high))),
        ("threshold_low", V::Double(as_double(s.gate.threshold_low))),
        ("recover_frames", V::Integer(s.gate.recover_frames as i64)),
    ];
    let mut p = lock(params);
    let mut table = lock(&node.params);
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
async fn drain(mut frames: std::pin::Pin<Box<dyn futures::Stream<Item = FrameMsg> + Send>>, shared: Arc<Shared>) {
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

fn inference_loop(shared: &Shared, pipeline: &mut Pipeline) {
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
                slot = shared.slot.ready.wait_timeout(slot, Duration::from_millis(200)).map(|r| r.0).unwrap_or_else(|e| e.into_inner().0);
            }
        };
        if let Some(s) = lock(&shared.pending_settings).take() {
            if let Err(e) = pipeline.set_settings(s) {
                r2r::log_warn!(NODE, "settings refused: {e}");
            }
        }
        let settings = pipeline.settings().clone();
        let header = input.header().clone();
        let result = input.decode(settings.max_image_pixels).and_then(|frame| {
            let seg = pipeline.segment(&frame, Resolution::Input, false)?;
            Ok((frame, seg))
        });
        let latency_ms = arrived.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok((frame, seg)) => {
                shared.stats.processed.fetch_add(1, Ordering::Relaxed);
                {
                    let mut lat = lock(&shared.stats.latencies_ms);
                    lat.push_back(latency_ms);
                    while lat.len() > 200 {
                        lat.pop_front();
                    }
                }
                let decision = decide(shared, seg.observation(), arrived);
                publish_frame(shared, &header, &frame, &seg, decision, &input, latency_ms);
            }
            Err(e) if e.is_frame_error() => {
                shared.stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                errors_since_log += 1;
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                    r2r::log_warn!(NODE, "bad frame (stamp {} ns), skipped: {e} [{errors_since_log} since last report]", header.stamp.nanos());
                    last_error_log = Some(Instant::now());
                    errors_since_log = 0;
                }
                let decision = decide(shared, Observation::DecodeError, arrived);
                publish_confidence(shared, &header, decision, None, latency_ms);
            }
            Err(e) => {
                r2r::log_error!(NODE, "inference failed: {e}");
                let decision = decide(shared, Observation::DecodeError, arrived);
                publish_confidence(shared, &header, decision, None, latency_ms);
            }
        }
    }
}

/// Folds a frame into the gate; a decision that comes too late to be fresh is stale.
fn decide(shared: &Shared, obs: Observation, arrived: Instant) -> Decision {
    let mut st = lock(&shared.state);
    st.decided_at = Some(arrived);
    if arrived.elapsed() > st.node.stale_timeout {
        st.stale = true;
        return st.gate.stale();
    }
    st.stale = false;
    st.gate.update(obs)
}

fn publish_confidence(shared: &Shared, header: &cdr::Header, d: Decision, seg: Option<(&Segmentation, bool)>, latency_ms: f64) {
    let _ = lock(&shared.out).confident.publish(&Bool { data: d.confident });
    let st = lock(&shared.state);
    let values = outputs::confidence_values(&st.settings, seg, latency_ms);
    let msg = diagnostics_out(diagnostic(header, outputs::CONFIDENCE_STATUS, d.reason.level(), d.reason.name(), values));
    drop(st);
    let _ = lock(&shared.out).confidence.publish(&msg);
}

fn wanted(p: &Publisher<Image>) -> bool {
    p.get_inter_process_subscription_count().unwrap_or(1) > 0
}

fn publish_frame(
    shared: &Shared,
    header: &cdr::Header,
    frame: &crate::image::Frame,
    seg: &Segmentation,
    d: Decision,
    input: &FrameMsg,
    latency_ms: f64,
) {
    let (w, h) = (seg.width, seg.height);
    let (publish, settings) = {
        let st = lock(&shared.state);
        (st.publish, st.settings.clone())
    };
    // The decision first: it is what autonomy waits for.
    publish_confidence(shared, header, d, Some((seg, seg.pipeline_visible(&settings))), latency_ms);
    let o = lock(&shared.out);
    let _ = o.mask.publish(&image_out(image_u8(header, "mono8", w, h, seg.mask.clone())));
    for (on, p, map) in [(publish[0], &o.probability, &seg.prob), (publish[1], &o.entropy, &seg.entropy), (publish[2], &o.mutual_information, &seg.mi)] {
        if on {
            let _ = p.publish(&image_out(image_f32(header, w, h, map)));
        }
    }
    if publish[3] && wanted(&o.entropy_color) {
        if let Ok(bgr) = render::entropy_color(&seg.entropy, w, h) {
            let _ = o.entropy_color.publish(&image_out(image_u8(header, "bgr8", w, h, bgr)));
        }
    }
    let caption = outputs::overlay_caption(seg, d.reason);
    if publish[4] && wanted(&o.overlay) {
        if let Ok(bgr) = render::overlay(frame, seg, &caption) {
            let _ = o.overlay.publish(&image_out(image_u8(header, "bgr8", w, h, bgr)));
        }
    }
    drop(o);
    maybe_review(shared, header, frame, seg, d, input);
}

/// Asks a human to look when the gate is unconfident because of the model or the image.
fn maybe_review(shared: &Shared, header: &cdr::Header, frame: &crate::image::Frame, seg: &Segmentation, d: Decision, input: &FrameMsg) {
    let node = {
        let mut st = lock(&shared.state);
        if !outputs::review_due(d.reason, st.last_review.map(|t| t.elapsed()), st.node.review_min_interval) {
            return;
        }
        st.last_review = Some(Instant::now());
        st.node.clone()
    };
    let stamp = header.stamp.nanos();
    let bundle = node.review_dir.as_ref().and_then(|dir| {
        let meta = serde_json::json!({"frame_id": header.frame_id, "model": shared.model});
        match review::save_bundle(dir, stamp, d.reason.name(), frame, seg, meta) {
            Ok(path) => {
                if let Err(e) = review::prune(dir, node.review_max_bytes) {
                    r2r::log_warn!(NODE, "cannot prune {}: {e}", dir.display());
                }
                Some(path.display().to_string())
            }
            Err(e) => {
                r2r::log_warn!(NODE, "cannot save review bundle: {e}");
                None
            }
        }
    });
    let values = outputs::review_values(seg, bundle.as_deref());
    let _ = lock(&shared.out).review.publish(&diagnostics_out(diagnostic(header, outputs::REVIEW_STATUS, 1, d.reason.name(), values)));
    let _ = lock(&shared.out).review_image.publish(&image_out(outputs::review_image(input, frame)));
    r2r::log_info!(NODE, "review requested: {} (score {:.3}, stamp {stamp} ns)", d.reason.name(), seg.score);
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
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
        let stale_msg = {
            let mut st = lock(&shared.state);
            let reference = st.decided_at.unwrap_or(started);
            let overdue = now.duration_since(reference) > st.node.stale_timeout;
            let repeat = st.last_stale_publish.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
            if overdue && (!st.stale || repeat) {
                st.stale = true;
                st.last_stale_publish = Some(now);
                Some((st.gate.stale(), st.last_header.clone()))
            } else {
                None
            }
        };
        if let Some((decision, header)) = stale_msg {
            publish_confidence(&shared, &header, decision, None, 0.0);
        }
        let quiet_for = now.duration_since(lock(&shared.state).last_arrival.unwrap_or(started));
        if quiet_for > Duration::from_secs(5) && last_hint.is_none_or(|t| now.duration_since(t) > Duration::from_secs(30)) {
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
            let (received, processed) = (stats.received.load(Ordering::Relaxed), stats.processed.load(Ordering::Relaxed));
            let mut lat: Vec<f64> = lock(&stats.latencies_ms).iter().copied().collect();
            lat.sort_by(f64::total_cmp);
            let (stale, samples, method) = {
                let st = lock(&shared.state);
                (st.stale, st.settings.samples, st.settings.score.method.name())
            };
            let values = vec![
                ("input_hz", format!("{:.2}", (received - last_received) as f64 / dt)),
                ("processed_hz", format!("{:.2}", (processed - last_processed) as f64 / dt)),
                ("received", received.to_string()),
                ("processed", processed.to_string()),
                ("dropped", stats.dropped.load(Ordering::Relaxed).to_string()),
                ("decode_errors", stats.decode_errors.load(Ordering::Relaxed).to_string()),
                ("latency_p50_ms", format!("{:.1}", percentile(&lat, 0.5))),
                ("latency_p95_ms", format!("{:.1}", percentile(&lat, 0.95))),
                ("execution_provider", shared.provider.to_string()),
                ("samples", samples.to_string()),
                ("score_method", method.to_string()),
                ("model", shared.model.clone()),
            ];
            (last_received, last_processed) = (received, processed);
            let (level, message) = if stale { (1, "stale: no fresh frames") } else { (0, "ok") };
            let mut header = cdr::Header::default();
            let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            header.stamp.sec = since_epoch.as_secs() as i32;
            header.stamp.nanosec = since_epoch.subsec_nanos();
            let _ = lock(&shared.out).diagnostics.publish(&diagnostics_out(diagnostic(&header, NODE, level, message, values)));
        }
    }
}

/// Applies each accepted run-time parameter change (validated by [`Validated`] before).
async fn param_changes(
    mut events: impl futures::Stream<Item = (String, r2r::ParameterValue)> + Unpin,
    params: Arc<Mutex<Validated>>,
    shared: Arc<Shared>,
) {
    while let Some((name, value)) = events.next().await {
        let result = {
            let p = lock(&params);
            p.check(&p.params).map(|(settings, node)| (settings, node, p.params.clone()))
        };
        match result {
            Ok((settings, node, p)) => {
                apply(&shared, settings, node, &p);
                r2r::log_info!(NODE, "parameter {name} = {value:?}");
            }
            Err(e) => r2r::log_error!(NODE, "parameter {name} = {value:?} left an invalid set: {e}"),
        }
    }
}

/// Hands new settings to the gate, the publishers and the worker.
fn apply(shared: &Shared, settings: Settings, node: NodeSettings, p: &NodeParams) {
    let mut st = lock(&shared.state);
    st.gate.params = settings.gate;
    st.settings = settings.clone();
    st.node = node;
    st.publish = [p.publish_probability, p.publish_entropy, p.publish_mutual_information, p.publish_entropy_color, p.publish_overlay];
    drop(st);
    *lock(&shared.pending_settings) = Some(settings);
}
