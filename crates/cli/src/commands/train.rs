//! `smolsweep train`: one SFT or DPO job from a trial TOML. The exit status
//! (`smolsweep_config::ExitCode`) tells the orchestrator how it ended: 0
//! done, 3 diverged, 4 stopped by SIGTERM/SIGINT (after a checkpoint), 1
//! any error.

use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use smolsweep_config::ExitCode;
use smolsweep_trainer::events::StdoutEvents;
use smolsweep_trainer::{Outcome, RunOptions, TrialConfig};

use super::ExitStatus;
use crate::args::TrainArgs;

pub fn run(a: &TrainArgs) -> Result<()> {
    let cfg = TrialConfig::from_file(&a.config)?;
    if a.check {
        println!("{}: valid trial", a.config.display());
        return Ok(());
    }
    // The flag is polled while the data loads (which then stops within
    // about a second, leaving no partial cache) and at step boundaries
    // (the step in flight finishes and a checkpoint is written); either
    // way the process exits with status 4.
    let stop = Arc::new(AtomicBool::new(false));
    // USR2 is Slurm's warning before the time limit (`--signal=B:USR2@N`,
    // passed on by the job's script): the same stop once this process has
    // taken a step (so that a job requeued again and again still gets
    // somewhere), and a `preempted` event so the record says why; the job
    // then requeues and resumes.
    let preempted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR2, Arc::clone(&preempted))
        .context("installing signal handlers")?;
    let opts = RunOptions {
        resume: a.resume,
        dump_batches: a.dump_batches.clone().map(|p| (p, a.dump_steps)),
        progress: std::io::stderr().is_terminal() && !a.no_progress,
        preempt: Some(Arc::clone(&preempted)),
    };
    let outcome = smolsweep_trainer::run(&cfg, &opts, &stop, &mut StdoutEvents)
        .with_context(|| format!("training {}", a.config.display()))?;
    if let Outcome::Stopped { step, checkpoint } = &outcome {
        if preempted.load(std::sync::atomic::Ordering::SeqCst) {
            use smolsweep_trainer::events::EventSink;
            StdoutEvents.emit(smolsweep_config::TrainEvent::Preempted {
                step: *step,
                checkpoint: checkpoint.clone(),
            });
        }
    }
    match &outcome {
        Outcome::Done { step, loss, export } => {
            tracing::info!(step, loss, export = %export.display(), "done");
        }
        Outcome::StoppedEarly { step, export, .. } => {
            tracing::info!(step, export = %export.display(), "stopped early and exported");
        }
        Outcome::Diverged {
            step,
            rule,
            message,
            ..
        } => {
            tracing::warn!(step, %rule, "diverged: {message}")
        }
        Outcome::Stopped {
            step,
            checkpoint: Some(checkpoint),
        } => {
            tracing::info!(step, checkpoint = %checkpoint.display(), "stopped; resume with --resume")
        }
        Outcome::Stopped {
            checkpoint: None, ..
        } => tracing::info!("stopped before the first step (nothing to checkpoint)"),
    }
    match outcome.exit_code() {
        ExitCode::Done => Ok(()),
        code => Err(ExitStatus(code.code()).into()),
    }
}
