-- Why: trials may run as Slurm jobs (`[resources] backend = "slurm"`), one
-- job per trial attempt. The orchestrator may die between deciding to
-- submit and hearing sbatch's job id, so the intent is recorded first
-- (job_name set, job_id null) and the id after; the next `run` finds a job
-- whose id was never recorded by its name, so no attempt is submitted twice.
-- The row also keeps what `status` shows (Slurm state, node) and how often
-- Slurm requeued the job (preemption, time limit), which is not a failure.

CREATE TABLE slurm_jobs (
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    attempt INTEGER NOT NULL,
    -- sbatch --job-name: identifies sweep, trial and attempt.
    job_name TEXT NOT NULL,
    -- Null until sbatch --parsable answered.
    job_id TEXT,
    -- The last state squeue, sacct or scontrol reported.
    state TEXT,
    node TEXT,
    -- SLURM_RESTART_COUNT of the job's latest run.
    restarts INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL,
    ended_at REAL,
    PRIMARY KEY (trial_id, attempt)
);

CREATE INDEX slurm_jobs_by_name ON slurm_jobs (job_name);
