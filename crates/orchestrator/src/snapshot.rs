//! A sweep read back from its database as one [`Snapshot`] (every trial with
//! its grid point, shown state and scores), and its renderings: the `status`
//! table (or JSON) and the `export` CSV; `report` builds on the same
//! snapshot. Only reads, so it works while the sweep runs.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value as Json};
use smolsweep_config::TrialState;

use crate::locks;
use crate::store::{
    job_json, now, FinalMetrics, Score, SlurmJob, Store, StoreError, Trial, DEFAULT_SET,
};
use smolsweep_config::paper::{self, paper_scores, PaperScore, PAPER_ROWS};
use smolsweep_config::results::Metric;
use smolsweep_config::value::format_float;
use smolsweep_config::{SweepSpec, TRAIN_METRICS};

/// A trial's row as status and export see it.
#[derive(Debug, Clone)]
pub struct TrialView {
    pub trial: Trial,
    pub point: serde_json::Map<String, Json>,
    /// `running` shown as `interrupted` when no orchestrator is alive.
    pub shown_state: String,
    pub scores: Vec<Score>,
    /// The paper's table rows its scores make, in the paper's order.
    pub paper: Vec<PaperScore>,
    /// The Slurm job of its latest attempt (Slurm backend).
    pub slurm: Option<SlurmJob>,
    /// Its final training metrics (a DPO or reward-model trial's last
    /// logged rewards), when it logged any.
    pub train: Option<FinalMetrics>,
}

/// Everything `status` and `export` print.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub axes: Vec<String>,
    pub orchestrator: Option<i64>,
    pub rows: Vec<TrialView>,
    /// Every (task, metric) that any trial has, sorted.
    pub metrics: Vec<(String, String)>,
    /// The paper's rows any trial has, in the paper's order.
    pub paper_rows: Vec<&'static str>,
    /// Every final training metric any trial has, sorted.
    pub train_metrics: Vec<String>,
    /// The results set whose scores these are (`default`: the sweep's
    /// own `[eval]`).
    pub results_set: String,
    /// Every results set recorded, the default first.
    pub results_sets: Vec<String>,
    pub max_steps: Option<i64>,
}

/// Reads the sweep recorded at `spec.db`, with its own `[eval]`'s scores.
pub async fn read(spec: &SweepSpec) -> Result<Snapshot, StoreError> {
    read_set(spec, None).await
}

/// Reads the sweep recorded at `spec.db`, with the scores of results set
/// `results` (None: the default set, the sweep's own `[eval]`, showing
/// only the tasks it lists now: a task removed from it is hidden).
pub async fn read_set(spec: &SweepSpec, results: Option<&str>) -> Result<Snapshot, StoreError> {
    let store = Store::open_read_only(&spec.db).await?;
    let sweep = store.sweep().await?;
    let trials = store.trials().await?;
    let sets: Vec<String> = store
        .results_sets()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let set = results.unwrap_or(DEFAULT_SET);
    if !sets.iter().any(|s| s == set) {
        store.close().await;
        return Err(StoreError::ResultsSet {
            db: spec.db.clone(),
            name: set.to_string(),
            msg: format!("is not recorded (recorded: {})", sets.join(", ")),
        });
    }
    let mut scores = store.set_scores(set).await?;
    let mut train = store.final_train_metrics().await?;
    let mut jobs: BTreeMap<i64, SlurmJob> = BTreeMap::new();
    for j in store.slurm_jobs().await? {
        // Ordered by attempt: the latest stays.
        jobs.insert(j.trial_id, j);
    }
    store.close().await;
    if set == DEFAULT_SET {
        let recorded: Json = serde_json::from_str(&sweep.spec_json).unwrap_or_default();
        if let Some(tasks) = recorded["eval"]["tasks"].as_array() {
            let names: Vec<&str> = tasks
                .iter()
                .filter_map(Json::as_str)
                .map(smolsweep_config::sweep::task_name)
                .collect();
            // Only benchmarks the registry knows: a task another harness
            // named its own way cannot be told apart from a removed one.
            scores.retain(|s| {
                names.contains(&s.score.task.as_str())
                    || s.score.task.parse::<smolsweep_config::Task>().is_err()
            });
        }
    }
    // The recorded orchestrator counts as alive when its process exists
    // and it beat recently (a reused pid alone proves nothing).
    let orchestrator = sweep.orchestrator_pid.filter(|&pid| {
        locks::alive(pid)
            && sweep
                .orchestrator_heartbeat
                .is_some_and(|t| now() - t < 30.0)
    });
    let mut metrics: Vec<(String, String)> = scores
        .iter()
        .map(|s| (s.score.task.clone(), s.score.metric.clone()))
        .collect();
    metrics.sort();
    metrics.dedup();
    let mut by_trial: BTreeMap<i64, Vec<Score>> = BTreeMap::new();
    for s in scores {
        by_trial.entry(s.trial_id).or_default().push(s.score);
    }
    let rows: Vec<TrialView> = trials
        .into_iter()
        .map(|t| {
            let point = serde_json::from_str(&t.point_key).unwrap_or_default();
            let slurm = jobs.remove(&t.id);
            // A Slurm job runs on without its orchestrator.
            let job_active = slurm.as_ref().is_some_and(|j| j.ended_at.is_none());
            let shown_state =
                if t.state == TrialState::Running && orchestrator.is_none() && !job_active {
                    "interrupted".to_string()
                } else {
                    t.state.to_string()
                };
            let scores = by_trial.remove(&t.id).unwrap_or_default();
            TrialView {
                train: train.remove(&t.id),
                paper: paper_of(&scores),
                scores,
                trial: t,
                point,
                shown_state,
                slurm,
            }
        })
        .collect();
    let paper_rows = PAPER_ROWS
        .iter()
        .map(|r| r.name)
        .filter(|n| {
            rows.iter()
                .any(|v: &TrialView| v.paper.iter().any(|p| p.row == *n))
        })
        .collect();
    let mut train_metrics: Vec<String> = rows
        .iter()
        .flat_map(|r| r.train.iter().flat_map(|f| f.metrics.keys().cloned()))
        .collect();
    train_metrics.sort();
    train_metrics.dedup();
    Ok(Snapshot {
        train_metrics,
        name: sweep.name,
        paper_rows,
        axes: spec.grid.iter().map(|a| a.key.clone()).collect(),
        orchestrator,
        rows,
        metrics,
        results_set: set.to_string(),
        results_sets: sets,
        max_steps: spec
            .train
            .get("max_steps")
            .and_then(toml::Value::as_integer),
    })
}

/// The paper's rows a trial's scores make.
fn paper_of(scores: &[Score]) -> Vec<PaperScore> {
    paper_scores(|task, metric| {
        scores
            .iter()
            .find(|s| s.task == task && s.metric == metric)
            .map(|s| Metric {
                value: s.value,
                stderr: s.stderr,
            })
    })
}

/// The paper's rows the status table adds as columns: the combinations
/// (ARC (Average), IFEval (Average)); a single-metric row is already the
/// headline of its task's column.
fn combined_rows(s: &Snapshot) -> Vec<&'static str> {
    s.paper_rows
        .iter()
        .copied()
        .filter(|n| paper::row(n).is_some_and(|r| r.is_combined()))
        .collect()
}

fn paper_value(r: &TrialView, row: &str) -> Option<f64> {
    r.paper.iter().find(|p| p.row == row).map(|p| p.value)
}

fn json_text(v: &Json) -> String {
    match v {
        Json::Number(n) if !n.is_i64() => n.as_f64().map(format_float).unwrap_or_default(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The score shown for a task in the status table: the registry's headline
/// metric for a benchmark smolsweep knows, else the first of the names
/// other harnesses give it (results.json from lm-eval), else the first.
fn headline(scores: &[Score], task: &str) -> Option<f64> {
    const OTHER_NAMES: &[&str] = &[
        "acc_norm",
        "acc",
        "exact_match,strict-match",
        "exact_match/strict",
        "strict",
        "exact_match",
        "prompt_level_strict_acc",
    ];
    let of_task: Vec<&Score> = scores.iter().filter(|s| s.task == task).collect();
    let known = task
        .parse::<smolsweep_config::Task>()
        .ok()
        .map(|t| t.headline());
    known
        .into_iter()
        .chain(OTHER_NAMES.iter().copied())
        .find_map(|p| of_task.iter().find(|s| s.metric == p))
        .or_else(|| of_task.first())
        .map(|s| s.value)
}

/// The status table, one line per grid point.
pub fn render_table(s: &Snapshot) -> String {
    let tasks: Vec<String> = {
        let mut t: Vec<String> = s.metrics.iter().map(|(t, _)| t.clone()).collect();
        t.dedup();
        t
    };
    let mut header: Vec<String> = vec!["id".into()];
    header.extend(s.axes.iter().cloned());
    header.extend(["state", "attempt", "progress", "loss"].map(String::from));
    header.extend(tasks.iter().cloned());
    let combined = combined_rows(s);
    header.extend(combined.iter().map(|n| n.to_string()));
    header.push("slot".into());
    let on_slurm = s.rows.iter().any(|r| r.slurm.is_some());
    if on_slurm {
        header.push("slurm job".into());
    }
    let mut rows = vec![header];
    for r in &s.rows {
        let t = &r.trial;
        let mut row = vec![t.id.to_string()];
        for a in &s.axes {
            row.push(r.point.get(a).map(json_text).unwrap_or_default());
        }
        row.push(r.shown_state.clone());
        row.push(t.attempt.to_string());
        let progress = match (t.state, t.step) {
            (TrialState::Completed, _) => "done".to_string(),
            (TrialState::StoppedEarly, _) => {
                let step = t.stopped_step.or(t.step).unwrap_or(0);
                match s.max_steps {
                    Some(m) => format!("stopped at {step}/{m}"),
                    None => format!("stopped at step {step}"),
                }
            }
            (TrialState::Diverged, _) => {
                let step = t.diverged_step.or(t.step).unwrap_or(0);
                match &t.diverged_rule {
                    Some(rule) => format!("step {step}: {rule}"),
                    None => format!("step {step}"),
                }
            }
            (_, Some(step)) => match s.max_steps {
                Some(m) => format!("{step}/{m}"),
                None => format!("step {step}"),
            },
            _ => "-".to_string(),
        };
        row.push(if t.state == TrialState::Running {
            format!("{progress} ({})", t.stage.as_deref().unwrap_or("starting"))
        } else {
            progress
        });
        row.push(
            t.last_loss
                .map(|l| format!("{l:.4}"))
                .unwrap_or_else(|| "-".into()),
        );
        for task in &tasks {
            row.push(
                headline(&r.scores, task)
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        for name in &combined {
            row.push(
                paper_value(r, name)
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        row.push(match (t.state.as_str(), t.slot) {
            ("running", Some(slot)) => match t.cuda_visible_devices.as_deref() {
                Some(g) if !g.is_empty() => format!("{slot} (gpu {g})"),
                _ => slot.to_string(),
            },
            _ => "-".into(),
        });
        if on_slurm {
            row.push(match &r.slurm {
                Some(j) => {
                    let mut cell = format!(
                        "{} {}",
                        j.job_id.as_deref().unwrap_or("(submitting)"),
                        j.state.as_deref().unwrap_or("-")
                    );
                    if let Some(node) = &j.node {
                        cell.push_str(&format!(" on {node}"));
                    }
                    if j.restarts > 0 {
                        cell.push_str(&format!(", requeued {}x", j.restarts));
                    }
                    cell
                }
                None => "-".into(),
            });
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let counts = |st: &str| s.rows.iter().filter(|r| r.shown_state == st).count();
    out.push_str(&format!(
        "sweep {}: {} trials, {} completed, {}{} diverged, {} failed, {} running, {} pending{}\n",
        s.name,
        s.rows.len(),
        counts("completed"),
        match counts("stopped_early") {
            0 => String::new(),
            n => format!("{n} stopped early, "),
        },
        counts("diverged"),
        counts("failed"),
        counts("running"),
        counts("pending") + counts("interrupted"),
        match s.orchestrator {
            Some(pid) => format!(" (orchestrator pid {pid})"),
            None => " (no orchestrator running)".into(),
        }
    ));
    if s.results_sets.len() > 1 || s.results_set != DEFAULT_SET {
        out.push_str(&format!(
            "scores: results set {} (recorded: {}; choose with --results NAME)\n",
            s.results_set,
            s.results_sets.join(", ")
        ));
    }
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The status as JSON: one object per trial.
pub fn render_json(s: &Snapshot) -> Json {
    let trials: Vec<Json> = s
        .rows
        .iter()
        .map(|r| {
            let t = &r.trial;
            let mut scores = serde_json::Map::new();
            for sc in &r.scores {
                let task = scores
                    .entry(sc.task.clone())
                    .or_insert_with(|| Json::Object(Default::default()));
                if let Some(m) = task.as_object_mut() {
                    m.insert(sc.metric.clone(), json!(sc.value));
                    if let Some(e) = sc.stderr {
                        m.insert(format!("{}_stderr", sc.metric), json!(e));
                    }
                }
            }
            json!({
                "id": t.id,
                "point": r.point,
                "dir": t.dir,
                "state": r.shown_state,
                "stage": t.stage,
                "attempt": t.attempt,
                "step": t.step,
                "epoch": t.epoch,
                "loss": t.last_loss,
                "slot": t.slot,
                "cuda_visible_devices": t.cuda_visible_devices,
                "pid": t.pid,
                "started_at": t.started_at,
                "ended_at": t.ended_at,
                "exit_status": t.exit_status,
                "error": t.error,
                "diverged_step": t.diverged_step,
                "diverged_rule": t.diverged_rule,
                "diverged_message": t.diverged_message,
                "last_finite_loss": t.last_finite_loss,
                "stopped_step": t.stopped_step,
                "stopped_message": t.stopped_message,
                "scores": scores,
                "paper": r.paper.iter().map(|p| (p.row.clone(), json!({
                    "value": p.value,
                    "stderr": p.stderr,
                    "from": p.from,
                }))).collect::<serde_json::Map<String, Json>>(),
                "slurm": r.slurm.as_ref().map(job_json),
                // The last logged step's rewards (DPO, RM), beside the
                // eval scores; null for an SFT trial.
                TRAIN_METRICS: r.train.as_ref().map(|f| json!({
                    "step": f.step,
                    "metrics": f.metrics,
                })),
            })
        })
        .collect();
    json!({
        "sweep": s.name,
        "orchestrator_pid": s.orchestrator,
        "results_set": s.results_set,
        "results_sets": s.results_sets,
        "trials": trials,
    })
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV row per trial: hyperparameters (every trial key, the axes
/// first), state, attempt, steps, loss, every score as `task/metric`, and
/// every final training metric as `train/metric` (DPO and RM trials).
pub fn render_csv(spec: &SweepSpec, s: &Snapshot) -> String {
    let fixed: Vec<String> = spec
        .train
        .keys()
        .filter(|k| !s.axes.contains(k))
        .cloned()
        .collect();
    let mut header: Vec<String> = vec!["trial".into()];
    header.extend(s.axes.iter().cloned());
    header.extend(fixed.iter().cloned());
    header.extend(
        [
            "state",
            "attempt",
            "step",
            "epoch",
            "final_loss",
            "diverged_step",
            "diverged_rule",
            "last_finite_loss",
            "stopped_step",
            "exit_status",
            "error",
            "dir",
        ]
        .map(String::from),
    );
    for (task, metric) in &s.metrics {
        header.push(format!("{task}/{metric}"));
    }
    for name in &s.paper_rows {
        header.push(format!("paper/{name}"));
        header.push(format!("paper/{name}/stderr"));
    }
    for m in &s.train_metrics {
        header.push(format!("{TRAIN_METRICS}/{m}"));
    }
    let mut out = header
        .iter()
        .map(|h| csv_cell(h))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    let opt = |v: Option<String>| v.unwrap_or_default();
    for r in &s.rows {
        let t = &r.trial;
        let mut row = vec![t.id.to_string()];
        for a in &s.axes {
            row.push(r.point.get(a).map(json_text).unwrap_or_default());
        }
        for k in &fixed {
            row.push(
                spec.train
                    .get(k)
                    .map(|v| json_text(&smolsweep_config::value::to_json(v)))
                    .unwrap_or_default(),
            );
        }
        row.push(r.shown_state.clone());
        row.push(t.attempt.to_string());
        row.push(opt(t.step.map(|x| x.to_string())));
        row.push(opt(t.epoch.map(|x| x.to_string())));
        row.push(opt(t.last_loss.map(|x| x.to_string())));
        row.push(opt(t.diverged_step.map(|x| x.to_string())));
        row.push(opt(t.diverged_rule.clone()));
        row.push(opt(t.last_finite_loss.map(|x| x.to_string())));
        row.push(opt(t.stopped_step.map(|x| x.to_string())));
        row.push(opt(t.exit_status.map(|x| x.to_string())));
        row.push(opt(t.error.clone()));
        row.push(t.dir.clone());
        for (task, metric) in &s.metrics {
            row.push(opt(r
                .scores
                .iter()
                .find(|sc| &sc.task == task && &sc.metric == metric)
                .map(|sc| sc.value.to_string())));
        }
        for name in &s.paper_rows {
            let p = r.paper.iter().find(|p| p.row == *name);
            row.push(opt(p.map(|p| p.value.to_string())));
            row.push(opt(p.and_then(|p| p.stderr).map(|e| e.to_string())));
        }
        for m in &s.train_metrics {
            row.push(opt(r
                .train
                .as_ref()
                .and_then(|f| f.metrics.get(m))
                .map(|v| v.to_string())));
        }
        out.push_str(
            &row.iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

/// Writes the CSV to `path` (through a temporary file, renamed).
pub fn write_csv(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
