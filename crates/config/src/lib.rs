//! The contracts every other crate shares, declared once: the trial schema
//! ([`trial`]), the benchmark registry ([`benchmarks`]) and the `[eval]`
//! options ([`eval`]), the sweep spec built on both ([`sweep`]), the
//! trainer's event stream ([`events`]), process exit codes ([`exit`]),
//! trial states ([`state`]) and the results.json structure ([`results`]).
//!
//! Serde only, no libtorch: the orchestrator validates a sweep with exactly
//! the code the trainer uses to read a trial file, without linking `tch`.
//! `docs/architecture.md` shows where each contract is produced and read.

pub mod benchmarks;
pub mod doc;
pub mod enums;
pub mod error;
pub mod eval;
pub mod events;
pub mod exit;
pub mod keys;
pub mod paper;
pub mod results;
pub mod state;
pub mod sweep;
pub mod trial;
pub mod value;

pub use benchmarks::Task;
pub use enums::{
    Attention, ChatTemplate, Convention, DType, DeviceSpec, DpoLoss, Forward, InitKind,
    LossReduction, MicroBatch, Schedule, Stage,
};
pub use error::ConfigError;
pub use eval::EvalConfig;
pub use events::{
    DivergenceRule, PreferenceMetrics, RewardMetrics, TrainEvent, STOP_REQUEST_FILE,
    TRAIN_HEADLINES, TRAIN_METRICS,
};
pub use exit::ExitCode;
pub use results::{EvalResults, Metric, TaskResult};
pub use state::TrialState;
pub use sweep::{Point, SweepSpec};
pub use trial::TrialConfig;
