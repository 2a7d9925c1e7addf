//! `smolsweep run SWEEP.toml`: validate the whole sweep, then train and
//! evaluate every grid point (resuming whatever an earlier run left).

use anyhow::{Context, Result};
use smolsweep_orchestrator::{SweepOptions, SweepSpec};

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

pub fn run(a: &RunArgs) -> Result<()> {
    // Validation first and whole: nothing starts on a sweep with a bad key.
    let spec = SweepSpec::load(&a.sweep)?;
    // The data too: a bad eval path found after training costs the run.
    super::preflight::check(&spec)?;
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
    let program = match std::env::var_os(TRIAL_PROGRAM_ENV) {
        Some(p) => p.into(),
        None => std::env::current_exe().context("locating the smolsweep binary")?,
    };
    let opts = SweepOptions {
        program,
        gpu_fallback: Some(Box::new(cuda_devices)),
        progress: !a.no_progress,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = rt.block_on(smolsweep_orchestrator::run(spec, opts))?;
    drop(rt);
    let line = format!(
        "{} trials: {} completed, {} diverged, {} failed, {} left{}",
        summary.total,
        summary.completed,
        summary.diverged,
        summary.failed,
        summary.pending,
        if summary.added > 0 {
            format!(" ({} new grid points)", summary.added)
        } else {
            String::new()
        }
    );
    if summary.interrupted {
        eprintln!("interrupted: {line}; run the same command again to resume");
        // 130: the shell's "stopped by SIGINT", after a clean shutdown.
        return Err(super::ExitStatus(130).into());
    }
    eprintln!("{line}");
    if summary.failed > 0 {
        anyhow::bail!(
            "{} trials failed after all retries (see `smolsweep status {}`)",
            summary.failed,
            a.sweep.display()
        );
    }
    Ok(())
}
