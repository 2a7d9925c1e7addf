//! The sweep orchestrator: a SQLite record of everything a sweep's trials
//! do, and a scheduler that fans them out over GPU slots as child processes
//! and resumes after any interruption (docs/architecture.md, "Data flow"
//! and "Reliability rules"). The sweep spec it runs, with all of its
//! validation, is `smolsweep_config::SweepSpec`.
//!
//! - [`store`]: the SQLite record (sqlx, `migrations/`);
//! - [`chain`]: models taken from another sweep's trial;
//! - [`sched`]: the scheduler, the trial lifecycle and resume;
//! - [`locks`]: one orchestrator per sweep, one process per trial;
//! - [`gpu`]: GPU detection, slots and memory;
//! - [`packing`]: `slots_per_gpu = "auto"`, trials packed by measured memory;
//! - [`progress`]: the live display;
//! - [`snapshot`]: a sweep read back for `status`, `export` and `report`.

pub mod chain;
pub mod gpu;
pub mod locks;
pub mod packing;
pub mod progress;
pub mod sched;
pub mod snapshot;
pub mod store;

pub use sched::{eval_sweep, run, EvalSweepSummary, OnStop, RunError, RunSummary, SweepOptions};
pub use smolsweep_config::SweepSpec;
