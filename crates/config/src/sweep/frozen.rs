//! The frozen part of a sweep spec, as recorded in its database, and the
//! comparison a later `run` makes against it: added grid values pass, and
//! so may changes of `[eval] tasks` (and `data_dir`, which locates tasks
//! given without a path); anything else is refused with the first changed
//! key.
//!
//! Whether a task change may pass depends on the scores already recorded
//! (a task whose data is unchanged in content, or one never scored, may
//! change its path), which only the record knows: [`check_frozen`] leaves
//! those two keys to [`eval_growth`], whose [`TaskChange`]s the store
//! checks against its scores.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::SweepSpec;
use crate::eval::EVAL_KEYS;
use crate::keys::find;
use crate::value::to_json;

impl SweepSpec {
    /// The part of the spec a later run must keep (resources excluded).
    pub fn frozen(&self) -> Json {
        let grid: serde_json::Map<String, Json> = self
            .grid
            .iter()
            .map(|a| {
                (
                    a.key.clone(),
                    Json::Array(a.values.iter().map(to_json).collect()),
                )
            })
            .collect();
        let mut frozen = serde_json::json!({
            "name": self.name,
            "train": to_json(&toml::Value::Table(self.train.clone())),
            "grid": grid,
            "eval": self.eval_table.as_ref().map(|t| to_json(&toml::Value::Table(t.clone()))),
        });
        // What models given as another sweep's trial resolved to: kept so
        // a later run starts from the same model, whatever that sweep did
        // since.
        if !self.resolved.is_empty() {
            frozen["resolved_models"] = self
                .resolved
                .iter()
                .map(|(k, p)| (k.clone(), Json::String(p.display().to_string())))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        frozen
    }
}

/// `[eval]` as the keys that differ from their defaults: a spec recorded
/// by an earlier version (every option written out, unset ones as null,
/// `batch_size` as text) compares equal to the same options written now.
fn canonical_eval(v: &Json) -> Json {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in o {
        let v = match (k.as_str(), v) {
            ("batch_size", Json::String(s)) => s
                .parse::<u64>()
                .map(Json::from)
                .unwrap_or_else(|_| v.clone()),
            _ => v.clone(),
        };
        let default = find(EVAL_KEYS, k)
            .and_then(|key| key.default_value())
            .map(|d| to_json(&d));
        if v.is_null() || Some(&v) == default.as_ref() {
            continue;
        }
        out.insert(k.clone(), v);
    }
    Json::Object(out)
}

/// `[eval]` keys that may change after trials were evaluated: the task
/// list and where pathless tasks are found (see [`eval_growth`]).
pub const GROWABLE_EVAL_KEYS: &[&str] = &["tasks", "data_dir"];

/// The resolutions a recorded frozen spec holds (see [`SweepSpec::frozen`]).
pub fn recorded_models(frozen: &Json) -> std::collections::BTreeMap<String, std::path::PathBuf> {
    frozen["resolved_models"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), std::path::PathBuf::from(v.as_str()?))))
                .collect()
        })
        .unwrap_or_default()
}

/// Compares a recorded frozen spec with a new one; the error is the first
/// changed key (`train.max_steps`, `grid.lr (value 1e-4 was removed)`).
/// `eval.tasks` and `eval.data_dir` are not compared here: see
/// [`eval_growth`].
pub fn check_frozen(old: &Json, new: &Json) -> Result<(), String> {
    if old.get("name") != new.get("name") {
        return Err("sweep.name".into());
    }
    for section in ["train", "eval"] {
        let (o, n) = if section == "eval" {
            let fixed = |v: &Json| {
                let mut c = canonical_eval(v);
                if let Some(m) = c.as_object_mut() {
                    m.retain(|k, _| !GROWABLE_EVAL_KEYS.contains(&k.as_str()));
                }
                c
            };
            match (old[section].is_null(), new[section].is_null()) {
                // A sweep without `[eval]` may get one: nothing was scored.
                (true, false) => continue,
                (false, true) => return Err("[eval] (removed)".into()),
                _ => (fixed(&old[section]), fixed(&new[section])),
            }
        } else {
            (old[section].clone(), new[section].clone())
        };
        let (o, n) = (&o, &n);
        if o == n {
            continue;
        }
        match (o.as_object(), n.as_object()) {
            (Some(o), Some(n)) => {
                let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
                for k in keys {
                    if o.get(k) != n.get(k) {
                        return Err(format!("{section}.{k}"));
                    }
                }
                return Err(section.into());
            }
            _ => return Err(format!("[{section}]")),
        }
    }
    let empty = serde_json::Map::new();
    let og = old["grid"].as_object().unwrap_or(&empty);
    let ng = new["grid"].as_object().unwrap_or(&empty);
    let axes: BTreeSet<&String> = og.keys().chain(ng.keys()).collect();
    for k in axes {
        let (Some(ov), Some(nv)) = (
            og.get(k).and_then(Json::as_array),
            ng.get(k).and_then(Json::as_array),
        ) else {
            return Err(format!("grid.{k} (an axis was added or removed)"));
        };
        if let Some(missing) = ov.iter().find(|v| !nv.contains(v)) {
            return Err(format!("grid.{k} (value {missing} was removed)"));
        }
    }
    Ok(())
}

/// How one task of `[eval] tasks` differs between a recorded spec and a
/// new one: added (`old` None), removed (`new` None), or given another
/// source (its `NAME=PATH`, or for a pathless task the `data_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChange {
    /// The task's name (`arc_easy`).
    pub name: String,
    /// The entry as recorded (`NAME` or `NAME=PATH`).
    pub old: Option<String>,
    /// The entry as given now.
    pub new: Option<String>,
}

/// A task entry's name: `arc_easy=/data/arc.jsonl` -> `arc_easy`.
pub fn task_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(n, _)| n).trim()
}

/// The task entries of a frozen `[eval]`, by name, and its `data_dir`.
fn tasks_of(eval: &Json) -> (Vec<(String, String)>, Option<&Json>) {
    let tasks = eval["tasks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(|t| (task_name(t).to_string(), t.to_string()))
                .collect()
        })
        .unwrap_or_default();
    (tasks, eval.get("data_dir").filter(|d| !d.is_null()))
}

/// The tasks whose entries differ between a recorded frozen spec and a new
/// one, in the new spec's order, then the removed ones. A pathless task
/// counts as changed when `data_dir` changed. (Whether a change may pass is
/// the store's call: it knows which tasks have scores.)
pub fn eval_growth(old: &Json, new: &Json) -> Vec<TaskChange> {
    let (old_tasks, old_dir) = tasks_of(&old["eval"]);
    let (new_tasks, new_dir) = tasks_of(&new["eval"]);
    let mut out = Vec::new();
    for (name, entry) in &new_tasks {
        let before = old_tasks.iter().find(|(n, _)| n == name).map(|(_, e)| e);
        let same =
            before.is_some_and(|b| b == entry && (entry.contains('=') || old_dir == new_dir));
        if !same {
            out.push(TaskChange {
                name: name.clone(),
                old: before.cloned(),
                new: Some(entry.clone()),
            });
        }
    }
    for (name, entry) in &old_tasks {
        if !new_tasks.iter().any(|(n, _)| n == name) {
            out.push(TaskChange {
                name: name.clone(),
                old: Some(entry.clone()),
                new: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(eval: Json) -> Json {
        serde_json::json!({"name": "s", "train": {}, "grid": {}, "eval": eval})
    }

    /// Tasks and data_dir are left to `eval_growth`; every other `[eval]`
    /// key still freezes.
    #[test]
    fn task_changes_are_growth_other_eval_keys_stay_frozen() {
        let old = spec(serde_json::json!({"tasks": ["arc_easy=/a.jsonl"], "limit": 10}));
        let grown = spec(serde_json::json!({"tasks": ["arc_easy=/b.jsonl", "ifeval"],
            "data_dir": "/d", "limit": 10}));
        assert_eq!(check_frozen(&old, &grown), Ok(()));
        assert_eq!(
            eval_growth(&old, &grown),
            vec![
                TaskChange {
                    name: "arc_easy".into(),
                    old: Some("arc_easy=/a.jsonl".into()),
                    new: Some("arc_easy=/b.jsonl".into())
                },
                TaskChange {
                    name: "ifeval".into(),
                    old: None,
                    new: Some("ifeval".into())
                },
            ]
        );
        let fewshot = spec(
            serde_json::json!({"tasks": ["arc_easy=/a.jsonl"], "limit": 10,
            "gsm8k_fewshot": 3}),
        );
        assert_eq!(
            check_frozen(&old, &fewshot),
            Err("eval.gsm8k_fewshot".into())
        );
        let removed = spec(serde_json::json!({"tasks": ["ifeval"], "limit": 10}));
        assert_eq!(
            eval_growth(&old, &removed),
            vec![
                TaskChange {
                    name: "ifeval".into(),
                    old: None,
                    new: Some("ifeval".into())
                },
                TaskChange {
                    name: "arc_easy".into(),
                    old: Some("arc_easy=/a.jsonl".into()),
                    new: None
                },
            ]
        );
        assert_eq!(
            check_frozen(&old, &spec(Json::Null)),
            Err("[eval] (removed)".into())
        );
        assert_eq!(check_frozen(&spec(Json::Null), &old), Ok(()));
    }

    /// A pathless task is found through data_dir: moving data_dir changes it.
    #[test]
    fn a_new_data_dir_changes_pathless_tasks_only() {
        let old =
            spec(serde_json::json!({"tasks": ["gsm8k", "arc_easy=/a.jsonl"], "data_dir": "/d"}));
        let new =
            spec(serde_json::json!({"tasks": ["gsm8k", "arc_easy=/a.jsonl"], "data_dir": "/e"}));
        let changes = eval_growth(&old, &new);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].name, "gsm8k");
        assert!(eval_growth(&old, &old).is_empty());
    }

    /// A sweep recorded before `[eval]` was frozen as given (every option
    /// written out) resumes with the same `[eval]`.
    #[test]
    fn an_eval_frozen_by_an_earlier_version_still_matches() {
        let old = serde_json::json!({"name": "s", "train": {}, "grid": {}, "eval": {
            "tasks": ["arc_easy"], "data_dir": null, "limit": 10, "chat_template": true,
            "batch_size": "8", "device": null, "samples": false}});
        let new = serde_json::json!({"name": "s", "train": {}, "grid": {}, "eval": {
            "tasks": ["arc_easy"], "limit": 10, "chat_template": true, "batch_size": 8}});
        assert_eq!(check_frozen(&old, &new), Ok(()));
        let changed = serde_json::json!({"name": "s", "train": {}, "grid": {}, "eval": {
            "tasks": ["arc_easy"], "limit": 20, "chat_template": true, "batch_size": 8}});
        assert_eq!(check_frozen(&old, &changed), Err("eval.limit".into()));
    }
}
