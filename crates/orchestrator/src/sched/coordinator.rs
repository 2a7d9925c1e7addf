//! The coordinator loop: takes the sweep lock, adopts or recovers what a
//! previous orchestrator left running, then keeps every slot busy, claiming
//! a pending trial the moment a slot frees, until nothing is left or a
//! signal stops it. It turns Ctrl-C / SIGTERM into a shutdown level the
//! trial tasks obey, beats the heartbeat, and ends with a summary.
//!
//! When `[eval]` grew (a task added, or a path fixed), completed trials are
//! then evaluated on the tasks they have no scores for (`extra`), and
//! trials whose evaluation failed get another one: neither trains again.
//! [`eval_sweep`] is the same evaluation into a named results set.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::Value as Json;
use smolsweep_config::sweep::StopRule;
use smolsweep_config::{TrialState, STOP_REQUEST_FILE};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::launch::Launcher;
use super::pack::Pack;
use super::{chain, extra, io_err, slurm, trial, Ctx, RunError};
use crate::gpu::{self, Slot};
use crate::locks::{self, OrchestratorLock};
use crate::progress::ProgressDisplay;
use crate::store::{Store, StoreError, TaskFiles, Trial, TrialOutcome, DEFAULT_SET};
use smolsweep_config::sweep::{Backend, Slots};
use smolsweep_config::{EvalConfig, SweepSpec};

/// How often the orchestrator and its trials prove they are alive.
pub(super) const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// How often `slots_per_gpu = "auto"` looks again whether a waiting trial
/// fits (a trial's first memory event, or memory another process freed).
const REPACK_EVERY: Duration = Duration::from_secs(1);

/// How to run a sweep.
pub struct SweepOptions {
    /// The program whose `train` and `eval` subcommands run each trial:
    /// the smolsweep binary itself in normal use.
    pub program: PathBuf,
    /// GPU count to fall back on when nvidia-smi finds none (libtorch's).
    pub gpu_fallback: Option<Box<dyn Fn() -> usize + Send + Sync>>,
    /// Draw the progress display (when stderr is a terminal).
    pub progress: bool,
    /// Finds a task's data files as the evaluator does, so that a task
    /// whose path changed can be checked for unchanged data (without it,
    /// a scored task's path may not change).
    pub task_files: Option<Box<TaskFiles>>,
    /// Slurm: submit what can be submitted, then leave (`run --detach`).
    pub detach: bool,
    /// Slurm: what Ctrl-C (and SIGTERM) does to the sweep's jobs.
    pub on_stop: OnStop,
}

/// What stopping a sweep on the Slurm backend does to its jobs (local
/// trials are child processes: they always stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStop {
    /// They keep running; the next `run` follows them.
    #[default]
    Leave,
    /// `scancel` (`run --cancel`): the trials are pending again, and the
    /// next `run` submits them again without counting a failed attempt.
    Cancel,
    /// Ctrl-C asks on the terminal (leave is the default answer); SIGTERM
    /// leaves them. For a `run` whose stdin and stderr are a terminal.
    Ask,
}

impl std::fmt::Debug for SweepOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweepOptions")
            .field("program", &self.program)
            .field("progress", &self.progress)
            .field("detach", &self.detach)
            .field("on_stop", &self.on_stop)
            .finish()
    }
}

/// What a `run` ended with.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub total: usize,
    pub added: usize,
    pub completed: usize,
    pub diverged: usize,
    /// Stopped by the sweep's stop rule (and scored where they stopped).
    pub stopped_early: usize,
    pub failed: usize,
    pub pending: usize,
    /// Evaluations of completed trials on tasks added to `[eval]`.
    pub evaluated: usize,
    /// Those that failed, one line each (the trials stay completed).
    pub eval_failed: Vec<String>,
    /// Stopped by Ctrl-C / SIGTERM before the sweep finished.
    pub interrupted: bool,
    /// Slurm: jobs sbatch accepted in this run.
    pub submitted: usize,
    /// Slurm: trials whose jobs this run left queued or running (`--detach`,
    /// or stopped without `--cancel`).
    pub left_running: usize,
    /// Of those, the ones a previous run had submitted.
    pub left_adopted: usize,
    /// Slurm: the sweep's jobs were cancelled as it stopped.
    pub cancelled: bool,
}

/// What a trial task hands back to the loop.
type Finished = (Slot, Trial, ProgressBar, TrialOutcome);

/// Runs (or resumes) a sweep to completion or interruption.
pub async fn run(mut spec: SweepSpec, opts: SweepOptions) -> Result<RunSummary, RunError> {
    // A model from another sweep's trial: which one, before any trial
    // config is written (a no-op when the caller resolved it already).
    if !spec.unresolved().is_empty() {
        for r in crate::chain::resolve_models(&mut spec).await? {
            tracing::info!(key = r.key, model = %r.model.display(), "{}", r.how);
        }
    }
    let on_slurm = spec.resources.backend == Backend::Slurm;
    check_slurm_options(&spec, opts.detach, opts.on_stop)?;
    if on_slurm {
        // sbatch missing or a partition Slurm lacks: refused before the
        // sweep is recorded.
        slurm::preflight(&spec.file, &spec.resources.slurm)?;
    }
    std::fs::create_dir_all(&spec.output_dir).map_err(io_err(&spec.output_dir))?;
    if let Some(parent) = spec.db.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    // First the lock, then the database: a second orchestrator must not
    // touch anything, not even the spec check.
    let _lock = OrchestratorLock::acquire(&spec.db)?;
    let detected = gpu::detect(
        opts.gpu_fallback
            .as_deref()
            .map(|f| f as &dyn Fn() -> usize),
    );
    let slots = if on_slurm {
        // Slurm places the jobs; a slot is a job the sweep may have queued.
        (0..spec.resources.slurm.max_concurrent as usize)
            .map(|index| Slot {
                index,
                cuda_visible_devices: String::new(),
            })
            .collect()
    } else {
        gpu::slots(&spec.resources, &detected, &spec.file.display().to_string())?
    };
    let store = Store::open(&spec.db).await?;
    let pid = std::process::id();
    let eval_grew = store
        .check_eval_growth(&spec, opts.task_files.as_deref())
        .await?;
    let (_, added) = store.ensure_sweep(&spec, pid).await?;
    let reopened = store.reopen_failed(spec.resources.max_retries).await?;
    if reopened > 0 {
        tracing::info!(
            reopened,
            "failed trials get another attempt (max_retries was raised)"
        );
    }
    if spec.resources.stop_rule == StopRule::None {
        let reopened = reopen_stopped_early(&spec, &store).await?;
        if reopened > 0 {
            tracing::info!(
                reopened,
                "trials the stop rule stopped train on to the end (stop_rule is \"none\" now)"
            );
        }
    }
    if eval_grew {
        let reopened = store.reopen_failed_evals().await?;
        if reopened > 0 {
            tracing::info!(
                reopened,
                "trials whose evaluation failed are evaluated again ([eval] tasks changed)"
            );
        }
    }
    store
        .event(
            None,
            "orchestrator.start",
            &serde_json::json!({
                "pid": pid,
                "slots": slots.iter().map(|s| &s.cuda_visible_devices).collect::<Vec<_>>(),
                "added": added,
            }),
        )
        .await?;
    tracing::info!(
        db = %spec.db.display(),
        slots = slots.len(),
        gpus = ?detected,
        added,
        "sweep {}",
        spec.name
    );

    let adopt = orphans(&spec, &store, on_slurm).await?;

    let all = store.trials().await?;
    let finished = all.iter().filter(|t| t.state.is_final()).count();
    let progress = ProgressDisplay::new(all.len() as u64, finished as u64, opts.progress);

    let (tx, rx) = watch::channel(0u8);
    let cancel = Arc::new(AtomicBool::new(false));
    let signals = tokio::spawn(watch_signals(
        tx,
        on_slurm.then(|| JobsOnStop {
            on_stop: opts.on_stop,
            cancel: Arc::clone(&cancel),
            progress: progress.clone(),
        }),
    ));
    let launcher = if on_slurm {
        Launcher::Slurm(Box::new(slurm::Slurm::new(
            spec.resources.slurm.clone(),
            &spec.name,
            &spec.db,
        )))
    } else {
        Launcher::Local
    };
    // "auto" on GPUs packs trials by their measured memory; without GPUs
    // it is one CPU slot, as the default is.
    let auto = !on_slurm && spec.resources.slots_per_gpu == Slots::Auto;
    let on_gpus = slots.iter().any(|s| !s.cuda_visible_devices.is_empty());
    let mut packing = if auto && on_gpus {
        Some(Pack::load(&spec, &store).await?)
    } else {
        if auto {
            tracing::info!(
                "slots_per_gpu = \"auto\" without a GPU: one CPU slot (\"auto\" packs trials by GPU memory)"
            );
        }
        None
    };
    let poller = match &launcher {
        Launcher::Slurm(s) => Some(tokio::spawn(s.poller())),
        Launcher::Local => None,
    };
    let ctx = Arc::new(Ctx {
        spec,
        store: store.clone(),
        program: opts.program,
        shutdown: rx.clone(),
        cpu_threads: if on_slurm {
            None
        } else {
            gpu::cpu_threads(&slots)
        },
        launcher,
        detach: opts.detach,
        cancel,
        packing: packing.as_ref().map(|p| Arc::clone(&p.packer)),
    });

    let mut free: VecDeque<Slot> = slots.iter().cloned().collect();
    let mut tasks: JoinSet<Finished> = JoinSet::new();
    let mut running: Vec<i64> = Vec::new();
    let adopted: Vec<i64> = adopt.iter().map(|t| t.id).collect();
    let (mut left_running, mut left_adopted) = (0usize, 0usize);
    for t in adopt {
        // Its recorded slot if that still exists and is free, else any
        // free one, else an extra slot (the orphan is using the hardware
        // whatever we decide; new trials must not pile onto it).
        let slot = t
            .slot
            .and_then(|s| free.iter().position(|f| f.index as i64 == s))
            .or(if free.is_empty() { None } else { Some(0) })
            .and_then(|i| free.remove(i))
            .unwrap_or_else(|| Slot {
                index: slots.len() + running.len(),
                cuda_visible_devices: t.cuda_visible_devices.clone().unwrap_or_default(),
            });
        store
            .adopt(t.id, slot.index, &slot.cuda_visible_devices)
            .await?;
        progress.note(&format!(
            "trial {} ({}) is still running from a previous orchestrator: {}",
            t.id,
            label_of(&t),
            if on_slurm {
                "following its Slurm job"
            } else {
                "waiting for it"
            }
        ));
        if let Some(p) = &packing {
            p.adopted(&ctx.spec, &t, &slot);
        }
        running.push(t.id);
        spawn_trial(&mut tasks, &ctx, &progress, t, slot, true);
    }

    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    // Packing: a measurement or freed memory is looked for this often.
    let mut repack = tokio::time::interval(REPACK_EVERY);
    let mut shutdown = rx.clone();
    let mut interrupted = false;
    loop {
        // Fill every free slot before waiting on anything.
        if let (Some(p), 0) = (packing.as_mut(), *shutdown.borrow()) {
            for (t, slot) in p.fill(&ctx, &mut free).await? {
                running.push(t.id);
                spawn_trial(&mut tasks, &ctx, &progress, t, slot, false);
            }
        }
        while packing.is_none() && *shutdown.borrow() == 0 {
            let Some(slot) = free.pop_front() else { break };
            match store.claim(slot.index, &slot.cuda_visible_devices).await? {
                Some(t) => {
                    running.push(t.id);
                    spawn_trial(&mut tasks, &ctx, &progress, t, slot, false);
                }
                None => {
                    free.push_front(slot);
                    break;
                }
            }
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { continue };
                let (slot, t, bar, outcome) = match joined {
                    Ok(x) => x,
                    Err(e) => {
                        // A panicked task: its trial is found `running` with
                        // a free lock next time and resumes then.
                        tracing::error!("a trial task failed: {e}");
                        interrupted = true;
                        continue;
                    }
                };
                running.retain(|&id| id != t.id);
                let retry = packing.as_ref().and_then(|p| p.finished(&t, &slot, &outcome));
                if let (Some((neighbours, ceiling, why)), TrialOutcome::OutOfMemory { stage, reason, .. }) = (retry, &outcome) {
                    store.requeue_out_of_memory(t.id, stage, reason, &why).await?;
                    progress.trial_done(&bar, false);
                    progress.note(&format!(
                        "trial {} ({}) ran out of GPU memory beside {neighbours} other trial(s) on GPU {}: retried (not counted as an attempt), at most {ceiling} on that GPU from now on",
                        t.id,
                        label_of(&t),
                        slot.cuda_visible_devices
                    ));
                } else {
                    let state = store.finish(t.id, &outcome, ctx.spec.resources.max_retries).await?;
                    progress.trial_done(&bar, state.is_final());
                    progress.note(&describe(&t, &outcome, state));
                    let left = matches!(outcome, TrialOutcome::LeftRunning);
                    if left {
                        left_running += 1;
                        left_adopted += usize::from(adopted.contains(&t.id));
                    }
                    // Detached: a job left queued or running keeps its
                    // slot, so that no more than max_concurrent are
                    // submitted.
                    if left && ctx.detach {
                        continue;
                    }
                }
                if slot.index < slots.len() {
                    free.push_back(slot);
                    // Keep slot order stable so GPUs stay interleaved.
                    free.make_contiguous().sort_by_key(|s| s.index);
                }
            }
            _ = shutdown.changed() => {
                interrupted = true;
                let level = *shutdown.borrow();
                progress.note(if on_slurm && ctx.cancel_jobs() && level == 1 {
                    "cancelling the sweep's Slurm jobs (scancel); `run` again submits them again"
                } else if on_slurm && ctx.cancel_jobs() {
                    "leaving: the cancels are recorded; `run` again makes sure of them"
                } else if on_slurm {
                    "leaving: the Slurm jobs keep running; `run` again to follow them"
                } else if level == 1 {
                    "stopping: trials checkpoint and exit (Ctrl-C again to kill them)"
                } else {
                    "killing trials; they resume from their last checkpoint next time"
                });
            }
            _ = heartbeat.tick() => {
                store.heartbeat(&running, pid).await?;
            }
            _ = repack.tick(), if packing.is_some() => {}
        }
    }
    interrupted |= *shutdown.borrow() > 0;
    // Completed trials evaluated before `[eval]` grew get the tasks they
    // have no scores for, on the slots the trials left free.
    let mut grown = extra::Summary::default();
    // Detached with jobs still out: their trials are not done, and the
    // evaluation of others waits for a run that stays.
    let jobs_out = ctx.detach && left_running > 0;
    if !interrupted && !jobs_out {
        if let Some(eval) = ctx.spec.eval.clone() {
            let jobs: Vec<extra::Job> = store
                .unscored(&eval.tasks)
                .await?
                .into_iter()
                .map(|(trial, tasks)| extra::Job {
                    trial,
                    results: extra::grow_results_file(&tasks),
                    eval: EvalConfig {
                        tasks,
                        ..eval.clone()
                    },
                    set: DEFAULT_SET.into(),
                })
                .collect();
            if !jobs.is_empty() {
                progress.note(&format!(
                    "evaluating {} completed trials on tasks added to [eval] (no training)",
                    jobs.len()
                ));
                // Evaluations are not measured: one per GPU when packing.
                let at: Vec<Slot> = free.iter().cloned().collect();
                let at = if packing.is_some() {
                    gpu::one_per_gpu(&at)
                } else {
                    at
                };
                grown = extra::run_jobs(&ctx, at, jobs, &progress, false).await?;
                interrupted |= grown.interrupted;
            }
        }
    }
    signals.abort();
    if let Some(p) = poller {
        p.abort();
    }
    let submitted = match &ctx.launcher {
        Launcher::Slurm(s) => {
            tracing::debug!(calls = s.squeue_calls(), "squeue calls this run");
            s.submitted()
        }
        Launcher::Local => 0,
    };
    progress.finish();
    store.release().await?;
    let trials = store.trials().await?;
    let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
    let summary = RunSummary {
        total: trials.len(),
        added,
        completed: count(TrialState::Completed),
        diverged: count(TrialState::Diverged),
        stopped_early: count(TrialState::StoppedEarly),
        failed: count(TrialState::Failed),
        pending: count(TrialState::Pending) + count(TrialState::Running),
        evaluated: grown.evaluated,
        eval_failed: grown.failed,
        interrupted,
        submitted,
        left_running,
        left_adopted,
        cancelled: interrupted && ctx.cancel_jobs(),
    };
    store
        .event(
            None,
            "orchestrator.exit",
            &serde_json::json!({
                "pid": pid,
                "interrupted": interrupted,
                "detached": ctx.detach,
                "submitted": submitted,
                "left_running": left_running,
                "cancelled": summary.cancelled,
            }),
        )
        .await?;
    store.close().await;
    Ok(summary)
}

/// What an `eval-sweep` ended with.
#[derive(Debug, Clone, Default)]
pub struct EvalSweepSummary {
    /// Completed trials of the sweep.
    pub trials: usize,
    /// Evaluated now (the others had the set's results already).
    pub evaluated: usize,
    pub failed: Vec<String>,
    pub interrupted: bool,
}

/// Evaluates every completed trial's export with `eval` into results set
/// `set` (created with these options, or resumed when they are the
/// same). The sweep must be recorded, with the same name, `[train]` and
/// `[grid]` as `spec`; its `[eval]` may differ (that is the point). The
/// trainer never runs, and the sweep's own scores are untouched.
pub async fn eval_sweep(
    spec: SweepSpec,
    eval: EvalConfig,
    eval_json: Json,
    set: &str,
    opts: SweepOptions,
) -> Result<EvalSweepSummary, RunError> {
    if !spec.db.is_file() {
        return Err(StoreError::NoSweep {
            db: spec.db.clone(),
        }
        .into());
    }
    let _lock = OrchestratorLock::acquire(&spec.db)?;
    let detected = gpu::detect(
        opts.gpu_fallback
            .as_deref()
            .map(|f| f as &dyn Fn() -> usize),
    );
    let slots = gpu::slots(&spec.resources, &detected, &spec.file.display().to_string())?;
    // "auto" packs training by its measured memory; evaluations are not
    // measured, so one per GPU.
    let slots = if spec.resources.slots_per_gpu == Slots::Auto {
        gpu::one_per_gpu(&slots)
    } else {
        slots
    };
    let store = Store::open(&spec.db).await?;
    store.check_same_trials(&spec).await?;
    store.ensure_results_set(set, &eval_json).await?;
    let completed = store
        .trials()
        .await?
        .into_iter()
        .filter(|t| t.state == TrialState::Completed)
        .count();
    let results = format!("results.{set}.json");
    let jobs: Vec<extra::Job> = store
        .unscored_in(set, &eval.tasks)
        .await?
        .into_iter()
        .map(|(trial, _)| extra::Job {
            trial,
            eval: eval.clone(),
            set: set.to_string(),
            results: results.clone(),
        })
        .collect();
    let (tx, rx) = watch::channel(0u8);
    let signals = tokio::spawn(watch_signals(tx, None));
    let ctx = Arc::new(Ctx {
        spec,
        store: store.clone(),
        program: opts.program,
        shutdown: rx,
        cpu_threads: gpu::cpu_threads(&slots),
        // Evaluations outside a trial's lifecycle run here.
        launcher: Launcher::Local,
        detach: false,
        cancel: Arc::new(AtomicBool::new(false)),
        packing: None,
    });
    let progress = ProgressDisplay::new(jobs.len() as u64, 0, opts.progress);
    let s = extra::run_jobs(&ctx, slots, jobs, &progress, true).await?;
    signals.abort();
    progress.finish();
    store.release().await?;
    store.close().await;
    Ok(EvalSweepSummary {
        trials: completed,
        evaluated: s.evaluated,
        failed: s.failed,
        interrupted: s.interrupted,
    })
}

/// Reopens the trials a stop rule stopped (see
/// [`Store::reopen_stopped_early`]), after moving each one's stop request
/// and results files into `stopped_early/` in its directory: the trainer
/// then resumes past the request, and the evaluation of the final model
/// is not mistaken for one already done. Moving is idempotent, so a crash
/// between the moves and the record repeats them harmlessly.
async fn reopen_stopped_early(spec: &SweepSpec, store: &Store) -> Result<usize, RunError> {
    let stopped: Vec<Trial> = store
        .trials()
        .await?
        .into_iter()
        .filter(|t| t.state == TrialState::StoppedEarly)
        .collect();
    for t in &stopped {
        let dir = spec.output_dir.join(&t.dir);
        let aside = dir.join("stopped_early");
        let mut moves = vec![dir.join("out").join(STOP_REQUEST_FILE)];
        if let Ok(entries) = std::fs::read_dir(&dir) {
            moves.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("results") && n.ends_with(".json"))
                    }),
            );
        }
        for from in moves.into_iter().filter(|p| p.exists()) {
            std::fs::create_dir_all(&aside).map_err(io_err(&aside))?;
            let to = aside.join(from.file_name().unwrap_or_default());
            std::fs::rename(&from, &to).map_err(io_err(&from))?;
        }
    }
    Ok(store.reopen_stopped_early().await?.len())
}

/// Trials a previous orchestrator left running: an orphan still holds the
/// trial lock (returned, to adopt), or nothing does (back to pending). On
/// Slurm every one is adopted: its attempt's job (or the intent to submit
/// it) is in the record, and following it finds out how it is doing.
async fn orphans(spec: &SweepSpec, store: &Store, on_slurm: bool) -> Result<Vec<Trial>, RunError> {
    let mut adopt = Vec::new();
    for t in store.trials().await? {
        if t.state != TrialState::Running {
            continue;
        }
        if on_slurm {
            adopt.push(t);
            continue;
        }
        let lock_path = spec.output_dir.join(&t.dir).join("lock");
        if !lock_path.exists() {
            // Claimed, but killed before its directory was made.
            store.recover(t.id).await?;
            continue;
        }
        match locks::try_trial_lock(&lock_path)? {
            Some(_free) => store.recover(t.id).await?,
            None => adopt.push(t),
        }
    }
    Ok(adopt)
}

/// `--detach` and `--cancel` are about Slurm jobs: local trials are child
/// processes of `run`, which cannot leave them behind (or scancel them).
pub fn check_slurm_options(
    spec: &SweepSpec,
    detach: bool,
    on_stop: OnStop,
) -> Result<(), RunError> {
    if spec.resources.backend == Backend::Slurm {
        return Ok(());
    }
    let flag = if detach {
        "--detach"
    } else if on_stop == OnStop::Cancel {
        "--cancel"
    } else {
        return Ok(());
    };
    Err(RunError::NeedsSlurm {
        file: spec.file.clone(),
        flag,
    })
}

/// What a stop does to the sweep's Slurm jobs.
struct JobsOnStop {
    on_stop: OnStop,
    /// Set (before the shutdown level) when they are to be cancelled.
    cancel: Arc<AtomicBool>,
    progress: ProgressDisplay,
}

/// Ctrl-C / SIGTERM once: 1 (trials checkpoint and stop; Slurm jobs are
/// left running or cancelled, as `jobs` decides); again: 2 (kill; on Slurm,
/// stop waiting for cancelled jobs to leave the queue).
async fn watch_signals(tx: watch::Sender<u8>, jobs: Option<JobsOnStop>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; Ctrl-C will kill the sweep");
        return;
    };
    let mut level = 0u8;
    loop {
        let ctrl_c = tokio::select! {
            _ = int.recv() => true,
            _ = term.recv() => false,
        };
        if let (Some(jobs), 0) = (&jobs, level) {
            let cancel = match jobs.on_stop {
                OnStop::Leave => false,
                OnStop::Cancel => true,
                OnStop::Ask if ctrl_c => {
                    jobs.progress.hide();
                    let cancel = ask_cancel(&mut int, &mut term).await;
                    jobs.progress.show();
                    cancel
                }
                OnStop::Ask => false,
            };
            jobs.cancel.store(cancel, Ordering::SeqCst);
        }
        level = level.saturating_add(1).min(2);
        let _ = tx.send(level);
    }
}

/// Asks on the terminal whether to cancel the sweep's Slurm jobs; no (the
/// default) on an empty answer, end of input, or another Ctrl-C. The
/// answer is read on a thread of its own: the sweep goes on following its
/// jobs meanwhile, and a read left waiting never holds up the exit.
async fn ask_cancel(
    int: &mut tokio::signal::unix::Signal,
    term: &mut tokio::signal::unix::Signal,
) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\nStopping. The sweep's Slurm jobs keep running unless cancelled; \
             cancel them (scancel)? [y/N] "
        );
        let _ = err.flush();
        let mut line = String::new();
        let answer = std::io::stdin().read_line(&mut line).map(|_| line);
        let _ = tx.send(answer.unwrap_or_default());
    });
    tokio::select! {
        answer = rx => answer.is_ok_and(|a| {
            matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes" | "c" | "cancel")
        }),
        _ = int.recv() => false,
        _ = term.recv() => false,
    }
}

/// A trial's grid point for people: `lr=0.001 batch_size=8`.
fn label_of(t: &Trial) -> String {
    serde_json::from_str::<serde_json::Map<String, Json>>(&t.point_key)
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    Json::Number(n) => match n.as_f64() {
                        Some(f) if !n.is_i64() => {
                            format!("{k}={}", smolsweep_config::value::format_float(f))
                        }
                        _ => format!("{k}={n}"),
                    },
                    Json::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| t.point_key.clone())
}

/// The line shown when a trial's run ends in `state`.
fn describe(t: &Trial, outcome: &TrialOutcome, state: TrialState) -> String {
    let label = label_of(t);
    match outcome {
        TrialOutcome::Completed { .. } => format!("trial {} ({label}) completed", t.id),
        TrialOutcome::StoppedEarly { step, message, .. } => format!(
            "trial {} ({label}) stopped early at step {} and scored there{}",
            t.id,
            step.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
            message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        TrialOutcome::Diverged { step, rule, .. } => format!(
            "trial {} ({label}) diverged at step {}{}",
            t.id,
            step.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
            rule.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        ),
        TrialOutcome::Failed { reason, .. } | TrialOutcome::OutOfMemory { reason, .. }
            if state == TrialState::Pending =>
        {
            format!(
                "trial {} ({label}) failed (attempt {}), will retry: {reason}",
                t.id, t.attempt
            )
        }
        TrialOutcome::Failed { reason, .. } | TrialOutcome::OutOfMemory { reason, .. } => format!(
            "trial {} ({label}) failed for good after attempt {}: {reason}",
            t.id, t.attempt
        ),
        TrialOutcome::LeftRunning => format!(
            "trial {} ({label}) left running in Slurm; `run` again follows it",
            t.id
        ),
        TrialOutcome::Interrupted { reason } => {
            format!(
                "trial {} ({label}) stopped: {reason}; resumes next run",
                t.id
            )
        }
    }
}

/// Starts a trial's task in `slot`, with its bar on the display.
fn spawn_trial(
    tasks: &mut JoinSet<Finished>,
    ctx: &Arc<Ctx>,
    progress: &ProgressDisplay,
    trial: Trial,
    slot: Slot,
    adopted: bool,
) {
    let steps = ctx
        .spec
        .value(&trial::point_of(&trial), "max_steps")
        .and_then(toml::Value::as_integer)
        .map(|n| n as u64);
    let where_ = if slot.cuda_visible_devices.is_empty() {
        format!("slot {}", slot.index)
    } else {
        format!("slot {} gpu {}", slot.index, slot.cuda_visible_devices)
    };
    let bar = progress.trial(
        &format!("#{} {} [{where_}]", trial.id, label_of(&trial)),
        steps,
    );
    let ctx = Arc::clone(ctx);
    tasks.spawn(async move {
        let outcome = match trial::run_trial(&ctx, &trial, &slot, adopted, &bar).await {
            Ok(o) => o,
            Err(e) => TrialOutcome::Failed {
                stage: trial.stage.clone().unwrap_or_else(|| "train".into()),
                exit_status: None,
                reason: format!("orchestrator error: {}", chain(&e)),
            },
        };
        (slot, trial, bar, outcome)
    });
}
