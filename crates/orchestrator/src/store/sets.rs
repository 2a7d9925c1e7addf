//! Results sets and the data behind each score, so evaluation may grow
//! after training (docs/architecture.md, "Reliability rules", frozen spec):
//!
//! - a results set names one set of scores: `default` is the sweep's own
//!   `[eval]`; `smolsweep eval-sweep --name NAME` adds others, each with
//!   the `[eval]` options it was evaluated with;
//! - `eval_tasks` keeps, per trial, set and task, the files results.json
//!   listed and a SHA-256 of their contents: a task's path may change when
//!   its data did not, and a task never scored may change at will;
//! - [`Store::check_eval_growth`] is that rule, run before `ensure_sweep`
//!   records a changed `[eval]`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use smolsweep_config::sweep::{check_frozen, eval_growth, GROWABLE_EVAL_KEYS};
use smolsweep_config::SweepSpec;

use super::results::{add_scores, Score};
use super::tx::WriteTx;
use super::{now, Store, StoreError, Trial};

/// The results set of the sweep's own `[eval]`.
pub const DEFAULT_SET: &str = "default";

/// Finds a task's files as the evaluator would: `(entry, data_dir)` ->
/// (data files, few-shot files), or why not. The evaluator lives in a
/// crate the orchestrator does not link (libtorch), so the binary passes
/// it in.
pub type TaskFiles =
    dyn Fn(&str, Option<&Path>) -> Result<(Vec<PathBuf>, Vec<PathBuf>), String> + Send + Sync;

/// Which data one task's scores came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    pub task: String,
    pub data_files: Vec<String>,
    pub fewshot_files: Vec<String>,
    /// Over the files' contents; None when none were listed or one could
    /// not be read.
    pub sha256: Option<String>,
    /// The results file, relative to the trial directory.
    pub results_file: String,
}

/// One row of `results_sets`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ResultsSet {
    pub name: String,
    /// The `[eval]` options (JSON); None for the default set.
    pub eval_json: Option<String>,
    pub created_at: f64,
}

/// SHA-256 over the contents of a task's data files, then its few-shot
/// files, in order: the same data under another path hashes the same.
pub fn data_hash<P: AsRef<Path>>(data: &[P], fewshot: &[P]) -> std::io::Result<String> {
    let mut all = Sha256::new();
    for (part, files) in [("data", data), ("fewshot", fewshot)] {
        all.update(part.as_bytes());
        for f in files {
            let mut file = std::fs::File::open(f.as_ref())?;
            let mut one = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                one.update(&buf[..n]);
            }
            all.update(one.finalize());
        }
    }
    Ok(format!("{:x}", all.finalize()))
}

/// The data of every task a results.json lists, hashed now (read the file
/// before a write transaction: hashing reads every data file).
pub fn task_data_of(doc: &Json, results_file: &str) -> Vec<TaskData> {
    let strings = |v: &Json| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let Some(tasks) = doc.get("tasks").and_then(Json::as_object) else {
        return Vec::new();
    };
    tasks
        .iter()
        .map(|(task, t)| {
            let data_files = strings(&t["data_files"]);
            let fewshot_files = strings(&t["fewshot_files"]);
            let sha256 = if data_files.is_empty() {
                None
            } else {
                data_hash(&data_files, &fewshot_files).ok()
            };
            TaskData {
                task: task.clone(),
                data_files,
                fewshot_files,
                sha256,
                results_file: results_file.to_string(),
            }
        })
        .collect()
}

/// Records which data a trial's scores in `set` came from.
pub(super) async fn insert_task_data(
    w: &mut WriteTx<'_>,
    trial_id: i64,
    set: &str,
    data: &[TaskData],
) -> Result<(), StoreError> {
    for d in data {
        w.execute(
            sqlx::query(
                "INSERT OR REPLACE INTO eval_tasks (trial_id, results_set, task, data_files, fewshot_files, \
                 data_sha256, results_file, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(trial_id)
            .bind(set)
            .bind(&d.task)
            .bind(Json::from(d.data_files.clone()).to_string())
            .bind(Json::from(d.fewshot_files.clone()).to_string())
            .bind(&d.sha256)
            .bind(&d.results_file)
            .bind(now()),
        )
        .await?;
    }
    Ok(())
}

/// A results set's name as a user may give it: a file-name-safe word, not
/// the default set's.
pub fn check_set_name(name: &str) -> Result<(), String> {
    if name == DEFAULT_SET {
        return Err(format!(
            "`{DEFAULT_SET}` is the sweep's own results set (its [eval]); pick another name"
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: a results set is named with letters, digits, '-', '_', '+' and '.' (at most 64)"
        ))
    }
}

impl Store {
    /// Whether the record has results sets (a record made before them,
    /// opened read-only, was never migrated).
    pub(super) async fn has_results_sets(&self) -> Result<bool, StoreError> {
        self.has_table("results_sets").await
    }

    /// Whether the record has this table: one made by an older version
    /// and opened read-only (`status`, `report`) was never migrated.
    pub(super) async fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Every results set, the default first.
    pub async fn results_sets(&self) -> Result<Vec<ResultsSet>, StoreError> {
        if !self.has_results_sets().await? {
            return Ok(vec![ResultsSet {
                name: DEFAULT_SET.into(),
                eval_json: None,
                created_at: 0.0,
            }]);
        }
        sqlx::query_as::<_, ResultsSet>(
            "SELECT name, eval_json, created_at FROM results_sets ORDER BY name != 'default', created_at, name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    /// Creates results set `name` evaluated with `eval_json`, or checks an
    /// existing one was evaluated with the same options (a second
    /// `eval-sweep --name NAME` resumes it).
    pub async fn ensure_results_set(&self, name: &str, eval_json: &Json) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let existing: Option<Option<String>> =
            sqlx::query_scalar("SELECT eval_json FROM results_sets WHERE name = ?")
                .bind(name)
                .fetch_optional(w.conn())
                .await
                .map_err(|e| w.err(e))?;
        match existing {
            Some(old) => {
                let old: Option<Json> = old.and_then(|t| serde_json::from_str(&t).ok());
                if old.as_ref() != Some(eval_json) {
                    return Err(StoreError::ResultsSet {
                        db: self.db.clone(),
                        name: name.to_string(),
                        msg: format!(
                            "was evaluated with other options ({}); pick another --name",
                            old.map(|o| o.to_string()).unwrap_or_default()
                        ),
                    });
                }
            }
            None => {
                w.execute(
                    sqlx::query(
                        "INSERT INTO results_sets (name, eval_json, created_at) VALUES (?, ?, ?)",
                    )
                    .bind(name)
                    .bind(eval_json.to_string())
                    .bind(now()),
                )
                .await?;
                w.log_event(
                    None,
                    "results_set.created",
                    &serde_json::json!({ "name": name, "eval": eval_json }),
                )
                .await?;
            }
        }
        w.commit().await
    }

    /// The tasks (names) each trial has scores for in `set`.
    pub async fn scored_tasks(&self, set: &str) -> Result<Vec<(i64, String)>, StoreError> {
        sqlx::query_as(
            "SELECT DISTINCT trial_id, task FROM eval_results WHERE results_set = ? ORDER BY 1, 2",
        )
        .bind(set)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    /// An extra evaluation of a completed trial finished: its scores join
    /// `set`, and the trial no longer has a process.
    pub async fn record_evaluation(
        &self,
        trial_id: i64,
        set: &str,
        scores: &[Score],
        data: &[TaskData],
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        add_scores(&mut w, trial_id, set, scores, data).await?;
        w.execute(sqlx::query("UPDATE trials SET pid = NULL WHERE id = ?").bind(trial_id))
            .await?;
        let tasks: Vec<&str> = data.iter().map(|d| d.task.as_str()).collect();
        w.log_event(
            Some(trial_id),
            "evaluated",
            &serde_json::json!({ "set": set, "tasks": tasks, "scores": scores.len() }),
        )
        .await?;
        w.commit().await
    }

    /// An extra evaluation of a completed trial failed or stopped; the
    /// trial stays completed, the reason goes to the event log.
    pub async fn evaluation_failed(
        &self,
        trial_id: i64,
        set: &str,
        tasks: &[String],
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.execute(sqlx::query("UPDATE trials SET pid = NULL WHERE id = ?").bind(trial_id))
            .await?;
        w.log_event(
            Some(trial_id),
            "evaluation_failed",
            &serde_json::json!({ "set": set, "tasks": tasks, "reason": reason }),
        )
        .await?;
        w.commit().await
    }

    /// Trials that failed in their eval stage get another attempt (their
    /// training is done, so only the evaluation runs again): called when
    /// `[eval] tasks` changed, e.g. a bad path was fixed.
    pub async fn reopen_failed_evals(&self) -> Result<u64, StoreError> {
        let mut w = self.write().await?;
        let n = w
            .execute(sqlx::query(
                "UPDATE trials SET state = 'pending', attempt = attempt + 1, pid = NULL, slot = NULL \
                 WHERE state = 'failed' AND stage = 'eval'",
            ))
            .await?;
        if n > 0 {
            w.log_event(
                None,
                "reopened_failed_evals",
                &serde_json::json!({ "trials": n }),
            )
            .await?;
        }
        w.commit().await?;
        Ok(n)
    }

    /// The content hash of the data each trial's default-set scores of
    /// `task` came from (None: unknown). Sweeps recorded before the hashes
    /// were kept fall back on the files their results.json lists.
    async fn recorded_hashes(&self, task: &str) -> Result<Vec<(i64, Option<String>)>, StoreError> {
        let rows: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT DISTINCT r.trial_id, k.data_sha256, t.results_json FROM eval_results r \
             JOIN trials t ON t.id = r.trial_id \
             LEFT JOIN eval_tasks k ON k.trial_id = r.trial_id AND k.results_set = r.results_set AND k.task = r.task \
             WHERE r.results_set = ? AND r.task = ? ORDER BY 1",
        )
        .bind(DEFAULT_SET)
        .bind(task)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(id, hash, results)| {
                let hash = hash.or_else(|| {
                    let doc: Json = serde_json::from_str(results.as_deref()?).ok()?;
                    task_data_of(&doc, "results.json")
                        .into_iter()
                        .find(|d| d.task == task)?
                        .sha256
                });
                (id, hash)
            })
            .collect())
    }

    /// May `spec`'s `[eval]` replace the recorded one? Every key but the
    /// tasks and `data_dir` must be unchanged (other options would change
    /// finished scores); a task may be added or removed, and may change
    /// its path (or `data_dir`) when it has no scores yet or its data's
    /// content is what its scores came from. Returns whether any task
    /// changed. The error says how to evaluate with the new options
    /// instead (`eval-sweep`, a new results set).
    pub async fn check_eval_growth(
        &self,
        spec: &SweepSpec,
        files: Option<&TaskFiles>,
    ) -> Result<bool, StoreError> {
        let old: Option<String> =
            sqlx::query_scalar("SELECT spec_json FROM sweeps ORDER BY id LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        let Some(old) = old else { return Ok(false) };
        let old: Json = serde_json::from_str(&old).map_err(|source| StoreError::RecordedSpec {
            db: self.db.clone(),
            source,
        })?;
        let new = spec.frozen();
        let refuse = |key: String| StoreError::EvalChanged {
            file: spec.file.clone(),
            db: self.db.clone(),
            hint: eval_sweep_hint(spec, &key),
            key,
        };
        // The other keys of `[eval]` alone (the rest of the spec is
        // `ensure_sweep`'s): they would change every finished score.
        let mut eval_only = old.clone();
        for section in ["name", "train", "grid"] {
            eval_only[section] = new[section].clone();
        }
        if let Err(key) = check_frozen(&eval_only, &new) {
            if key.starts_with("eval") || key.starts_with("[eval]") {
                return Err(refuse(key));
            }
        }
        let changes = eval_growth(&old, &new);
        let data_dir = spec.eval.as_ref().and_then(|e| e.data_dir.as_deref());
        for c in &changes {
            let Some(entry) = &c.new else { continue };
            let recorded = self.recorded_hashes(&c.name).await?;
            if recorded.is_empty() {
                continue; // never scored: nothing finished changes
            }
            let what = |why: String| {
                refuse(format!(
                    "eval.tasks ({}: {why}, and {} trials have scores from its recorded data)",
                    c.name,
                    recorded.len()
                ))
            };
            let Some(files) = files else {
                return Err(what("its data cannot be checked here".into()));
            };
            let (data, fewshot) = files(entry, data_dir).map_err(&what)?;
            let hash =
                data_hash(&data, &fewshot).map_err(|e| what(format!("reading its data: {e}")))?;
            if let Some((id, _)) = recorded.iter().find(|(_, h)| h.as_ref() != Some(&hash)) {
                return Err(what(format!(
                    "its data at {entry:?} differs in content from what trial {id} was scored on"
                )));
            }
        }
        Ok(!changes.is_empty())
    }

    /// `eval-sweep`'s check: the sweep recorded here is `spec`'s (same name,
    /// `[train]` and `[grid]`, up to added grid values); `[eval]` may differ.
    pub async fn check_same_trials(&self, spec: &SweepSpec) -> Result<(), StoreError> {
        let old = self.sweep().await?.spec_json;
        let old: Json = serde_json::from_str(&old).map_err(|source| StoreError::RecordedSpec {
            db: self.db.clone(),
            source,
        })?;
        let mut new = spec.frozen();
        new["eval"] = old["eval"].clone();
        check_frozen(&old, &new).map_err(|key| StoreError::SpecChanged {
            file: spec.file.clone(),
            db: self.db.clone(),
            key,
        })
    }

    /// Completed trials of the default set and the tasks of `tasks`
    /// (entries) each has no scores for.
    pub async fn unscored(
        &self,
        tasks: &[String],
    ) -> Result<Vec<(Trial, Vec<String>)>, StoreError> {
        self.unscored_in(DEFAULT_SET, tasks).await
    }

    /// Scored trials (completed, or stopped early at a checkpoint) and the
    /// entries of `tasks` each has no scores for in `set`.
    pub async fn unscored_in(
        &self,
        set: &str,
        tasks: &[String],
    ) -> Result<Vec<(Trial, Vec<String>)>, StoreError> {
        let scored = self.scored_tasks(set).await?;
        let mut out = Vec::new();
        for t in self.trials().await? {
            if !t.state.is_scored() {
                continue;
            }
            let missing: Vec<String> = tasks
                .iter()
                .filter(|e| {
                    let name = smolsweep_config::sweep::task_name(e);
                    !scored.iter().any(|(id, n)| *id == t.id && n == name)
                })
                .cloned()
                .collect();
            if !missing.is_empty() {
                out.push((t, missing));
            }
        }
        Ok(out)
    }
}

/// How to evaluate with a refused `[eval]` change instead: `eval-sweep`
/// into a new results set, with the changed option given by `--set`.
fn eval_sweep_hint(spec: &SweepSpec, key: &str) -> String {
    let tasks = spec
        .eval
        .as_ref()
        .map(|e| e.tasks.join(","))
        .unwrap_or_else(|| "TASK,...".into());
    let option = key
        .strip_prefix("eval.")
        .and_then(|k| k.split_whitespace().next())
        .filter(|k| !GROWABLE_EVAL_KEYS.contains(k))
        .and_then(|k| {
            let v = spec.eval_table.as_ref()?.get(k)?;
            Some(format!(" --set {k}={v}"))
        })
        .unwrap_or_default();
    format!(
        "smolsweep eval-sweep {} --tasks {tasks}{option} --name NAME",
        spec.file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::super::RecordedScore;
    use super::*;

    /// The same bytes under another name hash the same; other bytes, or a
    /// file moved between the data and the few-shot pool, do not.
    #[test]
    fn data_hash_is_of_contents_not_paths() {
        let d = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let a = write("a.jsonl", "{\"q\": 1}\n");
        let b = write("b.jsonl", "{\"q\": 1}\n");
        let c = write("c.jsonl", "{\"q\": 2}\n");
        let h = |data: &[&PathBuf], fewshot: &[&PathBuf]| data_hash(data, fewshot).expect("hash");
        assert_eq!(h(&[&a], &[]), h(&[&b], &[]));
        assert_ne!(h(&[&a], &[]), h(&[&c], &[]));
        assert_ne!(h(&[&a, &c], &[]), h(&[&a], &[&c]));
        assert!(data_hash(&[d.path().join("missing")], &[]).is_err());
    }

    /// A record made before results sets: read as it is (status opens it
    /// read-only, unmigrated), its scores are the default set's; migrated
    /// by the next `run`, they are still.
    #[test]
    fn scores_recorded_before_results_sets_are_the_default_set() {
        let d = tempfile::tempdir().expect("tempdir");
        let old = d.path().join("migrations");
        std::fs::create_dir_all(&old).expect("mkdir");
        let first = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/0001_sweep_record.sql"
        );
        std::fs::copy(first, old.join("0001_sweep_record.sql")).expect("copy 0001");
        let db = d.path().join("sweep.db");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let pool = sqlx::SqlitePool::connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&db)
                        .create_if_missing(true)
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
                )
                .await
                .expect("connect");
                sqlx::migrate::Migrator::new(old.as_path())
                    .await
                    .expect("0001 alone")
                    .run(&pool)
                    .await
                    .expect("apply 0001");
                sqlx::raw_sql(
                    "INSERT INTO sweeps (id, name, spec_json, spec_toml, created_at, updated_at) \
                     VALUES (1, 's', '{}', '', 0, 0); \
                     INSERT INTO trials (id, sweep_id, point_key, dir, state) VALUES (1, 1, '{}', 'd', 'completed'); \
                     INSERT INTO eval_results (trial_id, task, metric, value, stderr) VALUES (1, 'arc_easy', 'acc', 0.5, 0.1);",
                )
                .execute(&pool)
                .await
                .expect("rows of an old record");
                pool.close().await;
                let want = vec![RecordedScore {
                    trial_id: 1,
                    score: Score {
                        task: "arc_easy".into(),
                        metric: "acc".into(),
                        value: 0.5,
                        stderr: Some(0.1),
                    },
                }];

                let read = Store::open_read_only(&db).await.expect("read-only");
                assert_eq!(read.scores().await.expect("scores"), want);
                let sets = read.results_sets().await.expect("sets");
                assert_eq!(sets.len(), 1);
                assert_eq!(sets[0].name, DEFAULT_SET);
                read.close().await;

                let migrated = Store::open(&db).await.expect("migrate");
                assert_eq!(migrated.scores().await.expect("scores"), want);
                assert_eq!(migrated.set_scores("other").await.expect("scores"), vec![]);
                assert_eq!(migrated.results_sets().await.expect("sets").len(), 1);
                migrated.close().await;
            });
    }

    #[test]
    fn set_names_are_file_safe_and_not_the_default() {
        assert!(check_set_name("arc_easy+ifeval").is_ok());
        assert!(check_set_name("limit-50.v2").is_ok());
        assert!(check_set_name(DEFAULT_SET).is_err());
        assert!(check_set_name("../x").is_err());
        assert!(check_set_name("").is_err());
    }
}
