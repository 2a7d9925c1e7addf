//! Slurm jobs of trial attempts (`slurm_jobs`, migrations/0006 and 0009):
//! the intent to submit, recorded before `sbatch` runs, the job id after
//! it answered, what squeue/sacct last said (state, node, restarts), and
//! the sweep's decision to cancel it. An attempt whose job the sweep
//! cancelled is submitted again as the attempt's next submission.

use serde_json::Value as Json;

use super::{now, Store, StoreError};

/// One row of `slurm_jobs`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SlurmJob {
    pub trial_id: i64,
    pub attempt: i64,
    /// 1, then one more for each submission after a cancellation.
    pub submission: i64,
    pub job_name: String,
    pub job_id: Option<String>,
    pub state: Option<String>,
    pub node: Option<String>,
    pub restarts: i64,
    pub submitted_at: f64,
    pub ended_at: Option<f64>,
    /// When the sweep decided to scancel it (Ctrl-C with `--cancel`).
    pub cancelled_at: Option<f64>,
}

/// One job: its trial, attempt and submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobKey {
    pub trial: i64,
    pub attempt: i64,
    pub submission: i64,
}

impl SlurmJob {
    pub fn key(&self) -> JobKey {
        JobKey {
            trial: self.trial_id,
            attempt: self.attempt,
            submission: self.submission,
        }
    }
}

const JOB_COLUMNS: [&str; 11] = [
    "trial_id",
    "attempt",
    "submission",
    "job_name",
    "job_id",
    "state",
    "node",
    "restarts",
    "submitted_at",
    "ended_at",
    "cancelled_at",
];

/// Columns added after the table: (name, what an older record reads as).
const LATER_COLUMNS: [(&str, &str); 2] = [("submission", "1"), ("cancelled_at", "NULL")];

impl Store {
    /// The select list of a `SlurmJob`. A record that no run of this
    /// version has migrated (`status` opens it read-only, perhaps while an
    /// older orchestrator drives it) lacks the later columns: they read as
    /// their values for a job never cancelled.
    async fn job_columns(&self) -> Result<String, StoreError> {
        let have: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('slurm_jobs')")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        Ok(JOB_COLUMNS
            .iter()
            .map(|c| match LATER_COLUMNS.iter().find(|(l, _)| l == c) {
                Some((_, old)) if !have.iter().any(|h| h == c) => format!("{old} AS {c}"),
                _ => c.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "))
    }

    /// The latest job of a trial's attempt, if one was (or was about to be)
    /// submitted.
    pub async fn slurm_job(
        &self,
        trial: i64,
        attempt: i64,
    ) -> Result<Option<SlurmJob>, StoreError> {
        let columns = self.job_columns().await?;
        sqlx::query_as::<_, SlurmJob>(&format!(
            "SELECT {columns} FROM slurm_jobs WHERE trial_id = ? AND attempt = ? \
             ORDER BY submission DESC LIMIT 1"
        ))
        .bind(trial)
        .bind(attempt)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    /// Every job, newest attempt (and submission) last (for `status`).
    pub async fn slurm_jobs(&self) -> Result<Vec<SlurmJob>, StoreError> {
        // A record from before the Slurm backend, read without migrating.
        if !self.has_table("slurm_jobs").await? {
            return Ok(Vec::new());
        }
        let columns = self.job_columns().await?;
        sqlx::query_as::<_, SlurmJob>(&format!(
            "SELECT {columns} FROM slurm_jobs ORDER BY trial_id, attempt, submission"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    /// The intent to submit `job_name` as this submission of the attempt,
    /// before sbatch runs. Returns false when it already has a job row (a
    /// crash after this point is repaired by name, never by submitting
    /// again).
    pub async fn slurm_intent(&self, key: JobKey, job_name: &str) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let changed = w
            .execute(
                sqlx::query(
                    "INSERT OR IGNORE INTO slurm_jobs (trial_id, attempt, submission, job_name, submitted_at) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(key.trial)
                .bind(key.attempt)
                .bind(key.submission)
                .bind(job_name)
                .bind(now()),
            )
            .await?;
        if changed == 1 {
            w.log_event(
                Some(key.trial),
                "slurm.intent",
                &serde_json::json!({ "attempt": key.attempt, "submission": key.submission, "job_name": job_name }),
            )
            .await?;
        }
        w.commit().await?;
        Ok(changed == 1)
    }

    /// sbatch's answer (or the job found by name after a crash).
    pub async fn slurm_submitted(
        &self,
        key: JobKey,
        job_id: &str,
        how: &str,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.execute(
            sqlx::query(
                "UPDATE slurm_jobs SET job_id = ?, state = COALESCE(state, 'PENDING') \
                 WHERE trial_id = ? AND attempt = ? AND submission = ?",
            )
            .bind(job_id)
            .bind(key.trial)
            .bind(key.attempt)
            .bind(key.submission),
        )
        .await?;
        w.log_event(
            Some(key.trial),
            "slurm.submitted",
            &serde_json::json!({ "attempt": key.attempt, "submission": key.submission, "job_id": job_id, "how": how }),
        )
        .await?;
        w.commit().await
    }

    /// The sweep cancels this job (recorded before `scancel` runs; the
    /// first decision's time stays).
    pub async fn slurm_cancelling(&self, key: JobKey, why: &str) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let changed = w
            .execute(
                sqlx::query(
                    "UPDATE slurm_jobs SET cancelled_at = ? \
                     WHERE trial_id = ? AND attempt = ? AND submission = ? AND cancelled_at IS NULL",
                )
                .bind(now())
                .bind(key.trial)
                .bind(key.attempt)
                .bind(key.submission),
            )
            .await?;
        if changed == 1 {
            w.log_event(
                Some(key.trial),
                "slurm.cancel",
                &serde_json::json!({ "attempt": key.attempt, "submission": key.submission, "why": why }),
            )
            .await?;
        }
        w.commit().await
    }

    /// What Slurm says of the job now; `ended` once it left the queue.
    #[allow(clippy::too_many_arguments)]
    pub async fn slurm_seen(
        &self,
        key: JobKey,
        state: &str,
        node: Option<&str>,
        restarts: Option<i64>,
        ended: bool,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let before: Option<(Option<String>, i64)> = sqlx::query_as(
            "SELECT state, restarts FROM slurm_jobs WHERE trial_id = ? AND attempt = ? AND submission = ?",
        )
        .bind(key.trial)
        .bind(key.attempt)
        .bind(key.submission)
        .fetch_optional(w.conn())
        .await
        .map_err(|e| w.err(e))?;
        w.execute(
            sqlx::query(
                "UPDATE slurm_jobs SET state = ?, node = COALESCE(?, node), restarts = MAX(restarts, COALESCE(?, 0)), \
                 ended_at = CASE WHEN ? THEN ? ELSE NULL END WHERE trial_id = ? AND attempt = ? AND submission = ?",
            )
            .bind(state)
            .bind(node)
            .bind(restarts)
            .bind(ended)
            .bind(now())
            .bind(key.trial)
            .bind(key.attempt)
            .bind(key.submission),
        )
        .await?;
        let changed = match &before {
            Some((s, r)) => s.as_deref() != Some(state) || restarts.is_some_and(|n| n > *r),
            None => false,
        };
        if changed {
            w.log_event(
                Some(key.trial),
                "slurm.state",
                &serde_json::json!({ "attempt": key.attempt, "submission": key.submission, "state": state, "node": node, "restarts": restarts, "ended": ended }),
            )
            .await?;
        }
        w.commit().await
    }
}

/// The JSON form `status --json` shows for a job.
pub fn job_json(j: &SlurmJob) -> Json {
    serde_json::json!({
        "job_id": j.job_id,
        "state": j.state,
        "node": j.node,
        "restarts": j.restarts,
        "attempt": j.attempt,
        "submission": j.submission,
        "cancelled": j.cancelled_at.is_some(),
    })
}
