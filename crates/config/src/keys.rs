//! How a key is declared and checked: its [`Kind`] (type, range, allowed
//! values), its default, and its one-line doc. The trial and eval schemas
//! are lists of [`Key`]s generated, together with their structs, by
//! [`schema!`]; every TOML value a user writes (in a trial file, a sweep's
//! `[train]` table or grid axis, or `[eval]`) goes through [`check`], so a
//! value is judged by one rule wherever it appears.

use std::path::{Path, PathBuf};

use smolsweep_hub::RepoType;

use toml::Value;

use crate::benchmarks::Task;
use crate::error::BadValue;
use crate::value::{as_number, format_float, wrong_type};

/// The range a float key must lie in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Finite and > 0.
    Positive,
    /// Finite and >= 0.
    NonNegative,
    /// In [0, 1).
    UnitOpen,
}

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Float(Range),
    /// An integer >= `min`.
    Int {
        min: i64,
    },
    /// An integer >= 1, or `"auto"`.
    IntOrAuto,
    Bool,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    Device,
    /// A HF model directory (with config.json) or a hub cache folder
    /// (`models--ORG--NAME`, with `snapshots/`).
    ModelDir,
    /// One path or a list of paths, each of which must exist.
    Paths,
    /// An existing directory.
    Dir,
    /// A path created when needed; set per sweep, never a grid axis.
    NewPath,
    /// A trial's own output directory: set by the orchestrator in sweeps.
    OutputDir,
    /// Benchmarks: a list of `NAME` or `NAME=PATH`.
    Tasks,
    /// `"auto"`, a list of distinct GPU indices, or `[]` for CPU only.
    Gpus,
    /// One word (no whitespace): a Slurm partition, account, QOS, constraint.
    Word,
    /// A list of strings, each on one line (arguments passed on verbatim).
    Words,
    /// A Slurm time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
    /// `D-HH:MM:SS`.
    SlurmTime,
    /// A Slurm memory size: an integer with an optional unit K, M, G or T.
    SlurmMem,
    /// A non-empty ascending list of fractions strictly between 0 and 1.
    Fractions,
}

impl Kind {
    /// What the kind is, for docs ("a float > 0", "one of linear, cosine").
    pub fn describe(self) -> String {
        match self {
            Kind::Float(Range::Positive) => "a float > 0".into(),
            Kind::Float(Range::NonNegative) => "a float >= 0".into(),
            Kind::Float(Range::UnitOpen) => "a float in [0, 1)".into(),
            Kind::Int { min: 1 } => "a positive integer".into(),
            Kind::Int { min } => format!("an integer >= {min}"),
            Kind::IntOrAuto => "a positive integer or \"auto\"".into(),
            Kind::Bool => "true or false".into(),
            Kind::Choice(words) => format!("one of {}", quoted(words)),
            Kind::Device => "\"auto\", \"cpu\", \"cuda\" or \"cuda:N\"".into(),
            Kind::ModelDir => "a HF model directory or hub cache folder".into(),
            Kind::Paths => "a path or a list of paths (Parquet, JSONL, dataset dirs)".into(),
            Kind::Dir => "a directory".into(),
            Kind::NewPath | Kind::OutputDir => "a path".into(),
            Kind::Tasks => "a list of \"NAME\" or \"NAME=PATH\"".into(),
            Kind::Gpus => "\"auto\", a list of GPU indices, or [] for CPU only".into(),
            Kind::Word => "a word (no spaces)".into(),
            Kind::Words => "a list of strings".into(),
            Kind::SlurmTime => "a Slurm time limit (\"MM\", \"HH:MM:SS\", \"D-HH:MM:SS\")".into(),
            Kind::SlurmMem => "a Slurm memory size (\"16G\", \"500M\")".into(),
            Kind::Fractions => "an ascending list of fractions in (0, 1)".into(),
        }
    }

    /// Whether a sweep may vary the key over a grid axis.
    pub fn is_axis(self) -> bool {
        !matches!(
            self,
            Kind::NewPath
                | Kind::OutputDir
                | Kind::Tasks
                | Kind::Dir
                | Kind::Gpus
                | Kind::Word
                | Kind::Words
                | Kind::SlurmTime
                | Kind::SlurmMem
                | Kind::Fractions
        )
    }
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    /// No default: every file (or sweep) must set it.
    Required,
    /// Unset unless given (an optional feature, e.g. `grad_clip`).
    Unset,
    /// This TOML literal.
    Toml(&'static str),
}

/// One key of a schema.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// One line (the doc comment of the struct field).
    pub doc: &'static str,
    pub kind: Kind,
    pub default: Default,
}

impl Key {
    /// The default as a TOML value, when there is one.
    pub fn default_value(&self) -> Option<Value> {
        match self.default {
            Default::Toml(text) => {
                let t: toml::Table = format!("v = {text}").parse().ok()?;
                t.get("v").cloned()
            }
            _ => None,
        }
    }
}

/// The key called `name`.
pub fn find<'a>(keys: &'a [Key], name: &str) -> Option<&'a Key> {
    keys.iter().find(|k| k.name == name)
}

/// Checks one value of `kind` and returns it normalised: paths absolute
/// (relative ones against `base`, `~` expanded), a single path as a list
/// for [`Kind::Paths`], integers given for float keys as floats.
pub fn check(kind: Kind, v: &Value, base: &Path) -> Result<Value, BadValue> {
    let bad = |expected: &str| Err(BadValue::new(wrong_type(expected, v)));
    match kind {
        Kind::Float(range) => {
            let Some(f) = as_number(v) else {
                return bad("a number");
            };
            let (ok, want) = match range {
                Range::Positive => (f.is_finite() && f > 0.0, "must be a finite number > 0"),
                Range::NonNegative => (f.is_finite() && f >= 0.0, "must be a finite number >= 0"),
                Range::UnitOpen => ((0.0..1.0).contains(&f), "must be in [0, 1)"),
            };
            if ok {
                Ok(Value::Float(f))
            } else {
                Err(BadValue::new(format!("{} {want}", format_float(f))))
            }
        }
        Kind::Int { min } => match v {
            // The upper bound is the field's type (u32, u64, usize),
            // checked by the schema's `check_types`.
            Value::Integer(n) if *n >= min => Ok(v.clone()),
            Value::Integer(n) => Err(BadValue::new(if min == 1 {
                format!("{n} must be positive")
            } else {
                format!("{n} must be >= {min}")
            })),
            _ => bad("an integer"),
        },
        Kind::IntOrAuto => match v {
            Value::String(s) if s == "auto" => Ok(v.clone()),
            Value::Integer(n) if *n > 0 && *n <= u32::MAX as i64 => Ok(v.clone()),
            Value::Integer(n) => Err(BadValue::new(format!("{n} must be positive"))),
            _ => bad("a positive integer or \"auto\""),
        },
        Kind::Bool => match v {
            Value::Boolean(_) => Ok(v.clone()),
            _ => bad("true or false"),
        },
        Kind::Choice(words) => match v {
            Value::String(s) if words.contains(&s.as_str()) => Ok(v.clone()),
            Value::String(s) => Err(BadValue::new(format!(
                "{s:?} is not one of {}",
                words.join(", ")
            ))),
            _ => bad(&format!("one of {}", words.join(", "))),
        },
        Kind::Device => match v {
            Value::String(s) => match s.parse::<crate::DeviceSpec>() {
                Ok(_) => Ok(v.clone()),
                Err(e) => Err(BadValue::new(e)),
            },
            _ => bad("\"auto\", \"cpu\", \"cuda\" or \"cuda:N\""),
        },
        Kind::ModelDir => {
            let Value::String(s) = v else {
                return bad("a model directory, hub cache folder or ORG/NAME");
            };
            let (dir, value) = locate_ref(base, s, RepoType::Model).map_err(BadValue::new)?;
            if !dir.first().join("config.json").is_file() {
                return Err(BadValue::new(format!(
                    "{} has no config.json (expected a HF model directory)",
                    dir.first().display()
                )));
            }
            Ok(Value::String(value))
        }
        Kind::Paths => {
            let (items, listed): (Vec<&Value>, bool) = match v {
                Value::String(_) => (vec![v], false),
                Value::Array(a) if !a.is_empty() => (a.iter().collect(), true),
                Value::Array(_) => return Err(BadValue::new("is an empty list")),
                _ => return bad("a path or a list of paths"),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let suffix = if listed {
                    format!("[{i}]")
                } else {
                    String::new()
                };
                let Value::String(s) = item else {
                    return Err(BadValue::at(suffix, wrong_type("a path", item)));
                };
                let (_, value) =
                    locate_ref(base, s, RepoType::Dataset).map_err(|e| BadValue::at(&suffix, e))?;
                out.push(Value::String(value));
            }
            Ok(Value::Array(out))
        }
        Kind::Dir => match v {
            Value::String(s) => {
                let p = resolve(base, s);
                if p.is_dir() {
                    Ok(path_value(&p))
                } else {
                    Err(BadValue::new(format!("{} is not a directory", p.display())))
                }
            }
            _ => bad("a directory path"),
        },
        Kind::NewPath | Kind::OutputDir => match v {
            Value::String(s) if !s.is_empty() => Ok(path_value(&resolve(base, s))),
            _ => bad("a non-empty path"),
        },
        Kind::Tasks => check_tasks(v, base),
        Kind::Gpus => check_gpus(v),
        Kind::Word => match v {
            Value::String(s) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {
                Ok(v.clone())
            }
            Value::String(s) => Err(BadValue::new(format!(
                "{s:?} must be one word (not empty, no spaces)"
            ))),
            _ => bad("a string"),
        },
        Kind::Words => match v {
            Value::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    match item {
                        Value::String(s) if !s.is_empty() && !s.contains(['\n', '\r']) => {}
                        Value::String(s) => {
                            return Err(BadValue::at(
                                format!("[{i}]"),
                                format!("{s:?} must be a non-empty string on one line"),
                            ))
                        }
                        other => {
                            return Err(BadValue::at(format!("[{i}]"), wrong_type("a string", other)))
                        }
                    }
                }
                Ok(v.clone())
            }
            _ => bad("a list of strings"),
        },
        Kind::SlurmTime => match v {
            Value::String(s) if slurm_time_minutes(s).is_some() => Ok(v.clone()),
            Value::String(s) => Err(BadValue::new(format!(
                "{s:?} is not a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, not zero)"
            ))),
            _ => bad("a string such as \"01:30:00\""),
        },
        Kind::SlurmMem => match v {
            Value::String(s) if is_slurm_mem(s) => Ok(v.clone()),
            Value::String(s) => Err(BadValue::new(format!(
                "{s:?} is not a Slurm memory size (an integer with an optional unit K, M, G or T)"
            ))),
            _ => bad("a string such as \"16G\""),
        },
        Kind::Fractions => check_fractions(v),
    }
}

/// A non-empty ascending list of fractions strictly between 0 and 1
/// (integers are no fraction: 0 and 1 are out of range anyway).
fn check_fractions(v: &Value) -> Result<Value, BadValue> {
    let Value::Array(a) = v else {
        return Err(BadValue::new(wrong_type(
            "a list of fractions, e.g. [0.25, 0.5, 0.75]",
            v,
        )));
    };
    if a.is_empty() {
        return Err(BadValue::new("is empty (give at least one fraction)"));
    }
    let mut last: Option<f64> = None;
    for (i, item) in a.iter().enumerate() {
        let f = match item {
            Value::Float(f) => *f,
            Value::Integer(n) => *n as f64,
            other => {
                return Err(BadValue::at(
                    format!("[{i}]"),
                    wrong_type("a fraction between 0 and 1", other),
                ))
            }
        };
        if !(f > 0.0 && f < 1.0) {
            return Err(BadValue::at(
                format!("[{i}]"),
                format!("{f} is not strictly between 0 and 1"),
            ));
        }
        if let Some(l) = last.filter(|&l| f <= l) {
            return Err(BadValue::at(
                format!("[{i}]"),
                format!("{f} does not come after {l} (the list must ascend)"),
            ));
        }
        last = Some(f);
    }
    Ok(Value::Array(
        a.iter()
            .map(|x| {
                Value::Float(
                    x.as_float()
                        .or(x.as_integer().map(|n| n as f64))
                        .unwrap_or(0.0),
                )
            })
            .collect(),
    ))
}

fn check_gpus(v: &Value) -> Result<Value, BadValue> {
    match v {
        Value::String(s) if s == "auto" => Ok(v.clone()),
        Value::Array(a) => {
            let mut seen = Vec::new();
            for (i, item) in a.iter().enumerate() {
                match item {
                    Value::Integer(n) if *n >= 0 && *n <= u32::MAX as i64 => {
                        if seen.contains(n) {
                            return Err(BadValue::at(
                                format!("[{i}]"),
                                format!("GPU {n} is listed twice"),
                            ));
                        }
                        seen.push(*n);
                    }
                    other => {
                        return Err(BadValue::at(
                            format!("[{i}]"),
                            wrong_type("a GPU index (integer >= 0)", other),
                        ))
                    }
                }
            }
            Ok(v.clone())
        }
        _ => Err(BadValue::new(wrong_type(
            "\"auto\", a list of GPU indices, or [] for CPU only",
            v,
        ))),
    }
}

/// A Slurm time limit in minutes (rounded up), as `sbatch --time` reads
/// it; None when it is not one, or zero.
pub fn slurm_time_minutes(s: &str) -> Option<u64> {
    let num = |p: &str| -> Option<u64> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 9 {
            return None;
        }
        p.parse().ok()
    };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Option<_>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) | (Some(_), [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(_), [h]) => h * 3600,
        (Some(_), [h, m]) => h * 3600 + m * 60,
        _ => return None,
    } + days.unwrap_or(0) * 86400;
    (seconds > 0).then(|| seconds.div_ceil(60))
}

fn is_slurm_mem(s: &str) -> bool {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    s.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.len() <= 12
        && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_tasks(v: &Value, base: &Path) -> Result<Value, BadValue> {
    let items = match v {
        Value::Array(a) if a.is_empty() => return Err(BadValue::new("is an empty list")),
        Value::Array(a) => a,
        _ => return Err(BadValue::new(wrong_type("a list of task names", v))),
    };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let suffix = format!("[{i}]");
        let Value::String(s) = item else {
            return Err(BadValue::at(suffix, wrong_type("NAME or NAME=PATH", item)));
        };
        let (name, path) = match s.split_once('=') {
            Some((n, p)) => (n.trim(), Some(p.trim())),
            None => (s.trim(), None),
        };
        let task: Task = name.parse().map_err(|_| {
            BadValue::at(
                &suffix,
                format!("unknown task {name:?} (known: {})", Task::NAMES.join(", ")),
            )
        })?;
        if seen.contains(&task) {
            return Err(BadValue::at(suffix, format!("task {name} is listed twice")));
        }
        seen.push(task);
        match path {
            Some(p) => {
                let (_, value) =
                    locate_ref(base, p, RepoType::Dataset).map_err(|e| BadValue::at(&suffix, e))?;
                out.push(Value::String(format!("{name}={value}")));
            }
            None => out.push(Value::String(name.to_string())),
        }
    }
    Ok(Value::Array(out))
}

/// `s` as a path: `~/` expanded, relative paths taken from `base`.
pub fn resolve(base: &Path, s: &str) -> PathBuf {
    base.join(smolsweep_hub::expand_home(s))
}

/// A model or dataset reference as written in a file under `base`,
/// resolved now so a bad one is refused before anything starts. An
/// `ORG/NAME[@REV]` that names no path there stays a hub id in the
/// normalised value (looked up in the hub cache wherever it is used);
/// anything else is a path, made absolute. A missing id-shaped path names
/// both readings.
fn locate_ref(
    base: &Path,
    s: &str,
    ty: RepoType,
) -> Result<(smolsweep_hub::Located, String), String> {
    if !smolsweep_hub::is_hub_reference(base, s) {
        let p = resolve(base, s);
        let found = smolsweep_hub::locate(&p, ty).map_err(|e| e.to_string())?;
        return Ok((found, p.display().to_string()));
    }
    match smolsweep_hub::locate(Path::new(s), ty) {
        Ok(found) => Ok((found, s.to_owned())),
        Err(smolsweep_hub::HubError::NotFound { searched, .. }) => {
            let folders: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
            Err(format!(
                "{} does not exist, and {s} is not in the local hub cache (searched {})",
                resolve(base, s).display(),
                folders.join(", ")
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn path_value(p: &Path) -> Value {
    Value::String(p.display().to_string())
}

/// A key at fault (already with its suffix) and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
}

impl KeyError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        KeyError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Checks every key of `table` against `keys` (unknown keys refused) and
/// returns the normalised table; `what` names the table in the unknown-key
/// message ("trial", "eval").
pub fn check_table(
    keys: &[Key],
    table: &toml::Table,
    base: &Path,
    what: &str,
) -> Result<toml::Table, KeyError> {
    let mut out = toml::Table::new();
    for (k, v) in table {
        let key = find(keys, k).ok_or_else(|| {
            KeyError::new(
                k.as_str(),
                format!("unknown {what} key (`smolsweep schema {what}` lists them)"),
            )
        })?;
        let v = check(key.kind, v, base)
            .map_err(|b| KeyError::new(format!("{k}{}", b.suffix), b.message))?;
        out.insert(k.clone(), v);
    }
    Ok(out)
}

/// Adds every default `table` does not set; a required key that is missing
/// is an error.
pub fn fill_defaults(keys: &[Key], table: &mut toml::Table) -> Result<(), KeyError> {
    for key in keys {
        if table.contains_key(key.name) {
            continue;
        }
        match key.default {
            Default::Required => {
                return Err(KeyError::new(key.name, "missing (every trial needs it)"))
            }
            Default::Unset => {}
            Default::Toml(_) => {
                if let Some(v) = key.default_value() {
                    table.insert(key.name.to_string(), v);
                }
            }
        }
    }
    Ok(())
}

/// Declares a schema once: the struct (serde, unknown fields refused) and
/// its key list, from one list of `/// doc` + `name: Type = default, kind;`
/// where default is `required`, `unset` or a TOML literal string.
macro_rules! schema {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident, keys $keys:ident;
        $( $(#[doc = $doc:literal])+ $key:ident : $ty:ty = $default:tt, $kind:expr; )+
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $key: $ty, )+
        }

        impl $name {
            /// Each key of `t` deserialised into its field's type, so a value
            /// its kind allows but its type cannot hold (a `u32` past
            /// 4294967295) is refused naming the key.
            fn check_types(t: &toml::Table) -> Result<(), $crate::keys::KeyError> {
                $(
                    if let Some(v) = t.get(stringify!($key)) {
                        v.clone().try_into::<$ty>().map_err(|e: toml::de::Error| {
                            $crate::keys::KeyError::new(stringify!($key), e.message().to_string())
                        })?;
                    }
                )+
                Ok(())
            }
        }

        /// Every key of the schema, in file order.
        pub static $keys: &[$crate::keys::Key] = &[
            $( $crate::keys::Key {
                name: stringify!($key),
                doc: concat!($($doc),+),
                kind: $kind,
                default: $crate::keys::default_of!($default),
            }, )+
        ];
    };
}
pub(crate) use schema;

macro_rules! default_of {
    (required) => {
        $crate::keys::Default::Required
    };
    (unset) => {
        $crate::keys::Default::Unset
    };
    ($lit:literal) => {
        $crate::keys::Default::Toml($lit)
    };
}
pub(crate) use default_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_paths_beside_the_file_or_hub_ids() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(d.path().join("data")).expect("mkdir");
        std::fs::write(d.path().join("data/train.jsonl"), "{}\n").expect("write");
        let kind = Kind::Paths;
        let ok = check(kind, &Value::String("data/train.jsonl".into()), d.path()).expect("path");
        assert_eq!(
            ok,
            Value::Array(vec![Value::String(
                d.path().join("data/train.jsonl").display().to_string()
            )])
        );
        // Id-shaped and nowhere: both readings are named.
        let e = check(kind, &Value::String("data/missing.jsonl".into()), d.path())
            .expect_err("missing");
        assert!(
            e.message.starts_with(&format!(
                "{} does not exist, and data/missing.jsonl is not in the local hub cache (searched ",
                d.path().join("data/missing.jsonl").display()
            )),
            "{}",
            e.message
        );
        let e = check(kind, &Value::String("./missing.jsonl".into()), d.path()).expect_err("path");
        assert_eq!(
            e.message,
            format!(
                "{}: no such file or directory",
                d.path().join("./missing.jsonl").display()
            )
        );
    }
}
