//! The paper's SFT -> DPO chain as two sweep files: a DPO sweep whose
//! `model` is the best trial of an SFT sweep, resolved from that sweep's
//! record at `run` time and frozen into the DPO sweep's own record; and the
//! errors of a reference that cannot be resolved, naming the key.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::orchestrator_helpers::*;
use serde_json::{json, Value};

/// Preference pairs for the tiny byte-level model.
fn write_pairs(path: &Path, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        let (a, b) = (i % 7, (i * 3) % 5);
        let row = json!({
            "prompt": format!("{a}+{b}=?"),
            "chosen": format!("{}", a + b),
            "rejected": format!("{}", a + b + 3),
        });
        text.push_str(&row.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write pairs");
}

fn dpo_sweep(dir: &Path, upstream: &Path, trial: &str) -> PathBuf {
    let pairs = dir.join("pairs.jsonl");
    write_pairs(&pairs, 16);
    let text = format!(
        "[sweep]\nname = \"dpo\"\n\n[train]\nstage = \"dpo\"\nmodel = {{ sweep = {:?}, trial = {trial} }}\n\
         data = [{:?}]\nchat_template = \"chatml\"\nmax_seq_len = 64\nmax_steps = 2\nbatch_size = 4\n\
         micro_batch_size = 4\ndevice = \"cpu\"\ndtype = \"f32\"\n\n[grid]\nlr = [1e-4, 1e-3]\n",
        upstream.display().to_string(),
        pairs.display().to_string(),
    );
    let p = dir.join("dpo.toml");
    std::fs::write(&p, text).expect("write dpo sweep");
    p
}

#[test]
fn a_dpo_sweep_starts_from_the_best_sft_trial_and_keeps_it() {
    let sft = Sweep::new_real(4, "lr = [1e-4, 3e-3]", "");
    let chained = tempfile::tempdir().expect("tempdir");
    let dpo = dpo_sweep(chained.path(), &sft.toml(), "\"best:arc_easy/acc_norm\"");
    let dpo_s = dpo.to_str().expect("utf-8");

    // Before the SFT sweep ran: nothing to start from, said plainly.
    let o = sft
        .command(&["run", dpo_s, "--no-progress"])
        .output()
        .expect("run");
    assert!(!o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("train.model") && err.contains("run it first"),
        "{err}"
    );
    assert!(
        !chained.path().join("dpo/sweep.db").exists(),
        "nothing recorded"
    );

    assert_ok(&sft.run());
    // The best SFT trial by hand, from its record.
    let rows = sft.sql(
        "SELECT t.id, t.dir, t.export_dir, e.value FROM trials t JOIN eval_results e ON e.trial_id = t.id \
         WHERE e.task = 'arc_easy' AND e.metric = 'acc_norm' ORDER BY e.value DESC, t.id",
    );
    let best = &rows[0];
    let export = PathBuf::from(best[2].as_str().expect("export"));
    let want = if export.is_absolute() {
        export
    } else {
        sft.out()
            .join(best[1].as_str().expect("dir"))
            .join("out")
            .join(export)
    };

    let o = sft
        .command(&["run", dpo_s, "--no-progress"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("trial {}", best[0])),
        "{}",
        stderr(&o)
    );
    let out = chained.path().join("dpo");
    let mut n = 0;
    for entry in std::fs::read_dir(out.join("trials")).expect("trials") {
        let d = entry.expect("entry").path();
        let cfg: toml::Table = std::fs::read_to_string(d.join("trial.toml"))
            .expect("trial.toml")
            .parse()
            .expect("toml");
        assert_eq!(cfg["stage"].as_str(), Some("dpo"));
        assert_eq!(
            PathBuf::from(cfg["model"].as_str().expect("model")),
            want,
            "{}",
            d.display()
        );
        n += 1;
    }
    assert_eq!(n, 2);

    // Frozen: the record keeps the reference as written and what it
    // resolved to; without the SFT sweep's record the DPO sweep still
    // knows its model (status, and a rerun that has nothing left to do).
    let db = out.join("sweep.db");
    let spec: Value = serde_json::from_str(
        sql(&db, "SELECT spec_json FROM sweeps")[0][0]
            .as_str()
            .expect("spec"),
    )
    .expect("json");
    assert_eq!(
        PathBuf::from(spec["resolved_models"]["model"].as_str().expect("resolved")),
        want
    );
    assert_eq!(spec["train"]["model"]["trial"], "best:arc_easy/acc_norm");
    std::fs::rename(sft.out().join("sweep.db"), sft.out().join("moved.db")).expect("move db");
    let o = sft
        .command(&["run", dpo_s, "--no-progress"])
        .output()
        .expect("rerun");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("as recorded"), "{}", stderr(&o));
    let o = sft.command(&["status", dpo_s]).output().expect("status");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("2 trials, 2 completed"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn references_that_cannot_resolve_name_the_key() {
    let sft = Sweep::new(4, "lr = [1e-4, 3e-3]", "");
    let d = tempfile::tempdir().expect("tempdir");
    let check = |trial: &str| {
        let p = dpo_sweep(d.path(), &sft.toml(), trial);
        let o = sft
            .command(&["run", p.to_str().expect("utf-8"), "--check"])
            .output()
            .expect("run --check");
        assert!(!o.status.success(), "{trial}: {}", stderr(&o));
        stderr(&o)
    };
    let e = check("\"best:gsm8k/exact_match_strict\"");
    assert!(
        e.contains("train.model.trial") && e.contains("does not evaluate gsm8k"),
        "{e}"
    );
    let e = check("\"best:arc_easy/accuracy\"");
    assert!(e.contains("has no metric accuracy"), "{e}");
    let e = check("\"latest\"");
    assert!(
        e.contains("train.model.trial") && e.contains("best:TASK/METRIC"),
        "{e}"
    );
    let e = check("{ lr = 1e-4, seed = 3 }");
    assert!(
        e.contains("train.model.trial.seed") && e.contains("not an axis"),
        "{e}"
    );
    let p = d.path().join("dpo.toml");
    let text = std::fs::read_to_string(dpo_sweep(d.path(), &sft.toml(), "1"))
        .expect("toml")
        .replace("sweep.toml", "nowhere.toml");
    std::fs::write(&p, text).expect("write");
    let o = sft
        .command(&["run", p.to_str().expect("utf-8"), "--check"])
        .output()
        .expect("run --check");
    assert!(
        stderr(&o).contains("train.model.sweep") && stderr(&o).contains("no such sweep file"),
        "{}",
        stderr(&o)
    );
    // A trial id the record lacks, once the sweep has run.
    assert_ok(&sft.run());
    let e = check("7");
    assert!(e.contains("has no trial 7"), "{e}");
}
