//! `smolsweep report SWEEP.toml [--out DIR] [--results NAME]`: reads the
//! sweep's database (the scores of its own `[eval]`, or of a results set)
//! and renders the Figure-1 contours, the LR/BS ratio analysis,
//! report.md/report.html and results.csv (crate `smolsweep-report`); a
//! DPO or RM sweep's final reward accuracy and margin are drawn as its
//! benchmarks are.
//! Works on a partial sweep: what is not done is listed as missing.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;
use smolsweep_config::{TRAIN_HEADLINES, TRAIN_METRICS};
use smolsweep_orchestrator::SweepSpec;
use smolsweep_report::{render_report, ReportInput, TrialResult, TrialState};

use crate::args::ReportArgs;

fn number(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// The report's state of a trial: `interrupted` (running, no orchestrator
/// alive) is drawn as running.
fn state_of(s: &str) -> TrialState {
    match s {
        "interrupted" => TrialState::Running,
        s => s.parse().unwrap_or(TrialState::Pending),
    }
}

/// What the report says of a diverged trial: the rule that stopped it
/// and the step (`zero_grad at step 22`).
fn divergence_of(t: &smolsweep_orchestrator::store::Trial) -> Option<String> {
    if t.state != TrialState::Diverged {
        return None;
    }
    match (t.diverged_rule.as_deref(), t.diverged_step) {
        (Some(rule), Some(step)) => Some(format!("{rule} at step {step}")),
        (Some(rule), None) => Some(rule.to_string()),
        (None, Some(step)) => Some(format!("at step {step}")),
        (None, None) => None,
    }
}

/// A DPO or reward-model trial's final reward accuracy and margin (its
/// last logged step's), as metrics the report draws like the benchmarks:
/// `train/rewards/accuracy`, `train/rm/reward_margin`, ...
fn train_headlines(
    row: &smolsweep_orchestrator::snapshot::TrialView,
) -> impl Iterator<Item = (String, f64)> + '_ {
    row.train.iter().flat_map(|f| {
        f.metrics
            .iter()
            .filter(|(m, _)| TRAIN_HEADLINES.contains(&m.as_str()))
            .map(|(m, v)| (format!("{TRAIN_METRICS}/{m}"), *v))
    })
}

pub fn run(a: &ReportArgs) -> Result<()> {
    let spec = SweepSpec::load(&a.sweep)?;
    let s = super::sweep_snapshot(&spec, a.results.as_deref())?;
    // A key neither the grid nor [train] sets has the trial schema's default.
    let fixed = |key: &str| {
        spec.train.get(key).cloned().or_else(|| {
            smolsweep_config::keys::find(smolsweep_config::trial::TRIAL_KEYS, key)
                .and_then(|k| k.default_value())
        })
    };
    let base_lr =
        fixed("lr").and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)));
    let base_bs = fixed("batch_size").and_then(|v| v.as_integer());
    let mut trials = Vec::with_capacity(s.rows.len());
    for row in &s.rows {
        let lr = number(row.point.get("lr")).or(base_lr).with_context(|| {
            format!(
                "trial {}: no learning rate in its grid point or [train]",
                row.trial.id
            )
        })?;
        let bs = row
            .point
            .get("batch_size")
            .and_then(Value::as_i64)
            .or(base_bs)
            .with_context(|| {
                format!(
                    "trial {}: no batch_size in its grid point or [train]",
                    row.trial.id
                )
            })?;
        let seed = row.point.get("seed").and_then(Value::as_i64);
        // The paper's averages are metrics of their own (contours, Figure
        // 1's panels (a) and (d), Table 9); its single-metric rows are
        // their tasks' metrics already.
        let combined = row
            .paper
            .iter()
            .filter(|p| smolsweep_config::paper::row(&p.row).is_some_and(|r| r.is_combined()));
        let scores: BTreeMap<String, f64> = row
            .scores
            .iter()
            .map(|sc| (format!("{}/{}", sc.task, sc.metric), sc.value))
            .chain(combined.map(|p| (p.row.clone(), p.value)))
            .chain(train_headlines(row))
            .collect();
        let extra: BTreeMap<String, String> = row
            .point
            .iter()
            .filter(|(k, _)| !["lr", "batch_size", "seed"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        trials.push(TrialResult {
            lr,
            batch_size: u32::try_from(bs)
                .with_context(|| format!("trial {}: batch_size {bs}", row.trial.id))?,
            seed,
            state: state_of(&row.shown_state),
            scores,
            extra,
            divergence: divergence_of(&row.trial),
            stopped_at: (row.trial.state == TrialState::StoppedEarly)
                .then_some(row.trial.stopped_step)
                .flatten(),
        });
    }
    let out = a.out.clone().unwrap_or_else(|| match &a.results {
        Some(set) => spec.output_dir.join(format!("report.{set}")),
        None => spec.output_dir.join("report"),
    });
    let input = ReportInput {
        sweep_name: s.name.clone(),
        spec_toml: spec.source.clone(),
        expected_points: trials.len(),
        trials,
    };
    let summary = render_report(&input, &out)
        .with_context(|| format!("rendering the report into {}", out.display()))?;
    tracing::info!(files = summary.files.len(), "report written");
    println!("{}", out.join("report.md").display());
    Ok(())
}
