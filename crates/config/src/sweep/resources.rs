//! `[resources]`: where a sweep's trials run. Not part of the frozen spec:
//! a restarted sweep may run on a machine with other GPUs, or be given
//! more retries.

use toml::Value;

use crate::keys::KeyError;
use crate::value::wrong_type;

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
}

const KEYS: &[&str] = &["gpus", "slots_per_gpu", "max_retries"];

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
        Ok(Resources {
            gpus,
            slots_per_gpu: small_int(t, "slots_per_gpu", 1, 1)?,
            max_retries: small_int(t, "max_retries", 2, 0)?,
        })
    }
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
