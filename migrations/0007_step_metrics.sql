-- Why: a DPO step logs its implicit rewards (`rewards/accuracy`,
-- `rewards/margin`, `rewards/chosen`, ..., `logps/*`) and a reward-model
-- step its `rm/*` metrics beside the loss, and a preference sweep is judged
-- by them as much as by its evals: the report draws the final reward
-- accuracy and margin as contours. `steps` has one column per SFT metric;
-- these are (trial, step, metric, value) rows instead, so a stage can log
-- other metrics without another migration. Keyed like `steps`: a resumed
-- trainer replays steps after its checkpoint and the replay overwrites.
-- A trial's final training metrics are the rows of its highest step (the
-- last step logged, each a mean over that step's pairs).

CREATE TABLE step_metrics (
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    step INTEGER NOT NULL,
    -- The name the step's event line gives it (`rewards/accuracy`).
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (trial_id, step, metric)
) WITHOUT ROWID;
