//! The sweep orchestrator: a TOML grid of trials, a SQLite record of
//! everything they do, and a scheduler that fans them out over GPU slots as
//! child processes and resumes after any interruption (DESIGN.md sections 2
//! and 8).
//!
//! - [`spec`]: the sweep TOML, validated entirely before anything runs;
//! - [`store`]: the SQLite record (sqlx, `migrations/`);
//! - [`sched`]: the scheduler, the trial lifecycle and resume;
//! - [`locks`]: one orchestrator per sweep, one process per trial;
//! - [`gpu`]: GPU detection and slots;
//! - [`progress`]: the live display;
//! - [`snapshot`]: a sweep read back for `status`, `export` and `report`.

pub mod gpu;
pub mod locks;
pub mod progress;
pub mod sched;
pub mod snapshot;
pub mod spec;
pub mod store;

pub use sched::{run, RunError, RunSummary, SweepOptions};
pub use spec::{SpecError, SweepSpec};
