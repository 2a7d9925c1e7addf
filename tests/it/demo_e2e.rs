//! The demo sweep end to end through the binary, as `make demo` runs it
//! (init-model, demo-data, run, report), on a reduced grid: the real
//! `sweeps/demo.toml` with 2 learning rates x 2 batch sizes, a few steps
//! per trial and a few examples per task, so it fits CI. Then a second
//! `run` must find nothing to do.

use std::path::Path;

use crate::common::*;

fn ok(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\n{}",
        o.status,
        stderr(o)
    );
}

/// `sweeps/demo.toml` cut down: same model, data, recipe and tasks; its
/// `[eval] tasks`.
fn reduced_demo(file: &Path) -> Vec<String> {
    let src = root().join("sweeps/demo.toml");
    let text = std::fs::read_to_string(&src).expect("sweeps/demo.toml");
    let mut t: toml::Table = text.parse().expect("demo.toml parses");
    let train = t
        .get_mut("train")
        .and_then(|v| v.as_table_mut())
        .expect("[train]");
    train.insert("max_steps".into(), toml::Value::Integer(12));
    train.insert("checkpoint_every_steps".into(), toml::Value::Integer(5));
    let grid = t
        .get_mut("grid")
        .and_then(|v| v.as_table_mut())
        .expect("[grid]");
    grid.insert(
        "lr".into(),
        toml::Value::Array(vec![toml::Value::Float(1e-3), toml::Value::Float(3e-3)]),
    );
    grid.insert(
        "batch_size".into(),
        toml::Value::Array(vec![toml::Value::Integer(4), toml::Value::Integer(8)]),
    );
    let eval = t
        .get_mut("eval")
        .and_then(|v| v.as_table_mut())
        .expect("[eval]");
    eval.insert("limit".into(), toml::Value::Integer(6));
    let tasks: Vec<String> = eval
        .get("tasks")
        .and_then(|v| v.as_array())
        .expect("[eval] tasks")
        .iter()
        .map(|v| v.as_str().expect("task name").to_owned())
        .collect();
    std::fs::write(file, toml::to_string(&t).expect("toml")).expect("write sweep");
    tasks
}

#[test]
fn reduced_demo_grid_trains_evaluates_reports_and_reruns_as_a_no_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root_dir = dir.path();
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    // The layout of the repository: sweeps/ beside demo/ (paths in the
    // sweep file are relative to it).
    std::fs::create_dir_all(root_dir.join("sweeps")).expect("mkdir");
    let sweep = root_dir.join("sweeps/demo.toml");
    let tasks = reduced_demo(&sweep);
    // The tasks demo.toml evaluates (its data has no MMLU-Pro or BBH).
    assert!(tasks.len() >= 6, "{tasks:?}");

    let o = run(&[
        "init-model",
        "--out",
        &s(&root_dir.join("demo/model")),
        "--seed",
        "0",
    ]);
    ok(&o, "init-model");
    let demo_data = || {
        let o = run(&[
            "demo-data",
            "--out",
            &s(&root_dir.join("demo/data")),
            "--seed",
            "0",
        ]);
        ok(&o, "demo-data");
    };
    demo_data();

    let o = run(&["run", &s(&sweep)]);
    ok(&o, "run");
    let summary = stderr(&o);
    assert!(
        summary.contains("4 trials: 4 completed, 0 diverged, 0 failed, 0 left"),
        "{summary}"
    );

    // Every grid point has every task of the sweep scored.
    let trials = root_dir.join("runs/demo/trials");
    let mut n = 0;
    for entry in std::fs::read_dir(&trials).expect("trial dirs") {
        let d = entry.expect("entry").path();
        let text = std::fs::read_to_string(d.join("results.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let r: serde_json::Value = serde_json::from_str(&text).expect("results.json");
        for task in &tasks {
            let metrics = r["tasks"][task.as_str()]["metrics"]
                .as_object()
                .unwrap_or_else(|| panic!("{}: no {task}", d.display()));
            for (name, m) in metrics {
                let v = m["value"].as_f64().expect("value");
                assert!((0.0..=1.0).contains(&v), "{task}/{name} = {v}");
            }
        }
        assert_eq!(r["tasks"]["gsm8k"]["num_fewshot"], 1, "demo.toml's shots");
        assert_eq!(r["chat_template"], true);
        n += 1;
    }
    assert_eq!(n, 4);

    let o = run(&["report", &s(&sweep)]);
    ok(&o, "report");
    let report = root_dir.join("runs/demo/report");
    let md = std::fs::read_to_string(report.join("report.md")).expect("report.md");
    assert!(
        md.contains("All 4 expected trials have finished (4 completed"),
        "{md}"
    );
    let png = std::fs::read(report.join("figure1.png")).expect("figure1.png");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 50_000);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("summary.json")).expect("summary.json"),
    )
    .expect("summary.json parses");
    assert!(summary.is_object());

    // Again, as `make demo` reruns: the demo data is rewritten identically
    // and nothing reruns (the record, attempts included, is unchanged).
    let before = run(&["export", &s(&sweep), "--csv", "-"]);
    ok(&before, "export");
    demo_data();
    let o = run(&["run", &s(&sweep)]);
    ok(&o, "run again");
    let again = stderr(&o);
    assert!(
        again.contains("4 trials: 4 completed, 0 diverged, 0 failed, 0 left")
            && !again.contains("new grid point"),
        "{again}"
    );
    let after = run(&["export", &s(&sweep), "--csv", "-"]);
    assert_eq!(
        stdout(&before),
        stdout(&after),
        "a rerun changed the record"
    );
}
