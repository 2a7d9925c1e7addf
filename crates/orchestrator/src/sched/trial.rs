//! One trial from claim to outcome: take its lock (waiting out an orphaned
//! process of it), record what earlier processes wrote, write `trial.toml`,
//! then the train stage (`train --resume` until the event file says done or
//! diverged) and the eval stage (`eval` on the export until `results.json`
//! parses). Every exit becomes a [`TrialOutcome`]; the store turns that
//! into the trial's next state.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde_json::Value as Json;
use smolsweep_config::{ExitCode, STOP_REQUEST_FILE};

use super::child::{append, log_reason, out_of_memory, stop_signal, Exit};
use super::extra::eval_command;
use super::launch::StageRun;
use super::slurm::Plan;
use super::stop_rule::StopWatch;
use super::tail::{train_state, EventTail, TrainState};
use super::{io_err, Ctx, RunError, TAIL_EVERY};
use crate::gpu::Slot;
use crate::locks;
use crate::store::{flatten_results, now, Trial, TrialOutcome};
use smolsweep_config::sweep::{point_label, Point};

/// The grid point of a trial row, as spec values.
pub(super) fn point_of(t: &Trial) -> Point {
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

/// Why a trial whose Slurm job the sweep cancelled is pending again: not
/// a failed attempt; the next run submits the attempt again.
const CANCELLED: &str = "its Slurm job was cancelled (--cancel); the next run submits it again";

fn interrupted(what: &str) -> TrialOutcome {
    TrialOutcome::Interrupted {
        reason: what.to_string(),
    }
}

/// One trial from claim to outcome: train (resuming), then eval.
pub(super) async fn run_trial(
    ctx: &Ctx,
    trial: &Trial,
    slot: &Slot,
    adopted: bool,
    bar: &ProgressBar,
) -> Result<TrialOutcome, RunError> {
    let dir = ctx.spec.output_dir.join(&trial.dir);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut events = EventTail::new(
        trial.id,
        dir.join("train.events.jsonl"),
        trial.events_offset as u64,
        bar,
    );
    events.watch(StopWatch::new(
        &ctx.spec.resources,
        dir.join("out").join(STOP_REQUEST_FILE),
        trial.step.unwrap_or(0).max(0) as u64,
    ));
    events.measure(ctx.packing.as_ref().map(|p| {
        (
            std::sync::Arc::clone(p),
            super::pack::shape(&ctx.spec, trial),
        )
    }));
    let lock_path = dir.join("lock");
    let local = ctx.launcher.is_local();
    if adopted {
        bar.set_message(if local {
            "adopted: waiting for the previous orchestrator's process"
        } else {
            "adopted: following its Slurm job"
        });
    }
    let lock = if local {
        Some(take_lock(ctx, &lock_path, &mut events).await?)
    } else {
        None
    };
    // Whatever an earlier process of this trial wrote after the last
    // recording (up to its exit) is recorded before anything else happens.
    events.read(&ctx.store).await?;
    if ctx.shutdown_level() > 0 {
        return Ok(interrupted("sweep stopping"));
    }

    let point = point_of(trial);
    let config_path = dir.join("trial.toml");
    let config = ctx.spec.trial_config(&point, &dir.join("out"));
    let text = format!(
        "# Trial {} of sweep {:?}: {}\n# Written by the orchestrator; `smolsweep train --config` reads it.\n{}",
        trial.id,
        ctx.spec.name,
        point_label(&point),
        toml::to_string(&config).unwrap_or_default()
    );
    std::fs::write(&config_path, text).map_err(io_err(&config_path))?;

    let mut stage = Stage {
        ctx,
        trial,
        slot,
        dir: &dir,
        lock: lock.as_ref(),
        lock_path: &lock_path,
        bar,
        plan: Plan {
            train_args: train_args(&config_path),
            eval_args: None,
        },
    };
    // A Slurm job runs its eval right after training, on the export the
    // event file names (the script puts it in).
    stage.plan.eval_args = stage.eval_args(Path::new(super::slurm::EXPORT));
    match stage.train(&config_path, &mut events).await? {
        Trained::Export(export) => stage.eval(&export).await,
        Trained::StoppedEarly {
            export,
            step,
            message,
        } => Ok(match stage.eval(&export).await? {
            // Scored where it stopped: a result like a completed trial's.
            TrialOutcome::Completed {
                results_json,
                scores,
            } => TrialOutcome::StoppedEarly {
                step: Some(step),
                message: Some(message),
                results_json,
                scores,
            },
            other => other,
        }),
        Trained::Ended(outcome) => Ok(outcome),
    }
}

/// Takes the trial lock, waiting for (and recording) an orphaned trial
/// process that still holds it; a shutdown request reaches that process
/// as it would our own child.
async fn take_lock(
    ctx: &Ctx,
    lock_path: &Path,
    events: &mut EventTail<'_>,
) -> Result<File, RunError> {
    let mut shutdown = ctx.shutdown.clone();
    let mut sent = 0u8;
    loop {
        if let Some(f) = locks::try_trial_lock(lock_path)? {
            return Ok(f);
        }
        events.read(&ctx.store).await?;
        let level = *shutdown.borrow();
        if level > sent {
            if let Some(pid) = locks::lock_holder(lock_path) {
                locks::signal_group(pid, stop_signal(level));
            }
            sent = level;
        }
        tokio::select! {
            _ = tokio::time::sleep(TAIL_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn train_args(config_path: &Path) -> Vec<String> {
    vec![
        "train".to_string(),
        "--config".to_string(),
        config_path.display().to_string(),
        "--resume".to_string(),
    ]
}

/// How the train stage ended: an export to evaluate (of the whole plan, or
/// of a run a stop request ended), or the trial's outcome.
enum Trained {
    Export(PathBuf),
    StoppedEarly {
        export: PathBuf,
        step: i64,
        message: String,
    },
    Ended(TrialOutcome),
}

/// A trial with its lock taken: what both stages need.
struct Stage<'a> {
    ctx: &'a Ctx,
    trial: &'a Trial,
    slot: &'a Slot,
    dir: &'a Path,
    lock: Option<&'a File>,
    lock_path: &'a Path,
    bar: &'a ProgressBar,
    /// What the attempt runs (a Slurm job runs all of it).
    plan: Plan,
}

impl Stage<'_> {
    /// Header line a stage's log gets before each process it starts.
    fn log_header(&self, log: &Path, with_gpus: bool) -> Result<File, RunError> {
        let mut log_file = append(log)?;
        let gpus = if with_gpus {
            format!(
                ", CUDA_VISIBLE_DEVICES={:?}",
                self.slot.cuda_visible_devices
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            log_file,
            "=== smolsweep orchestrator pid {}: attempt {}, slot {}{gpus}, at {:.3}",
            std::process::id(),
            self.trial.attempt,
            self.slot.index,
            now()
        );
        Ok(log_file)
    }

    /// `train --resume` until the event file says done or diverged; what a
    /// previous process already achieved counts without running again.
    async fn train(
        &self,
        config_path: &Path,
        events: &mut EventTail<'_>,
    ) -> Result<Trained, RunError> {
        let mut trained_here = false;
        let request = self.dir.join("out").join(STOP_REQUEST_FILE);
        loop {
            if self.ctx.shutdown_level() > 0 {
                return Ok(Trained::Ended(interrupted("sweep stopping")));
            }
            match train_state(events.path(), &request) {
                TrainState::Diverged {
                    step,
                    last_finite_loss,
                    rule,
                    message,
                } => {
                    return Ok(Trained::Ended(TrialOutcome::Diverged {
                        step,
                        last_finite_loss,
                        rule: Some(rule),
                        message: Some(message),
                    }))
                }
                TrainState::Done { export } => return Ok(Trained::Export(export)),
                TrainState::StoppedEarly {
                    export,
                    step,
                    message,
                } => {
                    return Ok(Trained::StoppedEarly {
                        export,
                        step,
                        message,
                    })
                }
                TrainState::Incomplete if trained_here => {
                    return Ok(Trained::Ended(TrialOutcome::Failed {
                        stage: "train".into(),
                        exit_status: Some(0),
                        reason: "train exited 0 without a done event".into(),
                    }));
                }
                TrainState::Incomplete => {}
            }
            let log = self.dir.join("train.log");
            let log_file = self.log_header(&log, true)?;
            self.bar.set_message("training");
            let run = StageRun {
                stage: "train",
                args: train_args(config_path),
                lock: self.lock,
                lock_path: self.lock_path,
                stdout: append(events.path())?,
                stderr: log_file,
                cuda_visible_devices: &self.slot.cuda_visible_devices,
                plan: &self.plan,
                dir: self.dir,
            };
            let exit = self
                .ctx
                .launcher
                .run(self.ctx, self.trial, run, Some(&mut *events))
                .await?;
            if let Exit::Left = exit {
                return Ok(Trained::Ended(TrialOutcome::LeftRunning));
            }
            trained_here = true;
            let stopping = self.ctx.shutdown_level() > 0;
            let oom = match exit {
                Exit::Code(c) if c != 0 => out_of_memory(&log),
                _ => None,
            };
            let outcome = match (exit.contract(), exit) {
                (Some(ExitCode::Done), _) => continue,
                (Some(ExitCode::Diverged), _) => match train_state(events.path(), &request) {
                    TrainState::Diverged {
                        step,
                        last_finite_loss,
                        rule,
                        message,
                    } => TrialOutcome::Diverged {
                        step,
                        last_finite_loss,
                        rule: Some(rule),
                        message: Some(message),
                    },
                    // Exit 3 without its event: diverged, by a rule the
                    // record cannot name.
                    _ => TrialOutcome::Diverged {
                        step: None,
                        last_finite_loss: None,
                        rule: None,
                        message: None,
                    },
                },
                (Some(ExitCode::Stopped), _) if stopping => interrupted("stopped at a checkpoint"),
                (_, Exit::Signal(_)) if stopping => interrupted("killed"),
                (_, Exit::Left) => TrialOutcome::LeftRunning,
                (_, Exit::Cancelled) => interrupted(CANCELLED),
                (_, Exit::Code(c)) if oom.is_some() => TrialOutcome::OutOfMemory {
                    stage: "train".into(),
                    exit_status: Some(c as i64),
                    reason: format!("train exited with status {c}: {}", oom.unwrap_or_default()),
                },
                (_, Exit::Code(c)) => TrialOutcome::Failed {
                    stage: "train".into(),
                    exit_status: Some(c as i64),
                    reason: format!("train exited with status {c}: {}", log_reason(&log)),
                },
                (_, Exit::Signal(s)) => TrialOutcome::Failed {
                    stage: "train".into(),
                    exit_status: Some(128 + s as i64),
                    reason: format!("train killed by signal {s}: {}", log_reason(&log)),
                },
            };
            return Ok(Trained::Ended(outcome));
        }
    }

    /// `eval` on the export, unless the sweep has no `[eval]` or an earlier
    /// eval already left its results.
    async fn eval(&self, export: &Path) -> Result<TrialOutcome, RunError> {
        let Some(args) = self.eval_args(export) else {
            return Ok(TrialOutcome::Completed {
                results_json: None,
                scores: Vec::new(),
            });
        };
        let results = self.dir.join("results.json");
        // An eval that finished after its orchestrator died left its results.
        if let Some(doc) = read_results(&results) {
            return Ok(completed(doc));
        }
        let log = self.dir.join("eval.log");
        let log_file = self.log_header(&log, false)?;
        let out = log_file.try_clone().map_err(io_err(&log))?;
        self.bar.set_message("evaluating");
        let run = StageRun {
            stage: "eval",
            args,
            lock: self.lock,
            lock_path: self.lock_path,
            stdout: out,
            stderr: log_file,
            cuda_visible_devices: &self.slot.cuda_visible_devices,
            plan: &self.plan,
            dir: self.dir,
        };
        let exit = self
            .ctx
            .launcher
            .run(self.ctx, self.trial, run, None)
            .await?;
        let stopping = self.ctx.shutdown_level() > 0;
        let oom = match exit {
            Exit::Code(c) if c != 0 => out_of_memory(&log),
            _ => None,
        };
        Ok(match exit {
            Exit::Left => TrialOutcome::LeftRunning,
            Exit::Cancelled => interrupted(CANCELLED),
            Exit::Code(c) if ExitCode::from_code(c) == Some(ExitCode::Done) => {
                match read_results(&results) {
                    Some(doc) => completed(doc),
                    None => TrialOutcome::Failed {
                        stage: "eval".into(),
                        exit_status: Some(0),
                        reason: format!(
                            "eval exited 0 but {} is missing or not JSON",
                            results.display()
                        ),
                    },
                }
            }
            _ if stopping => interrupted("evaluation stopped"),
            Exit::Code(c) if oom.is_some() => TrialOutcome::OutOfMemory {
                stage: "eval".into(),
                exit_status: Some(c as i64),
                reason: format!("eval exited with status {c}: {}", oom.unwrap_or_default()),
            },
            Exit::Code(c) => TrialOutcome::Failed {
                stage: "eval".into(),
                exit_status: Some(c as i64),
                reason: format!("eval exited with status {c}: {}", log_reason(&log)),
            },
            Exit::Signal(s) => TrialOutcome::Failed {
                stage: "eval".into(),
                exit_status: Some(128 + s as i64),
                reason: format!("eval killed by signal {s}: {}", log_reason(&log)),
            },
        })
    }

    /// The `eval` command line from the sweep's `[eval]` (None without one).
    fn eval_args(&self, export: &Path) -> Option<Vec<String>> {
        let eval = self.ctx.spec.eval.as_ref()?;
        let export = if export.is_absolute() {
            export.to_path_buf()
        } else {
            self.dir.join("out").join(export)
        };
        Some(eval_command(
            self.ctx,
            eval,
            &export,
            &self.dir.join("results.json"),
            &self.dir.join("samples.jsonl"),
        ))
    }
}

/// results.json when it is complete (a torn write does not parse).
fn read_results(path: &Path) -> Option<Json> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<Json>(&text)
        .ok()
        .filter(Json::is_object)
}

fn completed(doc: Json) -> TrialOutcome {
    TrialOutcome::Completed {
        scores: flatten_results(&doc),
        results_json: Some(doc.to_string()),
    }
}
