//! The sweep record: SQLite through sqlx, schema in the workspace's
//! `migrations/` (embedded at compile time, applied on open).
//!
//! The orchestrator is the database's only writer; its pool has a single
//! connection, so writes are serialised in-process, and claims still run as
//! a compare-and-swap inside `BEGIN IMMEDIATE` (DESIGN.md section 8) so the
//! state machine holds even if that ever changes. WAL lets `status` and
//! `export` read while a sweep runs.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::spec::{check_frozen, point_key, point_label, SweepSpec};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{db}: {source}")]
    Sql { db: PathBuf, source: sqlx::Error },
    #[error("{db}: applying migrations: {source}")]
    Migrate {
        db: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("{db}: no sweep recorded here yet (start it with `smolsweep run`)")]
    NoSweep { db: PathBuf },
    #[error(
        "{file}: {key} differs from the spec recorded in {db}; a running sweep's spec is frozen \
         (only new grid values may be added). Restore it, or give the sweep a new output_dir"
    )]
    SpecChanged {
        file: PathBuf,
        db: PathBuf,
        key: String,
    },
    #[error("{db}: {message}")]
    Io { db: PathBuf, message: String },
}

/// Seconds since the Unix epoch, the record's clock.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One row of `trials`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Trial {
    pub id: i64,
    pub point_key: String,
    pub dir: String,
    pub state: String,
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
    pub events_offset: i64,
    pub results_json: Option<String>,
}

const TRIAL_COLUMNS: &str =
    "id, point_key, dir, state, stage, attempt, slot, cuda_visible_devices, \
     pid, heartbeat_at, claimed_at, started_at, ended_at, exit_status, error, step, epoch, \
     last_loss, tokens, export_dir, diverged_step, last_finite_loss, events_offset, results_json";

/// One row of `eval_results`.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct Score {
    pub trial_id: i64,
    pub task: String,
    pub metric: String,
    pub value: f64,
    pub stderr: Option<f64>,
}

/// The sweep row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SweepRow {
    pub id: i64,
    pub name: String,
    pub spec_json: String,
    pub orchestrator_pid: Option<i64>,
    pub orchestrator_heartbeat: Option<f64>,
}

/// How a trial's run ended, as the scheduler saw it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Trained (and evaluated, when the sweep has `[eval]`).
    Completed {
        results_json: Option<String>,
        scores: Vec<(String, String, f64, Option<f64>)>,
    },
    /// Non-finite loss: a result, never retried.
    Diverged {
        step: Option<i64>,
        last_finite_loss: Option<f64>,
    },
    /// An error; retried while attempts remain.
    Failed {
        stage: String,
        exit_status: Option<i64>,
        reason: String,
    },
    /// Stopped on request (Ctrl-C) or lost its process: resumes next time.
    Interrupted { reason: String },
}

/// A trainer event line, as recorded.
#[derive(Debug, Clone)]
pub struct EventLine {
    pub json: Json,
}

impl EventLine {
    pub fn kind(&self) -> &str {
        self.json.get("event").and_then(Json::as_str).unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    db: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database and applies migrations.
    pub async fn open(db: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = db.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Io {
                db: db.to_path_buf(),
                message: format!("creating {}: {e}", parent.display()),
            })?;
        }
        let store = Self::connect(db, false).await?;
        MIGRATOR
            .run(&store.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                db: db.to_path_buf(),
                source,
            })?;
        Ok(store)
    }

    /// Opens an existing database for reading (status, export).
    pub async fn open_read_only(db: &Path) -> Result<Self, StoreError> {
        if !db.is_file() {
            return Err(StoreError::NoSweep {
                db: db.to_path_buf(),
            });
        }
        Self::connect(db, true).await
    }

    async fn connect(db: &Path, read_only: bool) -> Result<Self, StoreError> {
        let sql = |source| StoreError::Sql {
            db: db.to_path_buf(),
            source,
        };
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(sql)?
            .filename(db)
            .create_if_missing(!read_only)
            .read_only(read_only)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across process crashes in WAL mode (a power
            // cut may lose the last commits, never corrupt the file).
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(sql)?;
        Ok(Self {
            pool,
            db: db.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.db
    }

    fn err(&self, source: sqlx::Error) -> StoreError {
        StoreError::Sql {
            db: self.db.clone(),
            source,
        }
    }

    pub async fn sweep(&self) -> Result<SweepRow, StoreError> {
        sqlx::query_as::<_, SweepRow>(
            "SELECT id, name, spec_json, orchestrator_pid, orchestrator_heartbeat FROM sweeps ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .ok_or_else(|| StoreError::NoSweep {
            db: self.db.clone(),
        })
    }

    /// Records the sweep on first run; on later runs checks the spec is
    /// unchanged except for added grid values, and inserts the new points.
    /// Returns the sweep id and how many trials were added.
    pub async fn ensure_sweep(
        &self,
        spec: &SweepSpec,
        pid: u32,
    ) -> Result<(i64, usize), StoreError> {
        let frozen = spec.frozen();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, spec_json FROM sweeps ORDER BY id LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        let t = now();
        let sweep_id = match existing {
            Some((id, old)) => {
                let old: Json = serde_json::from_str(&old).map_err(|e| StoreError::Io {
                    db: self.db.clone(),
                    message: format!("recorded spec is not JSON: {e}"),
                })?;
                check_frozen(&old, &frozen).map_err(|key| StoreError::SpecChanged {
                    file: spec.file.clone(),
                    db: self.db.clone(),
                    key,
                })?;
                sqlx::query(
                    "UPDATE sweeps SET spec_json = ?, updated_at = ?, orchestrator_pid = ?, orchestrator_heartbeat = ? WHERE id = ?",
                )
                .bind(frozen.to_string())
                .bind(t)
                .bind(pid as i64)
                .bind(t)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                id
            }
            None => sqlx::query_scalar(
                "INSERT INTO sweeps (name, spec_json, spec_toml, created_at, updated_at, orchestrator_pid, orchestrator_heartbeat) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&spec.name)
            .bind(frozen.to_string())
            .bind(&spec.source)
            .bind(t)
            .bind(t)
            .bind(pid as i64)
            .bind(t)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))?,
        };
        let mut added = 0;
        for point in spec.points() {
            let key = point_key(&point);
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO trials (sweep_id, point_key, dir, state, attempt) VALUES (?, ?, '', 'pending', 1) \
                 ON CONFLICT (sweep_id, point_key) DO NOTHING RETURNING id",
            )
            .bind(sweep_id)
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            if let Some(id) = id {
                let dir = format!("trials/{id:04}_{}", dir_label(&point_label(&point)));
                sqlx::query("UPDATE trials SET dir = ? WHERE id = ?")
                    .bind(&dir)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                log_event(
                    &mut tx,
                    Some(id),
                    "added",
                    &serde_json::json!({ "point": key }),
                )
                .await
                .map_err(|e| self.err(e))?;
                added += 1;
            }
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok((sweep_id, added))
    }

    pub async fn trials(&self) -> Result<Vec<Trial>, StoreError> {
        sqlx::query_as::<_, Trial>(&format!("SELECT {TRIAL_COLUMNS} FROM trials ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    pub async fn trial(&self, id: i64) -> Result<Trial, StoreError> {
        sqlx::query_as::<_, Trial>(&format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE id = ?"))
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    pub async fn scores(&self) -> Result<Vec<Score>, StoreError> {
        sqlx::query_as::<_, Score>(
            "SELECT trial_id, task, metric, value, stderr FROM eval_results ORDER BY trial_id, task, metric",
        )
        .fetch_all(&self.pool)
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

    /// A trial left `running` by a previous orchestrator whose process is
    /// gone: back to pending, to resume from its checkpoint.
    pub async fn recover(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query("UPDATE trials SET state = 'pending', pid = NULL, slot = NULL WHERE id = ? AND state = 'running'")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        log_event(&mut tx, Some(id), "recovered", &Json::Null)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Claims the next pending trial for `slot` (compare-and-swap on the
    /// state). Trials that already made progress go first, so an
    /// interrupted sweep finishes what it started before opening new work.
    pub async fn claim(
        &self,
        slot: usize,
        cuda_visible_devices: &str,
    ) -> Result<Option<Trial>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM trials WHERE state = 'pending' ORDER BY (step IS NULL), id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        let Some(id) = id else {
            return Ok(None);
        };
        let t = now();
        let r = sqlx::query(
            "UPDATE trials SET state = 'running', slot = ?, cuda_visible_devices = ?, pid = NULL, \
             claimed_at = ?, heartbeat_at = ?, started_at = COALESCE(started_at, ?), ended_at = NULL \
             WHERE id = ? AND state = 'pending'",
        )
        .bind(slot as i64)
        .bind(cuda_visible_devices)
        .bind(t)
        .bind(t)
        .bind(t)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if r.rows_affected() != 1 {
            return Ok(None);
        }
        log_event(
            &mut tx,
            Some(id),
            "claimed",
            &serde_json::json!({ "slot": slot, "cuda_visible_devices": cuda_visible_devices }),
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        self.trial(id).await.map(Some)
    }

    /// An orphaned trial process found still running: this orchestrator
    /// takes it over in `slot`.
    pub async fn adopt(&self, id: i64, slot: usize, cvd: &str) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query(
            "UPDATE trials SET slot = ?, cuda_visible_devices = ?, heartbeat_at = ? WHERE id = ?",
        )
        .bind(slot as i64)
        .bind(cvd)
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        log_event(
            &mut tx,
            Some(id),
            "adopted",
            &serde_json::json!({ "slot": slot }),
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// A child process started for `stage`.
    pub async fn spawned(
        &self,
        id: i64,
        stage: &str,
        pid: u32,
        argv: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query("UPDATE trials SET stage = ?, pid = ?, heartbeat_at = ? WHERE id = ?")
            .bind(stage)
            .bind(pid as i64)
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        log_event(
            &mut tx,
            Some(id),
            "spawned",
            &serde_json::json!({ "stage": stage, "pid": pid, "argv": argv }),
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Records trainer events read from the trial's event file, and the
    /// file offset after them, in one transaction: each event is recorded
    /// exactly once however often the orchestrator restarts.
    pub async fn record_events(
        &self,
        id: i64,
        events: &[EventLine],
        new_offset: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        let t = now();
        for ev in events {
            let j = &ev.json;
            let f = |k: &str| j.get(k).and_then(Json::as_f64);
            let i = |k: &str| j.get(k).and_then(Json::as_i64);
            match ev.kind() {
                "step" => {
                    sqlx::query(
                        "INSERT OR REPLACE INTO steps (trial_id, step, epoch, loss, lr, grad_norm, tokens, tokens_per_s, elapsed_s, recorded_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(id)
                    .bind(i("step").unwrap_or(0))
                    .bind(f("epoch"))
                    .bind(f("loss"))
                    .bind(f("lr"))
                    .bind(f("grad_norm"))
                    .bind(i("tokens"))
                    .bind(f("tokens_per_s"))
                    .bind(f("elapsed_s"))
                    .bind(t)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                    sqlx::query(
                        "UPDATE trials SET step = ?, epoch = ?, last_loss = ?, tokens = ?, heartbeat_at = ? WHERE id = ?",
                    )
                    .bind(i("step"))
                    .bind(f("epoch"))
                    .bind(f("loss"))
                    .bind(i("tokens"))
                    .bind(t)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                }
                kind => {
                    if kind == "done" {
                        sqlx::query("UPDATE trials SET export_dir = ?, step = COALESCE(?, step), last_loss = COALESCE(?, last_loss) WHERE id = ?")
                            .bind(j.get("export").and_then(Json::as_str))
                            .bind(i("step"))
                            .bind(f("loss"))
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| self.err(e))?;
                    } else if kind == "diverged" {
                        sqlx::query("UPDATE trials SET diverged_step = ?, last_finite_loss = ? WHERE id = ?")
                            .bind(i("step"))
                            .bind(f("last_finite_loss"))
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| self.err(e))?;
                    }
                    let name = if kind.is_empty() { "unknown" } else { kind };
                    log_event(&mut tx, Some(id), &format!("train.{name}"), j)
                        .await
                        .map_err(|e| self.err(e))?;
                }
            }
        }
        sqlx::query("UPDATE trials SET events_offset = ?, heartbeat_at = ? WHERE id = ?")
            .bind(new_offset as i64)
            .bind(t)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Proof of life for a trial, and for the orchestrator.
    pub async fn heartbeat(&self, ids: &[i64], pid: u32) -> Result<(), StoreError> {
        let t = now();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        for id in ids {
            sqlx::query("UPDATE trials SET heartbeat_at = ? WHERE id = ?")
                .bind(t)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        sqlx::query("UPDATE sweeps SET orchestrator_pid = ?, orchestrator_heartbeat = ?")
            .bind(pid as i64)
            .bind(t)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The orchestrator is leaving: no pid holds the sweep any more.
    pub async fn release(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE sweeps SET orchestrator_pid = NULL, orchestrator_heartbeat = ?")
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records how a trial's run ended. Returns the new state.
    pub async fn finish(
        &self,
        id: i64,
        outcome: &Outcome,
        max_retries: u32,
    ) -> Result<&'static str, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        let (attempt, claimed_at, stage): (i64, Option<f64>, Option<String>) =
            sqlx::query_as("SELECT attempt, claimed_at, stage FROM trials WHERE id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        let t = now();
        let attempt_row = |outcome: &'static str, exit: Option<i64>, reason: Option<String>| {
            (outcome, exit, reason)
        };
        let (state, attempt_rec) = match outcome {
            Outcome::Completed {
                results_json,
                scores,
            } => {
                sqlx::query(
                    "UPDATE trials SET state = 'completed', pid = NULL, ended_at = ?, exit_status = 0, error = NULL, results_json = ? WHERE id = ?",
                )
                .bind(t)
                .bind(results_json)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                sqlx::query("DELETE FROM eval_results WHERE trial_id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                for (task, metric, value, stderr) in scores {
                    sqlx::query(
                        "INSERT OR REPLACE INTO eval_results (trial_id, task, metric, value, stderr) VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(id)
                    .bind(task)
                    .bind(metric)
                    .bind(value)
                    .bind(stderr)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                }
                ("completed", Some(attempt_row("completed", Some(0), None)))
            }
            Outcome::Diverged {
                step,
                last_finite_loss,
            } => {
                sqlx::query(
                    "UPDATE trials SET state = 'diverged', pid = NULL, ended_at = ?, exit_status = 3, \
                     diverged_step = COALESCE(?, diverged_step), last_finite_loss = COALESCE(?, last_finite_loss), \
                     error = NULL WHERE id = ?",
                )
                .bind(t)
                .bind(step)
                .bind(last_finite_loss)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                ("diverged", Some(attempt_row("diverged", Some(3), None)))
            }
            Outcome::Failed {
                stage: _,
                exit_status,
                reason,
            } => {
                let retry = attempt <= max_retries as i64;
                let (state, sql) = if retry {
                    (
                        "pending",
                        "UPDATE trials SET state = 'pending', attempt = attempt + 1, pid = NULL, slot = NULL, ended_at = ?, exit_status = ?, error = ? WHERE id = ?",
                    )
                } else {
                    (
                        "failed",
                        "UPDATE trials SET state = 'failed', pid = NULL, ended_at = ?, exit_status = ?, error = ? WHERE id = ?",
                    )
                };
                sqlx::query(sql)
                    .bind(t)
                    .bind(exit_status)
                    .bind(reason)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                (
                    state,
                    Some(attempt_row("failed", *exit_status, Some(reason.clone()))),
                )
            }
            Outcome::Interrupted { reason } => {
                sqlx::query(
                    "UPDATE trials SET state = 'pending', pid = NULL, slot = NULL WHERE id = ?",
                )
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                log_event(
                    &mut tx,
                    Some(id),
                    "interrupted",
                    &serde_json::json!({ "reason": reason }),
                )
                .await
                .map_err(|e| self.err(e))?;
                ("pending", None)
            }
        };
        if let Some((outcome, exit, reason)) = attempt_rec {
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
            .bind(&reason)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            log_event(
                &mut tx,
                Some(id),
                "finished",
                &serde_json::json!({ "outcome": outcome, "attempt": attempt, "exit_status": exit, "reason": reason, "state": state }),
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(state)
    }

    /// A sweep-level event (no trial).
    pub async fn event(
        &self,
        trial: Option<i64>,
        kind: &str,
        data: &Json,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        log_event(&mut tx, trial, kind, data)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// `(trial_id, at, kind, data_json)` of the events of some kinds, in
    /// order (used by tests and overhead measurements).
    pub async fn events(
        &self,
        kinds: &[&str],
    ) -> Result<Vec<(Option<i64>, f64, String, Option<String>)>, StoreError> {
        let all: Vec<(Option<i64>, f64, String, Option<String>)> =
            sqlx::query_as("SELECT trial_id, at, kind, data_json FROM events ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        Ok(all
            .into_iter()
            .filter(|e| kinds.is_empty() || kinds.contains(&e.2.as_str()))
            .collect())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn log_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    trial: Option<i64>,
    kind: &str,
    data: &Json,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO events (trial_id, at, kind, data_json) VALUES (?, ?, ?, ?)")
        .bind(trial)
        .bind(now())
        .bind(kind)
        .bind(if data.is_null() {
            None
        } else {
            Some(data.to_string())
        })
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A directory-safe version of a point label.
fn dir_label(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| match c {
            ' ' => '_',
            c if c.is_ascii_alphanumeric() || "-_.=+".contains(c) => c,
            _ => '-',
        })
        .collect();
    s.chars().take(100).collect()
}

/// Flattens a results.json into `(task, metric, value, stderr)` rows.
///
/// `smolsweep eval` writes `{"tasks": {NAME: {"metrics": {METRIC: {"value",
/// "stderr"}}, ...}}, ...}`; that shape is read exactly. Anything else is
/// read generically: the task table is `results` when the document has one
/// (lm-eval's shape), else the document itself; under each task every
/// numeric leaf is a metric named by its path (`a/b`), a metric named
/// `X_stderr` (or `X_stderr,filter`) is attached to `X` as its standard
/// error, and lm-eval's `,none` filter suffix is dropped.
pub fn flatten_results(doc: &Json) -> Vec<(String, String, f64, Option<f64>)> {
    if let Some(tasks) = doc.get("tasks").and_then(Json::as_object) {
        if tasks
            .values()
            .all(|t| t.get("metrics").is_some_and(Json::is_object))
        {
            let mut out = Vec::new();
            for (task, t) in tasks {
                for (metric, m) in t["metrics"].as_object().into_iter().flatten() {
                    let (value, stderr) = match m {
                        Json::Number(n) => (n.as_f64(), None),
                        m => (
                            m.get("value").and_then(Json::as_f64),
                            m.get("stderr").and_then(Json::as_f64),
                        ),
                    };
                    if let Some(v) = value {
                        out.push((task.clone(), metric.clone(), v, stderr));
                    }
                }
            }
            return out;
        }
    }
    let tasks = match doc.get("results").and_then(Json::as_object) {
        Some(t) => t,
        None => match doc.as_object() {
            Some(t) => t,
            None => return Vec::new(),
        },
    };
    let mut out = Vec::new();
    for (task, v) in tasks {
        let mut leaves = Vec::new();
        collect_leaves(v, String::new(), &mut leaves);
        let clean = |m: &str| m.strip_suffix(",none").unwrap_or(m).to_string();
        let mut values: Vec<(String, f64)> = Vec::new();
        let mut errs: Vec<(String, f64)> = Vec::new();
        for (metric, value) in leaves {
            let m = clean(&metric);
            if let Some(base) = m.strip_suffix("_stderr") {
                errs.push((base.to_string(), value));
            } else if let Some((base, filter)) = m.split_once("_stderr,") {
                errs.push((format!("{base},{filter}"), value));
            } else {
                values.push((m, value));
            }
        }
        for (m, value) in values {
            let stderr = errs.iter().find(|(b, _)| *b == m).map(|(_, e)| *e);
            out.push((task.clone(), m, value, stderr));
        }
    }
    out
}

fn collect_leaves(v: &Json, path: String, out: &mut Vec<(String, f64)>) {
    match v {
        Json::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((
                    if path.is_empty() {
                        "value".into()
                    } else {
                        path
                    },
                    f,
                ));
            }
        }
        Json::Object(m) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}/{k}")
                };
                collect_leaves(v, p, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_smolsweep_eval_shape() {
        let doc = serde_json::json!({
            "model": "m", "device": "cpu", "total_wall_s": 3.5,
            "tasks": {
                "arc_easy": { "task": "arc_easy", "n": 10, "wall_s": 1.0,
                    "metrics": { "acc": { "value": 0.5, "stderr": 0.1 }, "acc_norm": { "value": 0.6, "stderr": null } } },
                "gsm8k": { "task": "gsm8k", "n": 10, "wall_s": 2.0,
                    "metrics": { "exact_match_strict": { "value": 0.1, "stderr": 0.05 } } }
            }
        });
        let rows = flatten_results(&doc);
        assert_eq!(
            rows,
            vec![
                ("arc_easy".into(), "acc".into(), 0.5, Some(0.1)),
                ("arc_easy".into(), "acc_norm".into(), 0.6, None),
                ("gsm8k".into(), "exact_match_strict".into(), 0.1, Some(0.05)),
            ]
        );
    }

    #[test]
    fn flattens_lm_eval_shape() {
        let doc = serde_json::json!({
            "results": {
                "arc_easy": { "acc,none": 0.5, "acc_stderr,none": 0.01, "acc_norm,none": 0.6, "alias": "arc_easy" },
                "gsm8k": { "exact_match": { "strict": 0.1, "flexible": 0.2 } }
            },
            "config": { "limit": 10 }
        });
        let rows = flatten_results(&doc);
        assert!(rows.contains(&("arc_easy".into(), "acc".into(), 0.5, Some(0.01))));
        assert!(rows.contains(&("arc_easy".into(), "acc_norm".into(), 0.6, None)));
        assert!(rows.contains(&("gsm8k".into(), "exact_match/strict".into(), 0.1, None)));
        assert_eq!(rows.len(), 4);
    }
}
