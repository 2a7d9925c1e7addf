//! The frozen part of a sweep spec, as recorded in its database, and the
//! comparison a later `run` makes against it: only added grid values pass;
//! anything else is refused with the first changed key.

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
        serde_json::json!({
            "name": self.name,
            "train": to_json(&toml::Value::Table(self.train.clone())),
            "grid": grid,
            "eval": self.eval_table.as_ref().map(|t| to_json(&toml::Value::Table(t.clone()))),
        })
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

/// Compares a recorded frozen spec with a new one; the error is the first
/// changed key (`train.max_steps`, `grid.lr (value 1e-4 was removed)`).
pub fn check_frozen(old: &Json, new: &Json) -> Result<(), String> {
    if old.get("name") != new.get("name") {
        return Err("sweep.name".into());
    }
    for section in ["train", "eval"] {
        let (o, n) = if section == "eval" {
            (canonical_eval(&old[section]), canonical_eval(&new[section]))
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

#[cfg(test)]
mod tests {
    use super::*;

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
