//! The sweep's opt-in stop rule end to end, on real trials of a tiny
//! model: `[resources] stop_rule = "median"` stops a trial whose loss is
//! hopeless next to the completed ones, records it `stopped_early` with
//! the rule's numbers, evaluates the model where it stopped, and marks it
//! in `status` and the report; turning the rule off trains it on to the
//! end from that checkpoint.

use crate::orchestrator_helpers::*;

// Five epochs of the 40 conversations, 2 per step: 100 steps a trial, so
// the trainer is far from its end when the request reaches it.
const GRID: &str = "lr = [1e-2, 5e-3, 1e-9]\nbatch_size = [2]\nepochs = [5]";
const STEPS: i64 = 100;

fn resources(rule: &str) -> String {
    format!(
        "[resources]\ngpus = []\nslots_per_gpu = 1\nstop_rule = {rule:?}\nstop_at = [0.25]\nstop_min_completed = 2\n"
    )
}

fn by_lr(s: &Sweep, lr: f64) -> serde_json::Value {
    s.trials()
        .into_iter()
        .find(|t| t["point"]["lr"].as_f64() == Some(lr))
        .expect("trial")
}

/// One slot, so the two healthy trials complete before the third starts:
/// at a quarter of its steps its best loss (LR 1e-9: it cannot learn)
/// is worse than the median of theirs, and it stops there.
#[test]
fn the_median_rule_stops_a_hopeless_trial_and_scores_it_where_it_stopped() {
    let s = Sweep::new_real(120, GRID, &resources("median"));
    let o = s.run();
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    assert!(
        stderr(&o).contains("2 completed, 1 stopped early, 0 diverged"),
        "{}",
        stderr(&o)
    );
    for lr in [1e-2, 5e-3] {
        let t = by_lr(&s, lr);
        assert_eq!(t["state"], "completed", "{t}");
        assert_eq!(t["step"], STEPS, "{t}");
    }
    let t = by_lr(&s, 1e-9);
    assert_eq!(t["state"], "stopped_early", "{t}");
    let step = t["stopped_step"].as_i64().expect("stopped_step");
    // Judged at step 25; the trainer stops at the first step boundary
    // after the request, well before its end.
    assert!((25..STEPS).contains(&step), "stopped at {step}: {t}");
    let message = t["stopped_message"].as_str().expect("message");
    assert!(
        message.starts_with("median rule at 25% of its steps (step 25 of 100): best loss"),
        "{message}"
    );
    assert!(message.contains("is worse than"), "{message}");
    // Evaluated where it stopped: scores like a completed trial's.
    assert!(!t["scores"].as_object().expect("scores").is_empty(), "{t}");
    let dir = s.out().join(t["dir"].as_str().expect("dir"));
    assert!(dir.join("results.json").is_file());
    assert!(dir.join("out/final/config.json").is_file());
    // The healthy trials ran first, with nothing to compare with: the
    // rule's only decision is this stop.
    let decisions = s.sql("SELECT trial_id, kind FROM events WHERE kind LIKE 'stop_rule.%'");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0][0], t["id"]);
    assert_eq!(decisions[0][1], "stop_rule.stop");
    let attempts = s.sql(&format!(
        "SELECT outcome, exit_status FROM attempts WHERE trial_id = {}",
        t["id"]
    ));
    assert_eq!(
        attempts,
        vec![vec![
            serde_json::json!("stopped_early"),
            serde_json::json!(0)
        ]]
    );

    let o = s
        .command(&["status", s.toml().to_str().expect("utf-8")])
        .output()
        .expect("status");
    let table = stdout(&o);
    assert!(
        table.contains("2 completed, 1 stopped early, 0 diverged"),
        "{table}"
    );
    assert!(table.contains(&format!("stopped at {step}/120")), "{table}");
    let o = s
        .command(&["report", s.toml().to_str().expect("utf-8")])
        .output()
        .expect("report");
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(s.out().join("report/report.md")).expect("report.md");
    assert!(
        md.contains(&format!("stopped early at step {step}")),
        "{md}"
    );
    assert!(md.contains("1 stopped early by the stop rule"), "{md}");

    // A second run with the rule on changes nothing: it is a result.
    let o = s.run();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(by_lr(&s, 1e-9)["state"], "stopped_early");

    // With the rule off, the trial trains on from where it stopped to the
    // end of its plan and is evaluated again; the early results are kept.
    s.write(120, GRID, &resources("none"));
    let o = s.run();
    assert!(o.status.success(), "{}", stderr(&o));
    let t = by_lr(&s, 1e-9);
    assert_eq!(t["state"], "completed", "{t}");
    assert_eq!(t["step"], STEPS, "{t}");
    assert!(t["stopped_step"].is_null(), "{t}");
    assert!(dir.join("stopped_early/results.json").is_file());
    assert!(dir.join("stopped_early/stop_early.json").is_file());
    assert!(dir.join("results.json").is_file());
    let events = std::fs::read_to_string(dir.join("train.events.jsonl")).expect("events");
    let resumed_from = events
        .lines()
        .filter(|l| l.contains("\"event\":\"step\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["step"].as_i64().unwrap_or(0))
        .collect::<Vec<_>>();
    // Steps 1..=stop, then stop+1..=100: resumed, not restarted.
    assert_eq!(resumed_from.len(), STEPS as usize, "{resumed_from:?}");
    assert_eq!(resumed_from.iter().filter(|&&s| s == 1).count(), 1);
}

/// Bad values of the rule's keys are refused before anything runs, each
/// naming the key.
#[test]
fn bad_stop_rule_keys_are_refused_with_the_key() {
    let cases = [
        ("stop_rule = \"mean\"", "resources.stop_rule"),
        ("stop_at = []", "resources.stop_at"),
        ("stop_at = [0.5, 0.25]", "resources.stop_at[1]"),
        ("stop_at = [1.0]", "resources.stop_at[0]"),
        ("stop_min_completed = 0", "resources.stop_min_completed"),
    ];
    for (line, key) in cases {
        let s = Sweep::new(10, "lr = [1e-5]", &format!("[resources]\n{line}\n"));
        let o = s.run();
        assert!(!o.status.success(), "{line} was accepted");
        let err = stderr(&o);
        assert!(err.contains(key), "{line}: {err}");
        assert!(!s.db().exists(), "{line}: something was recorded");
    }
}
