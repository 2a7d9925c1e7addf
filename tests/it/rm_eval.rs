//! `smolsweep eval` of a reward model: RewardBench's per-subset
//! accuracies, sections and averages (the section arithmetic equal to
//! reward-bench's own `calculate_scores_per_section` on the fixture of
//! scripts/reference/rm_reference.py), `preference_accuracy` over every
//! row of a preference set, and the errors: a row without its subset, a
//! causal LM given reward tasks, reward and LM tasks mixed.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use crate::rm_parity::{fixture, train, trial};
use serde_json::{json, Value};
use smolsweep_evals::reward::sections::section_scores;

#[test]
fn section_arithmetic_equals_reward_benchs_own() {
    let text = std::fs::read_to_string(fixture("rm_reference.json")).expect("fixture");
    let rb = &serde_json::from_str::<Value>(&text).expect("json")["rewardbench"];
    let mut m: BTreeMap<String, f64> =
        serde_json::from_value(rb["metrics"].clone()).expect("metrics");
    assert_eq!(m.len(), 23);
    let s = section_scores(&m);
    for (ours, theirs) in [
        ("chat", "Chat"),
        ("chat_hard", "Chat Hard"),
        ("safety", "Safety"),
        ("reasoning", "Reasoning"),
    ] {
        let a = s
            .sections
            .iter()
            .find(|(n, _)| *n == ours)
            .expect("section")
            .1;
        let b = rb["sections"][theirs].as_f64().expect("theirs");
        assert!((a - b).abs() < 1e-12, "{ours}: {a} vs {b}");
    }
    let plain = rb["leaderboard_average_without_prior_sets"]
        .as_f64()
        .expect("avg");
    assert!((s.average - plain).abs() < 1e-12 && (s.leaderboard_average - plain).abs() < 1e-12);
    let prior: BTreeMap<String, f64> =
        serde_json::from_value(rb["prior_sets"].clone()).expect("prior");
    m.extend(prior);
    let lb = section_scores(&m).leaderboard_average;
    let want = rb["leaderboard_average"].as_f64().expect("lb");
    assert!((lb - want).abs() < 1e-12, "{lb} vs {want}");
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).expect("write");
}

/// RewardBench-shaped rows: `n` pairs spread over three subsets.
fn rewardbench_rows(n: usize) -> Vec<Value> {
    let subsets = ["alpacaeval-easy", "hep-go", "donotanswer"];
    (0..n)
        .map(|i| {
            let (a, b) = (i % 7, (i * 3) % 5);
            json!({"prompt": format!("{a}+{b}=?"), "chosen": format!("{}", a + b),
                   "rejected": format!("{}", a + b + 3), "subset": subsets[i % 3],
                   "id": i})
        })
        .collect()
}

fn eval(args: &[&str]) -> std::process::Output {
    bin()
        .args(["eval", "--device", "cpu", "--dtype", "f32"])
        .args(args)
        .output()
        .expect("spawn eval")
}

#[test]
fn eval_of_a_reward_model_scores_rewardbench_and_preference_accuracy() {
    let dir = tempfile::tempdir().expect("tmp");
    train(&trial(dir.path(), &fixture("tiny-model"), ""));
    let export = dir.path().join("out/final");
    let rb = dir.path().join("rb.jsonl");
    write_jsonl(&rb, &rewardbench_rows(30));
    // More than 100 rows: all of them are scored (no silent cap).
    let prefs = dir.path().join("test_prefs.jsonl");
    let rows: Vec<Value> = (0..130)
        .map(|i| {
            let q = format!("{}+1=?", i % 9);
            json!({"chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": format!("{}", i % 9 + 1)}],
                   "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": "0"}]})
        })
        .collect();
    write_jsonl(&prefs, &rows);
    let out = dir.path().join("results.json");
    let samples = dir.path().join("samples.jsonl");
    let o = eval(&[
        "--model",
        export.to_str().expect("utf-8"),
        "--task",
        &format!("rewardbench={}", rb.display()),
        "--task",
        &format!("preference_accuracy={}", prefs.display()),
        "--out",
        out.to_str().expect("utf-8"),
        "--samples",
        samples.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results")).expect("json");
    let rbm = &r["tasks"]["rewardbench"]["metrics"];
    assert_eq!(r["tasks"]["rewardbench"]["n"], 30);
    assert_eq!(r["tasks"]["preference_accuracy"]["n"], 130);
    // The samples' strict comparisons make every metric.
    let lines: Vec<Value> = std::fs::read_to_string(&samples)
        .expect("samples")
        .lines()
        .map(|l| serde_json::from_str(l).expect("sample"))
        .collect();
    assert_eq!(lines.len(), 160);
    let mut by: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for s in &lines {
        let correct = s["chosen_reward"].as_f64() > s["rejected_reward"].as_f64();
        assert_eq!(s["correct"], correct, "{s}");
        let key = match s["task"].as_str() {
            Some("rewardbench") => s["subset"].as_str().expect("subset").to_owned(),
            _ => "preference_accuracy".to_owned(),
        };
        let e = by.entry(key).or_default();
        e.0 += f64::from(u8::from(correct));
        e.1 += 1.0;
    }
    let acc = |k: &str| by[k].0 / by[k].1;
    for s in ["alpacaeval-easy", "hep-go", "donotanswer"] {
        assert!(
            (rbm[s]["value"].as_f64().expect(s) - acc(s)).abs() < 1e-12,
            "{s}"
        );
    }
    assert_eq!(rbm["chat"]["value"].as_f64(), Some(acc("alpacaeval-easy")));
    assert_eq!(rbm["reasoning"]["value"].as_f64(), Some(acc("hep-go")));
    assert_eq!(rbm["safety"]["value"].as_f64(), Some(acc("donotanswer")));
    assert_eq!(rbm["chat_hard"]["value"].as_f64(), Some(0.0));
    let mean = (acc("alpacaeval-easy") + acc("hep-go") + acc("donotanswer")) / 4.0;
    assert!((rbm["average"]["value"].as_f64().expect("avg") - mean).abs() < 1e-12);
    let pa = &r["tasks"]["preference_accuracy"]["metrics"];
    assert!(
        (pa["accuracy"]["value"].as_f64().expect("acc") - acc("preference_accuracy")).abs() < 1e-12
    );
    assert!(pa["margin"]["value"].as_f64().is_some());

    // A row without its subset is named by file and row.
    let mut bad = rewardbench_rows(3);
    bad[2].as_object_mut().expect("obj").remove("subset");
    write_jsonl(&rb, &bad);
    let rb_task = format!("rewardbench={}", rb.display());
    let o = eval(&[
        "--model",
        export.to_str().expect("utf-8"),
        "--task",
        &rb_task,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("{}, row 3: field `subset`", rb.display())),
        "{}",
        stderr(&o)
    );
    // A causal LM has no score head; reward and LM tasks do not mix.
    write_jsonl(&rb, &rewardbench_rows(3));
    let lm = fixture("tiny-model");
    let o = eval(&["--model", lm.to_str().expect("utf-8"), "--task", &rb_task]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a reward model"), "{}", stderr(&o));
    let o = eval(&[
        "--model",
        export.to_str().expect("utf-8"),
        "--task",
        &rb_task,
        "--task",
        &format!("piqa={}", rb.display()),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot be scored by one model"),
        "{}",
        stderr(&o)
    );
}
