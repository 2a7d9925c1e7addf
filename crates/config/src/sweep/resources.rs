//! `[resources]`: where a sweep's trials run, and when one is given up
//! early. Not part of the frozen spec: a restarted sweep may run on a
//! machine with other GPUs, be given more retries, or have its stop rule
//! turned off (its stopped trials then train on to the end).

use toml::Value;

use crate::enums::word_enum;
use crate::keys::KeyError;
use crate::value::wrong_type;

word_enum! {
    /// Whether a sweep stops trials that are doing worse than the others.
    StopRule {
        /// Every trial trains to the end (what Figure 1 wants).
        None = "none",
        /// Google Vizier's median stopping rule (Golovin et al., 2017,
        /// section 3.2.2): at each `stop_at` fraction of its steps, a trial
        /// whose best training loss so far is worse than the median of the
        /// completed trials' running mean losses to the same fraction stops.
        Median = "median",
    }
}

/// Which GPUs the sweep may use.
#[derive(Debug, Clone, PartialEq)]
pub enum Gpus {
    /// Whatever `nvidia-smi` (or libtorch) finds; none means CPU.
    Auto,
    /// These indices; an empty list means CPU only, even on a GPU machine.
    List(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct Resources {
    pub gpus: Gpus,
    /// Trials sharing one GPU (or, without GPUs, CPU slots).
    pub slots_per_gpu: u32,
    /// Attempts after the first for a failed trial.
    pub max_retries: u32,
    pub stop_rule: StopRule,
    /// Fractions of a trial's planned steps at which the stop rule looks,
    /// ascending, each in (0, 1).
    pub stop_at: Vec<f64>,
    /// Completed trials the stop rule needs before it stops anything.
    pub stop_min_completed: u32,
}

/// Where the stop rule looks by default: a quarter, half and three
/// quarters of the way (never during the first quarter, where warmup and
/// the first drop of the loss make trials hard to compare).
pub const DEFAULT_STOP_AT: [f64; 3] = [0.25, 0.5, 0.75];

const KEYS: &[&str] = &[
    "gpus",
    "slots_per_gpu",
    "max_retries",
    "stop_rule",
    "stop_at",
    "stop_min_completed",
];

impl Default for Resources {
    /// An empty `[resources]`.
    fn default() -> Self {
        Resources {
            gpus: Gpus::Auto,
            slots_per_gpu: 1,
            max_retries: 2,
            stop_rule: StopRule::None,
            stop_at: DEFAULT_STOP_AT.to_vec(),
            stop_min_completed: 3,
        }
    }
}

impl Resources {
    pub fn from_table(t: &toml::Table) -> Result<Self, KeyError> {
        for k in t.keys() {
            if !KEYS.contains(&k.as_str()) {
                return Err(KeyError::new(
                    format!("resources.{k}"),
                    format!("unknown key (expected {})", KEYS.join(", ")),
                ));
            }
        }
        let gpus = match t.get("gpus") {
            None => Gpus::Auto,
            Some(Value::String(s)) if s == "auto" => Gpus::Auto,
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    match v {
                        Value::Integer(n) if *n >= 0 && *n <= u32::MAX as i64 => {
                            if out.contains(&(*n as u32)) {
                                return Err(KeyError::new(
                                    format!("resources.gpus[{i}]"),
                                    format!("GPU {n} is listed twice"),
                                ));
                            }
                            out.push(*n as u32)
                        }
                        v => {
                            return Err(KeyError::new(
                                format!("resources.gpus[{i}]"),
                                wrong_type("a GPU index (integer >= 0)", v),
                            ))
                        }
                    }
                }
                Gpus::List(out)
            }
            Some(v) => {
                return Err(KeyError::new(
                    "resources.gpus",
                    wrong_type("\"auto\", a list of GPU indices, or [] for CPU only", v),
                ))
            }
        };
        let stop_rule = match t.get("stop_rule") {
            None => StopRule::None,
            Some(Value::String(s)) => s
                .parse()
                .map_err(|e| KeyError::new("resources.stop_rule", e))?,
            Some(v) => {
                return Err(KeyError::new(
                    "resources.stop_rule",
                    wrong_type("\"none\" or \"median\"", v),
                ))
            }
        };
        Ok(Resources {
            gpus,
            slots_per_gpu: small_int(t, "slots_per_gpu", 1, 1)?,
            max_retries: small_int(t, "max_retries", 2, 0)?,
            stop_rule,
            stop_at: fractions(t, "stop_at")?,
            stop_min_completed: small_int(t, "stop_min_completed", 3, 1)?,
        })
    }
}

/// `stop_at`: a non-empty ascending list of fractions strictly between 0
/// and 1.
fn fractions(t: &toml::Table, key: &str) -> Result<Vec<f64>, KeyError> {
    let Some(v) = t.get(key) else {
        return Ok(DEFAULT_STOP_AT.to_vec());
    };
    let Value::Array(a) = v else {
        return Err(KeyError::new(
            format!("resources.{key}"),
            wrong_type(
                "a list of fractions of the planned steps, e.g. [0.25, 0.5, 0.75]",
                v,
            ),
        ));
    };
    if a.is_empty() {
        return Err(KeyError::new(
            format!("resources.{key}"),
            "is empty (give at least one fraction, or stop_rule = \"none\")",
        ));
    }
    let mut out: Vec<f64> = Vec::with_capacity(a.len());
    for (i, v) in a.iter().enumerate() {
        let f = match v {
            Value::Float(f) => *f,
            Value::Integer(n) => *n as f64,
            v => {
                return Err(KeyError::new(
                    format!("resources.{key}[{i}]"),
                    wrong_type("a fraction between 0 and 1", v),
                ))
            }
        };
        if !(f > 0.0 && f < 1.0) {
            return Err(KeyError::new(
                format!("resources.{key}[{i}]"),
                format!("{f} is not strictly between 0 and 1"),
            ));
        }
        if out.last().is_some_and(|&last| f <= last) {
            return Err(KeyError::new(
                format!("resources.{key}[{i}]"),
                format!(
                    "{f} does not come after {} (the list must ascend)",
                    out[i - 1]
                ),
            ));
        }
        out.push(f);
    }
    Ok(out)
}

fn small_int(t: &toml::Table, key: &str, default: u32, min: i64) -> Result<u32, KeyError> {
    match t.get(key) {
        None => Ok(default),
        Some(Value::Integer(n)) if *n >= min && *n <= 1024 => Ok(*n as u32),
        Some(Value::Integer(n)) => Err(KeyError::new(
            format!("resources.{key}"),
            format!("{n} is out of range ({min}..=1024)"),
        )),
        Some(v) => Err(KeyError::new(
            format!("resources.{key}"),
            wrong_type("an integer", v),
        )),
    }
}
