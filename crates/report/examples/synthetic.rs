//! Renders the example report in `reports/example/` from a SYNTHETIC sweep:
//! made-up scores shaped like the paper's Figure 1 (reasoning benchmarks
//! better at high LR/BS, pattern-recognition ones at low LR/BS), so the
//! report can be seen before any real sweep has run. No model was trained.
//!
//! `cargo run --release -p smolsweep-report --example synthetic -- reports/example [full|partial|one-bs|one-lr]`
//!
//! `partial` marks part of the grid pending/running/unrecorded, `one-bs`
//! keeps only BS 32 and `one-lr` only LR 3e-5 (single-axis sweeps, drawn as
//! line plots).

use smolsweep_report::{render_report, ReportInput, TrialResult, TrialState};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Deterministic noise in [-1, 1] from the grid coordinates and seed.
fn noise(a: f64, b: f64, seed: i64) -> f64 {
    let v = (a * 12.9898 + b * 78.233 + seed as f64 * 37.719).sin() * 43758.5453;
    2.0 * (v - v.floor()) - 1.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("reports/example"));
    let mode = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "full".to_string());
    let lrs = [3e-6, 1e-5, 3e-5, 9e-5, 3e-4];
    let bss = [8u32, 16, 32, 64, 128];
    let seeds = [1i64, 2];
    let mut trials = Vec::new();
    for &lr in &lrs {
        for &bs in &bss {
            for &seed in &seeds {
                // Paper-like shapes over r = log10(LR/BS x 1e6), about -1.6 .. 1.6.
                let x = (lr / f64::from(bs) * 1e6).log10();
                let lrl = lr.log10();
                let state = if lr > 2e-4 && bs == 8 {
                    TrialState::Diverged
                } else if lr > 2e-4 && bs == 16 && seed == 2 {
                    TrialState::Failed
                } else {
                    TrialState::Completed
                };
                let n = |k: f64| 0.006 * noise(lrl + k, f64::from(bs), seed);
                let mut scores = BTreeMap::new();
                if state == TrialState::Completed {
                    scores.insert(
                        "arc_challenge/acc_norm".into(),
                        0.36 + 0.025 * x.tanh() - 0.01 * (lrl + 4.5).powi(2) + n(0.0),
                    );
                    scores.insert(
                        "gsm8k/exact_match,strict-match".into(),
                        (0.05 + 0.012 * (x + 1.7)).max(0.0) + n(1.0),
                    );
                    scores.insert(
                        "hellaswag/acc_norm".into(),
                        0.43 - 0.02 * x - 0.008 * (x + 0.5).powi(2) + n(2.0),
                    );
                    scores.insert(
                        "ifeval/prompt_level_strict_acc".into(),
                        0.30 - 0.035 * x + n(3.0),
                    );
                    scores.insert(
                        "piqa/acc_norm".into(),
                        0.66 - 0.012 * (lrl + 4.7).powi(2) + n(4.0),
                    );
                }
                trials.push(TrialResult {
                    lr,
                    batch_size: bs,
                    seed: Some(seed),
                    state,
                    scores,
                    extra: BTreeMap::from([
                        ("model".to_string(), "SmolLM2-135M (synthetic)".to_string()),
                        ("epochs".to_string(), "2".to_string()),
                    ]),
                    divergence: None,
                    stopped_at: None,
                });
            }
        }
    }
    let expected_points = trials.len();
    match mode.as_str() {
        "full" => {}
        "partial" => {
            // The high-LR corner is not in the database yet; the rest of the
            // top two LRs are queued or running.
            trials.retain(|t| !(t.lr > 2e-4 && t.batch_size >= 64));
            for t in &mut trials {
                if t.lr > 5e-5 {
                    t.state = if t.batch_size == 8 {
                        TrialState::Running
                    } else {
                        TrialState::Pending
                    };
                    t.scores.clear();
                }
            }
        }
        "one-bs" => trials.retain(|t| t.batch_size == 32),
        "one-lr" => trials.retain(|t| (t.lr - 3e-5).abs() < 1e-12),
        other => {
            return Err(format!("unknown mode {other:?}: full, partial, one-bs or one-lr").into())
        }
    }
    let expected_points = if mode.starts_with("one-") {
        trials.len()
    } else {
        expected_points
    };
    let input = ReportInput {
        sweep_name: "SYNTHETIC example (made-up scores, no model trained)".into(),
        spec_toml: r#"# SYNTHETIC: this report was rendered from made-up scores by
# crates/report/examples/synthetic.rs to show what a report looks like.
name = "synthetic-example"
model = "HuggingFaceTB/SmolLM2-135M"
dataset = "allenai/tulu-3-sft-mixture"
benchmarks = ["arc_challenge", "gsm8k", "hellaswag", "ifeval", "piqa"]

[grid]
lr = [3e-6, 1e-5, 3e-5, 9e-5, 3e-4]
batch_size = [8, 16, 32, 64, 128]
seeds = [1, 2]
"#
        .into(),
        expected_points,
        trials,
    };
    let summary = render_report(&input, &out)?;
    for f in &summary.files {
        println!("{}", f.display());
    }
    Ok(())
}
