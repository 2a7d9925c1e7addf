//! A DPO sweep end to end through the binary, judged by its training
//! rewards: a 2 x 2 LR x batch-size grid on the tiny model, no `[eval]`;
//! each trial's final `rewards/*` and `logps/*` (its last logged step's)
//! are recorded, equal what the test reads from the last step line of the
//! trial's `train.events.jsonl`, and are shown by `status --json` and
//! `export`, and the report draws the final reward accuracy and margin as
//! contours over LR x BS, as it draws an SFT sweep's benchmarks.

use std::collections::BTreeMap;
use std::path::Path;

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

fn write_pairs(path: &Path, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        let (a, b) = (i % 7, (i * 3) % 5);
        let row = json!({
            "prompt": format!("{a}+{b}=?"),
            "chosen": format!("{}", a + b),
            "rejected": format!("{}", a + b + 3),
        });
        text.push_str(&format!("{row}\n"));
    }
    std::fs::write(path, text).expect("write pairs");
}

/// The last step line of a trial's event file, parsed.
fn last_step(trial: &Path) -> Value {
    let text = std::fs::read_to_string(trial.join("train.events.jsonl")).expect("events");
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "step")
        .unwrap_or_else(|| panic!("no step line in {}", trial.display()))
}

const METRICS: [&str; 6] = [
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracy",
    "rewards/margin",
    "logps/chosen",
    "logps/rejected",
];

#[test]
fn a_dpo_sweep_records_and_draws_its_final_rewards() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write_pairs(&d.join("pairs.jsonl"), 24);
    let model = root().join("tests/fixtures/trainer/tiny-model");
    let text = format!(
        "[sweep]\nname = \"dpo-sweep\"\noutput_dir = \"runs\"\n\n[train]\nstage = \"dpo\"\n\
         model = {:?}\ndata = [\"pairs.jsonl\"]\nchat_template = \"chatml\"\nmax_seq_len = 64\n\
         max_steps = 3\nmicro_batch_size = 4\ndevice = \"cpu\"\ndtype = \"f32\"\n\n\
         [grid]\nlr = [1e-3, 3e-3]\nbatch_size = [4, 8]\n",
        model.display().to_string()
    );
    let file = d.join("sweep.toml");
    std::fs::write(&file, text).expect("sweep");
    let f = file.to_str().expect("utf-8");
    let o = run(&["run", f, "--no-progress"]);
    ok(&o, "run");

    // What each trial logged last, read here from its own event file.
    let status: Value = {
        let o = run(&["status", f, "--json"]);
        ok(&o, "status");
        serde_json::from_str(&stdout(&o)).expect("status json")
    };
    let trials = status["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 4, "{status}");
    let mut want: BTreeMap<i64, Value> = BTreeMap::new();
    for t in trials {
        assert_eq!(t["state"], "completed", "{t}");
        let last = last_step(&d.join("runs").join(t["dir"].as_str().expect("dir")));
        assert_eq!(t["train"]["step"], last["step"], "{t}");
        assert_eq!(t["train"]["step"], 3, "{t}");
        for m in METRICS {
            let got = t["train"]["metrics"][m]
                .as_f64()
                .unwrap_or_else(|| panic!("{m} in {t}"));
            let logged = last[m].as_f64().unwrap_or_else(|| panic!("{m} in {last}"));
            assert_eq!(got, logged, "trial {}: {m}", t["id"]);
        }
        want.insert(t["id"].as_i64().expect("id"), last);
    }
    // The trials did not all end alike: the contours have something to
    // draw.
    let margins: Vec<f64> = want
        .values()
        .map(|e| e["rewards/margin"].as_f64().expect("margin"))
        .collect();
    assert!(margins.windows(2).any(|w| w[0] != w[1]), "{margins:?}");

    // export: one column per final metric.
    let o = run(&["export", f, "--csv", "-"]);
    ok(&o, "export");
    let csv = stdout(&o);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("{name}: {header:?}"))
    };
    let (id_col, acc_col, margin_col) = (
        col("trial"),
        col("train/rewards/accuracy"),
        col("train/rewards/margin"),
    );
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let last = &want[&cells[id_col].parse::<i64>().expect("trial id")];
        for (c, m) in [
            (acc_col, "rewards/accuracy"),
            (margin_col, "rewards/margin"),
        ] {
            let v: f64 = cells[c].parse().expect("number");
            assert_eq!(v, last[m].as_f64().expect("logged"), "{m}: {line}");
        }
    }

    // report: contours of the final reward accuracy and margin.
    let out = d.join("report");
    let o = run(&["report", f, "--out", out.to_str().expect("utf-8")]);
    ok(&o, "report");
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("summary");
    for (metric, png) in [
        (
            "train/rewards/accuracy",
            "metric_train_rewards_accuracy.png",
        ),
        ("train/rewards/margin", "metric_train_rewards_margin.png"),
    ] {
        let m = summary["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["metric"] == metric)
            .unwrap_or_else(|| panic!("{metric} in {summary}"));
        assert_eq!(m["panel"]["kind"], "contour", "{metric}: {}", m["panel"]);
        assert!(out.join(png).is_file(), "{png}");
        let best = m["analysis"]["best"]["mean"].as_f64().expect("best");
        let values: Vec<f64> = want
            .values()
            .map(|e| e[metric.trim_start_matches("train/")].as_f64().expect("v"))
            .collect();
        let top = values.iter().copied().fold(f64::MIN, f64::max);
        assert!(
            (best - top).abs() < 1e-12,
            "{metric}: best {best}, logged {values:?}"
        );
    }
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("train/rewards/accuracy"), "{md}");
    assert!(md.contains("Table 5"), "{md}");
}
