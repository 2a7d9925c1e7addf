//! `smolsweep train` of a DPO trial end to end on the tiny model and
//! generated preference pairs: the first step with policy == reference
//! (loss ln 2, zero rewards), learning (the loss falls, the reward
//! accuracy rises), the reference cache reused, separate and concatenated
//! forwards agreeing, resume identity after SIGKILL, and bad pairs named
//! by file and row.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::common::*;
use serde_json::{json, Value};

fn tiny_model() -> PathBuf {
    root().join("tests/fixtures/trainer/tiny-model")
}

/// `n` pairs: the chosen answer is the sum, the rejected one a wrong
/// number; half as message lists, half as prompt + strings.
fn write_pairs(path: &Path, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        let (a, b) = (i % 7, (i * 3) % 5);
        let q = format!("{a}+{b}=?");
        let good = format!("{}", a + b);
        let bad = format!("{}", a + b + 3);
        let row = if i % 2 == 0 {
            json!({
                "chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": good}],
                "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": bad}],
            })
        } else {
            json!({"prompt": q, "chosen": good, "rejected": bad})
        };
        text.push_str(&format!("{row}\n"));
    }
    std::fs::write(path, text).expect("write pairs");
}

/// A DPO trial in `dir` over `data` (generated pairs when `None`).
fn trial(dir: &Path, data: Option<&Path>, extra: &[(&str, &str)]) -> PathBuf {
    let pairs = dir.join("pairs.jsonl");
    if data.is_none() {
        write_pairs(&pairs, 48);
    }
    let mut keys: Vec<(String, String)> = [
        ("stage", "\"dpo\"".to_string()),
        ("model", format!("{:?}", tiny_model().display().to_string())),
        (
            "data",
            format!("[{:?}]", data.unwrap_or(&pairs).display().to_string()),
        ),
        ("chat_template", "\"chatml\"".into()),
        ("max_seq_len", "64".into()),
        ("lr", "3e-3".into()),
        ("batch_size", "8".into()),
        ("micro_batch_size", "4".into()),
        ("epochs", "2".into()),
        ("seed", "7".into()),
        ("device", "\"cpu\"".into()),
        ("dtype", "\"f32\"".into()),
        ("checkpoint_every_steps", "100".into()),
        (
            "output_dir",
            format!("{:?}", dir.join("out").display().to_string()),
        ),
        (
            "cache_dir",
            format!("{:?}", dir.join("cache").display().to_string()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        keys.retain(|(key, _)| key != k);
        keys.push((k.to_string(), v.to_string()));
    }
    let text: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let p = dir.join("trial.toml");
    std::fs::write(&p, text).expect("write trial");
    p
}

fn spawn(cfg: &Path, resume: bool) -> Child {
    let mut c = bin();
    c.args(["train", "--config"])
        .arg(cfg)
        .arg("--no-progress")
        .env("SMOLSWEEP_LOG", "info");
    if resume {
        c.arg("--resume");
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn train")
}

fn train(cfg: &Path, resume: bool) -> (i32, Vec<Value>, String) {
    let o = spawn(cfg, resume).wait_with_output().expect("wait");
    let evs = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        o.status.code().unwrap_or(-1),
        evs,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn steps(evs: &[Value]) -> Vec<&Value> {
    evs.iter().filter(|e| e["event"] == "step").collect()
}

fn f(e: &Value, k: &str) -> f64 {
    e[k].as_f64().unwrap_or_else(|| panic!("{k} in {e}"))
}

#[test]
fn dpo_starts_at_ln_2_learns_and_exports() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = trial(dir.path(), None, &[]);
    let (code, evs, err) = train(&cfg, false);
    assert_eq!(code, 0, "{err}");
    let s = steps(&evs);
    // 48 pairs, 8 per step, 2 epochs.
    assert_eq!(s.len(), 12, "{err}");
    // Step 1 runs the initial policy, which is the reference.
    let first = s[0];
    assert!(
        (f(first, "loss") - std::f64::consts::LN_2).abs() < 1e-5,
        "{first}"
    );
    for k in ["rewards/chosen", "rewards/rejected", "rewards/margin"] {
        assert!(f(first, k).abs() < 1e-5, "{k}: {first}");
    }
    assert_eq!(f(first, "rewards/accuracy"), 0.0, "{first}");
    assert!(f(first, "logps/chosen") < 0.0 && f(first, "logps/rejected") < 0.0);
    // It learns the preference: over the second epoch (steps 7-12) the
    // loss is well below ln 2 and most pairs are ranked right.
    let mean = |k: &str| s[6..].iter().map(|e| f(e, k)).sum::<f64>() / 6.0;
    assert!(mean("loss") < 0.6, "{}", mean("loss"));
    assert!(
        mean("rewards/accuracy") > 0.6,
        "{}",
        mean("rewards/accuracy")
    );
    assert!(mean("rewards/margin") > 0.2, "{}", mean("rewards/margin"));
    assert!(
        err.contains("tokenised preference pairs") && err.contains("pairs=48"),
        "{err}"
    );
    // The export is a causal LM directory.
    let done = evs.iter().find(|e| e["event"] == "done").expect("done");
    let export = PathBuf::from(done["export"].as_str().expect("export"));
    assert!(export.join("model.safetensors").is_file() && export.join("config.json").is_file());

    // A second trial of the same data and model reads the cached pairs and
    // reference log-probs, and trains identically.
    let other = tempfile::tempdir().expect("tmp");
    let cfg2 = trial(
        other.path(),
        Some(&dir.path().join("pairs.jsonl")),
        &[(
            "cache_dir",
            &format!("{:?}", dir.path().join("cache").display().to_string()),
        )],
    );
    let (code, evs2, err2) = train(&cfg2, false);
    assert_eq!(code, 0, "{err2}");
    assert!(err2.contains("reference log-probs from cache"), "{err2}");
    assert!(err2.contains("preference pairs from cache"), "{err2}");
    let a: Vec<f64> = s.iter().map(|e| f(e, "loss")).collect();
    let b: Vec<f64> = steps(&evs2).iter().map(|e| f(e, "loss")).collect();
    assert_eq!(a, b);
}

#[test]
fn concatenated_and_separate_forwards_give_the_same_steps() {
    let run = |forward: &str, loss: &str, beta: &str| {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = trial(
            dir.path(),
            None,
            &[
                ("forward", forward),
                ("dpo_loss", loss),
                ("beta", beta),
                ("max_steps", "4"),
            ],
        );
        let (code, evs, err) = train(&cfg, false);
        assert_eq!(code, 0, "{err}");
        steps(&evs)
            .iter()
            .map(|e| {
                [
                    f(e, "loss"),
                    f(e, "rewards/margin"),
                    f(e, "grad_norm"),
                    f(e, "logps/chosen"),
                ]
            })
            .collect::<Vec<_>>()
    };
    for (loss, beta) in [("\"dpo_norm\"", "5.0"), ("\"dpo\"", "0.1")] {
        let a = run("\"separate\"", loss, beta);
        let b = run("\"concatenated\"", loss, beta);
        assert_eq!(a.len(), 4);
        for (x, y) in a.iter().zip(&b) {
            for (p, q) in x.iter().zip(y) {
                assert!(
                    (p - q).abs() <= 1e-4 * p.abs().max(1e-3),
                    "{loss}: {x:?} vs {y:?}"
                );
            }
        }
    }
}

#[test]
fn dpo_resumes_after_sigkill_with_identical_losses_and_weights() {
    let over = [
        ("max_steps", "6"),
        ("checkpoint_every_steps", "2"),
        ("keep_checkpoints", "3"),
    ];
    let straight = tempfile::tempdir().expect("tmp");
    let cfg = trial(straight.path(), None, &over);
    let (code, full, err) = train(&cfg, false);
    assert_eq!(code, 0, "{err}");

    let broken = tempfile::tempdir().expect("tmp");
    let cfg2 = trial(broken.path(), None, &over);
    let mut child = spawn(&cfg2, false);
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        let ev: Value = serde_json::from_str(&line.expect("line")).expect("event");
        if ev["event"] == "checkpoint" && ev["step"] == 4 {
            child.kill().expect("SIGKILL");
            break;
        }
    }
    let _ = child.wait();
    let (code, rest, err) = train(&cfg2, true);
    assert_eq!(code, 0, "{err}");
    let resumed = steps(&rest);
    assert_eq!(resumed[0]["step"], 5, "resumed after step 4");
    let all = steps(&full);
    for e in resumed {
        let want = all[e["step"].as_u64().expect("step") as usize - 1];
        for k in ["loss", "rewards/margin", "rewards/accuracy"] {
            assert!(
                (f(e, k) - f(want, k)).abs() <= 1e-6 * f(want, k).abs().max(1.0),
                "{k}: {e} vs {want}"
            );
        }
    }
    let a = std::fs::read(straight.path().join("out/final/model.safetensors")).expect("a");
    let b = std::fs::read(broken.path().join("out/final/model.safetensors")).expect("b");
    assert!(a == b, "final weights differ");
}

#[test]
fn bad_preference_data_names_the_file_and_row() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = json!({"prompt": "q", "chosen": "a", "rejected": "b"});
    for (bad, want) in [
        (json!({"prompt": "q", "chosen": "a"}), "no `rejected` field"),
        (
            json!({"chosen": [{"role": "user"}], "rejected": "b", "prompt": "q"}),
            "chosen[0].content is missing or not a string",
        ),
        (
            json!({"messages": [{"role": "user", "content": "q"}]}),
            "no `chosen` field",
        ),
    ] {
        let data = dir.path().join("bad.jsonl");
        std::fs::write(&data, format!("{good}\n{good}\n{bad}\n")).expect("write");
        let cfg = trial(dir.path(), Some(&data), &[]);
        let (code, _, err) = train(&cfg, false);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!("{}, row 3: {want}", data.display())),
            "{want}: {err}"
        );
    }
    // A key of another stage, in a DPO-looking SFT trial.
    let cfg = trial(dir.path(), None, &[("stage", "\"sft\""), ("beta", "5.0")]);
    let (code, _, err) = train(&cfg, false);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("beta") && err.contains("stage \"dpo\""),
        "{err}"
    );
}

#[test]
fn trials_started_together_compute_the_reference_once() {
    let data_dir = tempfile::tempdir().expect("tmp");
    let pairs = data_dir.path().join("pairs.jsonl");
    write_pairs(&pairs, 48);
    let cache = format!("{:?}", data_dir.path().join("cache").display().to_string());
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let children: Vec<Child> = dirs
        .iter()
        .map(|d| {
            let cfg = trial(
                d.path(),
                Some(&pairs),
                &[("cache_dir", &cache), ("max_steps", "2")],
            );
            spawn(&cfg, false)
        })
        .collect();
    let errs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().expect("wait");
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert!(o.status.success(), "{err}");
            err
        })
        .collect();
    let count = |what: &str| errs.iter().filter(|e| e.contains(what)).count();
    assert_eq!(count("reference log-probs computed"), 1, "{errs:?}");
    assert_eq!(count("reference log-probs from cache"), 1, "{errs:?}");
    assert_eq!(count("tokenised preference pairs"), 1, "{errs:?}");
}
