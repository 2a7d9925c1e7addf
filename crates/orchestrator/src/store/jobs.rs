//! Slurm jobs of trial attempts (`slurm_jobs`, migrations/0006): the
//! intent to submit, recorded before `sbatch` runs, the job id after it
//! answered, and what squeue/sacct last said (state, node, restarts).

use serde_json::Value as Json;

use super::{now, Store, StoreError};

/// One row of `slurm_jobs`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SlurmJob {
    pub trial_id: i64,
    pub attempt: i64,
    pub job_name: String,
    pub job_id: Option<String>,
    pub state: Option<String>,
    pub node: Option<String>,
    pub restarts: i64,
    pub submitted_at: f64,
    pub ended_at: Option<f64>,
}

const JOB_COLUMNS: &str =
    "trial_id, attempt, job_name, job_id, state, node, restarts, submitted_at, ended_at";

impl Store {
    /// The job of a trial's attempt, if one was (or was about to be) submitted.
    pub async fn slurm_job(
        &self,
        trial: i64,
        attempt: i64,
    ) -> Result<Option<SlurmJob>, StoreError> {
        sqlx::query_as::<_, SlurmJob>(&format!(
            "SELECT {JOB_COLUMNS} FROM slurm_jobs WHERE trial_id = ? AND attempt = ?"
        ))
        .bind(trial)
        .bind(attempt)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    /// Every job, newest attempt last (for `status`).
    pub async fn slurm_jobs(&self) -> Result<Vec<SlurmJob>, StoreError> {
        // A record from before the Slurm backend, read without migrating.
        if !self.has_table("slurm_jobs").await? {
            return Ok(Vec::new());
        }
        sqlx::query_as::<_, SlurmJob>(&format!(
            "SELECT {JOB_COLUMNS} FROM slurm_jobs ORDER BY trial_id, attempt"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    /// The intent to submit `job_name` for this attempt, before sbatch
    /// runs. Returns false when the attempt already has a job row (a crash
    /// after this point is repaired by name, never by submitting again).
    pub async fn slurm_intent(
        &self,
        trial: i64,
        attempt: i64,
        job_name: &str,
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let changed = w
            .execute(
                sqlx::query(
                    "INSERT OR IGNORE INTO slurm_jobs (trial_id, attempt, job_name, submitted_at) VALUES (?, ?, ?, ?)",
                )
                .bind(trial)
                .bind(attempt)
                .bind(job_name)
                .bind(now()),
            )
            .await?;
        if changed == 1 {
            w.log_event(
                Some(trial),
                "slurm.intent",
                &serde_json::json!({ "attempt": attempt, "job_name": job_name }),
            )
            .await?;
        }
        w.commit().await?;
        Ok(changed == 1)
    }

    /// sbatch's answer (or the job found by name after a crash).
    pub async fn slurm_submitted(
        &self,
        trial: i64,
        attempt: i64,
        job_id: &str,
        how: &str,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.execute(
            sqlx::query(
                "UPDATE slurm_jobs SET job_id = ?, state = COALESCE(state, 'PENDING') WHERE trial_id = ? AND attempt = ?",
            )
            .bind(job_id)
            .bind(trial)
            .bind(attempt),
        )
        .await?;
        w.log_event(
            Some(trial),
            "slurm.submitted",
            &serde_json::json!({ "attempt": attempt, "job_id": job_id, "how": how }),
        )
        .await?;
        w.commit().await
    }

    /// What Slurm says of the job now; `ended` once it left the queue.
    #[allow(clippy::too_many_arguments)]
    pub async fn slurm_seen(
        &self,
        trial: i64,
        attempt: i64,
        state: &str,
        node: Option<&str>,
        restarts: Option<i64>,
        ended: bool,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let before: Option<(Option<String>, i64)> = sqlx::query_as(
            "SELECT state, restarts FROM slurm_jobs WHERE trial_id = ? AND attempt = ?",
        )
        .bind(trial)
        .bind(attempt)
        .fetch_optional(w.conn())
        .await
        .map_err(|e| w.err(e))?;
        w.execute(
            sqlx::query(
                "UPDATE slurm_jobs SET state = ?, node = COALESCE(?, node), restarts = MAX(restarts, COALESCE(?, 0)), \
                 ended_at = CASE WHEN ? THEN ? ELSE NULL END WHERE trial_id = ? AND attempt = ?",
            )
            .bind(state)
            .bind(node)
            .bind(restarts)
            .bind(ended)
            .bind(now())
            .bind(trial)
            .bind(attempt),
        )
        .await?;
        let changed = match &before {
            Some((s, r)) => s.as_deref() != Some(state) || restarts.is_some_and(|n| n > *r),
            None => false,
        };
        if changed {
            w.log_event(
                Some(trial),
                "slurm.state",
                &serde_json::json!({ "attempt": attempt, "state": state, "node": node, "restarts": restarts, "ended": ended }),
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
    })
}
