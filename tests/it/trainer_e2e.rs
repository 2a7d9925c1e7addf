//! `smolsweep train` end to end: parity of the losses with a PyTorch /
//! transformers reference loop, resume identity after SIGKILL, divergence
//! (exit 3), SIGTERM (exit 4, then resume), bad data, and a few steps on
//! the real SmolLM2-135M-Instruct lowering the loss.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::common::*;
use serde_json::Value;

fn fixture(p: &str) -> PathBuf {
    root().join("tests/fixtures/trainer").join(p)
}

/// Writes a trial TOML into `dir` from `base` (a fixture TOML) with
/// `output_dir` redirected and extra lines appended (later keys win by
/// replacing earlier ones).
fn trial(dir: &Path, base: &str, overrides: &[(&str, &str)]) -> PathBuf {
    let text = std::fs::read_to_string(fixture(base)).expect("fixture toml");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            !overrides
                .iter()
                .any(|(k, _)| l.starts_with(&format!("{k} =")))
        })
        .map(|l| match l.split_once(" = ") {
            Some(("model", v)) => format!("model = \"{}\"", fixture(v.trim_matches('"')).display()),
            Some(("data", _)) if !overrides.iter().any(|(k, _)| *k == "data") => {
                format!("data = [\"{}\"]", fixture("sft.jsonl").display())
            }
            Some(("output_dir", _)) => format!("output_dir = \"{}\"", dir.join("out").display()),
            _ => l.to_owned(),
        })
        .collect();
    for (k, v) in overrides {
        lines.push(format!("{k} = {v}"));
    }
    lines.push(format!("cache_dir = \"{}\"", dir.join("cache").display()));
    let p = dir.join("trial.toml");
    std::fs::write(&p, lines.join("\n") + "\n").expect("write trial");
    p
}

fn spawn(cfg: &Path, resume: bool) -> Child {
    let mut c = bin();
    c.args([
        "train",
        "--config",
        cfg.to_str().expect("path"),
        "--no-progress",
    ]);
    // The data statistics are info-level logs.
    c.env("SMOLSWEEP_LOG", "info");
    if resume {
        c.arg("--resume");
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn train")
}

fn events(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn losses(evs: &[Value]) -> Vec<(u64, f64)> {
    evs.iter()
        .filter(|e| e["event"] == "step")
        .map(|e| {
            (
                e["step"].as_u64().expect("step"),
                e["loss"].as_f64().expect("loss"),
            )
        })
        .collect()
}

fn train_to_end(cfg: &Path, resume: bool) -> (i32, Vec<Value>, String) {
    let o = spawn(cfg, resume).wait_with_output().expect("wait");
    (
        o.status.code().unwrap_or(-1),
        events(&o.stdout),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn losses_match_the_reference_loop_sum_and_mean() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("reference_losses.json")).expect("ref"),
    )
    .expect("json");
    for name in ["sum", "mean"] {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = trial(dir.path(), &format!("parity_{name}.toml"), &[]);
        let (code, evs, err) = train_to_end(&cfg, false);
        assert_eq!(code, 0, "{err}");
        let ours = losses(&evs);
        let theirs = reference[name].as_array().expect("losses");
        assert_eq!(ours.len(), 20);
        for ((step, a), b) in ours.iter().zip(theirs) {
            let b = b.as_f64().expect("f");
            assert!(
                (a - b).abs() / b.abs() < 1e-4,
                "{name} step {step}: {a} vs reference {b}"
            );
        }
        // The export loads as a model.
        let done = evs
            .iter()
            .find(|e| e["event"] == "done")
            .expect("done event");
        let export = done["export"].as_str().expect("export");
        assert!(Path::new(export).join("model.safetensors").is_file());
        assert!(Path::new(export).join("tokenizer.json").is_file());
    }
}

/// `cuda_graphs = true` where there is no CUDA device: the trial says
/// once why it trains eagerly, and trains exactly as without the key (the
/// reference loop's losses; checkpoints interchangeable, the key is not in
/// the fingerprint).
#[test]
fn cuda_graphs_on_the_cpu_trains_eagerly_and_says_why() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("reference_losses.json")).expect("ref"),
    )
    .expect("json");
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = trial(dir.path(), "parity_sum.toml", &[("cuda_graphs", "true")]);
    let (code, evs, err) = train_to_end(&cfg, false);
    assert_eq!(code, 0, "{err}");
    let why = "cuda_graphs is on but unused, training eagerly: it needs a CUDA device";
    assert_eq!(err.matches(why).count(), 1, "{err}");
    let ours = losses(&evs);
    let theirs = reference["sum"].as_array().expect("losses");
    assert_eq!(ours.len(), theirs.len());
    for ((step, a), b) in ours.iter().zip(theirs) {
        let b = b.as_f64().expect("f");
        assert!((a - b).abs() / b.abs() < 1e-4, "step {step}: {a} vs {b}");
    }
}

#[test]
fn resume_after_sigkill_gives_identical_losses_and_weights() {
    let straight = tempfile::tempdir().expect("tmp");
    let over = [
        ("max_steps", "12"),
        ("checkpoint_every_steps", "3"),
        ("keep_checkpoints", "3"),
    ];
    let cfg = trial(straight.path(), "parity_sum.toml", &over);
    let (code, full, err) = train_to_end(&cfg, false);
    assert_eq!(code, 0, "{err}");

    let broken = tempfile::tempdir().expect("tmp");
    let cfg2 = trial(broken.path(), "parity_sum.toml", &over);
    let mut child = spawn(&cfg2, false);
    let stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let ev: Value = serde_json::from_str(&line).expect("event");
        let is_ckpt7 = ev["event"] == "checkpoint" && ev["step"] == 6;
        seen.push(ev);
        if is_ckpt7 {
            child.kill().expect("SIGKILL");
            break;
        }
    }
    let _ = child.wait();
    // Corrupt the newest checkpoint: resume must fall back to step 3.
    let ckpts = broken.path().join("out/checkpoints");
    let newest = ckpts.join("step-00000006/state.safetensors");
    let mut b = std::fs::read(&newest).expect("ckpt");
    let n = b.len();
    b[n / 2] ^= 0x55;
    std::fs::write(&newest, b).expect("corrupt");
    let (code, rest, err) = train_to_end(&cfg2, true);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipping checkpoint"), "{err}");
    let resumed = losses(&rest);
    assert_eq!(resumed.first().map(|x| x.0), Some(4), "resumed from step 3");
    let all: std::collections::BTreeMap<u64, f64> = losses(&full).into_iter().collect();
    for (step, l) in resumed {
        let want = all[&step];
        assert!(
            (l - want).abs() <= 1e-6 * want.abs().max(1.0),
            "step {step}: {l} vs {want}"
        );
    }
    let a = std::fs::read(straight.path().join("out/final/model.safetensors")).expect("a");
    let b = std::fs::read(broken.path().join("out/final/model.safetensors")).expect("b");
    assert!(a == b, "final weights differ");
}

#[test]
fn absurd_learning_rate_diverges_with_status_3() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = trial(
        dir.path(),
        "parity_sum.toml",
        &[("lr", "1e6"), ("warmup_ratio", "0.0"), ("max_steps", "40")],
    );
    let (code, evs, err) = train_to_end(&cfg, false);
    assert_eq!(code, 3, "{err}");
    let d = evs
        .iter()
        .find(|e| e["event"] == "diverged")
        .expect("diverged event");
    assert!(d["step"].as_u64().is_some());
    assert_eq!(d["rule"], "non_finite", "{d}");
}

/// The diverged event of a run, checked against the step events before
/// it: the run stopped right after the step the rule fired on, with no
/// export.
fn stopped_at(dir: &Path, code: i32, evs: &[Value], err: &str) -> (u64, Value) {
    assert_eq!(code, 3, "{err}");
    let d = evs
        .iter()
        .find(|e| e["event"] == "diverged")
        .expect("diverged event")
        .clone();
    let step = d["step"].as_u64().expect("step");
    assert_eq!(losses(evs).last().map(|x| x.0), Some(step), "{d}");
    assert!(!evs.iter().any(|e| e["event"] == "done"));
    assert!(
        !dir.join("out/final").exists(),
        "a diverged run is not exported"
    );
    assert!(err.contains("diverged"), "{err}");
    (step, d)
}

// LR 1e4 on the tiny model (no weight decay, which would blow the weights
// up to a NaN instead): from step 3 the loss is ln(259) = 5.5568, a
// uniform guess, and the gradient norm exactly 0. Its budget is 120 steps
// (10 epochs of 12), 12 of them warmup.
const COLLAPSE: [(&str, &str); 3] = [("lr", "1e4"), ("weight_decay", "0.0"), ("max_steps", "200")];

#[test]
fn a_collapsed_run_stops_early_as_zero_grad() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = trial(dir.path(), "parity_sum.toml", &COLLAPSE);
    let (code, evs, err) = train_to_end(&cfg, false);
    let (step, d) = stopped_at(dir.path(), code, &evs, &err);
    assert_eq!(d["rule"], "zero_grad", "{d}");
    // 20 zero-gradient steps (the default patience), long before step 120.
    let zero = losses(&evs).len() as u64
        - evs
            .iter()
            .filter(|e| e["event"] == "step" && e["grad_norm"].as_f64() != Some(0.0))
            .count() as u64;
    assert_eq!(zero, 20, "{evs:?}");
    assert!(step < 30, "stopped at {step}");
    let msg = d["message"].as_str().expect("message");
    assert!(msg.contains(&format!("up to step {step}")), "{msg}");
    let ln_vocab = 259f64.ln();
    let last = d["last_finite_loss"].as_f64().expect("loss");
    assert!((last - ln_vocab).abs() < 1e-4, "{last}");
}

#[test]
fn the_loss_rule_counts_after_warmup_and_each_rule_can_be_turned_off() {
    // Without the zero-gradient rule the loss rule catches it: 5 steps
    // (the patience) after the 12 of warmup.
    let dir = tempfile::tempdir().expect("tmp");
    let mut over = COLLAPSE.to_vec();
    over.extend([
        ("divergence_zero_grad", "false"),
        ("divergence_patience", "5"),
    ]);
    let cfg = trial(dir.path(), "parity_sum.toml", &over);
    let (code, evs, err) = train_to_end(&cfg, false);
    let (step, d) = stopped_at(dir.path(), code, &evs, &err);
    assert_eq!(
        (step, d["rule"].as_str()),
        (17, Some("loss_plateau")),
        "{d}"
    );
    let msg = d["message"].as_str().expect("message");
    assert!(msg.contains("ln(vocab) 5.5568"), "{msg}");

    // Both off: the collapsed run trains on to its budget.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = trial(
        dir.path(),
        "parity_sum.toml",
        &[
            ("lr", "1e4"),
            ("weight_decay", "0.0"),
            ("max_steps", "24"),
            ("divergence_zero_grad", "false"),
            ("divergence_loss", "false"),
        ],
    );
    let (code, evs, err) = train_to_end(&cfg, false);
    assert_eq!(code, 0, "{err}");
    assert_eq!(losses(&evs).len(), 24);
}

#[test]
fn sigterm_checkpoints_exits_4_and_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = trial(dir.path(), "parity_sum.toml", &[("max_steps", "400")]);
    let mut child = spawn(&cfg, false);
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if line.expect("line").contains("\"step\"") {
            break;
        }
    }
    // SAFETY-free: signal the child through the kill command.
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let rest: Vec<Value> = lines
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(4));
    let ck = rest
        .iter()
        .find(|e| e["event"] == "checkpoint")
        .expect("checkpoint event");
    let at = ck["step"].as_u64().expect("step");
    // Resume for a few more steps only.
    let cfg2 = trial(dir.path(), "parity_sum.toml", &[("max_steps", "400")]);
    let mut child = spawn(&cfg2, true);
    let stdout = child.stdout.take().expect("stdout");
    let first = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .find(|e| e["event"] == "step")
        .expect("a step after resume");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first["step"].as_u64(), Some(at + 1));
}

/// USR2 (Slurm's warning before a job's time limit) stops the run as
/// SIGTERM does once it has taken a step, and the event stream says it
/// was preempted, after the checkpoint the job resumes from.
#[test]
fn usr2_checkpoints_says_preempted_and_exits_4() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = trial(dir.path(), "parity_sum.toml", &[("max_steps", "400")]);
    let mut child = spawn(&cfg, false);
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if line.expect("line").contains("\"step\"") {
            break;
        }
    }
    let st = std::process::Command::new("kill")
        .args(["-USR2", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let rest: Vec<Value> = lines
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(4));
    let ck = rest
        .iter()
        .position(|e| e["event"] == "checkpoint")
        .expect("checkpoint event");
    let pre = rest
        .iter()
        .position(|e| e["event"] == "preempted")
        .expect("preempted event");
    assert!(ck < pre, "{rest:?}");
    assert_eq!(rest[pre]["step"], rest[ck]["step"]);
    assert_eq!(rest[pre]["checkpoint"], rest[ck]["path"]);
}

#[test]
fn bad_data_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n{\"messages\": [oops]}\n").expect("w");
    let cfg = trial(
        dir.path(),
        "parity_sum.toml",
        &[("data", &format!("[\"{}\"]", bad.display()))],
    );
    let (code, _, err) = train_to_end(&cfg, false);
    assert_eq!(code, 1);
    assert!(err.contains("bad.jsonl, line 2"), "{err}");

    std::fs::write(&bad, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n{\"text\": \"x\"}\n").expect("w");
    let (code, _, err) = train_to_end(&cfg, false);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.jsonl, row 2") && err.contains("messages"),
        "{err}"
    );

    std::fs::write(&bad, "").expect("w");
    let (code, _, err) = train_to_end(&cfg, false);
    assert_eq!(code, 1);
    assert!(err.contains("bad.jsonl") && err.contains("empty"), "{err}");

    // No assistant turn: a counted skip, training goes on.
    let mut text = String::new();
    for i in 0..8 {
        text.push_str(&format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"q{i}\"}}, {{\"role\": \"assistant\", \"content\": \"a{i}\"}}]}}\n"));
    }
    text.push_str("{\"messages\": [{\"role\": \"user\", \"content\": \"alone\"}]}\n");
    std::fs::write(&bad, text).expect("w");
    let cfg = trial(
        dir.path(),
        "parity_sum.toml",
        &[
            ("data", &format!("[\"{}\"]", bad.display())),
            ("max_steps", "2"),
        ],
    );
    let (code, _, err) = train_to_end(&cfg, false);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipped_no_assistant=1"), "{err}");

    let cfg = trial(
        dir.path(),
        "parity_sum.toml",
        &[("data", "[\"/nonexistent/x.jsonl\"]")],
    );
    let (code, _, err) = train_to_end(&cfg, false);
    assert_eq!(code, 1);
    assert!(
        err.contains("data[0]") && err.contains("/nonexistent/x.jsonl"),
        "{err}"
    );
}

#[test]
fn a_few_steps_on_the_real_model_lower_the_loss() {
    let model = real_model();
    let dir = tempfile::tempdir().expect("tmp");
    // Eight conversations and batch_size 8: every step sees the same data,
    // so the loss must fall step over step.
    let eight: String = std::fs::read_to_string(fixture("sft.jsonl"))
        .expect("sft")
        .lines()
        .take(8)
        .map(|l| format!("{l}\n"))
        .collect();
    let data = dir.path().join("eight.jsonl");
    std::fs::write(&data, eight).expect("write");
    let cfg = dir.path().join("real.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\ndata = [\"{}\"]\nchat_template = \"model\"\nmax_seq_len = 128\nlr = 1e-4\nbatch_size = 8\nmicro_batch_size = 4\nepochs = 5\nmax_steps = 5\nwarmup_ratio = 0.0\nschedule = \"constant\"\nseed = 1\noutput_dir = \"{}\"\ncache_dir = \"{}\"\ndevice = \"cpu\"\n",
            model.display(),
            data.display(),
            dir.path().join("out").display(),
            dir.path().join("cache").display()
        ),
    )
    .expect("write");
    let (code, evs, err) = train_to_end(&cfg, false);
    assert_eq!(code, 0, "{err}");
    let l = losses(&evs);
    assert_eq!(l.len(), 5);
    let (first, last) = (l[0].1, l[4].1);
    assert!(last < first, "loss did not go down: {l:?}");
}
