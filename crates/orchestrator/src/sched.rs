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

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use rustix::process::Signal;
use serde_json::Value as Json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::gpu::{self, Slot};
use crate::locks::{self, OrchestratorLock};
use crate::progress::Progress;
use crate::spec::{point_label, value_text, SweepSpec};
use crate::store::{flatten_results, now, EventLine, Outcome, Store, StoreError, Trial};

/// How often running trials' event files are read (and the display moved).
const TAIL_EVERY: Duration = Duration::from_millis(200);
/// How often the orchestrator and its trials prove they are alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] locks::LockError),
    #[error(transparent)]
    Gpu(#[from] gpu::GpuError),
    #[error("{path}: {source}")]
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

/// How to run a sweep.
pub struct RunOptions {
    /// The program whose `train` and `eval` subcommands run each trial:
    /// the smolsweep binary itself in normal use.
    pub program: PathBuf,
    /// GPU count to fall back on when nvidia-smi finds none (libtorch's).
    pub gpu_fallback: Option<Box<dyn Fn() -> usize + Send + Sync>>,
    /// Draw the progress display (when stderr is a terminal).
    pub progress: bool,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("program", &self.program)
            .field("progress", &self.progress)
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
    pub failed: usize,
    pub pending: usize,
    /// Stopped by Ctrl-C / SIGTERM before the sweep finished.
    pub interrupted: bool,
}

/// Shared by the coordinator and the trial tasks.
struct Ctx {
    spec: SweepSpec,
    store: Store,
    program: PathBuf,
    shutdown: watch::Receiver<u8>,
    /// OMP_NUM_THREADS for trials on CPU slots (see `gpu::cpu_threads`).
    cpu_threads: Option<usize>,
}

/// Runs (or resumes) a sweep to completion or interruption.
pub async fn run(spec: SweepSpec, opts: RunOptions) -> Result<RunSummary, RunError> {
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
    let slots = gpu::slots(&spec.resources, &detected, &spec.file.display().to_string())?;
    let store = Store::open(&spec.db).await?;
    let pid = std::process::id();
    let (_, added) = store.ensure_sweep(&spec, pid).await?;
    let reopened = store.reopen_failed(spec.resources.max_retries).await?;
    if reopened > 0 {
        tracing::info!(
            reopened,
            "failed trials get another attempt (max_retries was raised)"
        );
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

    // Trials a previous orchestrator left running: an orphan still holds
    // the trial lock (adopt it), or nothing does (back to pending).
    let mut adopt = Vec::new();
    for t in store.trials().await? {
        if t.state != "running" {
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

    let (tx, rx) = watch::channel(0u8);
    let signals = tokio::spawn(watch_signals(tx));
    let ctx = Arc::new(Ctx {
        spec,
        store: store.clone(),
        program: opts.program,
        shutdown: rx.clone(),
        cpu_threads: gpu::cpu_threads(&slots),
    });

    let all = store.trials().await?;
    let finished = all
        .iter()
        .filter(|t| matches!(t.state.as_str(), "completed" | "diverged" | "failed"))
        .count();
    let progress = Progress::new(all.len() as u64, finished as u64, opts.progress);

    let mut free: VecDeque<Slot> = slots.iter().cloned().collect();
    let mut tasks: JoinSet<(Slot, Trial, ProgressBar, Outcome)> = JoinSet::new();
    let mut running: Vec<i64> = Vec::new();
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
            "trial {} ({}) is still running from a previous orchestrator: waiting for it",
            t.id,
            label_of(&t)
        ));
        running.push(t.id);
        spawn_trial(&mut tasks, &ctx, &progress, t, slot, true);
    }

    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut shutdown = rx.clone();
    let mut interrupted = false;
    loop {
        // Fill every free slot before waiting on anything.
        while *shutdown.borrow() == 0 {
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
                let state = store.finish(t.id, &outcome, ctx.spec.resources.max_retries).await?;
                let final_state = matches!(state, "completed" | "diverged" | "failed");
                progress.trial_done(&bar, final_state);
                progress.note(&describe(&t, &outcome, state));
                if slot.index < slots.len() {
                    free.push_back(slot);
                    // Keep slot order stable so GPUs stay interleaved.
                    free.make_contiguous().sort_by_key(|s| s.index);
                }
            }
            _ = shutdown.changed() => {
                interrupted = true;
                let level = *shutdown.borrow();
                progress.note(if level == 1 {
                    "stopping: trials checkpoint and exit (Ctrl-C again to kill them)"
                } else {
                    "killing trials; they resume from their last checkpoint next time"
                });
            }
            _ = heartbeat.tick() => {
                store.heartbeat(&running, pid).await?;
            }
        }
    }
    signals.abort();
    progress.finish();
    interrupted |= *shutdown.borrow() > 0;
    store.release().await?;
    let trials = store.trials().await?;
    let count = |s: &str| trials.iter().filter(|t| t.state == s).count();
    let summary = RunSummary {
        total: trials.len(),
        added,
        completed: count("completed"),
        diverged: count("diverged"),
        failed: count("failed"),
        pending: count("pending") + count("running"),
        interrupted,
    };
    store
        .event(
            None,
            "orchestrator.exit",
            &serde_json::json!({ "pid": pid, "interrupted": interrupted }),
        )
        .await?;
    store.close().await;
    Ok(summary)
}

/// Ctrl-C / SIGTERM once: 1 (trials checkpoint and stop); again: 2 (kill).
async fn watch_signals(tx: watch::Sender<u8>) {
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
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        level = level.saturating_add(1).min(2);
        let _ = tx.send(level);
    }
}

fn label_of(t: &Trial) -> String {
    serde_json::from_str::<serde_json::Map<String, Json>>(&t.point_key)
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    Json::Number(n) => match n.as_f64() {
                        Some(f) if !n.is_i64() => format!("{k}={}", crate::spec::format_float(f)),
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

fn describe(t: &Trial, outcome: &Outcome, state: &str) -> String {
    let label = label_of(t);
    match outcome {
        Outcome::Completed { .. } => format!("trial {} ({label}) completed", t.id),
        Outcome::Diverged { step, .. } => format!(
            "trial {} ({label}) diverged at step {}",
            t.id,
            step.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
        ),
        Outcome::Failed { reason, .. } if state == "pending" => format!(
            "trial {} ({label}) failed (attempt {}), will retry: {reason}",
            t.id, t.attempt
        ),
        Outcome::Failed { reason, .. } => format!(
            "trial {} ({label}) failed for good after attempt {}: {reason}",
            t.id, t.attempt
        ),
        Outcome::Interrupted { reason } => {
            format!(
                "trial {} ({label}) stopped: {reason}; resumes next run",
                t.id
            )
        }
    }
}

fn spawn_trial(
    tasks: &mut JoinSet<(Slot, Trial, ProgressBar, Outcome)>,
    ctx: &Arc<Ctx>,
    progress: &Progress,
    trial: Trial,
    slot: Slot,
    adopted: bool,
) {
    let steps = ctx
        .spec
        .value(&point_of(&trial), "max_steps")
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
        let outcome = match run_trial(&ctx, &trial, &slot, adopted, &bar).await {
            Ok(o) => o,
            Err(e) => Outcome::Failed {
                stage: trial.stage.clone().unwrap_or_else(|| "train".into()),
                exit_status: None,
                reason: format!("orchestrator error: {e}"),
            },
        };
        (slot, trial, bar, outcome)
    });
}

/// The grid point of a trial row, as spec values.
fn point_of(t: &Trial) -> crate::spec::Point {
    let m: serde_json::Map<String, Json> = serde_json::from_str(&t.point_key).unwrap_or_default();
    m.into_iter()
        .filter_map(|(k, v)| {
            let tv = match v {
                Json::Number(n) if n.is_i64() => toml::Value::Integer(n.as_i64()?),
                Json::Number(n) => toml::Value::Float(n.as_f64()?),
                Json::String(s) => toml::Value::String(s),
                Json::Bool(b) => toml::Value::Boolean(b),
                Json::Array(a) => toml::Value::Array(
                    a.into_iter()
                        .filter_map(|x| x.as_str().map(|s| toml::Value::String(s.into())))
                        .collect(),
                ),
                _ => return None,
            };
            Some((k, tv))
        })
        .collect()
}

/// What the trial's own files say it has achieved.
#[derive(Debug, Clone, PartialEq)]
enum TrainState {
    Incomplete,
    Done {
        export: PathBuf,
    },
    Diverged {
        step: Option<i64>,
        last_finite_loss: Option<f64>,
    },
}

fn train_state(events: &Path) -> TrainState {
    let mut text = String::new();
    if File::open(events)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return TrainState::Incomplete;
    }
    let mut state = TrainState::Incomplete;
    for line in text.lines() {
        let Ok(j) = serde_json::from_str::<Json>(line) else {
            continue;
        };
        match j.get("event").and_then(Json::as_str) {
            Some("done") => {
                if let Some(e) = j.get("export").and_then(Json::as_str) {
                    state = TrainState::Done {
                        export: PathBuf::from(e),
                    };
                }
            }
            Some("diverged") => {
                state = TrainState::Diverged {
                    step: j.get("step").and_then(Json::as_i64),
                    last_finite_loss: j.get("last_finite_loss").and_then(Json::as_f64),
                }
            }
            _ => {}
        }
    }
    state
}

/// Reads complete lines of the event file past the recorded offset and
/// records them. Returns the new offset.
async fn tail(
    ctx: &Ctx,
    trial_id: i64,
    events: &Path,
    offset: u64,
    bar: &ProgressBar,
) -> Result<u64, RunError> {
    let mut f = match File::open(events) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(io_err(events)(e)),
    };
    let len = f.metadata().map_err(io_err(events))?.len();
    if len <= offset {
        return Ok(offset);
    }
    f.seek(SeekFrom::Start(offset)).map_err(io_err(events))?;
    let mut buf = Vec::with_capacity((len - offset) as usize);
    f.take(len - offset)
        .read_to_end(&mut buf)
        .map_err(io_err(events))?;
    let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
        return Ok(offset);
    };
    let mut lines = Vec::new();
    for raw in buf[..end].split(|&b| b == b'\n') {
        let s = String::from_utf8_lossy(raw);
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        match serde_json::from_str::<Json>(s) {
            Ok(json) if json.is_object() => lines.push(EventLine { json }),
            _ => tracing::debug!(trial = trial_id, line = %s, "not an event line"),
        }
    }
    if let Some(last) = lines.iter().rev().find(|e| e.kind() == "step") {
        if let Some(step) = last.json.get("step").and_then(Json::as_u64) {
            bar.set_position(step);
        }
        if let Some(loss) = last.json.get("loss").and_then(Json::as_f64) {
            bar.set_message(format!("loss {loss:.4}"));
        }
    }
    let new_offset = offset + end as u64 + 1;
    ctx.store
        .record_events(trial_id, &lines, new_offset)
        .await?;
    Ok(new_offset)
}

/// The last lines of a log, to say why a process failed.
fn log_reason(log: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(log).and_then(|mut f| {
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(8192)))?;
        f.read_to_string(&mut text)
    });
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(l) = lines.iter().rev().find(|l| l.starts_with("error")) {
        return l.to_string();
    }
    lines
        .iter()
        .rev()
        .take(3)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(" | ")
}

fn append(path: &Path) -> Result<File, RunError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

/// How a child process ended.
enum Exit {
    Code(i32),
    Signal(i32),
}

/// Runs one child to its end, tailing the trainer's events meanwhile and
/// passing on a shutdown request as SIGTERM (once) or SIGKILL (twice).
#[allow(clippy::too_many_arguments)]
async fn run_child(
    ctx: &Ctx,
    trial: &Trial,
    stage: &str,
    args: Vec<String>,
    lock: &File,
    stdout: File,
    stderr: File,
    cvd: &str,
    events: &Path,
    offset: &mut u64,
    bar: &ProgressBar,
) -> Result<Exit, RunError> {
    let mut cmd = tokio::process::Command::new(&ctx.program);
    cmd.args(&args)
        .stdin(Stdio::from(lock.try_clone().map_err(io_err(events))?))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .env("CUDA_VISIBLE_DEVICES", cvd)
        // Its own group: the orchestrator decides which signal a trial
        // gets (a terminal's Ctrl-C reaches only the orchestrator), and a
        // signal to the group reaches whatever the trial itself spawned.
        .process_group(0)
        .kill_on_drop(false);
    if let (Some(n), true) = (ctx.cpu_threads, cvd.is_empty()) {
        cmd.env("OMP_NUM_THREADS", n.to_string())
            .env("MKL_NUM_THREADS", n.to_string());
    }
    let mut child = cmd.spawn().map_err(|e| RunError::Io {
        path: ctx.program.clone(),
        source: e,
    })?;
    let pid = child.id().unwrap_or(0);
    let mut argv = vec![ctx.program.display().to_string()];
    argv.extend(args.iter().cloned());
    ctx.store.spawned(trial.id, stage, pid, &argv).await?;
    let mut shutdown = ctx.shutdown.clone();
    let mut sent = 0u8;
    let mut tick = tokio::time::interval(TAIL_EVERY);
    let signal_for = |level: u8, sent: &mut u8| {
        if level > *sent {
            let sig = if level >= 2 {
                Signal::KILL
            } else {
                Signal::TERM
            };
            locks::signal_group(pid as i32, sig);
            *sent = level;
        }
    };
    signal_for(*shutdown.borrow(), &mut sent);
    let status = loop {
        tokio::select! {
            st = child.wait() => break st.map_err(io_err(&ctx.program))?,
            _ = tick.tick() => {
                if stage == "train" {
                    *offset = tail(ctx, trial.id, events, *offset, bar).await?;
                }
            }
            changed = shutdown.changed() => {
                if changed.is_ok() {
                    let level = *shutdown.borrow();
                    signal_for(level, &mut sent);
                }
            }
        }
    };
    if stage == "train" {
        *offset = tail(ctx, trial.id, events, *offset, bar).await?;
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        _ => Exit::Code(-1),
    })
}

/// Takes the trial lock, waiting for (and recording) an orphaned trial
/// process that still holds it.
async fn take_lock(
    ctx: &Ctx,
    trial: &Trial,
    lock_path: &Path,
    events: &Path,
    offset: &mut u64,
    bar: &ProgressBar,
) -> Result<File, RunError> {
    let mut shutdown = ctx.shutdown.clone();
    let mut sent = 0u8;
    loop {
        if let Some(f) = locks::try_trial_lock(lock_path)? {
            return Ok(f);
        }
        *offset = tail(ctx, trial.id, events, *offset, bar).await?;
        let level = *shutdown.borrow();
        if level > sent {
            if let Some(pid) = locks::lock_holder(lock_path) {
                let sig = if level >= 2 {
                    Signal::KILL
                } else {
                    Signal::TERM
                };
                locks::signal_group(pid, sig);
            }
            sent = level;
        }
        tokio::select! {
            _ = tokio::time::sleep(TAIL_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One trial from claim to outcome: train (resuming), then eval.
async fn run_trial(
    ctx: &Ctx,
    trial: &Trial,
    slot: &Slot,
    adopted: bool,
    bar: &ProgressBar,
) -> Result<Outcome, RunError> {
    let dir = ctx.spec.output_dir.join(&trial.dir);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let events = dir.join("train.events.jsonl");
    let lock_path = dir.join("lock");
    let mut offset = trial.events_offset as u64;
    if adopted {
        bar.set_message("adopted: waiting for the previous orchestrator's process");
    }
    let lock = take_lock(ctx, trial, &lock_path, &events, &mut offset, bar).await?;
    // Whatever an earlier process of this trial wrote after the last
    // recording (up to its exit) is recorded before anything else happens.
    offset = tail(ctx, trial.id, &events, offset, bar).await?;
    let shutdown_level = || *ctx.shutdown.borrow();
    let interrupted = |what: &str| Outcome::Interrupted {
        reason: what.to_string(),
    };
    if shutdown_level() > 0 {
        return Ok(interrupted("sweep stopping"));
    }

    let point = point_of(trial);
    let config_path = dir.join("trial.toml");
    let out_dir = dir.join("out");
    let config = ctx.spec.trial_config(&point, &out_dir);
    let text = format!(
        "# Trial {} of sweep {:?}: {}\n# Written by the orchestrator; `smolsweep train --config` reads it.\n{}",
        trial.id,
        ctx.spec.name,
        point_label(&point),
        toml::to_string(&config).unwrap_or_default()
    );
    std::fs::write(&config_path, text).map_err(io_err(&config_path))?;

    let mut trained_here = false;
    loop {
        if shutdown_level() > 0 {
            return Ok(interrupted("sweep stopping"));
        }
        match train_state(&events) {
            TrainState::Diverged {
                step,
                last_finite_loss,
            } => {
                return Ok(Outcome::Diverged {
                    step,
                    last_finite_loss,
                })
            }
            TrainState::Done { export } => {
                return eval_stage(ctx, trial, slot, &dir, &export, &lock, bar).await;
            }
            TrainState::Incomplete if trained_here => {
                return Ok(Outcome::Failed {
                    stage: "train".into(),
                    exit_status: Some(0),
                    reason: "train exited 0 without a done event".into(),
                });
            }
            TrainState::Incomplete => {}
        }
        let log = dir.join("train.log");
        let mut log_file = append(&log)?;
        let _ = writeln!(
            log_file,
            "=== smolsweep orchestrator pid {}: attempt {}, slot {}, CUDA_VISIBLE_DEVICES={:?}, at {:.3}",
            std::process::id(),
            trial.attempt,
            slot.index,
            slot.cuda_visible_devices,
            now()
        );
        let args = vec![
            "train".to_string(),
            "--config".to_string(),
            config_path.display().to_string(),
            "--resume".to_string(),
        ];
        bar.set_message("training");
        let exit = run_child(
            ctx,
            trial,
            "train",
            args,
            &lock,
            append(&events)?,
            log_file,
            &slot.cuda_visible_devices,
            &events,
            &mut offset,
            bar,
        )
        .await?;
        trained_here = true;
        match exit {
            Exit::Code(0) => continue,
            Exit::Code(3) => {
                return Ok(match train_state(&events) {
                    TrainState::Diverged {
                        step,
                        last_finite_loss,
                    } => Outcome::Diverged {
                        step,
                        last_finite_loss,
                    },
                    _ => Outcome::Diverged {
                        step: None,
                        last_finite_loss: None,
                    },
                })
            }
            Exit::Code(4) if shutdown_level() > 0 => {
                return Ok(interrupted("stopped at a checkpoint"))
            }
            Exit::Signal(_) if shutdown_level() > 0 => return Ok(interrupted("killed")),
            Exit::Code(c) => {
                return Ok(Outcome::Failed {
                    stage: "train".into(),
                    exit_status: Some(c as i64),
                    reason: format!("train exited with status {c}: {}", log_reason(&log)),
                })
            }
            Exit::Signal(s) => {
                return Ok(Outcome::Failed {
                    stage: "train".into(),
                    exit_status: Some(128 + s as i64),
                    reason: format!("train killed by signal {s}: {}", log_reason(&log)),
                })
            }
        }
    }
}

/// results.json when it is complete (a torn write does not parse).
fn read_results(path: &Path) -> Option<Json> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<Json>(&text)
        .ok()
        .filter(Json::is_object)
}

fn completed(doc: Json) -> Outcome {
    Outcome::Completed {
        scores: flatten_results(&doc),
        results_json: Some(doc.to_string()),
    }
}

async fn eval_stage(
    ctx: &Ctx,
    trial: &Trial,
    slot: &Slot,
    dir: &Path,
    export: &Path,
    lock: &File,
    bar: &ProgressBar,
) -> Result<Outcome, RunError> {
    let Some(eval) = &ctx.spec.eval else {
        return Ok(Outcome::Completed {
            results_json: None,
            scores: Vec::new(),
        });
    };
    let results = dir.join("results.json");
    // An eval that finished after its orchestrator died left its results.
    if let Some(doc) = read_results(&results) {
        return Ok(completed(doc));
    }
    let export = if export.is_absolute() {
        export.to_path_buf()
    } else {
        dir.join("out").join(export)
    };
    let mut args = vec![
        "eval".to_string(),
        "--model".into(),
        export.display().to_string(),
    ];
    let trial_device = ctx.spec.train.get("device").map(value_text);
    args.extend(eval.eval_args(trial_device.as_deref()));
    args.push("--out".into());
    args.push(results.display().to_string());
    if eval.samples {
        args.push("--samples".into());
        args.push(dir.join("samples.jsonl").display().to_string());
    }
    let log = dir.join("eval.log");
    let mut log_file = append(&log)?;
    let _ = writeln!(
        log_file,
        "=== smolsweep orchestrator pid {}: attempt {}, slot {}, at {:.3}",
        std::process::id(),
        trial.attempt,
        slot.index,
        now()
    );
    let out = log_file.try_clone().map_err(io_err(&log))?;
    bar.set_message("evaluating");
    let mut unused = 0;
    let exit = run_child(
        ctx,
        trial,
        "eval",
        args,
        lock,
        out,
        log_file,
        &slot.cuda_visible_devices,
        &log,
        &mut unused,
        bar,
    )
    .await?;
    let stopping = *ctx.shutdown.borrow() > 0;
    match exit {
        Exit::Code(0) => match read_results(&results) {
            Some(doc) => Ok(completed(doc)),
            None => Ok(Outcome::Failed {
                stage: "eval".into(),
                exit_status: Some(0),
                reason: format!(
                    "eval exited 0 but {} is missing or not JSON",
                    results.display()
                ),
            }),
        },
        _ if stopping => Ok(Outcome::Interrupted {
            reason: "evaluation stopped".into(),
        }),
        Exit::Code(c) => Ok(Outcome::Failed {
            stage: "eval".into(),
            exit_status: Some(c as i64),
            reason: format!("eval exited with status {c}: {}", log_reason(&log)),
        }),
        Exit::Signal(s) => Ok(Outcome::Failed {
            stage: "eval".into(),
            exit_status: Some(128 + s as i64),
            reason: format!("eval killed by signal {s}: {}", log_reason(&log)),
        }),
    }
}
