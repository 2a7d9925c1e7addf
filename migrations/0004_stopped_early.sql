-- Why: a sweep may stop its hopeless trials early (`[resources] stop_rule
-- = "median"`, the median stopping rule of Google Vizier). Such a trial is
-- neither completed (it did not train to the end) nor diverged (its last
-- checkpoint is evaluated and scored), so it gets its own final state,
-- `stopped_early`, with the step it stopped at and what the rule saw.
--
-- SQLite cannot change a CHECK constraint in place, so `trials` is rebuilt
-- the way SQLite's documentation prescribes (create, copy, drop, rename,
-- in one transaction, with foreign keys off: the store runs migrations so,
-- then checks every foreign key). Every row and column is copied as it was.

CREATE TABLE trials_rebuilt (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps (id),
    point_key TEXT NOT NULL,
    dir TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'completed', 'failed', 'diverged', 'stopped_early')),
    stage TEXT CHECK (stage IN ('train', 'eval')),
    attempt INTEGER NOT NULL DEFAULT 1,
    slot INTEGER,
    cuda_visible_devices TEXT,
    pid INTEGER,
    heartbeat_at REAL,
    claimed_at REAL,
    started_at REAL,
    ended_at REAL,
    exit_status INTEGER,
    error TEXT,
    step INTEGER,
    epoch REAL,
    last_loss REAL,
    tokens INTEGER,
    export_dir TEXT,
    diverged_step INTEGER,
    last_finite_loss REAL,
    events_offset INTEGER NOT NULL DEFAULT 0,
    results_json TEXT,
    diverged_rule TEXT,
    diverged_message TEXT,
    -- A trial stopped by the sweep's stop rule: the step its trainer
    -- stopped at (and exported), and why.
    stopped_step INTEGER,
    stopped_message TEXT,
    UNIQUE (sweep_id, point_key)
);

INSERT INTO trials_rebuilt (
    id, sweep_id, point_key, dir, state, stage, attempt, slot, cuda_visible_devices, pid,
    heartbeat_at, claimed_at, started_at, ended_at, exit_status, error, step, epoch, last_loss,
    tokens, export_dir, diverged_step, last_finite_loss, events_offset, results_json,
    diverged_rule, diverged_message
)
SELECT
    id, sweep_id, point_key, dir, state, stage, attempt, slot, cuda_visible_devices, pid,
    heartbeat_at, claimed_at, started_at, ended_at, exit_status, error, step, epoch, last_loss,
    tokens, export_dir, diverged_step, last_finite_loss, events_offset, results_json,
    diverged_rule, diverged_message
FROM trials;

DROP TABLE trials;

ALTER TABLE trials_rebuilt RENAME TO trials;

CREATE INDEX trials_by_state ON trials (sweep_id, state);
