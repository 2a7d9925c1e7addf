//! DPO parity with an independent reference: the first 10 steps of
//! `dpo_norm` (beta 5) and `dpo` (beta 0.1), 2 micro-batches per step,
//! equal a PyTorch/transformers loop implementing open-instruct's
//! `dpo_loss` and `_get_batch_logps` on the same micro-batches
//! (scripts/reference/dpo_reference.py, pinned versions; the fixture is
//! committed, so this test needs no Python): loss, rewards, accuracy,
//! margin and log-probs within 1e-4 relative.

use std::path::PathBuf;

use crate::common::*;
use serde_json::Value;

fn fixture(p: &str) -> PathBuf {
    root().join("tests/fixtures/trainer").join(p)
}

const METRICS: &[&str] = &[
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracy",
    "rewards/margin",
    "logps/chosen",
    "logps/rejected",
];

#[test]
fn dpo_steps_match_the_open_instruct_reference_loop() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("dpo_reference.json")).expect("fixture"),
    )
    .expect("json");
    for name in ["dpo_norm", "dpo"] {
        let dir = tempfile::tempdir().expect("tmp");
        let text = std::fs::read_to_string(fixture(&format!("parity_{name}.toml")))
            .expect("toml")
            .replace(
                &format!("output_dir = \"out-{name}\""),
                &format!(
                    "output_dir = {:?}",
                    dir.path().join("out").display().to_string()
                ),
            )
            .replace(
                "model = \"tiny-model\"",
                &format!("model = {:?}", fixture("tiny-model").display().to_string()),
            )
            .replace(
                "data = [\"dpo_pairs.jsonl\"]",
                &format!(
                    "data = [{:?}]",
                    fixture("dpo_pairs.jsonl").display().to_string()
                ),
            );
        let cfg = dir.path().join("trial.toml");
        std::fs::write(
            &cfg,
            format!(
                "{text}cache_dir = {:?}\n",
                dir.path().join("cache").display().to_string()
            ),
        )
        .expect("write");
        let o = bin()
            .args(["train", "--no-progress", "--config"])
            .arg(&cfg)
            .output()
            .expect("spawn");
        assert!(o.status.success(), "{}", stderr(&o));
        let steps: Vec<Value> = stdout(&o)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "step")
            .collect();
        assert_eq!(steps.len(), 10, "{name}");
        for m in METRICS {
            let theirs = reference[name][m].as_array().expect("metric");
            for (k, (e, b)) in steps.iter().zip(theirs).enumerate() {
                let a = e[m].as_f64().expect("ours");
                let b = b.as_f64().expect("theirs");
                // Relative, with a floor for the exact zeros of the first
                // steps (policy == reference).
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1e-2),
                    "{name} step {}: {m} {a} vs reference {b}",
                    k + 1
                );
            }
        }
    }
}
