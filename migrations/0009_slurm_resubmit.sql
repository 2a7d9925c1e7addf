-- Why: Ctrl-C under `run --cancel` (or answering "cancel" at the Ctrl-C
-- prompt) scancels the sweep's jobs. A cancellation the sweep asked for is
-- not a failure: the trial goes back to pending with the same attempt
-- number, and the next `run` submits that attempt again. One attempt may
-- then have several jobs, so the key grows a submission number (1 for
-- every job before this migration), and a row records when the sweep
-- decided to cancel its job, before `scancel` runs: a crash in between is
-- repaired by cancelling it again before the attempt is resubmitted, so
-- two jobs of one attempt never run at once.
--
-- SQLite cannot change a primary key in place, so `slurm_jobs` is rebuilt
-- the way SQLite's documentation prescribes (create, copy, drop, rename,
-- in one transaction, with foreign keys off: the store runs migrations so,
-- then checks every foreign key). Every row and column is copied as it was.

CREATE TABLE slurm_jobs_rebuilt (
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    attempt INTEGER NOT NULL,
    -- 1, then one more each time the attempt is submitted again after the
    -- sweep cancelled its job.
    submission INTEGER NOT NULL DEFAULT 1,
    -- sbatch --job-name: identifies sweep, trial, attempt (and submission
    -- after the first).
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
    -- When the sweep decided to scancel the job (Ctrl-C with --cancel).
    cancelled_at REAL,
    PRIMARY KEY (trial_id, attempt, submission)
);

INSERT INTO slurm_jobs_rebuilt
    (trial_id, attempt, submission, job_name, job_id, state, node, restarts, submitted_at, ended_at, cancelled_at)
SELECT trial_id, attempt, 1, job_name, job_id, state, node, restarts, submitted_at, ended_at, NULL
FROM slurm_jobs;

DROP TABLE slurm_jobs;
ALTER TABLE slurm_jobs_rebuilt RENAME TO slurm_jobs;
CREATE INDEX slurm_jobs_by_name ON slurm_jobs (job_name);
