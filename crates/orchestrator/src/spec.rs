//! The sweep TOML: parsing, validation and expansion into grid points.
//!
//! Everything a sweep could get wrong is checked here, before the first
//! trial starts: a typo found after six hours of training is six hours lost.
//! Validation walks the raw TOML tables by hand (instead of serde derive)
//! so that every error names the exact key (`grid.lr`, `train.data[1]`,
//! `eval.tasks[0]`) and says what is wrong with it.
//!
//! The trial keys and their types mirror `smolsweep train`'s trial TOML
//! (the trainer issue); `output_dir` is the orchestrator's to set per trial.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use toml::Value;

/// A sweep file that cannot be run, with the file and the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not valid TOML: {message}")]
    Toml { file: PathBuf, message: String },
    #[error("{file}: {key}: {message}")]
    Key {
        file: PathBuf,
        key: String,
        message: String,
    },
}

/// How a trial key's value is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A directory that must exist (relative to the sweep file).
    ExistingDir,
    /// One path or a list of paths that must exist.
    ExistingPaths,
    /// A path that is created if needed.
    AnyPath,
    Choice(&'static [&'static str]),
    PosInt,
    NonNegInt,
    PosIntOrAuto,
    PosFloat,
    NonNegFloat,
    /// A float in [0, 1].
    Ratio,
    /// A float in [0, 1).
    Beta,
    Bool,
    Device,
    /// Set by the orchestrator; refused in the spec.
    Reserved,
}

/// The keys of `smolsweep train --config`, in the trainer issue's order.
const TRIAL_KEYS: &[(&str, Kind)] = &[
    ("model", Kind::ExistingDir),
    ("init", Kind::Choice(&["pretrained", "random"])),
    ("data", Kind::ExistingPaths),
    ("chat_template", Kind::Choice(&["model", "tulu", "chatml"])),
    ("max_seq_len", Kind::PosInt),
    ("lr", Kind::PosFloat),
    ("batch_size", Kind::PosInt),
    ("micro_batch_size", Kind::PosIntOrAuto),
    // A float: the trainer takes fractional epochs.
    ("epochs", Kind::PosFloat),
    ("max_steps", Kind::PosInt),
    ("warmup_ratio", Kind::Ratio),
    ("schedule", Kind::Choice(&["linear", "cosine", "constant"])),
    ("weight_decay", Kind::NonNegFloat),
    ("adam_beta1", Kind::Beta),
    ("adam_beta2", Kind::Beta),
    ("adam_eps", Kind::PosFloat),
    ("loss_reduction", Kind::Choice(&["sum", "mean"])),
    ("grad_clip", Kind::PosFloat),
    ("seed", Kind::NonNegInt),
    ("packing", Kind::Bool),
    ("output_dir", Kind::Reserved),
    ("checkpoint_every_steps", Kind::PosInt),
    ("keep_checkpoints", Kind::PosInt),
    ("device", Kind::Device),
    ("dtype", Kind::Choice(&["auto", "f32", "bf16"])),
    ("cache_dir", Kind::AnyPath),
];

/// Benchmarks `smolsweep eval --task` knows (DESIGN.md section 6).
pub const KNOWN_TASKS: &[&str] = &[
    "arc_easy",
    "arc_challenge",
    "hellaswag",
    "piqa",
    "gsm8k",
    "ifeval",
];

/// Which GPUs the sweep may use.
#[derive(Debug, Clone, PartialEq)]
pub enum Gpus {
    /// Whatever `nvidia-smi` (or libtorch) finds; none means CPU.
    Auto,
    List(Vec<u32>),
}

/// `[resources]`: not part of the frozen spec (a restarted sweep may run
/// on a machine with other GPUs, or be given more retries).
#[derive(Debug, Clone)]
pub struct Resources {
    pub gpus: Gpus,
    pub slots_per_gpu: u32,
    pub max_retries: u32,
}

/// `[eval]`: the options of `smolsweep eval` every trial's export gets.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSpec {
    /// `NAME` or `NAME=PATH`, as `--task` takes them (paths made absolute).
    pub tasks: Vec<String>,
    pub data_dir: Option<PathBuf>,
    pub limit: Option<u64>,
    /// `--gsm8k-fewshot` (None: the eval's default, lm-eval's 5).
    pub gsm8k_fewshot: Option<u64>,
    pub chat_template: bool,
    /// A positive integer or "auto".
    pub batch_size: Option<String>,
    pub device: Option<String>,
    /// Write per-sample outputs (samples.jsonl) beside results.json.
    pub samples: bool,
}

/// One grid axis: a trial key and its values, in the order given.
#[derive(Debug, Clone)]
pub struct Axis {
    pub key: String,
    pub values: Vec<Value>,
}

/// A grid point: axis key -> value (sorted by key).
pub type Point = BTreeMap<String, Value>;

/// A validated sweep.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub file: PathBuf,
    pub name: String,
    pub output_dir: PathBuf,
    pub db: PathBuf,
    /// Base trial keys (paths made absolute), without `output_dir`.
    pub train: toml::Table,
    /// Axes sorted by key.
    pub grid: Vec<Axis>,
    pub eval: Option<EvalSpec>,
    pub resources: Resources,
    /// The file's text, kept in the record.
    pub source: String,
}

impl SweepSpec {
    /// Reads and validates a sweep file.
    pub fn load(file: &Path) -> Result<Self, SpecError> {
        let source = std::fs::read_to_string(file).map_err(|source| SpecError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(file, &source)
    }

    /// Validates `source` as if read from `file` (relative paths resolve
    /// against the file's directory).
    pub fn parse(file: &Path, source: &str) -> Result<Self, SpecError> {
        let cx = Cx {
            file: file.to_path_buf(),
            base: file
                .parent()
                .map(Path::to_path_buf)
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("."))
                .canonicalize()
                .unwrap_or_else(|_| PathBuf::from(".")),
        };
        let root: toml::Table = source
            .parse()
            .map_err(|e: toml::de::Error| SpecError::Toml {
                file: file.to_path_buf(),
                message: e.to_string().trim_end().to_string(),
            })?;
        for k in root.keys() {
            if !["sweep", "train", "grid", "eval", "resources"].contains(&k.as_str()) {
                return Err(cx.err(
                    k,
                    "unknown section (expected [sweep], [train], [grid], [eval], [resources])",
                ));
            }
        }
        let sweep = cx.table(&root, "sweep")?;
        let train_raw = cx.table(&root, "train")?;
        let grid_raw = cx.table(&root, "grid")?;
        let resources_raw = cx.table(&root, "resources")?;

        // [sweep]
        for k in sweep.keys() {
            if !["name", "output_dir", "db"].contains(&k.as_str()) {
                return Err(cx.err(
                    &format!("sweep.{k}"),
                    "unknown key (expected name, output_dir, db)",
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
            Some(Value::String(_)) => return Err(cx.err("sweep.name", "must not be empty")),
            Some(v) => return Err(cx.err("sweep.name", &wrong_type("a string", v))),
        };
        let output_dir = match sweep.get("output_dir") {
            None => cx.base.join(&stem),
            Some(Value::String(s)) if !s.is_empty() => cx.base.join(s),
            Some(v) => return Err(cx.err("sweep.output_dir", &wrong_type("a non-empty path", v))),
        };
        let db = match sweep.get("db") {
            None => output_dir.join("sweep.db"),
            Some(Value::String(s)) if !s.is_empty() => cx.base.join(s),
            Some(v) => return Err(cx.err("sweep.db", &wrong_type("a non-empty path", v))),
        };

        // [train]
        let mut train = toml::Table::new();
        for (k, v) in &train_raw {
            let kind = trial_kind(k).ok_or_else(|| {
                cx.err(
                    &format!("train.{k}"),
                    "unknown trial key (see `smolsweep train`'s trial TOML)",
                )
            })?;
            if kind == Kind::Reserved {
                return Err(cx.err(
                    &format!("train.{k}"),
                    "is set by the orchestrator for each trial (under [sweep] output_dir)",
                ));
            }
            train.insert(k.clone(), cx.check(&format!("train.{k}"), kind, v)?);
        }
        train
            .entry("cache_dir".to_string())
            .or_insert_with(|| Value::String(output_dir.join("cache").display().to_string()));

        // [grid]
        let mut grid = Vec::new();
        for (k, v) in &grid_raw {
            let key = format!("grid.{k}");
            let kind = trial_kind(k)
                .ok_or_else(|| cx.err(&key, "unknown trial key (an axis must be a trial key)"))?;
            if matches!(kind, Kind::Reserved | Kind::AnyPath) {
                return Err(cx.err(&key, "cannot be a grid axis (set per sweep)"));
            }
            if train_raw.contains_key(k) {
                return Err(cx.err(
                    &key,
                    &format!("is also set in [train] (train.{k}); set it in one place"),
                ));
            }
            let values = cx.axis(&key, kind, v)?;
            grid.push(Axis {
                key: k.clone(),
                values,
            });
        }
        grid.sort_by(|a, b| a.key.cmp(&b.key));

        // [eval]
        let eval = match root.get("eval") {
            None => None,
            Some(Value::Table(t)) => Some(cx.eval(t)?),
            Some(v) => return Err(cx.err("eval", &wrong_type("a table", v))),
        };

        // [resources]
        for k in resources_raw.keys() {
            if !["gpus", "slots_per_gpu", "max_retries"].contains(&k.as_str()) {
                return Err(cx.err(
                    &format!("resources.{k}"),
                    "unknown key (expected gpus, slots_per_gpu, max_retries)",
                ));
            }
        }
        let gpus = match resources_raw.get("gpus") {
            None => Gpus::Auto,
            Some(Value::String(s)) if s == "auto" => Gpus::Auto,
            Some(Value::Array(a)) => {
                if a.is_empty() {
                    return Err(cx.err(
                        "resources.gpus",
                        "is empty (use \"auto\", or list GPU indices)",
                    ));
                }
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    match v {
                        Value::Integer(n) if *n >= 0 && *n <= u32::MAX as i64 => {
                            if out.contains(&(*n as u32)) {
                                return Err(cx.err(
                                    &format!("resources.gpus[{i}]"),
                                    &format!("GPU {n} is listed twice"),
                                ));
                            }
                            out.push(*n as u32)
                        }
                        v => {
                            return Err(cx.err(
                                &format!("resources.gpus[{i}]"),
                                &wrong_type("a GPU index (integer >= 0)", v),
                            ))
                        }
                    }
                }
                Gpus::List(out)
            }
            Some(v) => {
                return Err(cx.err(
                    "resources.gpus",
                    &wrong_type("\"auto\" or a list of GPU indices", v),
                ))
            }
        };
        let slots_per_gpu = cx.small_int(&resources_raw, "slots_per_gpu", 1, 1)?;
        let max_retries = cx.small_int(&resources_raw, "max_retries", 2, 0)?;

        // The trainer has no default for these.
        for required in ["model", "data", "lr"] {
            if !train.contains_key(required) && !grid.iter().any(|a| a.key == required) {
                return Err(cx.err(
                    &format!("train.{required}"),
                    "missing (every trial needs it)",
                ));
            }
        }

        let spec = SweepSpec {
            file: file.to_path_buf(),
            name,
            output_dir,
            db,
            train,
            grid,
            eval,
            resources: Resources {
                gpus,
                slots_per_gpu,
                max_retries,
            },
            source: source.to_string(),
        };
        // Per-point checks that involve more than one key.
        for p in spec.points() {
            let bs = spec.value(&p, "batch_size").and_then(Value::as_integer);
            let mbs = spec
                .value(&p, "micro_batch_size")
                .and_then(Value::as_integer);
            if let (Some(bs), Some(mbs)) = (bs, mbs) {
                if mbs > bs {
                    let key = if spec.grid.iter().any(|a| a.key == "micro_batch_size") {
                        "grid.micro_batch_size"
                    } else {
                        "train.micro_batch_size"
                    };
                    return Err(cx.err(
                        key,
                        &format!(
                            "{mbs} is larger than batch_size {bs} at grid point {}",
                            point_label(&p)
                        ),
                    ));
                }
            }
        }
        Ok(spec)
    }

    /// Every grid point, the cartesian product of the axes (last axis
    /// fastest). An empty grid is one point: the `[train]` table alone.
    pub fn points(&self) -> Vec<Point> {
        let mut points = vec![Point::new()];
        for axis in &self.grid {
            let mut next = Vec::with_capacity(points.len() * axis.values.len());
            for p in &points {
                for v in &axis.values {
                    let mut q = p.clone();
                    q.insert(axis.key.clone(), v.clone());
                    next.push(q);
                }
            }
            points = next;
        }
        points
    }

    /// A trial key's value at a grid point (the axis value, else `[train]`).
    pub fn value<'a>(&'a self, point: &'a Point, key: &str) -> Option<&'a Value> {
        point.get(key).or_else(|| self.train.get(key))
    }

    /// The trial TOML of one grid point: `[train]`, the point's values,
    /// and the trial's own output directory.
    pub fn trial_config(&self, point: &Point, trial_output_dir: &Path) -> toml::Table {
        let mut t = self.train.clone();
        for (k, v) in point {
            t.insert(k.clone(), v.clone());
        }
        t.insert(
            "output_dir".into(),
            Value::String(trial_output_dir.display().to_string()),
        );
        t
    }

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
        let eval = match &self.eval {
            None => Json::Null,
            Some(e) => {
                let mut j = serde_json::json!({
                    "tasks": e.tasks,
                    "data_dir": e.data_dir.as_ref().map(|p| p.display().to_string()),
                    "limit": e.limit,
                    "chat_template": e.chat_template,
                    "batch_size": e.batch_size,
                    "device": e.device,
                    "samples": e.samples,
                });
                // Only when set: sweeps frozen before the key existed
                // still match their spec.
                if let Some(k) = e.gsm8k_fewshot {
                    j["gsm8k_fewshot"] = k.into();
                }
                j
            }
        };
        serde_json::json!({
            "name": self.name,
            "train": to_json(&Value::Table(self.train.clone())),
            "grid": grid,
            "eval": eval,
        })
    }

    /// How many grid points the spec has.
    pub fn trial_count(&self) -> usize {
        self.grid.iter().map(|a| a.values.len()).product()
    }
}

/// Compares a recorded frozen spec with a new one. Only added grid values
/// pass; anything else is refused with the first changed key.
pub fn check_frozen(old: &Json, new: &Json) -> Result<(), String> {
    if old.get("name") != new.get("name") {
        return Err("sweep.name".into());
    }
    for section in ["train", "eval"] {
        let (o, n) = (&old[section], &new[section]);
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

/// The canonical identity of a grid point: JSON with sorted keys.
pub fn point_key(point: &Point) -> String {
    let m: serde_json::Map<String, Json> =
        point.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
    Json::Object(m).to_string()
}

/// `lr=3e-6 batch_size=4` style label of a point.
pub fn point_label(point: &Point) -> String {
    if point.is_empty() {
        return "(single trial)".into();
    }
    point
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value as short text (`3e-6`, `4`, `chatml`).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Float(f) => format_float(*f),
        Value::Integer(i) => i.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Shortest text that reads back as the same float, in exponent form for
/// small or large magnitudes (learning rates read better as 3e-6).
pub fn format_float(f: f64) -> String {
    if f != 0.0 && (f.abs() < 1e-3 || f.abs() >= 1e6) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

pub fn to_json(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::String(s.clone()),
        Value::Integer(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Datetime(d) => Json::String(d.to_string()),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Table(t) => Json::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

fn trial_kind(key: &str) -> Option<Kind> {
    TRIAL_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn wrong_type(expected: &str, got: &Value) -> String {
    format!("expected {expected}, got {} ({got})", type_name(got))
}

/// Validation context: the file (for messages) and its directory.
struct Cx {
    file: PathBuf,
    base: PathBuf,
}

impl Cx {
    fn err(&self, key: &str, message: &str) -> SpecError {
        SpecError::Key {
            file: self.file.clone(),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    fn table(&self, root: &toml::Table, name: &str) -> Result<toml::Table, SpecError> {
        match root.get(name) {
            None => Ok(toml::Table::new()),
            Some(Value::Table(t)) => Ok(t.clone()),
            Some(v) => Err(self.err(name, &wrong_type("a table", v))),
        }
    }

    fn small_int(
        &self,
        t: &toml::Table,
        key: &str,
        default: u32,
        min: i64,
    ) -> Result<u32, SpecError> {
        match t.get(key) {
            None => Ok(default),
            Some(Value::Integer(n)) if *n >= min && *n <= 1024 => Ok(*n as u32),
            Some(Value::Integer(n)) => Err(self.err(
                &format!("resources.{key}"),
                &format!("{n} is out of range ({min}..=1024)"),
            )),
            Some(v) => Err(self.err(&format!("resources.{key}"), &wrong_type("an integer", v))),
        }
    }

    fn path(&self, s: &str) -> PathBuf {
        self.base.join(s)
    }

    /// Checks one trial value; returns it normalised (paths absolute,
    /// integers given for float keys as floats).
    fn check(&self, key: &str, kind: Kind, v: &Value) -> Result<Value, SpecError> {
        let bad = |expected: &str| Err(self.err(key, &wrong_type(expected, v)));
        match kind {
            Kind::Reserved => Err(self.err(key, "is set by the orchestrator")),
            Kind::ExistingDir => {
                let Value::String(s) = v else {
                    return bad("a directory path");
                };
                let p = self.path(s);
                if !p.is_dir() {
                    return Err(self.err(
                        key,
                        &format!("{} is not a directory (expected a HF model directory)", p.display()),
                    ));
                }
                if !p.join("config.json").is_file() {
                    return Err(self.err(key, &format!("{} has no config.json", p.display())));
                }
                Ok(Value::String(p.display().to_string()))
            }
            Kind::ExistingPaths => {
                let items: Vec<&Value> = match v {
                    Value::String(_) => vec![v],
                    Value::Array(a) if !a.is_empty() => a.iter().collect(),
                    Value::Array(_) => return Err(self.err(key, "is an empty list")),
                    _ => return bad("a path or a list of paths"),
                };
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let k = if matches!(v, Value::Array(_)) {
                        format!("{key}[{i}]")
                    } else {
                        key.to_string()
                    };
                    let Value::String(s) = item else {
                        return Err(self.err(&k, &wrong_type("a path", item)));
                    };
                    let p = self.path(s);
                    if !p.exists() {
                        return Err(self.err(&k, &format!("{} does not exist", p.display())));
                    }
                    out.push(Value::String(p.display().to_string()));
                }
                Ok(Value::Array(out))
            }
            Kind::AnyPath => match v {
                Value::String(s) if !s.is_empty() => {
                    Ok(Value::String(self.path(s).display().to_string()))
                }
                _ => bad("a non-empty path"),
            },
            Kind::Choice(options) => match v {
                Value::String(s) if options.contains(&s.as_str()) => Ok(v.clone()),
                Value::String(s) => Err(self.err(
                    key,
                    &format!("{s:?} is not one of {}", options.join(", ")),
                )),
                _ => bad(&format!("one of {}", options.join(", "))),
            },
            Kind::PosInt | Kind::NonNegInt => match v {
                Value::Integer(n) if *n > 0 || (*n == 0 && kind == Kind::NonNegInt) => {
                    Ok(v.clone())
                }
                Value::Integer(n) => Err(self.err(
                    key,
                    &format!(
                        "{n} must be {}",
                        if kind == Kind::PosInt { "positive" } else { ">= 0" }
                    ),
                )),
                _ => bad("an integer"),
            },
            Kind::PosIntOrAuto => match v {
                Value::String(s) if s == "auto" => Ok(v.clone()),
                Value::Integer(n) if *n > 0 => Ok(v.clone()),
                Value::Integer(n) => Err(self.err(key, &format!("{n} must be positive"))),
                _ => bad("a positive integer or \"auto\""),
            },
            Kind::PosFloat | Kind::NonNegFloat | Kind::Ratio | Kind::Beta => {
                let f = match v {
                    Value::Float(f) => *f,
                    Value::Integer(i) => *i as f64,
                    _ => return bad("a number"),
                };
                let ok = f.is_finite()
                    && match kind {
                        Kind::PosFloat => f > 0.0,
                        Kind::NonNegFloat => f >= 0.0,
                        Kind::Ratio => (0.0..=1.0).contains(&f),
                        _ => (0.0..1.0).contains(&f),
                    };
                if !ok {
                    let want = match kind {
                        Kind::PosFloat => "must be a finite number > 0",
                        Kind::NonNegFloat => "must be a finite number >= 0",
                        Kind::Ratio => "must be in [0, 1]",
                        _ => "must be in [0, 1)",
                    };
                    return Err(self.err(key, &format!("{} {want}", format_float(f))));
                }
                Ok(Value::Float(f))
            }
            Kind::Bool => match v {
                Value::Boolean(_) => Ok(v.clone()),
                _ => bad("true or false"),
            },
            Kind::Device => match v {
                Value::String(s) if ["auto", "cpu", "cuda", "cuda:0"].contains(&s.as_str()) => {
                    Ok(v.clone())
                }
                Value::String(s) if s.starts_with("cuda:") => Err(self.err(
                    key,
                    &format!(
                        "{s:?}: each trial sees only its own GPU (CUDA_VISIBLE_DEVICES, from [resources] gpus); use \"auto\" or \"cuda\""
                    ),
                )),
                Value::String(s) => Err(self.err(
                    key,
                    &format!("{s:?} is not one of auto, cpu, cuda"),
                )),
                _ => bad("\"auto\", \"cpu\" or \"cuda\""),
            },
        }
    }

    /// One `[grid]` axis: a list, `{ log_space = [lo, hi, n] }` or
    /// `{ pow2 = [lo, hi] }`.
    fn axis(&self, key: &str, kind: Kind, v: &Value) -> Result<Vec<Value>, SpecError> {
        let values = match v {
            Value::Array(a) => {
                if a.is_empty() {
                    return Err(
                        self.err(key, "is an empty list (an axis needs at least one value)")
                    );
                }
                let mut out = Vec::with_capacity(a.len());
                for (i, item) in a.iter().enumerate() {
                    out.push(self.check(&format!("{key}[{i}]"), kind, item)?);
                }
                out
            }
            Value::Table(t) => {
                if t.len() != 1 {
                    return Err(self.err(
                        key,
                        "a generated axis is a table with one key: log_space = [lo, hi, n] or pow2 = [lo, hi]",
                    ));
                }
                let (gen, args) = t.iter().next().expect("one entry");
                let gkey = format!("{key}.{gen}");
                match gen.as_str() {
                    "log_space" => self.log_space(&gkey, kind, args)?,
                    "pow2" => self.pow2(&gkey, kind, args)?,
                    _ => {
                        return Err(
                            self.err(&gkey, "unknown generator (expected log_space or pow2)")
                        )
                    }
                }
            }
            _ => {
                return Err(self.err(
                    key,
                    &wrong_type(
                        "a list, { log_space = [lo, hi, n] } or { pow2 = [lo, hi] }",
                        v,
                    ),
                ))
            }
        };
        for (i, a) in values.iter().enumerate() {
            if values[..i].contains(a) {
                return Err(self.err(key, &format!("value {} appears twice", value_text(a))));
            }
        }
        Ok(values)
    }

    fn log_space(&self, key: &str, kind: Kind, args: &Value) -> Result<Vec<Value>, SpecError> {
        if kind != Kind::PosFloat {
            return Err(self.err(
                key,
                "log_space is for positive float keys (lr, adam_eps, grad_clip)",
            ));
        }
        let Value::Array(a) = args else {
            return Err(self.err(key, &wrong_type("[lo, hi, n]", args)));
        };
        let num = |v: &Value| match v {
            Value::Float(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        };
        let (lo, hi, n) = match a.as_slice() {
            [lo, hi, Value::Integer(n)] => match (num(lo), num(hi)) {
                (Some(lo), Some(hi)) => (lo, hi, *n),
                _ => return Err(self.err(key, "lo and hi must be numbers")),
            },
            _ => return Err(self.err(key, "expected [lo, hi, n] with n an integer")),
        };
        if !(lo.is_finite() && lo > 0.0 && hi.is_finite() && hi > 0.0) {
            return Err(self.err(key, "lo and hi must be finite and > 0"));
        }
        if !(1..=1000).contains(&n) {
            return Err(self.err(key, &format!("n = {n} must be in 1..=1000")));
        }
        if n == 1 {
            return Ok(vec![Value::Float(lo)]);
        }
        if hi <= lo {
            return Err(self.err(key, "hi must be larger than lo"));
        }
        let (a, b) = (lo.ln(), hi.ln());
        Ok((0..n)
            .map(|i| {
                // The ends exactly as written; in between, evenly in log space
                // rounded to 6 significant digits, so values read back the
                // same and a longer grid over the same range contains them.
                let f = if i == 0 {
                    lo
                } else if i == n - 1 {
                    hi
                } else {
                    round_sig((a + (b - a) * i as f64 / (n - 1) as f64).exp(), 6)
                };
                Value::Float(f)
            })
            .collect())
    }

    fn pow2(&self, key: &str, kind: Kind, args: &Value) -> Result<Vec<Value>, SpecError> {
        if !matches!(kind, Kind::PosInt | Kind::PosIntOrAuto) {
            return Err(self.err(key, "pow2 is for positive integer keys (batch_size, ...)"));
        }
        let (lo, hi) = match args {
            Value::Array(a) => match a.as_slice() {
                [Value::Integer(lo), Value::Integer(hi)] => (*lo, *hi),
                _ => return Err(self.err(key, "expected [lo, hi] (integers)")),
            },
            _ => return Err(self.err(key, &wrong_type("[lo, hi]", args))),
        };
        for (name, x) in [("lo", lo), ("hi", hi)] {
            if x < 1 || (x & (x - 1)) != 0 {
                return Err(self.err(key, &format!("{name} = {x} is not a positive power of two")));
            }
        }
        if hi < lo {
            return Err(self.err(key, "hi must not be smaller than lo"));
        }
        let mut out = Vec::new();
        let mut x = lo;
        while x <= hi {
            out.push(Value::Integer(x));
            x *= 2;
        }
        Ok(out)
    }

    fn eval(&self, t: &toml::Table) -> Result<EvalSpec, SpecError> {
        const KEYS: &[&str] = &[
            "tasks",
            "data_dir",
            "limit",
            "gsm8k_fewshot",
            "chat_template",
            "batch_size",
            "device",
            "samples",
        ];
        for k in t.keys() {
            if !KEYS.contains(&k.as_str()) {
                return Err(self.err(
                    &format!("eval.{k}"),
                    &format!("unknown key (expected {})", KEYS.join(", ")),
                ));
            }
        }
        let tasks = match t.get("tasks") {
            None => return Err(self.err("eval.tasks", "missing (list the benchmarks to run)")),
            Some(Value::Array(a)) if a.is_empty() => {
                return Err(self.err("eval.tasks", "is an empty list"))
            }
            Some(Value::Array(a)) => a,
            Some(v) => return Err(self.err("eval.tasks", &wrong_type("a list of task names", v))),
        };
        let mut out = Vec::new();
        let mut names = Vec::new();
        for (i, v) in tasks.iter().enumerate() {
            let key = format!("eval.tasks[{i}]");
            let Value::String(s) = v else {
                return Err(self.err(&key, &wrong_type("NAME or NAME=PATH", v)));
            };
            let (name, path) = match s.split_once('=') {
                Some((n, p)) => (n.trim(), Some(p.trim())),
                None => (s.trim(), None),
            };
            if !KNOWN_TASKS.contains(&name) {
                return Err(self.err(
                    &key,
                    &format!("unknown task {name:?} (known: {})", KNOWN_TASKS.join(", ")),
                ));
            }
            if names.contains(&name) {
                return Err(self.err(&key, &format!("task {name} is listed twice")));
            }
            names.push(name);
            match path {
                Some(p) => {
                    let p = self.path(p);
                    if !p.exists() {
                        return Err(self.err(&key, &format!("{} does not exist", p.display())));
                    }
                    out.push(format!("{name}={}", p.display()));
                }
                None => out.push(name.to_string()),
            }
        }
        let data_dir = match t.get("data_dir") {
            None => None,
            Some(Value::String(s)) => {
                let p = self.path(s);
                if !p.is_dir() {
                    return Err(self.err(
                        "eval.data_dir",
                        &format!("{} is not a directory", p.display()),
                    ));
                }
                Some(p)
            }
            Some(v) => return Err(self.err("eval.data_dir", &wrong_type("a directory path", v))),
        };
        // Integer keys go through the same `check` as the trial keys.
        let int = |k: &str, kind: Kind| -> Result<Option<u64>, SpecError> {
            match t.get(k) {
                None => Ok(None),
                Some(v) => Ok(self
                    .check(&format!("eval.{k}"), kind, v)?
                    .as_integer()
                    .map(|n| n as u64)),
            }
        };
        let limit = int("limit", Kind::PosInt)?;
        let gsm8k_fewshot = int("gsm8k_fewshot", Kind::NonNegInt)?;
        let flag = |k: &str| match t.get(k) {
            None => Ok(false),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(v) => Err(self.err(&format!("eval.{k}"), &wrong_type("true or false", v))),
        };
        let batch_size = match t.get("batch_size") {
            None => None,
            Some(v) => Some(
                match self.check("eval.batch_size", Kind::PosIntOrAuto, v)? {
                    Value::Integer(n) => n.to_string(),
                    _ => "auto".to_string(),
                },
            ),
        };
        let device = match t.get("device") {
            None => None,
            Some(v) => Some(value_text(&self.check("eval.device", Kind::Device, v)?)),
        };
        Ok(EvalSpec {
            tasks: out,
            data_dir,
            limit,
            gsm8k_fewshot,
            chat_template: flag("chat_template")?,
            batch_size,
            device,
            samples: flag("samples")?,
        })
    }
}

fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let text = format!("{:.*e}", (digits - 1) as usize, x);
    text.parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("model")).expect("mkdir");
        std::fs::write(d.path().join("model/config.json"), "{}").expect("write");
        std::fs::write(d.path().join("train.jsonl"), "").expect("write");
        d
    }

    fn parse(d: &tempfile::TempDir, body: &str) -> Result<SweepSpec, SpecError> {
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
}
