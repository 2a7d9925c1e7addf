//! Evaluations of completed trials outside their train-then-eval
//! lifecycle: the tasks a grown `[eval]` added (or fixed) for trials that
//! were evaluated before, and `smolsweep eval-sweep`'s named results sets.
//! Each evaluates the trial's export as `smolsweep eval` (a child process
//! on a slot, holding the trial lock like any trial process) into its own
//! results file beside results.json; the trainer never runs, and the
//! trial stays completed whatever the evaluation does.
//!
//! As for trials, what is achieved is read from the files: a results file
//! that parses and holds every task asked for counts without evaluating
//! again, so an interrupted run only repeats bookkeeping.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::ProgressBar;
use serde_json::Value as Json;
use smolsweep_config::sweep::task_name;
use smolsweep_config::{EvalConfig, ExitCode, STOP_REQUEST_FILE};
use tokio::task::JoinSet;

use super::child::{append, log_reason, run_child, Child, Exit};
use super::coordinator::HEARTBEAT_EVERY;
use super::tail::{train_state, TrainState};
use super::{chain, io_err, Ctx, RunError, TAIL_EVERY};
use crate::gpu::Slot;
use crate::locks;
use crate::progress::ProgressDisplay;
use crate::store::{flatten_results, now, task_data_of, Trial};
use smolsweep_config::value::value_text;

/// One evaluation to run: `eval`'s tasks on `trial`'s export, into `set`.
pub(super) struct Job {
    pub trial: Trial,
    /// The options; its `tasks` are the ones to evaluate.
    pub eval: EvalConfig,
    pub set: String,
    /// The results file's name in the trial directory.
    pub results: String,
}

/// What a batch of evaluations ended with.
#[derive(Debug, Default)]
pub(super) struct Summary {
    pub evaluated: usize,
    /// One line per failed evaluation: trial and reason.
    pub failed: Vec<String>,
    pub interrupted: bool,
}

enum Outcome {
    Evaluated,
    Failed(String),
    Interrupted,
}

/// The results file of the default set's extra tasks on a trial:
/// `results+ifeval.json`.
pub(super) fn grow_results_file(tasks: &[String]) -> String {
    let names: Vec<&str> = tasks.iter().map(|t| task_name(t)).collect();
    format!("results+{}.json", names.join("+"))
}

/// The `smolsweep eval` command line for `eval` on `export`, writing
/// `results` (and `samples`, when `eval.samples`).
pub(super) fn eval_command(
    ctx: &Ctx,
    eval: &EvalConfig,
    export: &Path,
    results: &Path,
    samples: &Path,
) -> Vec<String> {
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
        args.push(samples.display().to_string());
    }
    args
}

/// The export a trial's event file names, as a path.
fn export_of(dir: &Path) -> Option<PathBuf> {
    let request = dir.join("out").join(STOP_REQUEST_FILE);
    let export = match train_state(&dir.join("train.events.jsonl"), &request) {
        TrainState::Done { export } | TrainState::StoppedEarly { export, .. } => export,
        _ => return None,
    };
    Some(if export.is_absolute() {
        export
    } else {
        dir.join("out").join(export)
    })
}

/// A results file when complete and holding every task of `tasks`.
fn read_covering(path: &Path, tasks: &[String]) -> Option<Json> {
    let doc: Json = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let have = doc.get("tasks")?.as_object()?;
    tasks
        .iter()
        .all(|t| have.contains_key(task_name(t)))
        .then_some(doc)
}

/// Whether a results file left by an earlier evaluation read each task's
/// data from where `eval` says it is now (its path, or `data_dir`): after a
/// path change it is evaluated again rather than recorded from old data.
fn from_sources(doc: &Json, eval: &EvalConfig) -> bool {
    eval.tasks.iter().all(|entry| {
        let root = match entry.split_once('=') {
            Some((_, p)) => Some(PathBuf::from(p.trim())),
            None => eval.data_dir.clone(),
        };
        let Some(root) = root else { return true };
        doc["tasks"][task_name(entry)]["data_files"]
            .as_array()
            .is_some_and(|files| {
                files
                    .iter()
                    .all(|f| f.as_str().is_some_and(|f| Path::new(f).starts_with(&root)))
            })
    })
}

/// Runs `jobs` over `slots`, a slot each at a time, until done or the
/// sweep stops. `count` moves the overall bar per evaluation.
pub(super) async fn run_jobs(
    ctx: &Arc<Ctx>,
    slots: Vec<Slot>,
    jobs: Vec<Job>,
    progress: &ProgressDisplay,
    count: bool,
) -> Result<Summary, RunError> {
    let mut queue: VecDeque<Job> = jobs.into();
    let mut free: VecDeque<Slot> = slots.into();
    let mut tasks: JoinSet<(Slot, Job, ProgressBar, Result<Outcome, RunError>)> = JoinSet::new();
    let mut summary = Summary::default();
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let pid = std::process::id();
    loop {
        while ctx.shutdown_level() == 0 && !queue.is_empty() {
            let Some(slot) = free.pop_front() else { break };
            let Some(job) = queue.pop_front() else { break };
            let ctx = Arc::clone(ctx);
            let bar = progress.trial(
                &format!("#{} eval {}", job.trial.id, job.eval.tasks.join(",")),
                None,
            );
            tasks.spawn(async move {
                bar.set_message("evaluating");
                let r = evaluate(&ctx, &job, &slot).await;
                (slot, job, bar, r)
            });
        }
        if tasks.is_empty() {
            break;
        }
        // The orchestrator stays visibly alive while evaluations run.
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            _ = heartbeat.tick() => {
                ctx.store.heartbeat(&[], pid).await?;
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let (slot, job, bar, r) = match joined {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("an evaluation task failed: {e}");
                summary.interrupted = true;
                continue;
            }
        };
        free.push_back(slot);
        progress.trial_done(&bar, count);
        let names = job.eval.tasks.join(",");
        let outcome =
            r.unwrap_or_else(|e| Outcome::Failed(format!("orchestrator error: {}", chain(&e))));
        match outcome {
            Outcome::Evaluated => {
                summary.evaluated += 1;
                progress.note(&format!(
                    "trial {} evaluated on {names} (results set {})",
                    job.trial.id, job.set
                ));
            }
            Outcome::Failed(reason) => {
                ctx.store
                    .evaluation_failed(job.trial.id, &job.set, &job.eval.tasks, &reason)
                    .await?;
                let line = format!(
                    "trial {} evaluation on {names} failed: {reason}",
                    job.trial.id
                );
                progress.note(&line);
                summary.failed.push(line);
            }
            Outcome::Interrupted => summary.interrupted = true,
        }
    }
    summary.interrupted |= ctx.shutdown_level() > 0 || !queue.is_empty();
    Ok(summary)
}

/// One evaluation: reuse a finished results file, else take the trial
/// lock and run `eval` on the export; record the scores.
async fn evaluate(ctx: &Ctx, job: &Job, slot: &Slot) -> Result<Outcome, RunError> {
    let dir = ctx.spec.output_dir.join(&job.trial.dir);
    let results = dir.join(&job.results);
    let record = |doc: Json| async move {
        let data = task_data_of(&doc, &job.results);
        ctx.store
            .record_evaluation(job.trial.id, &job.set, &flatten_results(&doc), &data)
            .await
            .map(|()| Outcome::Evaluated)
    };
    if let Some(doc) =
        read_covering(&results, &job.eval.tasks).filter(|doc| from_sources(doc, &job.eval))
    {
        return Ok(record(doc).await?);
    }
    let Some(export) = export_of(&dir) else {
        return Ok(Outcome::Failed(format!(
            "{}: no `done` event, so no export to evaluate",
            dir.join("train.events.jsonl").display()
        )));
    };
    let lock_path = dir.join("lock");
    let lock = loop {
        if let Some(f) = locks::try_trial_lock(&lock_path)? {
            break f;
        }
        if ctx.shutdown_level() > 0 {
            return Ok(Outcome::Interrupted);
        }
        tokio::time::sleep(TAIL_EVERY).await;
    };
    let samples = dir.join(format!(
        "samples{}.jsonl",
        job.results
            .strip_prefix("results")
            .and_then(|s| s.strip_suffix(".json"))
            .unwrap_or("")
    ));
    let args = eval_command(ctx, &job.eval, &export, &results, &samples);
    let log = dir.join("eval.log");
    let mut log_file = append(&log)?;
    let _ = writeln!(
        log_file,
        "=== smolsweep orchestrator pid {}: evaluation of {} into results set {}, slot {}, at {:.3}",
        std::process::id(),
        job.eval.tasks.join(","),
        job.set,
        slot.index,
        now()
    );
    let out = log_file.try_clone().map_err(io_err(&log))?;
    let child = Child {
        stage: "eval",
        args,
        lock: Some(&lock),
        lock_path: &lock_path,
        stdout: out,
        stderr: log_file,
        cuda_visible_devices: &slot.cuda_visible_devices,
    };
    let exit = run_child(ctx, &job.trial, child, None).await?;
    let stopping = ctx.shutdown_level() > 0;
    Ok(match exit {
        Exit::Code(c) if ExitCode::from_code(c) == Some(ExitCode::Done) => {
            match read_covering(&results, &job.eval.tasks) {
                Some(doc) => record(doc).await?,
                None => Outcome::Failed(format!(
                    "eval exited 0 but {} is missing, not JSON, or lacks a task",
                    results.display()
                )),
            }
        }
        _ if stopping => Outcome::Interrupted,
        Exit::Left | Exit::Cancelled => Outcome::Interrupted,
        Exit::Code(c) => {
            Outcome::Failed(format!("eval exited with status {c}: {}", log_reason(&log)))
        }
        Exit::Signal(s) => {
            Outcome::Failed(format!("eval killed by signal {s}: {}", log_reason(&log)))
        }
    })
}
