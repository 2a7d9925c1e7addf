//! The trial rows and their state machine (docs/architecture.md, "Trial
//! lifecycle and states"):
//! pending -> running (claim, a compare-and-swap) -> completed | diverged |
//! stopped_early | failed (finish, with an `attempts` row saying why), or
//! back to pending (a retry, an interruption, a lost process, a stop rule
//! turned off).

use serde_json::Value as Json;
use smolsweep_config::{DivergenceRule, TrialState};

use super::results::{insert_scores, Score};
use super::sets::task_data_of;
use super::{now, Store, StoreError};

/// One row of `trials`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Trial {
    pub id: i64,
    pub point_key: String,
    pub dir: String,
    pub state: TrialState,
    pub stage: Option<String>,
    pub attempt: i64,
    pub slot: Option<i64>,
    pub cuda_visible_devices: Option<String>,
    pub pid: Option<i64>,
    pub heartbeat_at: Option<f64>,
    pub claimed_at: Option<f64>,
    pub started_at: Option<f64>,
    pub ended_at: Option<f64>,
    pub exit_status: Option<i64>,
    pub error: Option<String>,
    pub step: Option<i64>,
    pub epoch: Option<f64>,
    pub last_loss: Option<f64>,
    pub tokens: Option<i64>,
    pub export_dir: Option<String>,
    pub diverged_step: Option<i64>,
    pub last_finite_loss: Option<f64>,
    /// The divergence rule that fired (`non_finite`, `loss_plateau`,
    /// `zero_grad`), and what it saw.
    pub diverged_rule: Option<String>,
    pub diverged_message: Option<String>,
    /// Stopped by the sweep's stop rule: the step, and what the rule saw.
    pub stopped_step: Option<i64>,
    pub stopped_message: Option<String>,
    pub events_offset: i64,
    pub results_json: Option<String>,
}

const TRIAL_COLUMNS: &[&str] = &[
    "id",
    "point_key",
    "dir",
    "state",
    "stage",
    "attempt",
    "slot",
    "cuda_visible_devices",
    "pid",
    "heartbeat_at",
    "claimed_at",
    "started_at",
    "ended_at",
    "exit_status",
    "error",
    "step",
    "epoch",
    "last_loss",
    "tokens",
    "export_dir",
    "diverged_step",
    "last_finite_loss",
    "diverged_rule",
    "diverged_message",
    "stopped_step",
    "stopped_message",
    "events_offset",
    "results_json",
];

/// How a trial's run ended, as the scheduler saw it.
#[derive(Debug, Clone)]
pub enum TrialOutcome {
    /// Trained (and evaluated, when the sweep has `[eval]`).
    Completed {
        results_json: Option<String>,
        scores: Vec<Score>,
    },
    /// Non-finite loss, or a collapse (`rule`): a result, never retried.
    Diverged {
        step: Option<i64>,
        last_finite_loss: Option<f64>,
        rule: Option<DivergenceRule>,
        message: Option<String>,
    },
    /// Stopped by the sweep's stop rule at `step` and evaluated there (its
    /// scores, when the sweep has `[eval]`): a result, never retried.
    StoppedEarly {
        step: Option<i64>,
        message: Option<String>,
        results_json: Option<String>,
        scores: Vec<Score>,
    },
    /// An error; retried while attempts remain.
    Failed {
        stage: String,
        exit_status: Option<i64>,
        reason: String,
    },
    /// Ran out of GPU memory (the stage's log says so): recorded as a
    /// failure, unless the packing of `slots_per_gpu = "auto"` put it
    /// beside other trials (then retried, not counting the attempt).
    OutOfMemory {
        stage: String,
        exit_status: Option<i64>,
        reason: String,
    },
    /// Stopped on request (Ctrl-C) or lost its process: resumes next time.
    Interrupted { reason: String },
    /// The sweep stopped and left it running (a Slurm job): it stays
    /// `running`, and the next `run` follows it again.
    LeftRunning,
}

/// The `attempts` row a finished attempt leaves: its outcome, exit status
/// and reason.
type AttemptRecord = (&'static str, Option<i64>, Option<String>);

impl Store {
    /// The select list of a `Trial`. A record that no run of this version
    /// has migrated yet (`status` opens it read-only, perhaps while an
    /// older orchestrator drives it) lacks the newer columns: they read as
    /// NULL.
    async fn trial_columns(&self) -> Result<String, StoreError> {
        let have: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('trials')")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(TRIAL_COLUMNS
            .iter()
            .map(|c| {
                if have.iter().any(|h| h == c) {
                    c.to_string()
                } else {
                    format!("NULL AS {c}")
                }
            })
            .collect::<Vec<_>>()
            .join(", "))
    }

    pub async fn trials(&self) -> Result<Vec<Trial>, StoreError> {
        let columns = self.trial_columns().await?;
        sqlx::query_as::<_, Trial>(&format!("SELECT {columns} FROM trials ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    pub async fn trial(&self, id: i64) -> Result<Trial, StoreError> {
        let columns = self.trial_columns().await?;
        sqlx::query_as::<_, Trial>(&format!("SELECT {columns} FROM trials WHERE id = ?"))
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// Failed trials get another chance when `max_retries` was raised.
    pub async fn reopen_failed(&self, max_retries: u32) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE trials SET state = 'pending', attempt = attempt + 1 WHERE state = 'failed' AND attempt <= ?",
        )
        .bind(max_retries as i64)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(r.rows_affected())
    }

    /// Trials the stop rule stopped, when the sweep runs without one now:
    /// back to pending, to train on from the checkpoint they stopped at.
    /// Their scores (of the model where it stopped) are taken out of every
    /// results set and kept whole in the event log (`reopened`); the files
    /// they came from are set aside by the caller first.
    pub async fn reopen_stopped_early(&self) -> Result<Vec<Trial>, StoreError> {
        let stopped: Vec<Trial> = self
            .trials()
            .await?
            .into_iter()
            .filter(|t| t.state == TrialState::StoppedEarly)
            .collect();
        if stopped.is_empty() {
            return Ok(stopped);
        }
        let mut w = self.write().await?;
        for t in &stopped {
            for table in ["eval_results", "eval_tasks"] {
                w.execute(
                    sqlx::query(&format!("DELETE FROM {table} WHERE trial_id = ?")).bind(t.id),
                )
                .await?;
            }
            w.execute(
                sqlx::query(
                    "UPDATE trials SET state = 'pending', pid = NULL, slot = NULL, results_json = NULL, \
                     stopped_step = NULL, stopped_message = NULL WHERE id = ? AND state = 'stopped_early'",
                )
                .bind(t.id),
            )
            .await?;
            w.log_event(
                Some(t.id),
                "reopened",
                &serde_json::json!({
                    "reason": "the sweep runs without a stop rule now: training on to the end",
                    "stopped_step": t.stopped_step,
                    "stopped_message": t.stopped_message,
                    "results_json": t.results_json,
                }),
            )
            .await?;
        }
        w.commit().await?;
        Ok(stopped)
    }

    /// A trial left `running` by a previous orchestrator whose process is
    /// gone: back to pending, to resume from its checkpoint.
    pub async fn recover(&self, id: i64) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.execute(
            sqlx::query("UPDATE trials SET state = 'pending', pid = NULL, slot = NULL WHERE id = ? AND state = 'running'")
                .bind(id),
        )
        .await?;
        w.log_event(Some(id), "recovered", &Json::Null).await?;
        w.commit().await
    }

    /// Claims the next pending trial for `slot` (compare-and-swap on the
    /// state). Trials that already made progress go first, so an
    /// interrupted sweep finishes what it started before opening new work.
    pub async fn claim(
        &self,
        slot: usize,
        cuda_visible_devices: &str,
    ) -> Result<Option<Trial>, StoreError> {
        self.claim_trial(slot, cuda_visible_devices, None).await
    }

    /// The trial [`claim`](Self::claim) would take next, without taking it.
    pub async fn next_pending(&self) -> Result<Option<Trial>, StoreError> {
        let columns = self.trial_columns().await?;
        sqlx::query_as::<_, Trial>(&format!(
            "SELECT {columns} FROM trials WHERE state = 'pending' ORDER BY (step IS NULL), id LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    /// Claims trial `only` (when still pending), or the next pending one.
    pub async fn claim_trial(
        &self,
        slot: usize,
        cuda_visible_devices: &str,
        only: Option<i64>,
    ) -> Result<Option<Trial>, StoreError> {
        let mut w = self.write().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM trials WHERE state = 'pending' AND (? IS NULL OR id = ?) ORDER BY (step IS NULL), id LIMIT 1",
        )
        .bind(only)
        .bind(only)
        .fetch_optional(w.conn())
        .await
        .map_err(|e| w.err(e))?;
        let Some(id) = id else {
            return Ok(None);
        };
        let t = now();
        let changed = w
            .execute(
                sqlx::query(
                    "UPDATE trials SET state = 'running', slot = ?, cuda_visible_devices = ?, pid = NULL, \
                     claimed_at = ?, heartbeat_at = ?, started_at = COALESCE(started_at, ?), ended_at = NULL \
                     WHERE id = ? AND state = 'pending'",
                )
                .bind(slot as i64)
                .bind(cuda_visible_devices)
                .bind(t)
                .bind(t)
                .bind(t)
                .bind(id),
            )
            .await?;
        if changed != 1 {
            return Ok(None);
        }
        w.log_event(
            Some(id),
            "claimed",
            &serde_json::json!({ "slot": slot, "cuda_visible_devices": cuda_visible_devices }),
        )
        .await?;
        w.commit().await?;
        self.trial(id).await.map(Some)
    }

    /// An orphaned trial process found still running: this orchestrator
    /// takes it over in `slot`.
    pub async fn adopt(&self, id: i64, slot: usize, cvd: &str) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.execute(
            sqlx::query(
                "UPDATE trials SET slot = ?, cuda_visible_devices = ?, heartbeat_at = ? WHERE id = ?",
            )
            .bind(slot as i64)
            .bind(cvd)
            .bind(now())
            .bind(id),
        )
        .await?;
        w.log_event(Some(id), "adopted", &serde_json::json!({ "slot": slot }))
            .await?;
        w.commit().await
    }

    /// A child process started for `stage`.
    pub async fn spawned(
        &self,
        id: i64,
        stage: &str,
        pid: u32,
        argv: &[String],
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.execute(
            sqlx::query("UPDATE trials SET stage = ?, pid = ?, heartbeat_at = ? WHERE id = ?")
                .bind(stage)
                .bind(pid as i64)
                .bind(now())
                .bind(id),
        )
        .await?;
        w.log_event(
            Some(id),
            "spawned",
            &serde_json::json!({ "stage": stage, "pid": pid, "argv": argv }),
        )
        .await?;
        w.commit().await
    }

    /// Records how a trial's run ended. Returns the new state.
    /// A trial that ran out of GPU memory beside others under
    /// `slots_per_gpu = "auto"`: back to pending without counting the
    /// attempt (the packing, not the trial, was wrong), with why in the
    /// event log and the trial's error.
    pub async fn requeue_out_of_memory(
        &self,
        id: i64,
        stage: &str,
        reason: &str,
        why: &Json,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.execute(
            sqlx::query(
                "UPDATE trials SET state = 'pending', pid = NULL, slot = NULL, error = ? WHERE id = ?",
            )
            .bind(format!(
                "{stage} ran out of GPU memory beside other trials (retried with fewer, not counted as an attempt): {reason}"
            ))
            .bind(id),
        )
        .await?;
        w.log_event(Some(id), "requeued_out_of_memory", why).await?;
        w.commit().await
    }

    pub async fn finish(
        &self,
        id: i64,
        outcome: &TrialOutcome,
        max_retries: u32,
    ) -> Result<TrialState, StoreError> {
        // Which data each task's scores came from, hashed before the write
        // transaction (it reads every data file).
        let task_data = match outcome {
            TrialOutcome::Completed {
                results_json: Some(j),
                ..
            }
            | TrialOutcome::StoppedEarly {
                results_json: Some(j),
                ..
            } => serde_json::from_str(j)
                .map(|doc| task_data_of(&doc, "results.json"))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if let TrialOutcome::LeftRunning = outcome {
            let mut w = self.write().await?;
            w.log_event(Some(id), "left running", &Json::Null).await?;
            w.commit().await?;
            return Ok(TrialState::Running);
        }
        let mut w = self.write().await?;
        let (attempt, claimed_at, stage): (i64, Option<f64>, Option<String>) =
            sqlx::query_as("SELECT attempt, claimed_at, stage FROM trials WHERE id = ?")
                .bind(id)
                .fetch_one(w.conn())
                .await
                .map_err(|e| w.err(e))?;
        let t = now();
        let (state, record): (TrialState, Option<AttemptRecord>) = match outcome {
            TrialOutcome::Completed {
                results_json,
                scores,
            } => {
                w.execute(
                    sqlx::query(
                        "UPDATE trials SET state = 'completed', pid = NULL, ended_at = ?, exit_status = 0, error = NULL, results_json = ? WHERE id = ?",
                    )
                    .bind(t)
                    .bind(results_json)
                    .bind(id),
                )
                .await?;
                insert_scores(&mut w, id, scores, &task_data).await?;
                (TrialState::Completed, Some(("completed", Some(0), None)))
            }
            TrialOutcome::StoppedEarly {
                step,
                message,
                results_json,
                scores,
            } => {
                let message = message.as_deref().filter(|m| !m.is_empty());
                w.execute(
                    sqlx::query(
                        "UPDATE trials SET state = 'stopped_early', pid = NULL, ended_at = ?, exit_status = 0, error = NULL, \
                         stopped_step = COALESCE(?, stopped_step), stopped_message = COALESCE(?, stopped_message), \
                         results_json = ? WHERE id = ?",
                    )
                    .bind(t)
                    .bind(step)
                    .bind(message)
                    .bind(results_json)
                    .bind(id),
                )
                .await?;
                insert_scores(&mut w, id, scores, &task_data).await?;
                let reason = message.map(str::to_string);
                (
                    TrialState::StoppedEarly,
                    Some(("stopped_early", Some(0), reason)),
                )
            }
            TrialOutcome::Diverged {
                step,
                last_finite_loss,
                rule,
                message,
            } => {
                let message = message.as_deref().filter(|m| !m.is_empty());
                w.execute(
                    sqlx::query(
                        "UPDATE trials SET state = 'diverged', pid = NULL, ended_at = ?, exit_status = 3, \
                         diverged_step = COALESCE(?, diverged_step), last_finite_loss = COALESCE(?, last_finite_loss), \
                         diverged_rule = COALESCE(?, diverged_rule), diverged_message = COALESCE(?, diverged_message), \
                         error = NULL WHERE id = ?",
                    )
                    .bind(t)
                    .bind(step)
                    .bind(last_finite_loss)
                    .bind(rule.map(DivergenceRule::as_str))
                    .bind(message)
                    .bind(id),
                )
                .await?;
                let reason = rule.map(|r| match message {
                    Some(m) => format!("{r}: {m}"),
                    None => r.to_string(),
                });
                (TrialState::Diverged, Some(("diverged", Some(3), reason)))
            }
            TrialOutcome::Failed {
                stage: _,
                exit_status,
                reason,
            }
            | TrialOutcome::OutOfMemory {
                stage: _,
                exit_status,
                reason,
            } => {
                let retry = attempt <= max_retries as i64;
                let (state, sql) = if retry {
                    (
                        TrialState::Pending,
                        "UPDATE trials SET state = 'pending', attempt = attempt + 1, pid = NULL, slot = NULL, ended_at = ?, exit_status = ?, error = ? WHERE id = ?",
                    )
                } else {
                    (
                        TrialState::Failed,
                        "UPDATE trials SET state = 'failed', pid = NULL, ended_at = ?, exit_status = ?, error = ? WHERE id = ?",
                    )
                };
                w.execute(
                    sqlx::query(sql)
                        .bind(t)
                        .bind(exit_status)
                        .bind(reason)
                        .bind(id),
                )
                .await?;
                (state, Some(("failed", *exit_status, Some(reason.clone()))))
            }
            TrialOutcome::LeftRunning => (TrialState::Running, None),
            TrialOutcome::Interrupted { reason } => {
                w.execute(
                    sqlx::query(
                        "UPDATE trials SET state = 'pending', pid = NULL, slot = NULL WHERE id = ?",
                    )
                    .bind(id),
                )
                .await?;
                w.log_event(
                    Some(id),
                    "interrupted",
                    &serde_json::json!({ "reason": reason }),
                )
                .await?;
                (TrialState::Pending, None)
            }
        };
        if let Some((outcome, exit, reason)) = record {
            w.execute(
                sqlx::query(
                    "INSERT OR REPLACE INTO attempts (trial_id, attempt, stage, started_at, ended_at, exit_status, outcome, reason) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(attempt)
                .bind(stage)
                .bind(claimed_at)
                .bind(t)
                .bind(exit)
                .bind(outcome)
                .bind(&reason),
            )
            .await?;
            w.log_event(
                Some(id),
                "finished",
                &serde_json::json!({ "outcome": outcome, "attempt": attempt, "exit_status": exit, "reason": reason, "state": state.as_str() }),
            )
            .await?;
        }
        w.commit().await?;
        Ok(state)
    }
}
