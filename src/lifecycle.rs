//! The ROS 2 managed-node (lifecycle) state machine, without ROS: the states, transitions, ids
//! and labels of `lifecycle_msgs/msg/State` and `Transition` as rcl_lifecycle's default state
//! machine registers them, so `ros2 lifecycle` and rclcpp/rclpy clients see a standard node. The
//! node (`ros::node`, `managed:=true`) serves the lifecycle services over it (docs/interfaces.md §10).
//!
//! A change of state is two steps: a requested transition (e.g. `configure`, id 1) moves a
//! primary state into a transition state (`configuring`); the node does the work, and its
//! outcome (`transition_success`, `_failure` or `_error`) moves it on to a primary state.

/// A state: `lifecycle_msgs/msg/State` id and label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    /// `lifecycle_msgs/msg/State` id.
    pub id: u8,
    /// rcl_lifecycle's label.
    pub label: &'static str,
}

/// `PRIMARY_STATE_UNKNOWN`.
pub const UNKNOWN: State = State { id: 0, label: "unknown" };
/// `PRIMARY_STATE_UNCONFIGURED`: no model loaded.
pub const UNCONFIGURED: State = State { id: 1, label: "unconfigured" };
/// `PRIMARY_STATE_INACTIVE`: model loaded, no frames processed.
pub const INACTIVE: State = State { id: 2, label: "inactive" };
/// `PRIMARY_STATE_ACTIVE`: processing and publishing.
pub const ACTIVE: State = State { id: 3, label: "active" };
/// `PRIMARY_STATE_FINALIZED`: shut down.
pub const FINALIZED: State = State { id: 4, label: "finalized" };
/// `TRANSITION_STATE_CONFIGURING`.
pub const CONFIGURING: State = State { id: 10, label: "configuring" };
/// `TRANSITION_STATE_CLEANINGUP`.
pub const CLEANINGUP: State = State { id: 11, label: "cleaningup" };
/// `TRANSITION_STATE_SHUTTINGDOWN`.
pub const SHUTTINGDOWN: State = State { id: 12, label: "shuttingdown" };
/// `TRANSITION_STATE_ACTIVATING`.
pub const ACTIVATING: State = State { id: 13, label: "activating" };
/// `TRANSITION_STATE_DEACTIVATING`.
pub const DEACTIVATING: State = State { id: 14, label: "deactivating" };
/// `TRANSITION_STATE_ERRORPROCESSING`.
pub const ERRORPROCESSING: State = State { id: 15, label: "errorprocessing" };

/// Every state, in rcl_lifecycle's order (`~/get_available_states`).
pub const STATES: [State; 11] = [
    UNKNOWN,
    UNCONFIGURED,
    INACTIVE,
    ACTIVE,
    FINALIZED,
    CONFIGURING,
    CLEANINGUP,
    SHUTTINGDOWN,
    ACTIVATING,
    DEACTIVATING,
    ERRORPROCESSING,
];

/// `lifecycle_msgs/msg/Transition` ids of the transitions a client requests.
pub mod id {
    /// `TRANSITION_CONFIGURE`.
    pub const CONFIGURE: u8 = 1;
    /// `TRANSITION_CLEANUP`.
    pub const CLEANUP: u8 = 2;
    /// `TRANSITION_ACTIVATE`.
    pub const ACTIVATE: u8 = 3;
    /// `TRANSITION_DEACTIVATE`.
    pub const DEACTIVATE: u8 = 4;
    /// `TRANSITION_UNCONFIGURED_SHUTDOWN`.
    pub const UNCONFIGURED_SHUTDOWN: u8 = 5;
    /// `TRANSITION_INACTIVE_SHUTDOWN`.
    pub const INACTIVE_SHUTDOWN: u8 = 6;
    /// `TRANSITION_ACTIVE_SHUTDOWN`.
    pub const ACTIVE_SHUTDOWN: u8 = 7;
}

/// A transition: `lifecycle_msgs/msg/Transition` id and label, from `start` to `goal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// `lifecycle_msgs/msg/Transition` id.
    pub id: u8,
    /// rcl_lifecycle's label.
    pub label: &'static str,
    /// The state it leaves.
    pub start: State,
    /// The state it enters.
    pub goal: State,
}

const fn t(id: u8, label: &'static str, start: State, goal: State) -> Transition {
    Transition { id, label, start, goal }
}

const SUCCESS: &str = "transition_success";
const FAILURE: &str = "transition_failure";
const ERROR: &str = "transition_error";

/// The transition graph of rcl_lifecycle's default state machine, in its order
/// (`~/get_transition_graph`).
pub const TRANSITIONS: [Transition; 25] = [
    t(id::CONFIGURE, "configure", UNCONFIGURED, CONFIGURING),
    t(10, SUCCESS, CONFIGURING, INACTIVE),
    t(11, FAILURE, CONFIGURING, UNCONFIGURED),
    t(12, ERROR, CONFIGURING, ERRORPROCESSING),
    t(id::CLEANUP, "cleanup", INACTIVE, CLEANINGUP),
    t(20, SUCCESS, CLEANINGUP, UNCONFIGURED),
    t(21, FAILURE, CLEANINGUP, INACTIVE),
    t(22, ERROR, CLEANINGUP, ERRORPROCESSING),
    t(id::ACTIVATE, "activate", INACTIVE, ACTIVATING),
    t(30, SUCCESS, ACTIVATING, ACTIVE),
    t(31, FAILURE, ACTIVATING, INACTIVE),
    t(32, ERROR, ACTIVATING, ERRORPROCESSING),
    t(id::DEACTIVATE, "deactivate", ACTIVE, DEACTIVATING),
    t(40, SUCCESS, DEACTIVATING, INACTIVE),
    t(41, FAILURE, DEACTIVATING, ACTIVE),
    t(42, ERROR, DEACTIVATING, ERRORPROCESSING),
    t(id::UNCONFIGURED_SHUTDOWN, "shutdown", UNCONFIGURED, SHUTTINGDOWN),
    t(id::INACTIVE_SHUTDOWN, "shutdown", INACTIVE, SHUTTINGDOWN),
    t(id::ACTIVE_SHUTDOWN, "shutdown", ACTIVE, SHUTTINGDOWN),
    t(50, SUCCESS, SHUTTINGDOWN, FINALIZED),
    t(51, FAILURE, SHUTTINGDOWN, FINALIZED),
    t(52, ERROR, SHUTTINGDOWN, ERRORPROCESSING),
    t(60, SUCCESS, ERRORPROCESSING, UNCONFIGURED),
    t(61, FAILURE, ERRORPROCESSING, FINALIZED),
    t(62, ERROR, ERRORPROCESSING, FINALIZED),
];

/// How the work of a transition state ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done: on to the goal (`transition_success`).
    Success,
    /// Not done, nothing broken: back where it came from (`transition_failure`).
    Failure,
    /// Broken: to `errorprocessing` (`transition_error`).
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Success => SUCCESS,
            Outcome::Failure => FAILURE,
            Outcome::Error => ERROR,
        }
    }
}

/// The current state of a managed node; starts unconfigured.
#[derive(Clone, Debug)]
pub struct Machine {
    current: State,
}

impl Default for Machine {
    fn default() -> Self {
        Machine { current: UNCONFIGURED }
    }
}

impl Machine {
    /// The state the node is in.
    pub fn current(&self) -> State {
        self.current
    }

    /// The transitions that leave the current state (`~/get_available_transitions`).
    pub fn available(&self) -> impl Iterator<Item = &'static Transition> + '_ {
        TRANSITIONS.iter().filter(move |t| t.start == self.current)
    }

    /// The transition a `ChangeState` request names, as rclcpp reads it: a non-empty label wins
    /// over the id (`ros2 service call` leaves the id 0) and is looked up among the current
    /// state's transitions, so `shutdown` is 5, 6 or 7 by state. Only transitions that start
    /// in a primary state can be requested.
    pub fn request(&self, id: u8, label: &str) -> Result<&'static Transition, String> {
        let found = if label.is_empty() {
            self.available().find(|t| t.id == id)
        } else {
            self.available().find(|t| t.label == label)
        };
        match found {
            Some(t) if t.start.id < 10 => Ok(t),
            _ => {
                let what = if label.is_empty() { format!("id {id}") } else { format!("'{label}'") };
                let valid: Vec<String> =
                    self.available().filter(|t| t.start.id < 10).map(|t| format!("{} ({})", t.label, t.id)).collect();
                Err(format!(
                    "transition {what} is not available in state {}; available: {}",
                    self.current.label,
                    if valid.is_empty() { "none".to_string() } else { valid.join(", ") }
                ))
            }
        }
    }

    /// Takes a requested transition (from [`Machine::request`]): now in its transition state.
    pub fn begin(&mut self, t: &Transition) {
        debug_assert_eq!(t.start, self.current);
        self.current = t.goal;
    }

    /// Ends the current transition state with `outcome`; the transition taken (its goal is the
    /// new state). `None` outside a transition state.
    pub fn finish(&mut self, outcome: Outcome) -> Option<&'static Transition> {
        let t = TRANSITIONS.iter().find(|t| t.start == self.current && t.label == outcome.label())?;
        self.current = t.goal;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &mut Machine, label: &str, outcome: Outcome) -> State {
        let t = m.request(0, label).unwrap();
        m.begin(t);
        m.finish(outcome).unwrap().goal
    }

    #[test]
    fn ids_are_those_of_lifecycle_msgs() {
        let ids: Vec<(u8, &str)> = STATES.iter().map(|s| (s.id, s.label)).collect();
        assert_eq!(
            ids,
            [
                (0, "unknown"),
                (1, "unconfigured"),
                (2, "inactive"),
                (3, "active"),
                (4, "finalized"),
                (10, "configuring"),
                (11, "cleaningup"),
                (12, "shuttingdown"),
                (13, "activating"),
                (14, "deactivating"),
                (15, "errorprocessing"),
            ]
        );
        let requested: Vec<(u8, &str)> = TRANSITIONS.iter().filter(|t| t.id < 10).map(|t| (t.id, t.label)).collect();
        assert_eq!(
            requested,
            [
                (1, "configure"),
                (2, "cleanup"),
                (3, "activate"),
                (4, "deactivate"),
                (5, "shutdown"),
                (6, "shutdown"),
                (7, "shutdown")
            ]
        );
        // Each transition state has exactly one success, failure and error way out, with the
        // ids ON_<X>_SUCCESS/FAILURE/ERROR = 10 * k, + 1, + 2.
        for s in STATES.iter().filter(|s| s.id >= 10) {
            let out: Vec<&Transition> = TRANSITIONS.iter().filter(|t| t.start == *s).collect();
            assert_eq!(out.len(), 3, "{s:?}");
            assert_eq!([out[0].label, out[1].label, out[2].label], [SUCCESS, FAILURE, ERROR]);
            assert!(out[0].id.is_multiple_of(10) && out[1].id == out[0].id + 1 && out[2].id == out[0].id + 2);
        }
    }

    #[test]
    fn the_full_cycle() {
        let mut m = Machine::default();
        assert_eq!(m.current(), UNCONFIGURED);
        assert_eq!(run(&mut m, "configure", Outcome::Success), INACTIVE);
        assert_eq!(run(&mut m, "activate", Outcome::Success), ACTIVE);
        assert_eq!(run(&mut m, "deactivate", Outcome::Success), INACTIVE);
        assert_eq!(run(&mut m, "activate", Outcome::Success), ACTIVE);
        assert_eq!(run(&mut m, "deactivate", Outcome::Success), INACTIVE);
        assert_eq!(run(&mut m, "cleanup", Outcome::Success), UNCONFIGURED);
        assert_eq!(run(&mut m, "configure", Outcome::Success), INACTIVE);
        assert_eq!(run(&mut m, "shutdown", Outcome::Success), FINALIZED);
        assert!(m.available().next().is_none());
        assert!(m.request(1, "").is_err());
    }

    #[test]
    fn failures_go_back_and_errors_to_errorprocessing() {
        let mut m = Machine::default();
        assert_eq!(run(&mut m, "configure", Outcome::Failure), UNCONFIGURED);
        assert_eq!(run(&mut m, "configure", Outcome::Error), ERRORPROCESSING);
        assert_eq!(m.finish(Outcome::Success).unwrap().goal, UNCONFIGURED);
        assert_eq!(run(&mut m, "configure", Outcome::Success), INACTIVE);
        assert_eq!(run(&mut m, "activate", Outcome::Failure), INACTIVE);
        assert_eq!(m.finish(Outcome::Success), None, "not in a transition state");
    }

    #[test]
    fn requests_by_id_or_label() {
        let mut m = Machine::default();
        // By id: only the current state's transitions.
        assert_eq!(m.request(id::CONFIGURE, "").unwrap().goal, CONFIGURING);
        assert!(m.request(id::ACTIVATE, "").is_err());
        assert!(m.request(id::INACTIVE_SHUTDOWN, "").is_err());
        assert_eq!(m.request(id::UNCONFIGURED_SHUTDOWN, "").unwrap().goal, SHUTTINGDOWN);
        // The label wins over the id; shutdown resolves by state.
        assert_eq!(m.request(0, "shutdown").unwrap().id, id::UNCONFIGURED_SHUTDOWN);
        assert_eq!(m.request(id::ACTIVATE, "configure").unwrap().id, id::CONFIGURE);
        let err = m.request(0, "activate").unwrap_err();
        assert!(err.contains("unconfigured") && err.contains("configure (1)"), "{err}");
        // Neither create (0) nor the outcome transitions can be requested.
        assert!(m.request(0, "").is_err());
        assert!(m.request(10, "").is_err());
        assert!(m.request(0, "transition_success").is_err());
        run(&mut m, "configure", Outcome::Success);
        assert_eq!(m.request(0, "shutdown").unwrap().id, id::INACTIVE_SHUTDOWN);
        let avail: Vec<u8> = m.available().map(|t| t.id).collect();
        assert_eq!(avail, [id::CLEANUP, id::ACTIVATE, id::INACTIVE_SHUTDOWN]);
        run(&mut m, "activate", Outcome::Success);
        assert_eq!(m.request(0, "shutdown").unwrap().id, id::ACTIVE_SHUTDOWN);
        let avail: Vec<u8> = m.available().map(|t| t.id).collect();
        assert_eq!(avail, [id::DEACTIVATE, id::ACTIVE_SHUTDOWN]);
    }
}
