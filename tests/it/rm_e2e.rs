//! A reward-model sweep end to end through the binary: the demo world's
//! tiny byte-level model (`init-model`, random weights), generated
//! preference pairs, a 2 x 2 LR x batch-size grid with `[train] stage =
//! "rm"`, each point evaluated on RewardBench-shaped pairs and on
//! `preference_accuracy`; then `status` and `export` show the scores, a
//! second `run` has nothing to do, and a sweep pairing a reward model with
//! a causal-LM benchmark is refused before anything is recorded.

use std::path::Path;

use crate::common::*;
use serde_json::json;

fn ok(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\n{}",
        o.status,
        stderr(o)
    );
}

fn write_data(dir: &Path) {
    let mut pairs = String::new();
    for i in 0..48 {
        let (a, b) = (i % 7, (i * 3) % 5);
        let q = format!("{a}+{b}=?");
        let row = if i % 2 == 0 {
            json!({"chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": format!("{}", a + b)}],
                   "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": format!("{}", a + b + 3)}]})
        } else {
            json!({"prompt": q, "chosen": format!("{}", a + b), "rejected": format!("{}", a + b + 3)})
        };
        pairs.push_str(&format!("{row}\n"));
    }
    std::fs::write(dir.join("pairs.jsonl"), pairs).expect("pairs");
    let subsets = [
        "alpacaeval-easy",
        "mt-bench-hard",
        "donotanswer",
        "hep-python",
    ];
    let mut rb = String::new();
    for i in 0..24 {
        let (a, b) = ((i * 2) % 7, (i + 1) % 5);
        let row = json!({"prompt": format!("{a}+{b}=?"), "chosen": format!("{}", a + b),
                         "rejected": format!("{}", a + b + 2), "subset": subsets[i % 4], "id": i});
        rb.push_str(&format!("{row}\n"));
    }
    std::fs::write(dir.join("rb.jsonl"), rb).expect("rewardbench");
}

fn sweep(dir: &Path, tasks: &str) -> std::path::PathBuf {
    let text = format!(
        r#"[sweep]
name = "rm-e2e"
output_dir = "runs"

[train]
stage = "rm"
model = "model"
init = "random"
data = ["pairs.jsonl"]
chat_template = "model"
max_seq_len = 64
max_steps = 6
micro_batch_size = 4
checkpoint_every_steps = 3
device = "cpu"
dtype = "f32"

[grid]
lr = [1e-3, 3e-3]
batch_size = [4, 8]

[eval]
tasks = {tasks}
device = "cpu"

[resources]
gpus = "auto"
slots_per_gpu = 2
"#
    );
    let p = dir.join("sweep.toml");
    std::fs::write(&p, text).expect("sweep");
    p
}

#[test]
fn an_rm_sweep_trains_evaluates_and_exports() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    ok(
        &run(&["init-model", "--out", &s(&d.join("model")), "--seed", "0"]),
        "init-model",
    );
    write_data(d);

    // A causal-LM benchmark for a reward model: refused up front.
    let bad = sweep(d, r#"["rewardbench=rb.jsonl", "piqa=rb.jsonl"]"#);
    let o = run(&["run", &s(&bad)]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("eval.tasks[1]") && err.contains("`piqa` scores a causal LM"),
        "{err}"
    );
    assert!(!d.join("runs/sweep.db").exists(), "nothing recorded");

    let file = sweep(
        d,
        r#"["rewardbench=rb.jsonl", "preference_accuracy=pairs.jsonl"]"#,
    );
    let o = run(&["run", &s(&file)]);
    ok(&o, "run");
    assert!(
        stderr(&o).contains("4 trials: 4 completed, 0 diverged, 0 failed, 0 left"),
        "{}",
        stderr(&o)
    );
    let mut n = 0;
    for entry in std::fs::read_dir(d.join("runs/trials")).expect("trials") {
        let t = entry.expect("entry").path();
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(t.join("out/final/config.json")).expect("export config"),
        )
        .expect("json");
        assert_eq!(cfg["architectures"][0], "LlamaForSequenceClassification");
        let events = std::fs::read_to_string(t.join("train.events.jsonl")).expect("events");
        assert!(events.contains("\"rm/accuracy\""), "{events}");
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(t.join("results.json")).expect("results"),
        )
        .expect("json");
        assert_eq!(r["tasks"]["rewardbench"]["n"], 24);
        assert_eq!(r["tasks"]["preference_accuracy"]["n"], 48);
        for (task, metric) in [
            ("rewardbench", "average"),
            ("rewardbench", "chat_hard"),
            ("rewardbench", "hep-python"),
            ("preference_accuracy", "accuracy"),
        ] {
            let v = r["tasks"][task]["metrics"][metric]["value"]
                .as_f64()
                .unwrap_or_else(|| panic!("{task}/{metric} in {r}"));
            assert!((0.0..=1.0).contains(&v), "{task}/{metric} = {v}");
        }
        n += 1;
    }
    assert_eq!(n, 4);

    // status shows each task's headline; export carries every metric.
    let o = run(&["status", &s(&file)]);
    ok(&o, "status");
    let st = stdout(&o) + &stderr(&o);
    assert!(
        st.contains("4 completed")
            && st.contains("rewardbench")
            && st.contains("preference_accuracy"),
        "{st}"
    );
    let o = run(&["export", &s(&file), "--csv", "-"]);
    ok(&o, "export");
    let csv = stdout(&o);
    let header = csv.lines().next().expect("header");
    for col in [
        "stage",
        "rewardbench/average",
        "rewardbench/leaderboard_average",
        "rewardbench/chat",
        "rewardbench/safety",
        "preference_accuracy/accuracy",
        "preference_accuracy/margin",
    ] {
        assert!(header.split(',').any(|c| c == col), "{col}: {header}");
    }
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(
        csv.lines().skip(1).all(|l| l.contains(",rm,completed,")),
        "{csv}"
    );

    let o = run(&["run", &s(&file)]);
    ok(&o, "run again");
    let again = stderr(&o);
    assert!(
        again.contains("4 trials: 4 completed") && !again.contains("new grid point"),
        "{again}"
    );
}
