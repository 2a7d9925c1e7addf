//! Grid axes: a list of values, or a generator (`{ log_space = [lo, hi, n] }`
//! for positive floats, `{ pow2 = [lo, hi] }` for positive integers), every
//! value checked by the trial schema's rule for the axis's key; and the
//! grid points they span, with their canonical identity and label.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use toml::Value;

use crate::keys::{check, Key, KeyError, Kind, Range};
use crate::value::{as_number, round_sig, to_json, value_text, wrong_type};

/// One grid axis: a trial key and its values, in the order given.
#[derive(Debug, Clone)]
pub struct Axis {
    pub key: String,
    pub values: Vec<Value>,
}

/// A grid point: axis key -> value (sorted by key).
pub type Point = BTreeMap<String, Value>;

/// Expands and checks the axis `grid.NAME = v` of trial key `key`.
pub fn axis(key: &Key, v: &Value, base: &Path) -> Result<Axis, KeyError> {
    let label = format!("grid.{}", key.name);
    let values = match v {
        Value::Array(a) => {
            if a.is_empty() {
                return Err(KeyError::new(
                    label,
                    "is an empty list (an axis needs at least one value)",
                ));
            }
            let mut out = Vec::with_capacity(a.len());
            for (i, item) in a.iter().enumerate() {
                let v = check(key.kind, item, base)
                    .map_err(|b| KeyError::new(format!("{label}[{i}]{}", b.suffix), b.message))?;
                out.push(v);
            }
            out
        }
        Value::Table(t) => {
            let mut it = t.iter();
            let (Some((gen, args)), None) = (it.next(), it.next()) else {
                return Err(KeyError::new(
                    label,
                    "a generated axis is a table with one key: log_space = [lo, hi, n] or pow2 = [lo, hi]",
                ));
            };
            let gkey = format!("{label}.{gen}");
            let values = match gen.as_str() {
                "log_space" => log_space(key.kind, args),
                "pow2" => pow2(key.kind, args),
                _ => Err("unknown generator (expected log_space or pow2)".to_string()),
            }
            .map_err(|m| KeyError::new(&gkey, m))?;
            for v in &values {
                check(key.kind, v, base).map_err(|b| KeyError::new(&gkey, b.message))?;
            }
            values
        }
        _ => {
            return Err(KeyError::new(
                label,
                wrong_type(
                    "a list, { log_space = [lo, hi, n] } or { pow2 = [lo, hi] }",
                    v,
                ),
            ))
        }
    };
    for (i, a) in values.iter().enumerate() {
        if values[..i].contains(a) {
            return Err(KeyError::new(
                label,
                format!("value {} appears twice", value_text(a)),
            ));
        }
    }
    Ok(Axis {
        key: key.name.to_string(),
        values,
    })
}

fn log_space(kind: Kind, args: &Value) -> Result<Vec<Value>, String> {
    if kind != Kind::Float(Range::Positive) {
        return Err("log_space is for positive float keys (lr, adam_eps, grad_clip)".into());
    }
    let Value::Array(a) = args else {
        return Err(wrong_type("[lo, hi, n]", args));
    };
    let (lo, hi, n) = match a.as_slice() {
        [lo, hi, Value::Integer(n)] => match (as_number(lo), as_number(hi)) {
            (Some(lo), Some(hi)) => (lo, hi, *n),
            _ => return Err("lo and hi must be numbers".into()),
        },
        _ => return Err("expected [lo, hi, n] with n an integer".into()),
    };
    if !(lo.is_finite() && lo > 0.0 && hi.is_finite() && hi > 0.0) {
        return Err("lo and hi must be finite and > 0".into());
    }
    if !(1..=1000).contains(&n) {
        return Err(format!("n = {n} must be in 1..=1000"));
    }
    if n == 1 {
        return Ok(vec![Value::Float(lo)]);
    }
    if hi <= lo {
        return Err("hi must be larger than lo".into());
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

fn pow2(kind: Kind, args: &Value) -> Result<Vec<Value>, String> {
    if !matches!(kind, Kind::Int { min: 1 } | Kind::IntOrAuto) {
        return Err("pow2 is for positive integer keys (batch_size, ...)".into());
    }
    let (lo, hi) = match args {
        Value::Array(a) => match a.as_slice() {
            [Value::Integer(lo), Value::Integer(hi)] => (*lo, *hi),
            _ => return Err("expected [lo, hi] (integers)".into()),
        },
        _ => return Err(wrong_type("[lo, hi]", args)),
    };
    for (name, x) in [("lo", lo), ("hi", hi)] {
        if x < 1 || (x & (x - 1)) != 0 {
            return Err(format!("{name} = {x} is not a positive power of two"));
        }
    }
    if hi < lo {
        return Err("hi must not be smaller than lo".into());
    }
    let mut out = Vec::new();
    let mut x = lo;
    while x <= hi {
        out.push(Value::Integer(x));
        x *= 2;
    }
    Ok(out)
}

/// Every grid point, the cartesian product of the axes (last axis
/// fastest). An empty grid is one point: the `[train]` table alone.
pub fn points(axes: &[Axis]) -> Vec<Point> {
    let mut points = vec![Point::new()];
    for axis in axes {
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
