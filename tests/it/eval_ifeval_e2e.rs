//! IFEval through the binary, end to end, on the tiny fixture model (fast
//! whatever it generates): results.json carries the four lm-eval metrics
//! and samples.jsonl one verdict line per prompt.

use crate::common::*;

#[test]
fn ifeval_runs_end_to_end_and_reports_all_four_metrics() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = root().join("tests/fixtures/trainer/tiny-model");
    let data = root().join("tests/fixtures/evals/data/ifeval");
    let out = dir.path().join("results.json");
    let samples = dir.path().join("samples.jsonl");
    let o = run(&[
        "eval",
        "--model",
        model.to_str().expect("path"),
        "--task",
        &format!("ifeval={}", data.display()),
        "--limit",
        "2",
        "--device",
        "cpu",
        "--out",
        out.to_str().expect("path"),
        "--samples",
        samples.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results")).expect("json");
    let m = &r["tasks"]["ifeval"]["metrics"];
    for k in [
        "prompt_level_strict_acc",
        "inst_level_strict_acc",
        "prompt_level_loose_acc",
        "inst_level_loose_acc",
    ] {
        let v = m[k]["value"].as_f64().expect(k);
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert_eq!(r["tasks"]["ifeval"]["n"], 2);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&samples)
        .expect("samples")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert!(l["response"].is_string());
        assert_eq!(
            l["strict"].as_array().map(Vec::len),
            l["instruction_id_list"].as_array().map(Vec::len)
        );
    }
}
