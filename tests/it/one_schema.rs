//! One schema: every trial key is judged by the same rule in a trial file
//! (`smolsweep train --config`) and as a sweep grid axis (`smolsweep run`).
//!
//! For every key of the trial schema, a valid and an invalid value are
//! derived from the key's declared kind and tried both ways (with
//! `--check`, which validates and starts nothing). Both must accept the
//! valid value, and both must refuse the invalid one naming the key, with
//! the same message. A key added to the schema is walked automatically.
//! (Regression: `warmup_ratio = 1.0` once passed the sweep check and
//! failed only inside the started trial.)

use std::path::Path;

use crate::common::{bin, root, stderr};
use smolsweep_config::keys::{Key, Kind, Range};
use smolsweep_config::trial::{stage_of, TRIAL_KEYS};
use smolsweep_config::Stage;

/// A valid and an invalid TOML value for a key of this kind.
fn samples(name: &str, kind: Kind) -> (String, String) {
    // batch_size must stay >= the base trial's micro_batch_size.
    if name == "batch_size" {
        return ("8".into(), "0".into());
    }
    if name == "stage" {
        return ("\"sft\"".into(), "\"nonsense\"".into());
    }
    let model = root().join("tests/fixtures/trainer/tiny-model");
    let data = root().join("tests/fixtures/trainer/sft.jsonl");
    match kind {
        Kind::Float(Range::Positive) => ("0.5".into(), "-1.0".into()),
        Kind::Float(Range::NonNegative) => ("0.5".into(), "-0.5".into()),
        Kind::Float(Range::UnitOpen) => ("0.5".into(), "1.0".into()),
        Kind::Int { min } => ((min + 1).to_string(), (min - 1).to_string()),
        // Within the base trial's batch_size of 4.
        Kind::IntOrAuto => ("2".into(), "0".into()),
        Kind::Bool => ("false".into(), "\"yes\"".into()),
        Kind::Choice(words) => (
            format!("{:?}", words[words.len() - 1]),
            "\"nonsense\"".into(),
        ),
        Kind::Device => ("\"cpu\"".into(), "\"tpu\"".into()),
        Kind::ModelDir => (
            format!("{:?}", model.display().to_string()),
            "\"no-such-model\"".into(),
        ),
        Kind::Paths => (
            format!("[{:?}]", data.display().to_string()),
            "[\"missing.jsonl\"]".into(),
        ),
        Kind::NewPath | Kind::OutputDir | Kind::Dir | Kind::Tasks => {
            ("\"somewhere\"".into(), "\"\"".into())
        }
        // `[resources]` kinds: no trial key has them.
        Kind::Gpus
        | Kind::Word
        | Kind::Words
        | Kind::SlurmTime
        | Kind::SlurmMem
        | Kind::Fractions => {
            unreachable!("{name}: not a trial key's kind")
        }
    }
}

/// The base trial without `extra`'s keys.
fn base_trial(extra: &[(&str, String)]) -> Vec<(String, String)> {
    let model = root().join("tests/fixtures/trainer/tiny-model");
    let data = root().join("tests/fixtures/trainer/sft.jsonl");
    [
        ("model", format!("{:?}", model.display().to_string())),
        ("data", format!("[{:?}]", data.display().to_string())),
        ("lr", "1e-3".to_string()),
        ("batch_size", "4".to_string()),
        ("micro_batch_size", "1".to_string()),
        ("max_steps", "1".to_string()),
        ("device", "\"cpu\"".to_string()),
    ]
    .into_iter()
    .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `smolsweep train --config --check` on the base trial with `extra` set.
fn as_trial(dir: &Path, extra: &[(&str, String)]) -> Result<(), String> {
    let mut keys = base_trial(extra);
    keys.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    if !keys.iter().any(|(k, _)| k == "output_dir") {
        keys.push(("output_dir".into(), "\"out\"".into()));
    }
    let text: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    check(
        &dir.join("trial.toml"),
        &text,
        &["train", "--check", "--config"],
    )
}

/// Writes `text` to `file` and runs the binary's `args` on it: `Ok` when
/// it accepts the file, else its stderr.
fn check(file: &Path, text: &str, args: &[&str]) -> Result<(), String> {
    std::fs::write(file, text).expect("write");
    let o = bin()
        .args(args)
        .arg(file)
        .env("SMOLSWEEP_SIMULATE_GPUS", "0")
        .output()
        .expect("spawn");
    if o.status.success() {
        Ok(())
    } else {
        Err(stderr(&o))
    }
}

/// `smolsweep run --check` on a sweep of the base trial with the grid
/// axes `key = [value]`.
fn as_axes(dir: &Path, axes: &[(&str, String)]) -> Result<(), String> {
    let mut text = String::from("[train]\n");
    for (k, v) in base_trial(axes) {
        text.push_str(&format!("{k} = {v}\n"));
    }
    text.push_str("[grid]\n");
    for (k, v) in axes {
        text.push_str(&format!("{k} = [{v}]\n"));
    }
    check(
        &dir.join("sweep.toml"),
        &text,
        &["run", "--check", "--no-progress"],
    )
}

/// The message after `LABEL: `, where LABEL is `key` plus any suffix
/// (`[0]`, `[0][0]`), so the two forms can be compared.
fn message_after(err: &str, label: &str) -> Option<String> {
    let needle = format!(": {label}");
    let at = err.find(&needle)?;
    let rest = &err[at + needle.len()..];
    let rest = rest.trim_start_matches(|c: char| c == '[' || c == ']' || c.is_ascii_digit());
    Some(rest.trim_start_matches(": ").trim().to_string())
}

#[test]
fn every_trial_key_is_judged_the_same_in_a_trial_file_and_a_sweep() {
    let d = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    // Every valid value of a stage at once (its own keys and the shared
    // ones): one trial file, one sweep of one point.
    let pairs = root().join("tests/fixtures/trainer/dpo_pairs.jsonl");
    for stage in [Stage::Sft, Stage::Dpo] {
        let value = |k: &Key| match k.name {
            "stage" => format!("\"{stage}\""),
            "data" if stage == Stage::Dpo => format!("[{:?}]", pairs.display().to_string()),
            _ => samples(k.name, k.kind).0,
        };
        let ours = |k: &&Key| stage_of(k.name).is_none_or(|s| s == stage);
        let valid: Vec<(&str, String)> = TRIAL_KEYS
            .iter()
            .filter(ours)
            .map(|k| (k.name, value(k)))
            .collect();
        if let Err(e) = as_trial(d.path(), &valid) {
            failures.push(format!("{stage}: trial file refused the valid values: {e}"));
        }
        let axes: Vec<(&str, String)> = TRIAL_KEYS
            .iter()
            .filter(ours)
            .filter(|k| k.kind.is_axis())
            .map(|k| (k.name, value(k)))
            .collect();
        if let Err(e) = as_axes(d.path(), &axes) {
            failures.push(format!("{stage}: sweep refused the valid axes: {e}"));
        }
    }
    // Each invalid value alone, both ways.
    for key in TRIAL_KEYS {
        let (valid, invalid) = samples(key.name, key.kind);
        let Err(trial_msg) = as_trial(d.path(), &[(key.name, invalid.clone())]) else {
            failures.push(format!(
                "{}: trial file accepted invalid {invalid}",
                key.name
            ));
            continue;
        };
        if !key.kind.is_axis() {
            // Set per sweep (output_dir by the orchestrator): never an axis.
            match as_axes(d.path(), &[(key.name, valid)]) {
                Ok(()) => failures.push(format!("{}: accepted as a grid axis", key.name)),
                Err(e) if !e.contains(&format!("grid.{}", key.name)) => {
                    failures.push(format!("{}: axis refusal does not name it: {e}", key.name))
                }
                Err(_) => {}
            }
            continue;
        }
        match as_axes(d.path(), &[(key.name, invalid.clone())]) {
            Ok(()) => failures.push(format!(
                "{}: sweep accepted invalid axis [{invalid}]",
                key.name
            )),
            Err(sweep_msg) => {
                let a = message_after(&trial_msg, key.name);
                let b = message_after(&sweep_msg, &format!("grid.{}", key.name));
                if a.is_none() || a != b {
                    failures.push(format!(
                        "{}: messages differ\n  trial: {trial_msg}\n  sweep: {sweep_msg}",
                        key.name
                    ));
                }
            }
        }
    }
    assert!(!d.path().join("out").exists(), "a trial wrote its output");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_error_message_is_printed_once() {
    let d = tempfile::tempdir().expect("tempdir");
    let e = as_trial(d.path(), &[("lr", "-1.0".into())]).expect_err("refused");
    assert_eq!(e.matches("must be a finite number > 0").count(), 1, "{e}");
}
