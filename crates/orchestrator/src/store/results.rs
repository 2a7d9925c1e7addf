//! Eval scores: flattened from a trial's `results.json` into one
//! [`Score`] per (task, metric), stored in `eval_results` under a results
//! set (`default`: the sweep's own `[eval]`; see `sets`), read back for
//! `status`, `export` and `report`.

use serde_json::Value as Json;

use super::sets::{insert_task_data, TaskData, DEFAULT_SET};
use super::tx::WriteTx;
use super::{Store, StoreError};

/// One metric of one task.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Score {
    pub task: String,
    pub metric: String,
    pub value: f64,
    pub stderr: Option<f64>,
}

/// One row of `eval_results`: a trial's score.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RecordedScore {
    pub trial_id: i64,
    #[sqlx(flatten)]
    pub score: Score,
}

impl Store {
    /// Every recorded score of the default set, by trial, task and metric.
    pub async fn scores(&self) -> Result<Vec<RecordedScore>, StoreError> {
        self.set_scores(DEFAULT_SET).await
    }

    /// Every recorded score of results set `set`, by trial, task and metric.
    pub async fn set_scores(&self, set: &str) -> Result<Vec<RecordedScore>, StoreError> {
        if !self.has_results_sets().await? {
            // A record no run of this version has migrated yet (status
            // opens it read-only): its scores are the default set.
            if set != DEFAULT_SET {
                return Ok(Vec::new());
            }
            return sqlx::query_as::<_, RecordedScore>(
                "SELECT trial_id, task, metric, value, stderr FROM eval_results ORDER BY trial_id, task, metric",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e));
        }
        sqlx::query_as::<_, RecordedScore>(
            "SELECT trial_id, task, metric, value, stderr FROM eval_results WHERE results_set = ? \
             ORDER BY trial_id, task, metric",
        )
        .bind(set)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }
}

/// Replaces a trial's default-set scores (inside the transaction that
/// completes it), with the data each task's scores came from.
pub(super) async fn insert_scores(
    w: &mut WriteTx<'_>,
    trial_id: i64,
    scores: &[Score],
    data: &[TaskData],
) -> Result<(), StoreError> {
    w.execute(
        sqlx::query("DELETE FROM eval_results WHERE trial_id = ? AND results_set = ?")
            .bind(trial_id)
            .bind(DEFAULT_SET),
    )
    .await?;
    w.execute(
        sqlx::query("DELETE FROM eval_tasks WHERE trial_id = ? AND results_set = ?")
            .bind(trial_id)
            .bind(DEFAULT_SET),
    )
    .await?;
    add_scores(w, trial_id, DEFAULT_SET, scores, data).await
}

/// Adds (or replaces, task by task) a trial's scores in `set`.
pub(super) async fn add_scores(
    w: &mut WriteTx<'_>,
    trial_id: i64,
    set: &str,
    scores: &[Score],
    data: &[TaskData],
) -> Result<(), StoreError> {
    let mut tasks: Vec<&str> = scores.iter().map(|s| s.task.as_str()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    for task in tasks {
        w.execute(
            sqlx::query(
                "DELETE FROM eval_results WHERE trial_id = ? AND results_set = ? AND task = ?",
            )
            .bind(trial_id)
            .bind(set)
            .bind(task),
        )
        .await?;
    }
    for s in scores {
        w.execute(
            sqlx::query(
                "INSERT OR REPLACE INTO eval_results (trial_id, results_set, task, metric, value, stderr) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(trial_id)
            .bind(set)
            .bind(&s.task)
            .bind(&s.metric)
            .bind(s.value)
            .bind(s.stderr),
        )
        .await?;
    }
    insert_task_data(w, trial_id, set, data).await
}

/// Flattens a results.json into scores.
///
/// `smolsweep eval` writes `{"tasks": {NAME: {"metrics": {METRIC: {"value",
/// "stderr"}}, ...}}, ...}`; that shape is read exactly. Anything else is
/// read generically: the task table is `results` when the document has one
/// (lm-eval's shape), else the document itself; under each task every
/// numeric leaf is a metric named by its path (`a/b`), a metric named
/// `X_stderr` (or `X_stderr,filter`) is attached to `X` as its standard
/// error, and lm-eval's `,none` filter suffix is dropped.
pub fn flatten_results(doc: &Json) -> Vec<Score> {
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
                    if let Some(value) = value {
                        out.push(Score {
                            task: task.clone(),
                            metric: metric.clone(),
                            value,
                            stderr,
                        });
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
        for (metric, value) in values {
            let stderr = errs.iter().find(|(b, _)| *b == metric).map(|(_, e)| *e);
            out.push(Score {
                task: task.clone(),
                metric,
                value,
                stderr,
            });
        }
    }
    out
}

/// Every numeric leaf under `v` as (path, value); a bare number is `value`.
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

    fn score(task: &str, metric: &str, value: f64, stderr: Option<f64>) -> Score {
        Score {
            task: task.into(),
            metric: metric.into(),
            value,
            stderr,
        }
    }

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
                score("arc_easy", "acc", 0.5, Some(0.1)),
                score("arc_easy", "acc_norm", 0.6, None),
                score("gsm8k", "exact_match_strict", 0.1, Some(0.05)),
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
        assert!(rows.contains(&score("arc_easy", "acc", 0.5, Some(0.01))));
        assert!(rows.contains(&score("arc_easy", "acc_norm", 0.6, None)));
        assert!(rows.contains(&score("gsm8k", "exact_match/strict", 0.1, None)));
        assert_eq!(rows.len(), 4);
    }
}
