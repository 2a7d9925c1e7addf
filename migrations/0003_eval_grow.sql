-- Why: evaluation may grow after training. A finished sweep can be given
-- another benchmark (or a fixed path for one whose evaluation failed) and
-- `run` evaluates the trials' exports without training them again; and
-- `smolsweep eval-sweep` evaluates every completed trial into a new, named
-- results set, beside the scores the sweep's own `[eval]` gave. So:
--
-- - `results_sets` names each set of scores. `default` is the sweep's own
--   `[eval]` (its options are in sweeps.spec_json, so eval_json is null);
--   every other set keeps the `[eval]` options it was evaluated with.
-- - `eval_results` gains the set in its key; the rows recorded before this
--   migration are the default set's.
-- - `eval_tasks` says, per trial, set and task, which data the scores came
--   from: the files results.json listed and a SHA-256 of their contents,
--   so that a task's path may change when its data did not.

CREATE TABLE results_sets (
    name TEXT PRIMARY KEY,
    -- The `[eval]` options of the set as JSON (null: the sweep's own).
    eval_json TEXT,
    created_at REAL NOT NULL
);

INSERT INTO results_sets (name, eval_json, created_at) VALUES ('default', NULL, 0);

CREATE TABLE eval_results_by_set (
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    results_set TEXT NOT NULL DEFAULT 'default' REFERENCES results_sets (name),
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    stderr REAL,
    PRIMARY KEY (trial_id, results_set, task, metric)
) WITHOUT ROWID;

INSERT INTO eval_results_by_set (trial_id, results_set, task, metric, value, stderr)
    SELECT trial_id, 'default', task, metric, value, stderr FROM eval_results;

DROP TABLE eval_results;

ALTER TABLE eval_results_by_set RENAME TO eval_results;

CREATE TABLE eval_tasks (
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    results_set TEXT NOT NULL REFERENCES results_sets (name),
    task TEXT NOT NULL,
    -- The data files and few-shot files results.json listed (JSON arrays).
    data_files TEXT NOT NULL,
    fewshot_files TEXT NOT NULL,
    -- SHA-256 over the contents of those files, in order (null when
    -- results.json listed none, or one could not be read).
    data_sha256 TEXT,
    -- The results file the scores were read from, relative to the trial.
    results_file TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (trial_id, results_set, task)
) WITHOUT ROWID;
