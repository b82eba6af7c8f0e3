//! The managed (lifecycle) node's ROS side: the `lifecycle_msgs` services, `~/transition_event`
//! and the work of each transition (docs/interfaces.md §10). The state machine itself is plain
//! Rust in [`crate::lifecycle`]; the frame loop, publishers and parameters are the node's
//! ([`super::node`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use r2r::lifecycle_msgs::msg::{
    State as StateMsg, Transition as TransitionMsg, TransitionDescription, TransitionEvent,
};
use r2r::lifecycle_msgs::srv::{ChangeState, GetAvailableStates, GetAvailableTransitions, GetState};
use r2r::{Publisher, QosProfile};

use super::node::{drain, load_model, lock, loop_options, publish_not_confident, NodeCmd, ParamTable, Shared, NODE};
use super::params::Validated;
use crate::engine::processor::FrameProcessor;
use crate::lifecycle::{self, Machine, Outcome};

/// The `~/confidence` message of a managed node that is not active, by lifecycle state id;
/// `None` while active (and always for an unmanaged node).
pub(super) fn not_active(state: u8) -> Option<&'static str> {
    use lifecycle::{ACTIVE, CONFIGURING, ERRORPROCESSING, UNCONFIGURED};
    match state {
        s if s == ACTIVE.id => None,
        s if [UNCONFIGURED.id, CONFIGURING.id, ERRORPROCESSING.id].contains(&s) => Some("unconfigured"),
        _ => Some("inactive"),
    }
}

/// Requests of one service.
type Requests<T> = std::pin::Pin<Box<dyn futures::Stream<Item = r2r::ServiceRequest<T>> + Send>>;

/// A managed node's services and transition event publisher, created before the node moves
/// into the spin thread.
pub(super) struct LifecycleServices {
    change_state: Requests<ChangeState::Service>,
    get_state: Requests<GetState::Service>,
    get_available_states: Requests<GetAvailableStates::Service>,
    get_available_transitions: Requests<GetAvailableTransitions::Service>,
    get_transition_graph: Requests<GetAvailableTransitions::Service>,
    events: Publisher<TransitionEvent>,
}

/// What the lifecycle task works with.
pub(super) struct Managed {
    pub(super) shared: Arc<Shared>,
    pub(super) params: Arc<Mutex<Validated>>,
    pub(super) table: ParamTable,
    pub(super) machine: Arc<Mutex<Machine>>,
    /// To the spin thread, which owns the node (subscriptions).
    pub(super) commands: std::sync::mpsc::Sender<NodeCmd>,
    /// The task that moves input frames into the slot, while active.
    pub(super) drain: Option<tokio::task::JoinHandle<()>>,
    /// Wakes `run` to exit after the shutdown transition.
    pub(super) finalized: Arc<tokio::sync::Notify>,
}

/// Publishes a transition on `~/transition_event`.
fn announce(events: &Mutex<Publisher<TransitionEvent>>, t: &lifecycle::Transition) {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let event = TransitionEvent {
        timestamp: since_epoch.as_nanos() as u64,
        transition: TransitionMsg { id: t.id, label: t.label.into() },
        start_state: state_msg(t.start),
        goal_state: state_msg(t.goal),
    };
    let _ = lock(events).publish(&event);
}

fn state_msg(s: lifecycle::State) -> StateMsg {
    StateMsg { id: s.id, label: s.label.into() }
}

fn description(t: &lifecycle::Transition) -> TransitionDescription {
    TransitionDescription {
        transition: TransitionMsg { id: t.id, label: t.label.into() },
        start_state: state_msg(t.start),
        goal_state: state_msg(t.goal),
    }
}

/// Answers every request of a read-only service.
async fn serve<T: r2r::WrappedServiceTypeSupport + 'static>(
    mut requests: Requests<T>,
    answer: impl Fn() -> T::Response,
) {
    while let Some(req) = requests.next().await {
        let _ = req.respond(answer());
    }
}

impl LifecycleServices {
    pub(super) fn create(node: &mut r2r::Node) -> Result<LifecycleServices, String> {
        fn service<T: r2r::WrappedServiceTypeSupport + 'static>(
            node: &mut r2r::Node,
            name: &str,
        ) -> Result<Requests<T>, String> {
            let s =
                node.create_service::<T>(name, QosProfile::default()).map_err(|e| format!("service {name}: {e}"))?;
            Ok(Box::pin(s))
        }
        Ok(LifecycleServices {
            change_state: service(node, "~/change_state")?,
            get_state: service(node, "~/get_state")?,
            get_available_states: service(node, "~/get_available_states")?,
            get_available_transitions: service(node, "~/get_available_transitions")?,
            get_transition_graph: service(node, "~/get_transition_graph")?,
            events: node
                .create_publisher("~/transition_event", QosProfile::default())
                .map_err(|e| format!("publisher ~/transition_event: {e}"))?,
        })
    }

    pub(super) fn spawn(self, runtime: &tokio::runtime::Runtime, managed: Managed) {
        let m = managed.machine.clone();
        runtime
            .spawn(serve(self.get_state, move || GetState::Response { current_state: state_msg(lock(&m).current()) }));
        runtime.spawn(serve(self.get_available_states, || GetAvailableStates::Response {
            available_states: lifecycle::STATES.iter().map(|s| state_msg(*s)).collect(),
        }));
        let m = managed.machine.clone();
        runtime.spawn(serve(self.get_available_transitions, move || GetAvailableTransitions::Response {
            available_transitions: lock(&m).available().map(description).collect(),
        }));
        runtime.spawn(serve(self.get_transition_graph, || GetAvailableTransitions::Response {
            available_transitions: lifecycle::TRANSITIONS.iter().map(description).collect(),
        }));
        runtime.spawn(managed.serve_change_state(self.change_state, self.events));
    }
}

impl Managed {
    /// Runs the requested transitions one after the other, as rclcpp does: the transition
    /// state, the work, then the outcome's primary state, each announced on
    /// `~/transition_event`. The response's success is whether the work succeeded.
    async fn serve_change_state(
        mut self,
        mut requests: Requests<ChangeState::Service>,
        events: Publisher<TransitionEvent>,
    ) {
        let events = Mutex::new(events);
        while let Some(req) = requests.next().await {
            let asked = &req.message.transition;
            let requested = lock(&self.machine).request(asked.id, &asked.label);
            let t = match requested {
                Ok(t) => t,
                Err(e) => {
                    r2r::log_warn!(NODE, "change_state refused: {e}");
                    let _ = req.respond(ChangeState::Response { success: false });
                    continue;
                }
            };
            lock(&self.machine).begin(t);
            self.shared.lifecycle.store(t.goal.id, Ordering::Relaxed);
            announce(&events, t);
            let outcome = match t.id {
                lifecycle::id::CONFIGURE => self.configure().await,
                lifecycle::id::CLEANUP => self.cleanup(),
                lifecycle::id::ACTIVATE => self.activate().await,
                lifecycle::id::DEACTIVATE => self.deactivate(),
                _ => self.stop_input(),
            };
            let Some(done) = lock(&self.machine).finish(outcome) else { continue };
            self.shared.lifecycle.store(done.goal.id, Ordering::Relaxed);
            announce(&events, done);
            r2r::log_info!(NODE, "lifecycle: {} -> {} ({})", t.label, done.goal.label, done.label);
            let _ = req.respond(ChangeState::Response { success: outcome == Outcome::Success });
            if done.goal == lifecycle::FINALIZED {
                // Let the response and the event leave; run() then publishes confident = false.
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.finalized.notify_one();
                return;
            }
        }
    }

    /// Loads and checks the model with the parameters in force (the unmanaged start-up's path).
    /// A failure leaves the node unconfigured, with the reason logged.
    async fn configure(&mut self) -> Outcome {
        let lib_params = {
            let mut v = lock(&self.params);
            let named = v.set_by_user.clone();
            v.params.library_params(&named).map_err(|e| e.to_string())
        };
        let (table, params) = (self.table.clone(), self.params.clone());
        let loaded = match lib_params {
            Ok(lib) => tokio::task::spawn_blocking(move || load_model(&table, &params, &lib))
                .await
                .unwrap_or_else(|e| Err(format!("model loading failed: {e}"))),
            Err(e) => Err(e),
        };
        let pipeline = match loaded {
            Ok(p) => p,
            Err(e) => {
                r2r::log_error!(NODE, "configure failed, the node stays unconfigured: {e}");
                lock(&self.shared.state).configure_error = Some(e);
                return Outcome::Failure;
            }
        };
        let settings = pipeline.settings().clone();
        let options = {
            let mut st = lock(&self.shared.state);
            st.configure_error = None;
            st.settings = Some(settings.clone());
            st.provider = pipeline.model.execution_provider;
            st.model = pipeline.model.path.display().to_string();
            loop_options(&st.node)
        };
        r2r::log_info!(
            NODE,
            "configured: model {} on {}, T = {}, {} high {} low {}",
            pipeline.model.path.display(),
            pipeline.model.execution_provider,
            settings.samples,
            settings.score.method.name(),
            settings.gate.threshold_high,
            settings.gate.threshold_low
        );
        lock(&self.shared.pending_settings).take();
        *lock(&self.shared.processor) = Some(FrameProcessor::new(pipeline, options));
        Outcome::Success
    }

    /// Releases the model; its parameters may change again until the next configure.
    fn cleanup(&mut self) -> Outcome {
        drop(lock(&self.shared.processor).take());
        lock(&self.shared.pending_settings).take();
        {
            let mut st = lock(&self.shared.state);
            st.settings = None;
            st.provider = "";
            st.model.clear();
        }
        let mut p = lock(&self.params);
        p.base = None;
        p.unloaded = true;
        r2r::log_info!(NODE, "cleaned up: model released");
        Outcome::Success
    }

    /// Subscribes to the input (in the spin thread) and starts moving frames to the worker.
    async fn activate(&mut self) -> Outcome {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.commands.send(NodeCmd::Subscribe(reply)).is_err() {
            return Outcome::Failure;
        }
        let frames = match answer.await {
            Ok(Ok(frames)) => frames,
            Ok(Err(e)) => {
                r2r::log_error!(NODE, "activate failed: {e}");
                return Outcome::Failure;
            }
            Err(_) => return Outcome::Failure,
        };
        lock(&self.shared.slot.frame).take();
        {
            let mut st = lock(&self.shared.state);
            st.active_since = Some(Instant::now());
            st.stale = false;
            st.last_stale_publish = None;
        }
        // The gate starts over, unconfident until recover_frames good frames.
        self.shared.went_stale.store(true, Ordering::Relaxed);
        self.drain = Some(tokio::spawn(drain(frames, self.shared.clone())));
        Outcome::Success
    }

    /// Stops the input: the drain task ends, which drops the subscription (r2r removes it at
    /// its next message), and a waiting frame is dropped.
    fn stop_input(&mut self) -> Outcome {
        if let Some(d) = self.drain.take() {
            d.abort();
        }
        lock(&self.shared.slot.frame).take();
        Outcome::Success
    }

    /// Stops processing and publishes confident = false once the frame in flight (if any) is out.
    fn deactivate(&mut self) -> Outcome {
        // The lifecycle state is `deactivating` already: the worker takes no further frame.
        self.stop_input();
        drop(lock(&self.shared.processor));
        self.shared.went_stale.store(true, Ordering::Relaxed);
        let header = {
            let mut st = lock(&self.shared.state);
            st.last_stale_publish = Some(Instant::now());
            st.last_header.clone()
        };
        publish_not_confident(&self.shared, &header, 1, "inactive");
        Outcome::Success
    }
}
