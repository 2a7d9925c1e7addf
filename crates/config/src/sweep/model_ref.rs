//! A sweep's model taken from a trial of another sweep, so the paper's
//! SFT -> DPO -> RM chain is three TOML files:
//!
//! ```toml
//! [train]
//! model = { sweep = "fig1.toml", trial = "best:gsm8k/exact_match_strict" }
//! ```
//!
//! `trial` is `"best:TASK/METRIC"` (the scored trial with the highest
//! score, the lowest for a loss), a trial id, or a grid point
//! (`{ lr = 9e-5, batch_size = 8 }`). The sweep file is read and validated
//! here; which trial it names is only known from that sweep's record, so
//! the orchestrator resolves it at `run` time and the record freezes the
//! answer (a later "best" does not move a sweep already started).
//!
//! Until then the sweep is validated with the other sweep's own base
//! model standing in: the same architecture and tokenizer.

use std::path::{Path, PathBuf};

use toml::Value;

use super::SweepSpec;
use crate::keys::KeyError;
use crate::value::wrong_type;

/// Which trial of the other sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialSelector {
    /// The scored trial best on this `task/metric` (highest, or lowest for
    /// a loss or perplexity).
    Best { task: String, metric: String },
    /// A trial id, as `status` shows it.
    Id(i64),
    /// The trial at this grid point (every axis given).
    Point(toml::Table),
}

/// `model = { sweep = ..., trial = ... }`, validated.
#[derive(Debug, Clone)]
pub struct ModelRef {
    /// The trial key it stands for (`model`, `reference_model`).
    pub key: String,
    /// The other sweep's file (absolute).
    pub sweep_file: PathBuf,
    /// The other sweep, validated.
    pub sweep: Box<SweepSpec>,
    pub trial: TrialSelector,
    /// The table as written, normalised (`sweep` absolute): what the
    /// record freezes.
    pub table: toml::Table,
}

impl TrialSelector {
    /// Whether lower scores are better for this selector's metric.
    pub fn lower_is_better(&self) -> bool {
        match self {
            TrialSelector::Best { metric, .. } => {
                let m = metric.to_ascii_lowercase();
                m.contains("loss") || m.contains("perplexity") || m.contains("ppl")
            }
            _ => false,
        }
    }

    /// As the user wrote it, for messages.
    pub fn describe(&self) -> String {
        match self {
            TrialSelector::Best { task, metric } => format!("best:{task}/{metric}"),
            TrialSelector::Id(id) => format!("trial {id}"),
            TrialSelector::Point(t) => format!("grid point {}", Value::Table(t.clone())),
        }
    }
}

/// Whether a `[train]` value is a reference to another sweep's trial.
pub fn is_model_ref(v: &Value) -> bool {
    matches!(v, Value::Table(_))
}

impl ModelRef {
    /// Parses `train.KEY = { sweep, trial }`; errors name `train.KEY.FIELD`.
    /// `depth` guards against sweeps referring to each other in a ring.
    pub fn parse(key: &str, v: &Value, base: &Path, depth: usize) -> Result<Self, KeyError> {
        let label = format!("train.{key}");
        let Value::Table(t) = v else {
            return Err(KeyError::new(label, wrong_type("a table", v)));
        };
        for k in t.keys() {
            if k != "sweep" && k != "trial" {
                return Err(KeyError::new(
                    format!("{label}.{k}"),
                    "unknown key (a model from another sweep is { sweep = \"FILE.toml\", trial = \"best:TASK/METRIC\" | ID | { AXIS = VALUE, ... } })",
                ));
            }
        }
        let file = match t.get("sweep") {
            Some(Value::String(s)) => {
                let p = base.join(s);
                if !p.is_file() {
                    return Err(KeyError::new(
                        format!("{label}.sweep"),
                        format!("{}: no such sweep file", p.display()),
                    ));
                }
                p.canonicalize().unwrap_or(p)
            }
            Some(v) => {
                return Err(KeyError::new(
                    format!("{label}.sweep"),
                    wrong_type("a path to a sweep TOML", v),
                ))
            }
            None => {
                return Err(KeyError::new(
                    format!("{label}.sweep"),
                    "missing (the sweep file whose trial to start from)",
                ))
            }
        };
        if depth > 8 {
            return Err(KeyError::new(
                format!("{label}.sweep"),
                "sweeps refer to each other in a ring (more than 8 deep)",
            ));
        }
        let sweep = SweepSpec::parse_nested(&file, depth + 1).map_err(|e| {
            KeyError::new(format!("{label}.sweep"), format!("{}: {e}", file.display()))
        })?;
        let trial = selector(&label, t.get("trial"), &sweep)?;
        let mut table = t.clone();
        table.insert("sweep".into(), Value::String(file.display().to_string()));
        Ok(ModelRef {
            key: key.to_string(),
            sweep_file: file,
            sweep: Box::new(sweep),
            trial,
            table,
        })
    }

    /// The model that stands in until the reference is resolved: the other
    /// sweep's own base model (resolved in turn if it is a reference).
    pub fn stand_in(&self) -> Option<&Value> {
        self.sweep.train.get("model")
    }
}

fn selector(label: &str, v: Option<&Value>, sweep: &SweepSpec) -> Result<TrialSelector, KeyError> {
    let key = format!("{label}.trial");
    match v {
        None => Err(KeyError::new(
            key,
            "missing (\"best:TASK/METRIC\", a trial id, or a grid point table)",
        )),
        Some(Value::String(s)) => {
            let Some(rest) = s.strip_prefix("best:") else {
                return Err(KeyError::new(
                    key,
                    format!("{s:?}: expected \"best:TASK/METRIC\" (e.g. \"best:gsm8k/exact_match_strict\"), a trial id, or a grid point table"),
                ));
            };
            let Some((task, metric)) = rest
                .split_once('/')
                .filter(|(t, m)| !t.is_empty() && !m.is_empty())
            else {
                return Err(KeyError::new(
                    key,
                    format!("{s:?}: expected \"best:TASK/METRIC\", e.g. \"best:gsm8k/exact_match_strict\""),
                ));
            };
            if let Some(eval) = &sweep.eval {
                let tasks: Vec<&str> = eval.tasks.iter().map(|t| super::task_name(t)).collect();
                if !tasks.contains(&task) {
                    return Err(KeyError::new(
                        key,
                        format!(
                            "{s:?}: the other sweep does not evaluate {task} (its [eval] tasks: {})",
                            tasks.join(", ")
                        ),
                    ));
                }
            }
            if let Ok(t) = task.parse::<crate::Task>() {
                if !t.metrics().contains(&metric) {
                    return Err(KeyError::new(
                        key,
                        format!(
                            "{s:?}: {task} has no metric {metric} (it has {})",
                            t.metrics().join(", ")
                        ),
                    ));
                }
            }
            Ok(TrialSelector::Best {
                task: task.to_string(),
                metric: metric.to_string(),
            })
        }
        Some(Value::Integer(i)) if *i >= 1 => Ok(TrialSelector::Id(*i)),
        Some(Value::Table(t)) => {
            let axes: Vec<&str> = sweep.grid.iter().map(|a| a.key.as_str()).collect();
            for k in t.keys() {
                if !axes.contains(&k.as_str()) {
                    return Err(KeyError::new(
                        format!("{key}.{k}"),
                        format!(
                            "is not an axis of the other sweep (its axes: {})",
                            axes.join(", ")
                        ),
                    ));
                }
            }
            for a in &axes {
                if !t.contains_key(*a) {
                    return Err(KeyError::new(
                        key,
                        format!(
                            "the grid point lacks axis {a} (give every axis: {})",
                            axes.join(", ")
                        ),
                    ));
                }
            }
            Ok(TrialSelector::Point(t.clone()))
        }
        Some(v) => Err(KeyError::new(
            key,
            wrong_type(
                "\"best:TASK/METRIC\", a trial id (>= 1) or a grid point table",
                v,
            ),
        )),
    }
}
