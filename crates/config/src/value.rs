//! TOML values as messages and records show them: type names for errors,
//! short text for labels (`3e-6`, `4`, `chatml`), and the JSON form the
//! sweep record stores.

use serde_json::Value as Json;
use toml::Value;

/// "a string", "an integer", ... for "expected X, got Y" messages.
pub fn type_name(v: &Value) -> &'static str {
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

/// `expected EXPECTED, got a string ("fast")`.
pub fn wrong_type(expected: &str, got: &Value) -> String {
    format!("expected {expected}, got {} ({got})", type_name(got))
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

/// The JSON form of a TOML value (datetimes as strings).
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

/// A number given as a float or an integer.
pub fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// `x` rounded to `digits` significant digits.
pub fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let text = format!("{:.*e}", (digits - 1) as usize, x);
    text.parse().unwrap_or(x)
}
