//! The sweep's stop rule (`[resources] stop_rule = "median"`): Google
//! Vizier's median stopping rule (Golovin et al., "Google Vizier", KDD
//! 2017, section 3.2.2) on the training loss. At each `stop_at` fraction
//! of a running trial's planned steps, the trial stops when its best loss
//! so far is worse than the median, over the completed trials, of each
//! one's running mean loss up to the same fraction of its own steps
//! (comparing at fractions, not steps, lets trials of different batch
//! sizes, hence step counts, be compared over the same share of data).
//! At least `stop_min_completed` completed trials are needed before the
//! rule stops anything.
//!
//! The rule does not stop a process itself: it writes the trainer's stop
//! request file into the trial's output directory, and the trainer
//! checkpoints, exports and reports `stopped_early` at its next step
//! boundary. So the decision outlives the orchestrator that made it, and
//! the trial's own files still say what happened.

use std::path::PathBuf;

use serde_json::json;
use smolsweep_config::sweep::{Resources, StopRule};
use smolsweep_config::{TrainEvent, TrialState};

use super::{io_err, RunError};
use crate::store::{Curve, EventLine, Store};

/// What the rule saw at one fraction of a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub stop: bool,
    pub fraction: f64,
    pub step: u64,
    pub total_steps: u64,
    /// The trial's best loss up to `step`.
    pub best: f64,
    /// The median of the references' running mean losses.
    pub median: f64,
    /// Completed trials compared with.
    pub references: usize,
}

impl Verdict {
    /// One line for people, e.g. in `status` and the report.
    pub fn message(&self) -> String {
        let pct = self.fraction * 100.0;
        format!(
            "median rule at {pct:.0}% of its steps (step {} of {}): best loss {:.4} {} {:.4}, \
             the median of {} completed trials' mean losses to {pct:.0}% of theirs",
            self.step,
            self.total_steps,
            self.best,
            if self.stop {
                "is worse than"
            } else {
                "is no worse than"
            },
            self.median,
            self.references
        )
    }
}

/// The median stopping rule at `fraction` for a trial at `step` of
/// `total_steps` with loss curve `trial`, against the curves of completed
/// trials. None when fewer than `min_completed` references have a loss
/// recorded by that fraction, or the trial has none yet.
pub fn median_verdict(
    fraction: f64,
    step: u64,
    total_steps: u64,
    trial: &Curve,
    completed: &[Curve],
    min_completed: u32,
) -> Option<Verdict> {
    let best = trial
        .points
        .iter()
        .filter(|(s, _)| *s as u64 <= step)
        .map(|&(_, l)| l)
        .reduce(f64::min)?;
    let mut means: Vec<f64> = completed
        .iter()
        .filter(|c| c.trial_id != trial.trial_id)
        .filter_map(|c| {
            let last = c.points.last()?.0 as f64;
            let upto = fraction * last;
            let losses: Vec<f64> = c
                .points
                .iter()
                .filter(|(s, _)| *s as f64 <= upto)
                .map(|&(_, l)| l)
                .collect();
            (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64)
        })
        .collect();
    if means.len() < min_completed as usize {
        return None;
    }
    means.sort_by(f64::total_cmp);
    let n = means.len();
    let median = if n % 2 == 1 {
        means[n / 2]
    } else {
        (means[n / 2 - 1] + means[n / 2]) / 2.0
    };
    Some(Verdict {
        stop: best > median,
        fraction,
        step,
        total_steps,
        best,
        median,
        references: n,
    })
}

/// The rule watching one running trial's events.
pub(super) struct StopWatch {
    fractions: Vec<f64>,
    /// The next fraction to look at.
    next: usize,
    min_completed: u32,
    /// The trainer's stop request file.
    request: PathBuf,
    /// The trial's recorded step when watching began: fractions it had
    /// passed by then were looked at (or skipped) by whoever ran it then.
    start_step: u64,
    primed: bool,
}

impl StopWatch {
    /// None when the sweep has no stop rule.
    pub(super) fn new(r: &Resources, request: PathBuf, start_step: u64) -> Option<Self> {
        (r.stop_rule == StopRule::Median).then(|| StopWatch {
            fractions: r.stop_at.clone(),
            next: 0,
            min_completed: r.stop_min_completed,
            request,
            start_step,
            primed: false,
        })
    }

    /// Looks at the fractions the trial's last step in `lines` has reached;
    /// on a stop, writes the request (once) and records why.
    pub(super) async fn observe(
        &mut self,
        store: &Store,
        trial_id: i64,
        lines: &[EventLine],
    ) -> Result<(), RunError> {
        let Some((step, total)) = lines.iter().rev().find_map(|e| match e.event {
            Some(TrainEvent::Step {
                step, total_steps, ..
            }) if total_steps > 0 => Some((step, total_steps)),
            _ => None,
        }) else {
            return Ok(());
        };
        let reached = |f: f64| step as f64 >= (f * total as f64).ceil();
        if !self.primed {
            self.primed = true;
            let start = self.start_step as f64;
            while self.next < self.fractions.len()
                && start >= (self.fractions[self.next] * total as f64).ceil()
            {
                self.next += 1;
            }
        }
        while self.next < self.fractions.len() && reached(self.fractions[self.next]) {
            let fraction = self.fractions[self.next];
            self.next += 1;
            // Judged at the step where the fraction was reached, however
            // far the trainer has got since the last read.
            let at = (fraction * total as f64).ceil() as u64;
            if self.request.exists() {
                return Ok(());
            }
            let trial = store.curve(trial_id).await?;
            let completed = store.curves_in(TrialState::Completed).await?;
            let Some(v) =
                median_verdict(fraction, at, total, &trial, &completed, self.min_completed)
            else {
                tracing::debug!(
                    trial = trial_id,
                    fraction,
                    "stop rule: too few completed trials to compare"
                );
                continue;
            };
            let data = json!({
                "rule": "median",
                "fraction": fraction,
                "step": at,
                "seen_step": step,
                "total_steps": total,
                "best_loss": v.best,
                "median": v.median,
                "completed": v.references,
                "message": v.message(),
            });
            if v.stop {
                write_request(&self.request, &data)?;
                store.event(Some(trial_id), "stop_rule.stop", &data).await?;
                tracing::info!(trial = trial_id, "{}", v.message());
                self.next = self.fractions.len();
            } else {
                store.event(Some(trial_id), "stop_rule.keep", &data).await?;
            }
        }
        Ok(())
    }
}

/// Writes the request whole or not at all (the trainer may read it at any
/// moment).
fn write_request(path: &std::path::Path, data: &serde_json::Value) -> Result<(), RunError> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, format!("{data}\n")).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(id: i64, losses: &[f64]) -> Curve {
        Curve {
            trial_id: id,
            points: losses
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as i64 + 1, l))
                .collect(),
        }
    }

    /// Hand-checked: references of 4 and 8 steps; at half of their steps
    /// their running means are (4+2)/2 = 3, (6+5+4+3)/4 = 4.5 and
    /// (5+3)/2 = 4, median 4. A trial whose best is 4.5 stops; one whose
    /// best is 4 (equal, not worse) does not.
    #[test]
    fn the_median_rule_by_hand() {
        let refs = [
            curve(1, &[4.0, 2.0, 1.0, 1.0]),
            curve(2, &[6.0, 5.0, 4.0, 3.0, 2.0, 2.0, 2.0, 2.0]),
            curve(3, &[5.0, 3.0, 2.0, 1.0]),
        ];
        let bad = curve(9, &[9.0, 4.5, 0.1]);
        let v = median_verdict(0.5, 2, 4, &bad, &refs, 3).expect("verdict");
        assert_eq!(
            (v.median, v.best, v.stop, v.references),
            (4.0, 4.5, true, 3)
        );
        assert!(
            v.message()
                .contains("best loss 4.5000 is worse than 4.0000"),
            "{}",
            v.message()
        );
        // A loss after `step` (a replay beyond the checkpoint) is not seen.
        let level = curve(9, &[9.0, 4.0, 0.1]);
        let v = median_verdict(0.5, 2, 4, &level, &refs, 3).expect("verdict");
        assert!(!v.stop);
        // An even count takes the mean of the middle two.
        let v = median_verdict(0.5, 2, 4, &bad, &refs[..2], 2).expect("verdict");
        assert_eq!(v.median, 3.75);
    }

    #[test]
    fn too_few_references_decide_nothing() {
        let refs = [curve(1, &[4.0, 2.0]), curve(2, &[])];
        let t = curve(9, &[9.0, 9.0]);
        assert_eq!(median_verdict(0.5, 1, 2, &t, &refs, 2), None);
        assert!(median_verdict(0.5, 1, 2, &t, &refs, 1).is_some());
        // A trial never compares with itself.
        assert_eq!(median_verdict(0.5, 1, 2, &curve(1, &[9.0]), &refs, 1), None);
        // No loss of its own yet: nothing to compare.
        assert_eq!(median_verdict(0.5, 1, 2, &curve(9, &[]), &refs, 1), None);
    }
}
