//! Reward-model parity with an independent reference
//! (scripts/reference/rm_reference.py, pinned versions; the fixture
//! `tests/fixtures/trainer/rm_reference.json` is committed, so these tests
//! need no Python):
//! - the first 10 RM steps equal a `LlamaForSequenceClassification` +
//!   torch AdamW loop with open-instruct's head init, on the same
//!   micro-batches, within 1e-4 (loss, accuracy, margin, rewards;
//!   relative above 1, absolute below);
//! - an RM trained from a model whose pad is its EOS (as SmolLM2 ships),
//!   exported, and loaded unchanged by `transformers`, scores 8
//!   conversations as smolsweep does within 1e-4 (fp32 CPU), where the
//!   pad == eos config would not.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;
use smolsweep_model::{DType, DeviceSpec, RewardModel};

pub(crate) fn fixture(p: &str) -> PathBuf {
    root().join("tests/fixtures/trainer").join(p)
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("rm_reference.json")).expect("fixture"))
        .expect("json")
}

/// The RM parity trial in `dir`, with `model` and `extra` keys.
pub(crate) fn trial(dir: &Path, model: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture("parity_rm.toml"))
        .expect("toml")
        .replace(
            "output_dir = \"out-rm\"",
            &format!("output_dir = {:?}", dir.join("out").display().to_string()),
        )
        .replace(
            "model = \"tiny-model\"",
            &format!("model = {:?}", model.display().to_string()),
        )
        .replace(
            "data = [\"dpo_pairs.jsonl\"]",
            &format!(
                "data = [{:?}]",
                fixture("dpo_pairs.jsonl").display().to_string()
            ),
        );
    let mut text: String = text
        .lines()
        .filter(|l| {
            !extra
                .lines()
                .any(|e| e.split('=').next() == l.split('=').next())
        })
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(extra);
    text.push_str(&format!(
        "cache_dir = {:?}\n",
        dir.join("cache").display().to_string()
    ));
    let cfg = dir.join("trial.toml");
    std::fs::write(&cfg, text).expect("write");
    cfg
}

pub(crate) fn train(cfg: &Path) -> Vec<Value> {
    let o = bin()
        .args(["train", "--no-progress", "--config"])
        .arg(cfg)
        .output()
        .expect("spawn");
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "step")
        .collect()
}

#[test]
fn rm_steps_match_the_sequence_classification_reference_loop() {
    let reference = reference();
    let dir = tempfile::tempdir().expect("tmp");
    let steps = train(&trial(dir.path(), &fixture("tiny-model"), ""));
    assert_eq!(steps.len(), 10);
    for m in [
        "loss",
        "rm/accuracy",
        "rm/reward_margin",
        "rm/chosen_rewards",
        "rm/rejected_rewards",
    ] {
        let theirs = reference["steps"][m].as_array().expect("metric");
        assert_eq!(theirs.len(), 10, "{m}");
        for (k, (e, b)) in steps.iter().zip(theirs).enumerate() {
            let a = e[m].as_f64().expect("ours");
            let b = b.as_f64().expect("theirs");
            // Relative above 1, absolute below: rewards are logits, on
            // the scale of 1, and a shared offset of a few 1e-5 (fp32
            // accumulation order) moves a mean reward near 0 by more than
            // its own 1e-4.
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "step {}: {m} {a} vs reference {b}",
                k + 1
            );
        }
    }
}

/// The tiny model as SmolLM2 ships: its pad token is its EOS.
fn pad_is_eos_model(dir: &Path) -> PathBuf {
    let dst = dir.join("pad-is-eos");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for f in std::fs::read_dir(fixture("tiny-model")).expect("ls") {
        let f = f.expect("entry").path();
        std::fs::copy(&f, dst.join(f.file_name().expect("name"))).expect("copy");
    }
    let edit = |name: &str, key: &str, from: &str| {
        let p = dst.join(name);
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        v[key] = v[from].clone();
        std::fs::write(&p, v.to_string()).expect("write");
    };
    edit("tokenizer_config.json", "pad_token", "eos_token");
    edit("config.json", "pad_token_id", "eos_token_id");
    dst
}

#[test]
fn the_exported_rm_scores_as_transformers_scores_it() {
    let reference = &reference()["export"];
    let dir = tempfile::tempdir().expect("tmp");
    let base = pad_is_eos_model(dir.path());
    train(&trial(dir.path(), &base, "chat_template = \"tulu\"\n"));
    let export = dir.path().join("out/final");
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("config.json")).expect("cfg"))
            .expect("json");
    assert_eq!(cfg["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(cfg["id2label"]["0"], "LABEL_0");
    assert_eq!(cfg["num_labels"], 1);
    assert_ne!(cfg["pad_token_id"], cfg["eos_token_id"], "{cfg}");
    assert_eq!(cfg["pad_token_id"], reference["pad_token_id"]);
    assert_eq!(reference["num_labels"], 1);
    let rm = RewardModel::load(&export, DeviceSpec::Cpu, DType::F32).expect("load the RM");
    let ids: Vec<Vec<u32>> = serde_json::from_value(reference["ids"].clone()).expect("ids");
    assert_eq!(ids.len(), 8);
    // Each text ends with the EOS: the token pad == eos would skip.
    let eos = cfg["eos_token_id"].as_u64().expect("eos") as u32;
    assert!(ids.iter().all(|s| s.last() == Some(&eos)));
    let ours = rm.score(&ids, 3).expect("score");
    let theirs: Vec<f64> = serde_json::from_value(reference["scores"].clone()).expect("scores");
    let wrong: Vec<f64> =
        serde_json::from_value(reference["scores_if_pad_is_eos"].clone()).expect("scores");
    for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            (f64::from(*a) - b).abs() <= 1e-4,
            "text {k}: smolsweep {a} vs transformers {b}"
        );
    }
    // What the declared pad avoids: with pad == eos, transformers reads
    // another token and scores otherwise.
    assert!(
        ours.iter()
            .zip(&wrong)
            .any(|(a, w)| (f64::from(*a) - w).abs() > 1e-2),
        "{ours:?} vs {wrong:?}"
    );
}

/// Resume identity, as for SFT and DPO: killed (SIGKILL) after the
/// checkpoint of step 4, `--resume` gives the uninterrupted run's losses
/// and final weights (the score head included).
#[test]
fn rm_resumes_after_sigkill_with_identical_losses_and_weights() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let extra = "max_steps = 6\ncheckpoint_every_steps = 2\nkeep_checkpoints = 3\n";
    let straight = tempfile::tempdir().expect("tmp");
    let full = train(&trial(straight.path(), &fixture("tiny-model"), extra));
    let broken = tempfile::tempdir().expect("tmp");
    let cfg = trial(broken.path(), &fixture("tiny-model"), extra);
    let mut child = bin()
        .args(["train", "--no-progress", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let out = child.stdout.take().expect("stdout");
    for line in BufReader::new(out).lines() {
        let ev: Value = serde_json::from_str(&line.expect("line")).expect("event");
        if ev["event"] == "checkpoint" && ev["step"] == 4 {
            child.kill().expect("SIGKILL");
            break;
        }
    }
    let _ = child.wait();
    let o = bin()
        .args(["train", "--no-progress", "--resume", "--config"])
        .arg(&cfg)
        .output()
        .expect("spawn");
    assert!(o.status.success(), "{}", stderr(&o));
    let rest: Vec<Value> = stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "step")
        .collect();
    assert_eq!(rest[0]["step"], 5, "resumed after step 4");
    for e in &rest {
        let want = &full[e["step"].as_u64().expect("step") as usize - 1];
        for k in ["loss", "rm/accuracy", "rm/reward_margin"] {
            let (a, b) = (e[k].as_f64().expect("a"), want[k].as_f64().expect("b"));
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{k}: {e} vs {want}"
            );
        }
    }
    let a = std::fs::read(straight.path().join("out/final/model.safetensors")).expect("a");
    let b = std::fs::read(broken.path().join("out/final/model.safetensors")).expect("b");
    assert!(a == b, "final weights differ");
}
