//! The sweep TOML: `[sweep]` (name, where it lives), `[train]` (trial keys
//! every point shares), `[grid]` (axes over any trial key), `[eval]` and
//! `[resources]`. Everything a sweep could get wrong is checked here,
//! before the first trial starts: a typo found after six hours of training
//! is six hours lost. Trial keys are judged by the trial schema itself:
//! each `[train]` value and axis value by its key's rule, then every grid
//! point deserialised into a [`TrialConfig`] by the same code that reads a
//! trial file, so a sweep accepts exactly the trials `smolsweep train` does.

mod frozen;
mod grid;
mod model_ref;
mod resources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Value;

pub use frozen::{
    check_frozen, eval_growth, recorded_models, task_name, TaskChange, GROWABLE_EVAL_KEYS,
};
pub use grid::{point_key, point_label, points, Axis, Point};
pub use model_ref::{is_model_ref, ModelRef, TrialSelector};
pub use resources::{
    Backend, Gpus, Resources, Slots, SlurmConfig, StopRule, AUTO_SLOTS_MAX, DEFAULT_STOP_AT,
    RESOURCES_KEYS, SLURM_KEYS,
};

use crate::error::ConfigError;
use crate::eval::EvalConfig;
use crate::keys::{check, find, KeyError, Kind};
use crate::trial::{TrialConfig, TRIAL_KEYS};
use crate::value::wrong_type;

/// A validated sweep.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub file: PathBuf,
    pub name: String,
    pub output_dir: PathBuf,
    pub db: PathBuf,
    /// Base trial keys (normalised: paths absolute), without `output_dir`.
    pub train: toml::Table,
    /// Axes sorted by key.
    pub grid: Vec<Axis>,
    pub eval: Option<EvalConfig>,
    /// `[eval]` as given (normalised), the form the record freezes.
    pub eval_table: Option<toml::Table>,
    pub resources: Resources,
    /// The file's text, kept in the record.
    pub source: String,
    /// Trial keys given as a trial of another sweep (`model = { sweep,
    /// trial }`); `train` keeps them as written.
    pub model_refs: Vec<ModelRef>,
    /// What each of them resolved to (key -> model directory): set by the
    /// orchestrator from the other sweep's record, or from this sweep's
    /// own record once frozen there.
    pub resolved: BTreeMap<String, PathBuf>,
}

const SECTIONS: &[&str] = &["sweep", "train", "grid", "eval", "resources"];
const SWEEP_KEYS: &[&str] = &["name", "output_dir", "db"];

impl SweepSpec {
    /// Reads and validates a sweep file.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(file, &source)
    }

    /// Validates `source` as if read from `file` (relative paths resolve
    /// against the file's directory).
    pub fn parse(file: &Path, source: &str) -> Result<Self, ConfigError> {
        Self::parse_at(file, source, 0)
    }

    /// Reads and validates a sweep that another sweep's model refers to.
    fn parse_nested(file: &Path, depth: usize) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse_at(file, &source, depth)
    }

    fn parse_at(file: &Path, source: &str, depth: usize) -> Result<Self, ConfigError> {
        let base = file
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
            .canonicalize()
            .unwrap_or_else(|_| PathBuf::from("."));
        let root: toml::Table = source
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Toml {
                file: file.to_path_buf(),
                message: e.to_string().trim_end().to_string(),
            })?;
        parse_root(file, &base, &root, source, depth).map_err(|e| ConfigError::Key {
            file: file.to_path_buf(),
            key: e.key,
            message: e.message,
        })
    }

    /// Every grid point (see [`points`]).
    pub fn points(&self) -> Vec<Point> {
        points(&self.grid)
    }

    /// How many grid points the spec has.
    pub fn trial_count(&self) -> usize {
        self.grid.iter().map(|a| a.values.len()).product()
    }

    /// A trial key's value at a grid point (the axis value, else `[train]`).
    pub fn value<'a>(&'a self, point: &'a Point, key: &str) -> Option<&'a Value> {
        point.get(key).or_else(|| self.train.get(key))
    }

    /// The trial table of one grid point: `[train]`, the point's values,
    /// and the trial's own output directory.
    pub fn trial_config(&self, point: &Point, trial_output_dir: &Path) -> toml::Table {
        let mut t = self.train.clone();
        for (k, v) in point {
            t.insert(k.clone(), v.clone());
        }
        for r in &self.model_refs {
            if let Some(v) = self.model_value(r) {
                t.insert(r.key.clone(), v);
            }
        }
        t.insert(
            "output_dir".into(),
            Value::String(trial_output_dir.display().to_string()),
        );
        t
    }

    /// The model directory a reference stands for: what it resolved to,
    /// else (validation before resolving) the other sweep's base model.
    fn model_value(&self, r: &ModelRef) -> Option<Value> {
        if let Some(p) = self.resolved.get(&r.key) {
            return Some(Value::String(p.display().to_string()));
        }
        match r.sweep.model_refs.iter().find(|x| x.key == "model") {
            Some(inner) => r.sweep.model_value(inner),
            None => r.stand_in().cloned(),
        }
    }

    /// Whether every model reference is resolved (trials may start).
    pub fn unresolved(&self) -> Vec<&ModelRef> {
        self.model_refs
            .iter()
            .filter(|r| !self.resolved.contains_key(&r.key))
            .collect()
    }

    /// The trial of one grid point, through the trial schema.
    pub fn trial(&self, point: &Point, trial_output_dir: &Path) -> Result<TrialConfig, KeyError> {
        TrialConfig::from_table(&self.trial_config(point, trial_output_dir), Path::new("/"))
    }
}

fn section(root: &toml::Table, name: &str) -> Result<toml::Table, KeyError> {
    match root.get(name) {
        None => Ok(toml::Table::new()),
        Some(Value::Table(t)) => Ok(t.clone()),
        Some(v) => Err(KeyError::new(name, wrong_type("a table", v))),
    }
}

fn parse_root(
    file: &Path,
    base: &Path,
    root: &toml::Table,
    source: &str,
    depth: usize,
) -> Result<SweepSpec, KeyError> {
    for k in root.keys() {
        if !SECTIONS.contains(&k.as_str()) {
            return Err(KeyError::new(
                k.as_str(),
                "unknown section (expected [sweep], [train], [grid], [eval], [resources])",
            ));
        }
    }
    let sweep = section(root, "sweep")?;
    let train_raw = section(root, "train")?;
    let grid_raw = section(root, "grid")?;
    let resources_raw = section(root, "resources")?;

    // [sweep]
    for k in sweep.keys() {
        if !SWEEP_KEYS.contains(&k.as_str()) {
            return Err(KeyError::new(
                format!("sweep.{k}"),
                format!("unknown key (expected {})", SWEEP_KEYS.join(", ")),
            ));
        }
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    let name = match sweep.get("name") {
        None => stem.clone(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(KeyError::new("sweep.name", "must not be empty")),
        Some(v) => return Err(KeyError::new("sweep.name", wrong_type("a string", v))),
    };
    let path_key = |k: &str| -> Result<Option<PathBuf>, KeyError> {
        match sweep.get(k) {
            None => Ok(None),
            Some(v) => match check(Kind::NewPath, v, base) {
                Ok(Value::String(s)) => Ok(Some(PathBuf::from(s))),
                Ok(_) => Ok(None),
                Err(b) => Err(KeyError::new(format!("sweep.{k}"), b.message)),
            },
        }
    };
    let output_dir = path_key("output_dir")?.unwrap_or_else(|| base.join(&stem));
    let db = path_key("db")?.unwrap_or_else(|| output_dir.join("sweep.db"));

    // [train]: each value by its key's rule.
    let mut train = toml::Table::new();
    let mut model_refs = Vec::new();
    for (k, v) in &train_raw {
        let label = format!("train.{k}");
        let key = find(TRIAL_KEYS, k).ok_or_else(|| {
            KeyError::new(
                &label,
                "unknown trial key (`smolsweep schema trial` lists them)",
            )
        })?;
        if key.kind == Kind::OutputDir {
            return Err(KeyError::new(
                label,
                "is set by the orchestrator for each trial (under [sweep] output_dir)",
            ));
        }
        if key.kind == Kind::ModelDir && is_model_ref(v) {
            let r = ModelRef::parse(k, v, base, depth)?;
            train.insert(k.clone(), Value::Table(r.table.clone()));
            model_refs.push(r);
            continue;
        }
        let v = check(key.kind, v, base)
            .map_err(|b| KeyError::new(format!("{label}{}", b.suffix), b.message))?;
        one_gpu_per_trial(&label, key.kind, &v)?;
        train.insert(k.clone(), v);
    }
    train
        .entry("cache_dir".to_string())
        .or_insert_with(|| Value::String(output_dir.join("cache").display().to_string()));

    // [grid]: each value by its key's rule.
    let mut grid = Vec::new();
    for (k, v) in &grid_raw {
        let label = format!("grid.{k}");
        let key = find(TRIAL_KEYS, k).ok_or_else(|| {
            KeyError::new(&label, "unknown trial key (an axis must be a trial key)")
        })?;
        if !key.kind.is_axis() {
            return Err(KeyError::new(
                label,
                "cannot be a grid axis (set per sweep)",
            ));
        }
        if train_raw.contains_key(k) {
            return Err(KeyError::new(
                label,
                format!("is also set in [train] (train.{k}); set it in one place"),
            ));
        }
        let axis = grid::axis(key, v, base)?;
        for (i, v) in axis.values.iter().enumerate() {
            one_gpu_per_trial(&format!("{label}[{i}]"), key.kind, v)?;
        }
        grid.push(axis);
    }
    grid.sort_by(|a, b| a.key.cmp(&b.key));

    // [eval]
    let (eval, eval_table) = match root.get("eval") {
        None => (None, None),
        Some(Value::Table(t)) => {
            let prefix = |e: KeyError| {
                KeyError::new(
                    if e.key.is_empty() {
                        "eval".to_string()
                    } else {
                        format!("eval.{}", e.key)
                    },
                    e.message,
                )
            };
            let normalised = crate::keys::check_table(crate::eval::EVAL_KEYS, t, base, "eval")
                .map_err(prefix)?;
            let cfg = EvalConfig::from_table(&normalised, base).map_err(prefix)?;
            if let Some(Value::String(d)) = t.get("device") {
                one_gpu_per_trial("eval.device", Kind::Device, &Value::String(d.clone()))?;
            }
            (Some(cfg), Some(normalised))
        }
        Some(v) => return Err(KeyError::new("eval", wrong_type("a table", v))),
    };

    let resources = Resources::from_table(&resources_raw)?;

    let spec = SweepSpec {
        file: file.to_path_buf(),
        name,
        output_dir,
        db,
        train,
        grid,
        eval,
        eval_table,
        resources,
        source: source.to_string(),
        model_refs,
        resolved: BTreeMap::new(),
    };
    // Every grid point through the trial schema, as `smolsweep train`
    // will read it: required keys, and rules across keys.
    let placeholder = spec.output_dir.join("trials").join("0");
    for p in spec.points() {
        if let Err(e) = spec.trial(&p, &placeholder) {
            let name = e.key.split(['[', '.']).next().unwrap_or("").to_string();
            return Err(if p.contains_key(&name) {
                KeyError::new(
                    format!("grid.{}", e.key),
                    format!("{} at grid point {}", e.message, point_label(&p)),
                )
            } else if spec.grid.is_empty() {
                KeyError::new(format!("train.{}", e.key), e.message)
            } else {
                KeyError::new(
                    format!("train.{}", e.key),
                    format!("{} at grid point {}", e.message, point_label(&p)),
                )
            });
        }
    }
    Ok(spec)
}

/// Each trial sees only its own GPU (`CUDA_VISIBLE_DEVICES`, from
/// `[resources] gpus`), so a device index other than 0 would name a GPU
/// the trial cannot see.
fn one_gpu_per_trial(label: &str, kind: Kind, v: &Value) -> Result<(), KeyError> {
    if kind != Kind::Device {
        return Ok(());
    }
    match v {
        Value::String(s) if s.starts_with("cuda:") && s != "cuda:0" => Err(KeyError::new(
            label,
            format!(
                "{s:?}: each trial sees only its own GPU (CUDA_VISIBLE_DEVICES, from [resources] gpus); use \"auto\" or \"cuda\""
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::to_json;

    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("model")).expect("mkdir");
        std::fs::write(d.path().join("model/config.json"), "{}").expect("write");
        std::fs::write(d.path().join("train.jsonl"), "").expect("write");
        d
    }

    fn parse(d: &tempfile::TempDir, body: &str) -> Result<SweepSpec, ConfigError> {
        let text = format!("[train]\nmodel = \"model\"\ndata = [\"train.jsonl\"]\n{body}");
        SweepSpec::parse(&d.path().join("s.toml"), &text)
    }

    #[test]
    fn log_space_and_pow2_expand() {
        let d = fixture();
        let s = parse(
            &d,
            "[grid]\nlr = { log_space = [3e-6, 3e-4, 5] }\nbatch_size = { pow2 = [4, 64] }\nseed = [1, 2]\n",
        )
        .expect("valid");
        let lr: Vec<f64> = s.grid[1]
            .values
            .iter()
            .filter_map(Value::as_float)
            .collect();
        assert_eq!(lr.len(), 5);
        assert_eq!(lr[0], 3e-6);
        assert_eq!(lr[4], 3e-4);
        assert_eq!(lr[2], 3e-5);
        assert_eq!(s.grid[0].values.len(), 5);
        assert_eq!(s.points().len(), 50);
        assert_eq!(s.trial_count(), 50);
    }

    #[test]
    fn longer_log_grid_contains_shorter() {
        let d = fixture();
        let a = parse(&d, "[grid]\nlr = { log_space = [1e-5, 1e-3, 3] }\n").expect("valid");
        let b = parse(&d, "[grid]\nlr = { log_space = [1e-5, 1e-3, 5] }\n").expect("valid");
        assert!(check_frozen(&a.frozen(), &b.frozen()).is_ok());
        assert!(check_frozen(&b.frozen(), &a.frozen()).is_err());
    }

    #[test]
    fn frozen_change_names_key() {
        let d = fixture();
        let a = parse(&d, "max_steps = 10\n[grid]\nlr = [1e-4]\n").expect("valid");
        let b = parse(&d, "max_steps = 11\n[grid]\nlr = [1e-4]\n").expect("valid");
        assert_eq!(
            check_frozen(&a.frozen(), &b.frozen()),
            Err("train.max_steps".into())
        );
    }

    #[test]
    fn an_empty_gpu_list_is_accepted() {
        let d = fixture();
        let s = parse(&d, "lr = 1e-4\n[resources]\ngpus = []\n").expect("valid");
        assert_eq!(s.resources.gpus, Gpus::List(vec![]));
    }

    #[test]
    fn a_grid_point_is_a_trial() {
        let d = fixture();
        let s = parse(
            &d,
            "lr = 1e-4\n[grid]\nbatch_size = [4, 8]\nwarmup_ratio = [0.1]\n",
        )
        .expect("valid");
        let t = s.trial(&s.points()[1], Path::new("/tmp/t")).expect("trial");
        assert_eq!((t.batch_size, t.warmup_ratio), (8, 0.1));
        assert_eq!(to_json(&s.train["lr"]), serde_json::json!(1e-4));
        // The trainer's rule, in a sweep: warmup_ratio is in [0, 1).
        let e = parse(&d, "lr = 1e-4\nwarmup_ratio = 1.0\n").expect_err("refused");
        assert_eq!(e.key(), Some("train.warmup_ratio"));
        let e = parse(&d, "lr = 1e-4\n[grid]\nmax_seq_len = [512, 1]\n").expect_err("refused");
        assert_eq!(e.key(), Some("grid.max_seq_len[1]"));
    }
}
