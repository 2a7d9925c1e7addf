//! `smolsweep run SWEEP.toml`: validate the whole sweep, then train and
//! evaluate every grid point (resuming whatever an earlier run left), and
//! evaluate completed trials on tasks added to `[eval]` since.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use smolsweep_evals::{load_task, DataSources, TaskSpec};
use smolsweep_orchestrator::store::TaskFiles;
use smolsweep_orchestrator::{OnStop, SweepOptions, SweepSpec};

use crate::args::RunArgs;

/// Names the program that runs each trial's `train` and `eval` (default:
/// this binary). For wrappers, other builds, and tests that need a
/// stand-in trial program.
pub const TRIAL_PROGRAM_ENV: &str = "SMOLSWEEP_TRIAL_PROGRAM";

/// libtorch's CUDA device count: asked only when nvidia-smi finds nothing;
/// counting devices does not create a CUDA context.
fn cuda_devices() -> usize {
    if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    }
}

/// A task's data files as `smolsweep eval` finds them, for the
/// orchestrator's check that a task given a new path has the same data.
pub(crate) fn task_files() -> Box<TaskFiles> {
    Box::new(|entry: &str, data_dir: Option<&Path>| {
        let spec: TaskSpec = entry.parse().map_err(|e| format!("{e}"))?;
        let sources = DataSources {
            data_dir: data_dir.map(Path::to_path_buf),
            fewshot_from: None,
        };
        let data = load_task(&spec, &sources, None)
            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
        Ok((data.files, data.fewshot_files))
    })
}

/// The program that runs trials: `$SMOLSWEEP_TRIAL_PROGRAM`, else this binary.
pub(crate) fn trial_program() -> Result<std::path::PathBuf> {
    match std::env::var_os(TRIAL_PROGRAM_ENV) {
        Some(p) => Ok(p.into()),
        None => std::env::current_exe().context("locating the smolsweep binary"),
    }
}

pub(crate) fn gpu_fallback() -> Box<dyn Fn() -> usize + Send + Sync> {
    Box::new(cuda_devices)
}

pub fn run(a: &RunArgs) -> Result<()> {
    // Validation first and whole: nothing starts on a sweep with a bad key.
    let mut spec = SweepSpec::load(&a.sweep)?;
    super::resolve_models(&mut spec)?;
    // The data too: a bad eval path found after training costs the run.
    super::preflight::check(&spec)?;
    // Ask at Ctrl-C only where someone can answer.
    let on_stop = if a.cancel {
        OnStop::Cancel
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        OnStop::Ask
    } else {
        OnStop::Leave
    };
    smolsweep_orchestrator::sched::check_slurm_options(&spec, a.detach, on_stop)?;
    if a.check && spec.resources.backend == smolsweep_config::sweep::Backend::Slurm {
        smolsweep_orchestrator::sched::slurm::preflight(&a.sweep, &spec.resources.slurm)?;
        println!(
            "{}: valid sweep, {} trials, Slurm (up to {} jobs at once)",
            a.sweep.display(),
            spec.trial_count(),
            spec.resources.slurm.max_concurrent
        );
        return Ok(());
    }
    if a.check {
        let detected = smolsweep_orchestrator::gpu::detect(Some(&cuda_devices));
        let slots = smolsweep_orchestrator::gpu::slots(
            &spec.resources,
            &detected,
            &a.sweep.display().to_string(),
        )?;
        println!(
            "{}: valid sweep, {} trials, {} slots",
            a.sweep.display(),
            spec.trial_count(),
            slots.len()
        );
        return Ok(());
    }
    let program = trial_program()?;
    // Tokenise once here, before fan-out, when the trials are this
    // binary's `train` (another program may not read smolsweep's cache;
    // its trials still tokenise once between them, under the cache lock).
    let this = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    if this.is_some() && program.canonicalize().ok() == this {
        for line in super::prepare::prepare_sweep(&spec, 130)? {
            tracing::info!("data ready: {line}");
        }
    }
    let opts = SweepOptions {
        program,
        gpu_fallback: Some(gpu_fallback()),
        progress: !a.no_progress,
        task_files: Some(task_files()),
        detach: a.detach,
        on_stop,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = rt.block_on(smolsweep_orchestrator::run(spec, opts))?;
    drop(rt);
    let line = format!(
        "{} trials: {} completed, {}{} diverged, {} failed, {} left{}",
        summary.total,
        summary.completed,
        match summary.stopped_early {
            0 => String::new(),
            n => format!("{n} stopped early, "),
        },
        summary.diverged,
        summary.failed,
        summary.pending,
        if summary.added > 0 {
            format!(" ({} new grid points)", summary.added)
        } else {
            String::new()
        }
    );
    let sweep = a.sweep.display();
    if summary.interrupted {
        if summary.cancelled {
            eprintln!(
                "the sweep's Slurm jobs were cancelled; `smolsweep run {sweep}` submits them again"
            );
        } else if summary.left_running > 0 {
            eprintln!(
                "{} Slurm jobs left queued or running; `smolsweep run {sweep}` follows them",
                summary.left_running
            );
        }
        eprintln!("interrupted: {line}; run the same command again to resume");
        // 130: the shell's "stopped by SIGINT", after a clean shutdown.
        return Err(super::ExitStatus(130).into());
    }
    eprintln!("{line}");
    if a.detach {
        eprintln!(
            "detached: {} Slurm jobs submitted, {} adopted from an earlier run, {} queued or \
             running in all; follow with `smolsweep status {sweep}`, and `smolsweep run {sweep}` \
             (or `run --detach`) again records what finished and submits the rest",
            summary.submitted, summary.left_adopted, summary.left_running
        );
    }
    if summary.evaluated > 0 {
        eprintln!(
            "{} completed trials evaluated on tasks added to [eval] (not trained again)",
            summary.evaluated
        );
    }
    if !summary.eval_failed.is_empty() {
        anyhow::bail!(
            "{} evaluations of completed trials failed (the trials keep their scores; fix [eval] \
             and run again):\n  {}",
            summary.eval_failed.len(),
            summary.eval_failed.join("\n  ")
        );
    }
    if summary.failed > 0 {
        anyhow::bail!(
            "{} trials failed after all retries (see `smolsweep status {sweep}`)",
            summary.failed,
        );
    }
    Ok(())
}
