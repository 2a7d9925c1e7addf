//! The sweep record: SQLite through sqlx, schema in the workspace's
//! `migrations/` (embedded at compile time, applied on open).
//!
//! The orchestrator is the database's only writer; its pool has a single
//! connection, so writes are serialised in-process, and claims still run as
//! a compare-and-swap inside `BEGIN IMMEDIATE` (docs/architecture.md, "Reliability rules") so the
//! state machine holds even if that ever changes. WAL lets `status` and
//! `export` read while a sweep runs.
//!
//! - `record`: opening and migrating the database, the sweep row and the
//!   orchestrator's liveness;
//! - `trials`: the trial rows and their state machine (claim, finish, ...);
//! - `events`: the event log and the trainer's recorded events;
//! - `curves`: recorded loss curves, for the sweep's stop rule, and the
//!   final training metrics of each trial;
//! - `results`: eval scores, flattened from `results.json`;
//! - `sets`: results sets, the data behind each task's scores, and the
//!   rule for a grown `[eval]`;
//! - `jobs`: Slurm jobs of trial attempts (intent, id, state, node);
//! - `tx`: the one write transaction every change goes through.

mod curves;
mod events;
mod jobs;
mod record;
mod results;
mod sets;
mod trials;
mod tx;

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;

pub use curves::{Curve, FinalMetrics};
pub use events::{EventLine, EventRow};
pub use jobs::{job_json, JobKey, SlurmJob};
pub use record::SweepRow;
pub use results::{flatten_results, RecordedScore, Score};
pub use sets::{
    check_set_name, data_hash, task_data_of, ResultsSet, TaskData, TaskFiles, DEFAULT_SET,
};
pub use trials::{Trial, TrialOutcome};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{db}")]
    Sql { db: PathBuf, source: sqlx::Error },
    #[error("{db}: applying migrations")]
    Migrate {
        db: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("{db}: no sweep recorded here yet (start it with `smolsweep run`)")]
    NoSweep { db: PathBuf },
    #[error(
        "{file}: {key} differs from the spec recorded in {db}; a running sweep's spec is frozen \
         (only new grid values, and `[eval]` tasks, may be added). Restore it, or give the sweep a new output_dir"
    )]
    SpecChanged {
        file: PathBuf,
        db: PathBuf,
        key: String,
    },
    #[error(
        "{file}: {key} differs from the spec recorded in {db}, and it would change scores \
         already recorded (only tasks may be added, removed, or moved to the same data). \
         Restore it; to evaluate the completed trials this way, run `{hint}` (a new results \
         set beside the recorded scores), or give the sweep a new output_dir"
    )]
    EvalChanged {
        file: PathBuf,
        db: PathBuf,
        key: String,
        hint: String,
    },
    #[error("{db}: results set {name:?} {msg}")]
    ResultsSet {
        db: PathBuf,
        name: String,
        msg: String,
    },
    #[error("{db}: creating {dir}")]
    CreateDir {
        db: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{db}: recorded spec is not JSON")]
    RecordedSpec {
        db: PathBuf,
        source: serde_json::Error,
    },
}

/// Seconds since the Unix epoch, the record's clock.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The open sweep record.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    db: PathBuf,
}

impl Store {
    pub fn path(&self) -> &Path {
        &self.db
    }

    /// A database error, named by the database it came from.
    fn err(&self, source: sqlx::Error) -> StoreError {
        StoreError::Sql {
            db: self.db.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
