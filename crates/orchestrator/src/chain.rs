//! Models taken from another sweep's trial (`model = { sweep, trial }`,
//! see `smolsweep_config::sweep::ModelRef`): resolved to that trial's
//! exported model directory from the other sweep's record, read-only,
//! before anything of this sweep runs. Once this sweep's record holds a
//! resolution it is used as recorded, so a later "best" in the other sweep
//! never changes the model of trials already started.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use smolsweep_config::sweep::{recorded_models, ModelRef, TrialSelector};
use smolsweep_config::SweepSpec;

use crate::store::{Store, StoreError, Trial, DEFAULT_SET};

/// Why a model reference cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{file}: train.{key}: {message}")]
    Unresolved {
        file: PathBuf,
        key: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a reference resolved to, for the log.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub key: String,
    pub model: PathBuf,
    /// `"trial 3 (batch_size=8, lr=9e-5) of sweep fig1"`, or "as recorded".
    pub how: String,
}

/// Fills `spec.resolved` for every model reference: from this sweep's
/// record when it has one, else from the other sweep's record.
pub async fn resolve_models(spec: &mut SweepSpec) -> Result<Vec<Resolution>, ChainError> {
    if spec.model_refs.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    if spec.db.exists() {
        let store = Store::open_read_only(&spec.db).await?;
        let recorded = store.sweep().await.ok();
        store.close().await;
        if let Some(row) = recorded {
            let frozen: Json = serde_json::from_str(&row.spec_json).unwrap_or_default();
            for (key, model) in recorded_models(&frozen) {
                if spec.model_refs.iter().any(|r| r.key == key) {
                    out.push(Resolution {
                        key: key.clone(),
                        model: model.clone(),
                        how: format!("as recorded in {}", spec.db.display()),
                    });
                    spec.resolved.insert(key, model);
                }
            }
        }
    }
    let refs: Vec<ModelRef> = spec.unresolved().into_iter().cloned().collect();
    for r in refs {
        let (model, how) = resolve(&spec.file, &r).await?;
        out.push(Resolution {
            key: r.key.clone(),
            model: model.clone(),
            how,
        });
        spec.resolved.insert(r.key.clone(), model);
    }
    Ok(out)
}

async fn resolve(file: &Path, r: &ModelRef) -> Result<(PathBuf, String), ChainError> {
    let fail = |message: String| ChainError::Unresolved {
        file: file.to_path_buf(),
        key: r.key.clone(),
        message,
    };
    let other = &r.sweep;
    if !other.db.exists() {
        return Err(fail(format!(
            "sweep {} has no record yet ({} does not exist): run it first (smolsweep run {})",
            r.sweep_file.display(),
            other.db.display(),
            r.sweep_file.display()
        )));
    }
    let store = Store::open_read_only(&other.db).await?;
    let trials = store.trials().await?;
    let scores = store.set_scores(DEFAULT_SET).await?;
    store.close().await;
    let scored = |t: &Trial| t.state.is_scored();
    let chosen: &Trial = match &r.trial {
        TrialSelector::Id(id) => trials.iter().find(|t| t.id == *id).ok_or_else(|| {
            fail(format!(
                "sweep {} has no trial {id} (it has {})",
                r.sweep_file.display(),
                trials.len()
            ))
        })?,
        TrialSelector::Point(p) => {
            let found: Vec<&Trial> = trials
                .iter()
                .filter(|t| point_matches(&t.point_key, p))
                .collect();
            match found.as_slice() {
                [t] => t,
                [] => {
                    return Err(fail(format!(
                        "sweep {} has no trial at {}",
                        r.sweep_file.display(),
                        r.trial.describe()
                    )))
                }
                many => {
                    return Err(fail(format!(
                        "{} matches {} trials of sweep {} (seeds?): name one by id",
                        r.trial.describe(),
                        many.len(),
                        r.sweep_file.display()
                    )))
                }
            }
        }
        TrialSelector::Best { task, metric } => {
            let lower = r.trial.lower_is_better();
            let mut best: Option<(&Trial, f64)> = None;
            for t in trials.iter().filter(|t| scored(t)) {
                let Some(v) = scores
                    .iter()
                    .find(|s| {
                        s.trial_id == t.id && &s.score.task == task && &s.score.metric == metric
                    })
                    .map(|s| s.score.value)
                    .filter(|v| v.is_finite())
                else {
                    continue;
                };
                let better = match best {
                    None => true,
                    Some((_, b)) if lower => v < b,
                    Some((_, b)) => v > b,
                };
                if better {
                    best = Some((t, v));
                }
            }
            let Some((t, _)) = best else {
                return Err(fail(format!(
                    "no completed trial of sweep {} has a {task}/{metric} score yet",
                    r.sweep_file.display()
                )));
            };
            t
        }
    };
    if !scored(chosen) {
        return Err(fail(format!(
            "trial {} of sweep {} is {}, not completed: no model to start from",
            chosen.id,
            r.sweep_file.display(),
            chosen.state
        )));
    }
    let Some(export) = chosen.export_dir.as_deref() else {
        return Err(fail(format!(
            "trial {} of sweep {} recorded no exported model",
            chosen.id,
            r.sweep_file.display()
        )));
    };
    let export = Path::new(export);
    let model = if export.is_absolute() {
        export.to_path_buf()
    } else {
        other.output_dir.join(&chosen.dir).join("out").join(export)
    };
    if !model.join("config.json").is_file() {
        return Err(fail(format!(
            "trial {} of sweep {}: its exported model {} has no config.json (moved or deleted?)",
            chosen.id,
            r.sweep_file.display(),
            model.display()
        )));
    }
    let score = match &r.trial {
        TrialSelector::Best { task, metric } => scores
            .iter()
            .find(|s| s.trial_id == chosen.id && &s.score.task == task && &s.score.metric == metric)
            .map(|s| format!(", {task}/{metric} = {:.4}", s.score.value))
            .unwrap_or_default(),
        _ => String::new(),
    };
    Ok((
        model,
        format!(
            "trial {} {} of sweep {}{score}",
            chosen.id, chosen.point_key, other.name
        ),
    ))
}

/// Whether a recorded point (its canonical JSON key) is the point the
/// user wrote: every axis equal, numbers compared as numbers (the record
/// rounds floats to their shortest form).
fn point_matches(point_key: &str, want: &toml::Table) -> bool {
    let Ok(Json::Object(have)) = serde_json::from_str::<Json>(point_key) else {
        return false;
    };
    want.iter().all(|(k, v)| {
        let Some(h) = have.get(k) else {
            return false;
        };
        let w = smolsweep_config::value::to_json(v);
        match (h.as_f64(), w.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            _ => *h == w,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_match_by_value() {
        let t: toml::Table = "lr = 9e-5\nbatch_size = 8".parse().expect("toml");
        assert!(point_matches(r#"{"batch_size":8,"lr":9e-5}"#, &t));
        assert!(point_matches(r#"{"batch_size":8,"lr":0.00009}"#, &t));
        assert!(!point_matches(r#"{"batch_size":16,"lr":9e-5}"#, &t));
        assert!(!point_matches(r#"{"lr":9e-5}"#, &t));
        let s: toml::Table = "chat_template = \"tulu\"".parse().expect("toml");
        assert!(point_matches(r#"{"chat_template":"tulu"}"#, &s));
        assert!(!point_matches(r#"{"chat_template":"chatml"}"#, &s));
    }
}
