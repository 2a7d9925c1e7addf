//! `smolsweep run / status / export` end to end: fan-out over simulated
//! GPUs, the frozen spec, grid extension, the single-orchestrator rule,
//! retries and divergence, Ctrl-C, and the scheduler's overhead.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::orchestrator_helpers::*;

fn states(s: &Sweep) -> Vec<String> {
    s.trials()
        .iter()
        .map(|t| t["state"].as_str().expect("state").to_string())
        .collect()
}

#[test]
fn fan_out_three_simulated_gpus_run_at_once_with_distinct_devices() {
    let s = Sweep::new(
        30,
        "lr = [1e-5, 2e-5, 3e-5]",
        "[resources]\ngpus = \"auto\"\nslots_per_gpu = 1\n",
    )
    .env("SMOLSWEEP_SIMULATE_GPUS", "3");
    let o = s.run();
    assert_ok(&o);
    let trains: Vec<_> = s
        .ledger_entries()
        .into_iter()
        .filter(|e| e["stage"] == "train")
        .collect();
    assert_eq!(trains.len(), 3, "{trains:?}");
    let cvds: BTreeSet<String> = trains
        .iter()
        .map(|e| e["cvd"].as_str().expect("cvd").to_string())
        .collect();
    assert_eq!(
        cvds,
        ["0", "1", "2"].map(String::from).into_iter().collect()
    );
    // All three ran at once: the latest start precedes the earliest end.
    let start = trains
        .iter()
        .map(|e| e["start"].as_f64().expect("start"))
        .fold(0.0, f64::max);
    let end = trains
        .iter()
        .map(|e| e["end"].as_f64().expect("end"))
        .fold(f64::MAX, f64::min);
    assert!(
        start < end,
        "trials did not overlap: last start {start}, first end {end}"
    );
    assert_eq!(states(&s), ["completed"; 3]);
    // The slots recorded in the database are distinct too.
    let slots = s.sql("SELECT DISTINCT cuda_visible_devices FROM trials ORDER BY 1");
    assert_eq!(slots.len(), 3, "{slots:?}");
}

#[test]
fn spec_change_refused_grid_extension_accepted_second_orchestrator_refused() {
    let s = Sweep::new(10, "lr = [1e-5, 2e-5]", "[resources]\nslots_per_gpu = 2\n");
    assert_ok(&s.run());
    assert_eq!(states(&s), ["completed"; 2]);
    let runs = s.ledger_entries().len();

    // Running it again does nothing: completed trials never rerun.
    assert_ok(&s.run());
    assert_eq!(
        s.ledger_entries().len(),
        runs,
        "a completed trial ran again"
    );

    // Any other change is refused, naming the key.
    s.write(12, "lr = [1e-5, 2e-5]", "[resources]\nslots_per_gpu = 2\n");
    let o = s.run();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("train.max_steps"), "{}", stderr(&o));
    s.write(10, "lr = [1e-5]", "[resources]\nslots_per_gpu = 2\n");
    let o = s.run();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("grid.lr"), "{}", stderr(&o));
    s.write(
        10,
        "lr = [1e-5, 2e-5]\nseed = [1]",
        "[resources]\nslots_per_gpu = 2\n",
    );
    let o = s.run();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("grid.seed"), "{}", stderr(&o));
    assert_eq!(
        s.ledger_entries().len(),
        runs,
        "a refused spec started trials"
    );

    // Adding grid values extends the sweep; only the new point runs.
    // (Resources are not frozen: the slot count may change.)
    s.write(
        10,
        "lr = [1e-5, 2e-5, 4e-5]",
        "[resources]\nslots_per_gpu = 1\n",
    );
    assert_ok(&s.run());
    assert_eq!(states(&s), ["completed"; 3]);
    let new: Vec<_> = s.ledger_entries()[runs..].to_vec();
    assert_eq!(new.len(), 2, "train + eval of the new point only: {new:?}");
    assert!(new
        .iter()
        .all(|e| e["dir"].as_str().expect("dir").contains("0003_")));

    // A second orchestrator on the same database refuses, naming the pid.
    s.write(
        10,
        "lr = [1e-5, 2e-5, 4e-5, 8e-5]",
        "[resources]\nslots_per_gpu = 1\n",
    );
    // Slow steps: the first orchestrator's trial must still be running
    // when the Ctrl-C comes, however long the refused second run takes
    // on a loaded machine (at 0.3 s a step it once finished first).
    let s = s.env("STANDIN_STEP_SECONDS", "3");
    let mut first = s.spawn();
    assert!(
        wait_for(Duration::from_secs(20), || !trial_processes(&s.out())
            .is_empty()),
        "the first orchestrator started no trial"
    );
    let o = s.run();
    assert!(!o.status.success(), "a second orchestrator started");
    let err = stderr(&o);
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    kill(first.id() as i32, "INT");
    let st = first.wait().expect("wait");
    assert_eq!(st.code(), Some(130), "Ctrl-C exit status");
    reap(&s.out());
}

#[test]
fn failures_are_retried_with_the_reason_and_divergence_is_a_result() {
    // lr 2e-5 fails once (injected); lr 0.01 overshoots and diverges.
    let s = Sweep::new(
        20,
        "lr = [1e-5, 2e-5, 1e-2]",
        "[resources]\nslots_per_gpu = 3\nmax_retries = 1\n",
    )
    .env("STANDIN_FAIL_LR", "2e-5");
    assert_ok(&s.run());
    let trials = s.trials();
    let by_lr = |lr: f64| {
        trials
            .iter()
            .find(|t| t["point"]["lr"].as_f64() == Some(lr))
            .expect("trial")
            .clone()
    };
    assert_eq!(by_lr(1e-5)["state"], "completed");
    assert_eq!(by_lr(1e-5)["attempt"], 1);
    let retried = by_lr(2e-5);
    assert_eq!(retried["state"], "completed");
    assert_eq!(retried["attempt"], 2);
    let attempts = s.sql(&format!(
        "SELECT attempt, outcome, exit_status, reason FROM attempts WHERE trial_id = {} ORDER BY attempt",
        retried["id"]
    ));
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0][1], "failed");
    assert_eq!(attempts[0][2], 1);
    assert!(
        attempts[0][3]
            .as_str()
            .expect("reason")
            .contains("injected failure"),
        "{attempts:?}"
    );
    assert_eq!(attempts[1][1], "completed");
    let diverged = by_lr(1e-2);
    assert_eq!(diverged["state"], "diverged");
    assert_eq!(diverged["attempt"], 1, "a diverged trial is never retried");
    assert!(diverged["diverged_step"].as_i64().is_some());
    assert!(diverged["scores"].as_object().expect("scores").is_empty());
    // The rule that fired is recorded and shown; the stand-in writes the
    // diverged line of an older trainer (no rule), which means non_finite.
    let rule = diverged["diverged_rule"].as_str().expect("diverged_rule");
    assert!(
        smolsweep_config::DivergenceRule::NAMES.contains(&rule),
        "{rule}"
    );
    if !real_trials() {
        assert_eq!(rule, "non_finite");
    }
    let o = s
        .command(&["status", s.toml().to_str().expect("utf-8")])
        .output()
        .expect("status");
    let table = stdout(&o);
    let shown = format!("step {}: {rule}", diverged["diverged_step"]);
    assert!(table.contains(&shown), "{shown:?} not in\n{table}");

    // Running again changes nothing: completed and diverged are final.
    let before = s.ledger_entries().len();
    assert_ok(&s.run());
    assert_eq!(s.ledger_entries().len(), before);

    // A trial that keeps failing ends `failed` after max_retries.
    let s = Sweep::new(10, "lr = [2e-5]", "[resources]\nmax_retries = 0\n")
        .env("STANDIN_FAIL_LR", "2e-5");
    let o = s.run();
    assert!(!o.status.success(), "a failed sweep must not exit 0");
    assert!(stderr(&o).contains("1 trials failed"), "{}", stderr(&o));
    let t = &s.trials()[0];
    assert_eq!(t["state"], "failed");
    assert!(t["error"]
        .as_str()
        .expect("error")
        .contains("injected failure"));
    // Raising max_retries gives it another attempt (resources are not frozen).
    s.write(10, "lr = [2e-5]", "[resources]\nmax_retries = 1\n");
    assert_ok(&s.run());
    let t = &s.trials()[0];
    assert_eq!(t["state"], "completed");
    assert_eq!(t["attempt"], 2);
}

/// A real trial whose loss collapses (LR 1e4: a uniform guess with a zero
/// gradient) stops early as diverged, naming its rule, is not evaluated,
/// and `status` and the report say why; its healthy neighbour completes.
#[test]
fn a_collapsed_trial_is_diverged_by_its_rule_and_not_evaluated() {
    // 40 conversations, 2 per step, 2 epochs: a budget of 40 steps.
    let s = Sweep::new_real(
        60,
        "lr = [1e-3, 1e4]\nbatch_size = [2]",
        "[resources]\nslots_per_gpu = 2\n",
    );
    assert_ok(&s.run());
    let trials = s.trials();
    let by_lr = |lr: f64| {
        trials
            .iter()
            .find(|t| t["point"]["lr"].as_f64() == Some(lr))
            .expect("trial")
            .clone()
    };
    assert_eq!(by_lr(1e-3)["state"], "completed");
    assert!(by_lr(1e-3)["diverged_rule"].is_null());
    let t = by_lr(1e4);
    assert_eq!(t["state"], "diverged", "{t}");
    let rule = t["diverged_rule"].as_str().expect("rule");
    assert!(["zero_grad", "loss_plateau"].contains(&rule), "{t}");
    let step = t["diverged_step"].as_i64().expect("step");
    assert!(step < 40, "stopped at {step}, not at the end of its budget");
    assert!(t["diverged_message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(t["scores"].as_object().expect("scores").is_empty());
    let dir = s.out().join(t["dir"].as_str().expect("dir"));
    assert!(
        !dir.join("results.json").exists(),
        "a diverged trial is not evaluated"
    );
    let attempts = s.sql(&format!(
        "SELECT outcome, reason FROM attempts WHERE trial_id = {}",
        t["id"]
    ));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0][0], "diverged");
    assert!(attempts[0][1].as_str().is_some_and(|r| r.starts_with(rule)));

    let o = s
        .command(&["status", s.toml().to_str().expect("utf-8")])
        .output()
        .expect("status");
    let table = stdout(&o);
    assert!(table.contains(&format!("step {step}: {rule}")), "{table}");
    let o = s
        .command(&["report", s.toml().to_str().expect("utf-8")])
        .output()
        .expect("report");
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(s.out().join("report/report.md")).expect("report.md");
    assert!(
        md.contains(&format!("diverged: {rule} at step {step}")),
        "{md}"
    );
}

#[test]
fn status_and_export_show_every_trial() {
    let s = Sweep::new(
        10,
        "lr = [1e-5, 3e-5]\nbatch_size = { pow2 = [4, 8] }",
        "[resources]\nslots_per_gpu = 2\n",
    );
    assert_ok(&s.run());
    let o = s
        .command(&["status", s.toml().to_str().expect("utf-8")])
        .output()
        .expect("status");
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("4 trials, 4 completed"), "{table}");
    let header = table.lines().nth(1).expect("header");
    for col in [
        "id",
        "batch_size",
        "lr",
        "state",
        "attempt",
        "progress",
        "loss",
        "arc_easy",
        "hellaswag",
        "slot",
    ] {
        assert!(header.contains(col), "status header lacks {col}: {header}");
    }
    assert_eq!(table.lines().count(), 2 + 4, "{table}");

    let csv = s.dir.path().join("out.csv");
    let o = s
        .command(&[
            "export",
            s.toml().to_str().expect("utf-8"),
            "--csv",
            csv.to_str().expect("utf-8"),
        ])
        .output()
        .expect("export");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    for col in [
        "trial",
        "batch_size",
        "lr",
        "max_steps",
        "state",
        "final_loss",
        "arc_easy/acc",
        "arc_easy/acc_norm",
        "hellaswag/acc",
    ] {
        assert!(header.contains(&col), "csv header lacks {col}: {header:?}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4);
    let acc = header
        .iter()
        .position(|h| *h == "arc_easy/acc")
        .expect("col");
    let db_scores = scores(&s);
    for r in &rows {
        let v: f64 = r[acc].parse().expect("score is a number");
        assert!(db_scores
            .iter()
            .any(|(_, task, m, x)| task == "arc_easy" && m == "acc" && *x == v));
    }
}

#[test]
fn ctrl_c_checkpoints_and_the_next_run_resumes() {
    let reference = Sweep::new(40, "lr = [1e-5, 2e-5]", "[resources]\nslots_per_gpu = 2\n");
    assert_ok(&reference.run());

    let s = Sweep::new(40, "lr = [1e-5, 2e-5]", "[resources]\nslots_per_gpu = 2\n")
        .env("STANDIN_STEP_SECONDS", "0.1");
    let mut child = s.spawn();
    // Wait until both trials have made progress.
    assert!(
        wait_for(Duration::from_secs(30), || {
            s.db().exists()
                && s.sql("SELECT COUNT(*) FROM trials WHERE step >= 8")[0][0].as_i64() == Some(2)
        }),
        "trials made no progress"
    );
    let t = Instant::now();
    kill(child.id() as i32, "INT");
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(130));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        t.elapsed()
    );
    assert!(
        trial_processes(&s.out()).is_empty(),
        "trial processes outlived a clean stop"
    );
    let stopped: Vec<_> = s
        .ledger_entries()
        .into_iter()
        .filter(|e| e["stage"] == "train")
        .collect();
    assert!(
        stopped.iter().all(|e| e["exit"] == 4),
        "trainers must stop with 4: {stopped:?}"
    );
    let trials = s.trials();
    assert!(trials
        .iter()
        .all(|t| t["state"] == "pending" && t["step"].as_i64() >= Some(8)));
    let interrupted = s.sql("SELECT COUNT(*) FROM events WHERE kind = 'interrupted'");
    assert_eq!(interrupted[0][0], 2);

    assert_ok(&s.run());
    assert_eq!(states(&s), ["completed"; 2]);
    // Resumed from the checkpoint, not restarted: a second train process
    // per trial, and scores equal to the uninterrupted reference.
    assert_eq!(scores(&s), scores(&reference));
    assert!(std::fs::read_to_string(s.violations())
        .unwrap_or_default()
        .is_empty());
}

#[test]
fn overhead_of_the_scheduler() {
    // Trials as short as the stand-in allows (1 step, no sleep) on two
    // slots, so what is left between the processes is the scheduler.
    let points = 12;
    let lrs: Vec<String> = (1..=points).map(|i| format!("{i}e-6")).collect();
    let s = Sweep::new(
        1,
        &format!("lr = [{}]", lrs.join(", ")),
        "[resources]\nslots_per_gpu = 2\n",
    )
    .env("STANDIN_STEP_SECONDS", "0")
    .env("STANDIN_EVAL_SECONDS", "0");
    let t = Instant::now();
    assert_ok(&s.run());
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(states(&s), vec!["completed"; points]);

    // Per trial: claim -> train spawned, train exit -> eval spawned, eval
    // exit -> outcome recorded (process exits from the stand-in's ledger).
    let ev = s.sql("SELECT trial_id, at, kind, data_json FROM events ORDER BY id");
    let mut spawned: BTreeMap<(i64, String), f64> = BTreeMap::new();
    let mut claimed: BTreeMap<i64, (f64, i64)> = BTreeMap::new();
    let mut finished: BTreeMap<i64, f64> = BTreeMap::new();
    for e in &ev {
        let (Some(id), Some(at), Some(kind)) = (e[0].as_i64(), e[1].as_f64(), e[2].as_str()) else {
            continue;
        };
        let data: serde_json::Value = e[3]
            .as_str()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        match kind {
            "claimed" => {
                claimed.insert(id, (at, data["slot"].as_i64().expect("slot")));
            }
            "spawned" => {
                spawned.insert((id, data["stage"].as_str().expect("stage").to_string()), at);
            }
            "finished" => {
                finished.insert(id, at);
            }
            _ => {}
        }
    }
    let dirs = s.sql("SELECT id, dir FROM trials");
    let mut ends: BTreeMap<(i64, String), f64> = BTreeMap::new();
    for e in s.ledger_entries() {
        let dir = e["dir"].as_str().expect("dir");
        let id = dirs
            .iter()
            .find(|r| dir.contains(r[1].as_str().expect("dir")))
            .and_then(|r| r[0].as_i64())
            .expect("trial of ledger entry");
        ends.insert(
            (id, e["stage"].as_str().expect("stage").to_string()),
            e["end"].as_f64().expect("end"),
        );
    }
    let mut per_trial = Vec::new();
    for (&id, &(claim, _)) in &claimed {
        let train = spawned[&(id, "train".to_string())];
        let eval = spawned[&(id, "eval".to_string())];
        let overhead = (train - claim)
            + (eval - ends[&(id, "train".to_string())])
            + (finished[&id] - ends[&(id, "eval".to_string())]);
        per_trial.push(overhead);
    }
    // Idle gap of a slot: from the end of one trial's last process to the
    // start of the next trial's first process in the same slot.
    let mut by_slot: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (&id, &(_, slot)) in &claimed {
        by_slot.entry(slot).or_default().push(id);
    }
    let mut gaps = Vec::new();
    for ids in by_slot.values() {
        let mut ids = ids.clone();
        ids.sort_by(|a, b| claimed[a].0.total_cmp(&claimed[b].0));
        for w in ids.windows(2) {
            gaps.push(spawned[&(w[1], "train".to_string())] - ends[&(w[0], "eval".to_string())]);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "overhead: {points} trials on 2 slots in {wall:.2} s; scheduler time per trial mean {:.1} ms (max {:.1} ms); \
         slot idle gap between trials mean {:.1} ms (max {:.1} ms, {} gaps)",
        1e3 * mean(&per_trial),
        1e3 * max(&per_trial),
        1e3 * mean(&gaps),
        1e3 * max(&gaps),
        gaps.len()
    );
    // Loose bounds (CI shares 2 cores with the stand-ins' interpreters):
    // they catch a scheduler that polls for free slots or waits on a timer.
    assert_eq!(gaps.len(), points - 2);
    assert!(
        mean(&gaps) < 0.5,
        "slots idle {:.3} s between trials",
        mean(&gaps)
    );
    assert!(
        mean(&per_trial) < 0.75,
        "scheduler time per trial {:.3} s",
        mean(&per_trial)
    );
}

#[test]
fn status_export_and_report_show_the_papers_averages() {
    let s = Sweep::new(10, "lr = [1e-5, 3e-5]", "[resources]\nslots_per_gpu = 2\n");
    // ARC-Challenge beside ARC-Easy (the stand-in scores by task name; the
    // ARC file serves both), so "ARC (Average)" can be computed.
    let text = std::fs::read_to_string(s.toml()).expect("toml");
    let arc = fixtures().join("tiny/data/arc_easy.jsonl");
    let text = text.replace(
        "tasks = [",
        &format!("tasks = [\"arc_challenge={}\", ", arc.display()),
    );
    std::fs::write(s.toml(), text).expect("toml");
    assert_ok(&s.run());
    let toml = s.toml().to_str().expect("utf-8").to_string();

    // By hand, per trial, from the recorded task scores.
    let db = scores(&s);
    let expected: Vec<(String, f64)> = {
        let mut keys: Vec<&String> = db.iter().map(|(k, ..)| k).collect();
        keys.dedup();
        keys.into_iter()
            .map(|k| {
                let of = |task: &str| {
                    db.iter()
                        .find(|(kk, t, m, _)| kk == k && t == task && m == "acc_norm")
                        .map(|r| r.3)
                        .expect("score")
                };
                (k.clone(), (of("arc_easy") + of("arc_challenge")) / 2.0)
            })
            .collect()
    };
    assert_eq!(expected.len(), 2);

    let o = s.command(&["status", &toml]).output().expect("status");
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let header = table.lines().nth(1).expect("header");
    assert!(header.contains("ARC (Average)"), "{table}");
    // No IFEval scores, so no IFEval average.
    assert!(!header.contains("IFEval"), "{table}");

    let o = s
        .command(&["status", &toml, "--json"])
        .output()
        .expect("status --json");
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    for t in j["trials"].as_array().expect("trials") {
        let key = serde_json::to_string(&t["point"]).expect("point");
        let want = expected
            .iter()
            .find(|(k, _)| {
                serde_json::from_str::<serde_json::Value>(k).expect("key")
                    == serde_json::from_str::<serde_json::Value>(&key).expect("key")
            })
            .map(|e| e.1)
            .expect("trial");
        let got = t["paper"]["ARC (Average)"]["value"].as_f64().expect("row");
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert_eq!(
            t["paper"]["ARC (Average)"]["from"],
            serde_json::json!(["arc_easy/acc_norm", "arc_challenge/acc_norm"])
        );
        // HellaSwag is a row of its own, from its task's acc_norm.
        assert!(t["paper"]["HellaSwag"]["value"].is_number());
    }

    let csv = s.dir.path().join("out.csv");
    let o = s
        .command(&["export", &toml, "--csv", csv.to_str().expect("utf-8")])
        .output()
        .expect("export");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).expect("csv");
    let header: Vec<&str> = text.lines().next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "paper/ARC (Average)")
        .unwrap_or_else(|| panic!("{header:?}"));
    let mut got: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(col)
                .expect("cell")
                .parse()
                .expect("number")
        })
        .collect();
    let mut want: Vec<f64> = expected.iter().map(|e| e.1).collect();
    got.sort_by(f64::total_cmp);
    want.sort_by(f64::total_cmp);
    assert_eq!(got, want);

    let o = s.command(&["report", &toml]).output().expect("report");
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(s.out().join("report/report.md")).expect("report.md");
    assert!(md.contains("| ARC (Average) | `ARC (Average)`"), "{md}");
    assert!(s.out().join("report/figure1.png").exists());
    assert!(s.out().join("report/all_metrics.png").exists());
}
