//! Evaluation over many frames: streaming metrics ([`metrics`]), the bag replay ([`replay`]),
//! threshold calibration ([`calibrate`]), frame selection for labelling ([`select`]), and the
//! file and timing runs ([`infer`], [`bench`]). Each is a library function the CLI calls.

pub mod bench;
pub mod calibrate;
pub mod infer;
pub mod metrics;
pub mod replay;
pub mod risk;
pub mod select;
pub mod state;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Set when the user asked a run to stop (SIGINT): runs over many frames finish what they hold
/// (outputs, metrics, report) for the frames processed, instead of dying mid-write.
static INTERRUPT: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The flag a signal handler sets to stop runs early (the CLI registers it for SIGINT).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    INTERRUPT.get_or_init(|| Arc::new(AtomicBool::new(false))).clone()
}

/// Whether a stop was asked for.
pub fn interrupted() -> bool {
    INTERRUPT.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Progress of a long run, shown by the CLI as a progress bar.
pub trait Progress {
    /// A new phase with `total` steps (`None`: unknown).
    fn start(&mut self, what: &str, total: Option<u64>);
    /// One step done; `note` says what (a bag, a reason).
    fn step(&mut self, note: &str);
    /// The phase is over.
    fn finish(&mut self);
}

/// No progress shown.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: &str, _: Option<u64>) {}
    fn step(&mut self, _: &str) {}
    fn finish(&mut self) {}
}

/// Something that went wrong in a run over many frames without stopping it.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A frame that produced no segmentation (the run's exit code says so).
    #[error("{0}")]
    Failed(#[from] replay::Failure),
    /// Something that did not fail a frame (the exit code stays 0).
    #[error("warning: {0}")]
    Warning(#[from] replay::Warning),
    /// A bag that could not be read to its end.
    #[error("{}: stopped early after {frames} frames: {stop}", bag.display())]
    Stopped {
        /// The bag.
        bag: PathBuf,
        /// Frames processed before the stop.
        frames: u64,
        /// Why.
        stop: replay::Stop,
    },
    /// Chosen frames that could not be written (`select`).
    #[error("{0} chosen frames could not be written")]
    NotWritten(usize),
}

impl Problem {
    /// Whether the problem is only a warning (it does not change the exit code).
    pub fn is_warning(&self) -> bool {
        matches!(self, Problem::Warning(_))
    }
}
