//! The launcher interface: how one stage (`train` or `eval`) of a trial
//! attempt runs, whichever backend runs it. The trial lifecycle (`trial`)
//! decides what to run and what its exit means; a launcher only runs it
//! and reports how it ended:
//!
//! - local: a child process on this machine's slot (`child`), holding the
//!   trial lock;
//! - Slurm: the attempt's job (`slurm`), which runs train and then eval on
//!   a node; the eval stage of an attempt whose job already ran it only
//!   reads its status.

use std::fs::File;
use std::path::Path;

use super::child::{run_child, Child, Exit};
use super::slurm::{Plan, Slurm};
use super::tail::EventTail;
use super::{Ctx, RunError};
use crate::store::Trial;

pub(super) enum Launcher {
    Local,
    Slurm(Box<Slurm>),
}

/// One stage to run.
pub(super) struct StageRun<'a> {
    pub stage: &'a str,
    /// Arguments after the program (local).
    pub args: Vec<String>,
    /// The trial lock (local).
    pub lock: Option<&'a File>,
    pub lock_path: &'a Path,
    pub stdout: File,
    pub stderr: File,
    pub cuda_visible_devices: &'a str,
    /// The whole attempt (Slurm: one job runs both stages).
    pub plan: &'a Plan,
    pub dir: &'a Path,
}

impl Launcher {
    /// Whether trials hold the trial lock on this machine (the local
    /// backend's guard against two processes of one trial; Slurm's is one
    /// job per attempt).
    pub(super) fn is_local(&self) -> bool {
        matches!(self, Launcher::Local)
    }

    /// Runs the stage to its end ([`Exit::Left`]: the sweep stopped and the
    /// stage carries on without us).
    pub(super) async fn run(
        &self,
        ctx: &Ctx,
        trial: &Trial,
        run: StageRun<'_>,
        events: Option<&mut EventTail<'_>>,
    ) -> Result<Exit, RunError> {
        match self {
            Launcher::Local => {
                let child = Child {
                    stage: run.stage,
                    args: run.args,
                    lock: run.lock,
                    lock_path: run.lock_path,
                    stdout: run.stdout,
                    stderr: run.stderr,
                    cuda_visible_devices: run.cuda_visible_devices,
                };
                run_child(ctx, trial, child, events).await
            }
            Launcher::Slurm(s) => {
                s.run_stage(ctx, trial, run.stage, run.plan, run.dir, events)
                    .await
            }
        }
    }
}
