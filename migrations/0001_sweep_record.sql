-- Why: the first schema of the sweep record. One database holds one sweep
-- (its frozen spec), every trial of its grid with the state machine of
-- DESIGN.md section 8 (pending -> running -> completed | failed | diverged),
-- the history of each trial's attempts (so a retry says why), the trainer's
-- step series, the flattened eval scores, and an event log. The orchestrator
-- is the only writer (WAL, claims inside BEGIN IMMEDIATE); `status` and
-- `export` only read. Times are Unix seconds (REAL) so no date library is
-- needed on either side. Never edit this file once released: add a new
-- migration instead.

CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    -- The normalised spec as JSON (`[sweep] name`, `[train]`, `[grid]`,
    -- `[eval]`); a later run may only add grid values to it.
    spec_json TEXT NOT NULL,
    -- The TOML text the sweep was first started from, for the record.
    spec_toml TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    -- The orchestrator now (or last) driving the sweep, and when it was
    -- last seen alive; status uses these to tell "running" from "stale".
    orchestrator_pid INTEGER,
    orchestrator_heartbeat REAL
);

CREATE TABLE trials (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps (id),
    -- Canonical JSON of the grid point ({"axis": value, ...}, axes sorted):
    -- the identity of a trial across runs and spec extensions.
    point_key TEXT NOT NULL,
    -- Directory of the trial under the sweep's output_dir (relative).
    dir TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'completed', 'failed', 'diverged')),
    -- Which child process is (or was last) running: 'train' or 'eval'.
    stage TEXT CHECK (stage IN ('train', 'eval')),
    -- 1-based number of the attempt being (or last) run; bumped by a retry
    -- after a failure, never by resuming an interrupted attempt.
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
    -- Progress, from the trainer's event stream.
    step INTEGER,
    epoch REAL,
    last_loss REAL,
    tokens INTEGER,
    export_dir TEXT,
    diverged_step INTEGER,
    last_finite_loss REAL,
    -- Bytes of the trial's train.events.jsonl already recorded, so that
    -- re-reading the file after a crash records every event exactly once.
    events_offset INTEGER NOT NULL DEFAULT 0,
    -- The eval's results.json, stored whole.
    results_json TEXT,
    UNIQUE (sweep_id, point_key)
);

CREATE INDEX trials_by_state ON trials (sweep_id, state);

-- One row per finished attempt of a trial: why it ended.
CREATE TABLE attempts (
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    attempt INTEGER NOT NULL,
    stage TEXT,
    started_at REAL,
    ended_at REAL NOT NULL,
    exit_status INTEGER,
    outcome TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (trial_id, attempt)
);

-- The trainer's step events. A resumed trainer replays steps after its
-- checkpoint; the primary key makes the replay overwrite, not duplicate.
CREATE TABLE steps (
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    step INTEGER NOT NULL,
    epoch REAL,
    loss REAL,
    lr REAL,
    grad_norm REAL,
    tokens INTEGER,
    tokens_per_s REAL,
    elapsed_s REAL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (trial_id, step)
) WITHOUT ROWID;

-- Every numeric leaf of a trial's results.json, as (task, metric, value).
CREATE TABLE eval_results (
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    stderr REAL,
    PRIMARY KEY (trial_id, task, metric)
) WITHOUT ROWID;

-- What happened, in order: the trainer's non-step events (checkpoint,
-- done, diverged) and the orchestrator's own (claimed, spawned, exited,
-- retried, recovered, adopted, interrupted).
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    trial_id INTEGER REFERENCES trials (id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    data_json TEXT
);

CREATE INDEX events_by_trial ON events (trial_id, id);
