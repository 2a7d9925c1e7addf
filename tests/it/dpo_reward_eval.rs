//! `smolsweep eval --task dpo_reward_accuracy`: a DPO policy trained on the
//! tiny model is scored against its reference (named by its export) on
//! held-out pairs, and every pair's implicit reward equals one computed
//! here from `smolsweep score`'s per-token log-probs of each rendered side
//! (another code path: one unpadded sequence, full logits), summed over the
//! label tokens (assistant content and what follows it) or divided by
//! their count (`dpo_norm`), times beta; accuracy and margin follow.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::{json, Value};

fn ok(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\n{}",
        o.status,
        stderr(o)
    );
}

fn tiny_model() -> PathBuf {
    root().join("tests/fixtures/trainer/tiny-model")
}

/// Per-token log-probs of `text` under `model`, with the token count.
fn score(model: &Path, text: &str) -> (Vec<u64>, Vec<Option<f64>>) {
    let m = model.to_str().expect("utf-8");
    let o = run(&[
        "score", "--model", m, "--device", "cpu", "--dtype", "f32", "--text", text,
    ]);
    ok(&o, "score");
    let v: Value = serde_json::from_str(&stdout(&o)).expect("score json");
    let ids = v["token_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id"))
        .collect();
    let lps = v["logprobs"]
        .as_array()
        .expect("logprobs")
        .iter()
        .map(Value::as_f64)
        .collect();
    (ids, lps)
}

/// A side's label log-prob under `model`: the tokens after the prompt
/// with its assistant header (the trainer's mask), summed or averaged.
fn side_logp(model: &Path, prompt: &str, answer: &str, norm: bool) -> f64 {
    let prefix = format!("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n");
    let full = format!("{prefix}{answer}<|im_end|>\n");
    let (p_ids, _) = score(model, &prefix);
    let (ids, lps) = score(model, &full);
    assert_eq!(
        &ids[..p_ids.len()],
        &p_ids[..],
        "the prompt's tokens start the side"
    );
    // logprobs[i] is log p(ids[i] | ids[..i]) (none for the first), or one
    // shorter, starting at token 1.
    let shift = ids.len() - lps.len();
    let labels: Vec<f64> = (p_ids.len()..ids.len())
        .map(|i| lps[i - shift].expect("a label's log-prob"))
        .collect();
    let sum: f64 = labels.iter().sum();
    if norm {
        sum / labels.len() as f64
    } else {
        sum
    }
}

const HELD: [(&str, &str, &str); 3] = [
    ("2+2=?", "4", "7"),
    ("1+5=?", "6", "9"),
    ("3+0=?", "3", "6"),
];

#[test]
fn implicit_rewards_equal_an_independent_computation() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let mut pairs = String::new();
    for i in 0..16 {
        let (a, b) = (i % 7, (i * 3) % 5);
        let row = json!({"prompt": format!("{a}+{b}=?"), "chosen": format!("{}", a + b),
                         "rejected": format!("{}", a + b + 3)});
        pairs.push_str(&format!("{row}\n"));
    }
    std::fs::write(d.join("pairs.jsonl"), pairs).expect("pairs");
    let held: String = HELD
        .iter()
        .map(|(q, c, r)| format!("{}\n", json!({"prompt": q, "chosen": c, "rejected": r})))
        .collect();
    std::fs::write(d.join("held.jsonl"), held).expect("held");
    let trial = format!(
        "stage = \"dpo\"\nmodel = {:?}\ndata = [{:?}]\nchat_template = \"chatml\"\nmax_seq_len = 64\n\
         lr = 3e-3\nbatch_size = 8\nmicro_batch_size = 4\nmax_steps = 2\nseed = 7\ndevice = \"cpu\"\n\
         dtype = \"f32\"\noutput_dir = {:?}\ncache_dir = {:?}\n",
        tiny_model().display().to_string(),
        d.join("pairs.jsonl").display().to_string(),
        d.join("out").display().to_string(),
        d.join("cache").display().to_string(),
    );
    std::fs::write(d.join("trial.toml"), trial).expect("trial");
    let o = run(&[
        "train",
        "--config",
        d.join("trial.toml").to_str().expect("utf-8"),
        "--no-progress",
    ]);
    ok(&o, "train");
    let policy = d.join("out/final");
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(policy.join("smolsweep_dpo.json")).expect("dpo record"),
    )
    .expect("json");
    assert_eq!(
        PathBuf::from(record["reference_model"].as_str().expect("reference")),
        std::fs::canonicalize(tiny_model()).expect("canonical")
    );
    assert_eq!(
        (record["beta"].as_f64(), record["dpo_loss"].as_str()),
        (Some(5.0), Some("dpo_norm"))
    );

    let task = format!("dpo_reward_accuracy={}", d.join("held.jsonl").display());
    for (extra, beta, norm) in [
        (vec![], 5.0, true),
        (vec!["--beta", "0.1", "--dpo-loss", "dpo"], 0.1, false),
    ] {
        let (out, samples) = (d.join("r.json"), d.join("s.jsonl"));
        let mut args = vec![
            "eval",
            "--model",
            policy.to_str().expect("utf-8"),
            "--task",
            &task,
            "--device",
            "cpu",
            "--dtype",
            "f32",
            "--out",
            out.to_str().expect("utf-8"),
            "--samples",
            samples.to_str().expect("utf-8"),
        ];
        args.extend(extra.iter().copied());
        ok(&run(&args), "eval");
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(&out).expect("results")).expect("json");
        let t = &r["tasks"]["dpo_reward_accuracy"];
        assert_eq!(t["n"], 3, "{t}");
        let rows: Vec<Value> = std::fs::read_to_string(&samples)
            .expect("samples")
            .lines()
            .map(|l| serde_json::from_str(l).expect("sample"))
            .collect();
        assert_eq!(rows.len(), 3);
        let (mut right, mut margin) = (0.0, 0.0);
        for ((q, c, rj), row) in HELD.iter().zip(&rows) {
            let reward = |a: &str| {
                beta * (side_logp(&policy, q, a, norm) - side_logp(&tiny_model(), q, a, norm))
            };
            let (rc, rr) = (reward(c), reward(rj));
            let got = (
                row["chosen_reward"].as_f64().expect("c"),
                row["rejected_reward"].as_f64().expect("r"),
            );
            assert!(
                (got.0 - rc).abs() < 1e-4 && (got.1 - rr).abs() < 1e-4,
                "{q}: {got:?} vs ({rc}, {rr})"
            );
            right += f64::from(u8::from(rc > rr));
            margin += rc - rr;
        }
        let metric = |m: &str| {
            t["metrics"][m]["value"]
                .as_f64()
                .unwrap_or_else(|| panic!("{m} in {t}"))
        };
        assert_eq!(metric("accuracy"), right / 3.0, "{t}");
        assert!((metric("margin") - margin / 3.0).abs() < 1e-4, "{t}");
        // The policy moved away from its reference.
        assert!(metric("margin").abs() > 1e-6, "{t}");
    }
}
