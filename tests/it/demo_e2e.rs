//! The demo sweep end to end through the binary, as `make demo` runs it
//! (init-model, demo-data, run, report), on a reduced grid: the real
//! `sweeps/demo.toml` with 2 learning rates x 2 batch sizes, a few steps
//! per trial and a few examples per task, so it fits CI. Then a second
//! `run` must find nothing to do, and the DPO demo (`sweeps/demo-dpo.toml`,
//! cut down the same way) chains on the SFT demo's best trial.

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
    reduced(file, "sweeps/demo.toml", 12, &[1e-3, 3e-3], &[4, 8])
}

/// A sweep of `sweeps/` cut down to `steps` steps per trial, the given
/// grid and 6 examples per task; its `[eval] tasks`.
fn reduced(file: &Path, name: &str, steps: i64, lrs: &[f64], bss: &[i64]) -> Vec<String> {
    let src = root().join(name);
    let text = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut t: toml::Table = text.parse().expect("the sweep parses");
    let train = t
        .get_mut("train")
        .and_then(|v| v.as_table_mut())
        .expect("[train]");
    train.insert("max_steps".into(), toml::Value::Integer(steps));
    train.insert("checkpoint_every_steps".into(), toml::Value::Integer(5));
    let grid = t
        .get_mut("grid")
        .and_then(|v| v.as_table_mut())
        .expect("[grid]");
    grid.insert(
        "lr".into(),
        toml::Value::Array(lrs.iter().map(|&v| toml::Value::Float(v)).collect()),
    );
    grid.insert(
        "batch_size".into(),
        toml::Value::Array(bss.iter().map(|&v| toml::Value::Integer(v)).collect()),
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
        // The paper's rows, computed from the task scores beside them.
        let acc_norm = |t: &str| r["tasks"][t]["metrics"]["acc_norm"]["value"].as_f64();
        let rows = r["paper"].as_array().expect("paper rows");
        let arc = rows
            .iter()
            .find(|p| p["row"] == "ARC (Average)")
            .expect("ARC (Average)");
        let want = (acc_norm("arc_easy").expect("easy")
            + acc_norm("arc_challenge").expect("challenge"))
            / 2.0;
        assert!((arc["value"].as_f64().expect("value") - want).abs() < 1e-12);
        let names: Vec<&str> = rows.iter().filter_map(|p| p["row"].as_str()).collect();
        for row in [
            "ARC (Average)",
            "GSM8K (5-shot)",
            "HellaSwag",
            "IFEval (Average)",
            "PIQA",
        ] {
            assert!(names.contains(&row), "{names:?}");
        }
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
    // figure1.png: the paper's four panels side by side (IHDR width).
    let png = std::fs::read(report.join("figure1.png")).expect("figure1.png");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000);
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert_eq!(width, 4 * smolsweep_report::PANEL_SIZE.0);
    let png = std::fs::read(report.join("all_metrics.png")).expect("all_metrics.png");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 50_000);
    assert!(md.contains("## The paper's Table 9 rows"), "{md}");
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

    // The DPO demo, chained on this sweep's best trial by HellaSwag.
    let dpo = root_dir.join("sweeps/demo-dpo.toml");
    let _ = reduced(&dpo, "sweeps/demo-dpo.toml", 6, &[1e-4, 3e-3], &[8]);
    let o = run(&["run", &s(&dpo)]);
    ok(&o, "run demo-dpo");
    let said = stderr(&o);
    assert!(said.contains("2 trials: 2 completed"), "{said}");
    assert!(said.contains("train.model: trial"), "{said}");
    let j: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["status", &s(&sweep), "--json"]))).expect("json");
    let best = j["trials"]
        .as_array()
        .expect("trials")
        .iter()
        .max_by(|a, b| {
            let v = |t: &serde_json::Value| {
                t["scores"]["hellaswag"]["acc_norm"]
                    .as_f64()
                    .unwrap_or(-1.0)
            };
            v(a).total_cmp(&v(b))
                .then(b["id"].as_i64().cmp(&a["id"].as_i64()))
        })
        .expect("a trial");
    let dpo_trials = root_dir.join("runs/demo-dpo/trials");
    for entry in std::fs::read_dir(&dpo_trials).expect("dpo trial dirs") {
        let d = entry.expect("entry").path();
        let cfg: toml::Table = std::fs::read_to_string(d.join("trial.toml"))
            .expect("trial.toml")
            .parse()
            .expect("toml");
        let model = cfg["model"].as_str().expect("model");
        let best_dir = best["dir"].as_str().expect("dir");
        assert!(model.contains(best_dir), "{model} is not from {best_dir}");
        let events = std::fs::read_to_string(d.join("train.events.jsonl")).expect("events");
        assert!(events.contains("\"rewards/accuracy\""), "{events}");
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.join("results.json")).expect("results"),
        )
        .expect("results.json");
        assert!(r["tasks"]["hellaswag"]["metrics"]["acc_norm"]["value"].is_number());
    }
    ok(&run(&["report", &s(&dpo)]), "report demo-dpo");
    assert!(root_dir.join("runs/demo-dpo/report/report.md").exists());
}
