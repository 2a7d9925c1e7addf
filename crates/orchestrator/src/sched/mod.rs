//! The scheduler: fans the sweep's trials out over slots as child
//! processes, records what they report, and makes every interruption
//! resumable.
//!
//! One coordinator loop owns the slots: whenever a slot is free and a trial
//! is pending it claims one at once (no timer between them), so a slot never
//! idles while work is left. Each claimed trial runs as a task that starts
//! `smolsweep train --config trial.toml --resume` and, once the trainer has
//! reported `done`, `smolsweep eval` on its export — each a child process in
//! its own process group with its own `CUDA_VISIBLE_DEVICES`.
//!
//! A trial's stdout (the trainer's JSON event lines) goes to a file in its
//! directory, not to a pipe: the trial survives its orchestrator (a pipe
//! would kill it with EPIPE at its next event), and whoever drives the sweep
//! next can read what it wrote meanwhile. The coordinator tails that file
//! and records each event with the file offset in one transaction, so every
//! event lands in the database exactly once.
//!
//! What a trial has achieved is read from its own files, not from the
//! database: a `done` line in its event file means trained, a parseable
//! `results.json` means evaluated. So a crash between "process finished"
//! and "database updated" only ever repeats bookkeeping, never a result.
//!
//! - `coordinator`: the loop: slots, claims, signals, the summary;
//! - `trial`: one trial's lifecycle, train stage then eval stage, ending
//!   in a [`TrialOutcome`](crate::store::TrialOutcome);
//! - `extra`: evaluations of completed trials outside their lifecycle
//!   (tasks added to `[eval]`, `eval-sweep`'s results sets);
//! - `launch`: the launcher interface: one stage of an attempt, run as
//!   a local child process (`child`) or in the attempt's Slurm job
//!   (`slurm`);
//! - `child`: one child process: spawn, process group, signals, exit;
//! - `slurm`: the Slurm backend: batch scripts, sbatch, one squeue per
//!   round, repair after a crash;
//! - `pack`: `slots_per_gpu = "auto"` in the loop: which free slot takes
//!   the next trial, measurements, out of memory retries;
//! - `tail`: the trial's event file: new lines, training state;
//! - `stop_rule`: the median stopping rule, watching a trial's events.

mod child;
mod coordinator;
mod extra;
mod launch;
mod pack;
pub mod slurm;
mod stop_rule;
mod tail;
mod trial;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::store::{Store, StoreError};
use crate::{gpu, locks};
use smolsweep_config::SweepSpec;

pub use coordinator::{
    check_slurm_options, eval_sweep, run, EvalSweepSummary, OnStop, RunSummary, SweepOptions,
};

/// How often running trials' event files are read (and the display moved).
const TAIL_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] locks::LockError),
    #[error(transparent)]
    Gpu(#[from] gpu::GpuError),
    #[error(transparent)]
    Slurm(#[from] slurm::SlurmError),
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    #[error(
        "{file}: resources.backend is \"local\": {flag} needs backend = \"slurm\" \
         (local trials are child processes of `run`, which stop with it)"
    )]
    NeedsSlurm { file: PathBuf, flag: &'static str },
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An error and its causes on one line, as the CLI prints them: a trial's
/// recorded failure reason must say as much as the terminal would.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        // Some libraries (sqlx) repeat their cause in their own message.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// Shared by the coordinator and the trial tasks.
struct Ctx {
    spec: SweepSpec,
    store: Store,
    program: PathBuf,
    shutdown: watch::Receiver<u8>,
    /// OMP_NUM_THREADS for trials on CPU slots (see `gpu::cpu_threads`).
    cpu_threads: Option<usize>,
    /// Local child processes or Slurm jobs.
    launcher: launch::Launcher,
    /// Slurm: `run --detach`: submit, then leave the jobs running.
    detach: bool,
    /// Slurm: the sweep's jobs are cancelled as it stops (`--cancel`, or
    /// the answer at the Ctrl-C prompt); set before the shutdown level.
    cancel: Arc<AtomicBool>,
    /// `slots_per_gpu = "auto"` on GPUs: the packing's state.
    packing: Option<std::sync::Arc<std::sync::Mutex<crate::packing::Packer>>>,
}

impl Ctx {
    /// 0 running, 1 checkpoint and stop, 2 kill.
    fn shutdown_level(&self) -> u8 {
        *self.shutdown.borrow()
    }

    /// Whether a stopping sweep cancels its Slurm jobs (else leaves them).
    fn cancel_jobs(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}
