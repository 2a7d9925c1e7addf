//! Training-loss curves read back from the recorded steps, for the
//! sweep's stop rule: the running trial's own, and those of every trial
//! that trained to the end; and each trial's final training metrics (a
//! DPO or reward-model step's rewards), for status, export and the report.

use std::collections::BTreeMap;

use smolsweep_config::TrialState;

use super::{Store, StoreError};

/// One trial's recorded (step, loss) pairs, in step order, finite losses
/// only.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub trial_id: i64,
    pub points: Vec<(i64, f64)>,
}

impl Store {
    /// The loss curve of one trial.
    pub async fn curve(&self, trial_id: i64) -> Result<Curve, StoreError> {
        let rows: Vec<(i64, Option<f64>)> =
            sqlx::query_as("SELECT step, loss FROM steps WHERE trial_id = ? ORDER BY step")
                .bind(trial_id)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        Ok(Curve {
            trial_id,
            points: finite(rows),
        })
    }

    /// The loss curves of the trials in `state` (the stop rule's
    /// references are the completed ones), in trial order.
    pub async fn curves_in(&self, state: TrialState) -> Result<Vec<Curve>, StoreError> {
        let rows: Vec<(i64, i64, Option<f64>)> = sqlx::query_as(
            "SELECT s.trial_id, s.step, s.loss FROM steps s JOIN trials t ON t.id = s.trial_id \
             WHERE t.state = ? ORDER BY s.trial_id, s.step",
        )
        .bind(state)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let mut out: Vec<Curve> = Vec::new();
        for (id, step, loss) in rows {
            if out.last().map(|c| c.trial_id) != Some(id) {
                out.push(Curve {
                    trial_id: id,
                    points: Vec::new(),
                });
            }
            if let (Some(l), Some(c)) = (loss.filter(|l| l.is_finite()), out.last_mut()) {
                c.points.push((step, l));
            }
        }
        Ok(out)
    }
}

/// A trial's final training metrics: those of the last step it logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinalMetrics {
    /// The step they were logged at (the trial's highest recorded step).
    pub step: i64,
    /// Metric name (as the step line names it) -> value.
    pub metrics: BTreeMap<String, f64>,
}

impl Store {
    /// Every trial's final training metrics, by trial id: the
    /// `step_metrics` of its highest recorded step. "Final" is the last
    /// logged step, as the last row of TRL's and open-instruct's training
    /// logs (the trainer logs every optimizer step, each value a mean over
    /// that step's pairs); a replayed step overwrote its first recording,
    /// so a resumed trial's final step is the one it finished with. An SFT
    /// trial has none.
    pub async fn final_train_metrics(&self) -> Result<BTreeMap<i64, FinalMetrics>, StoreError> {
        let rows: Vec<(i64, i64, String, f64)> = sqlx::query_as(
            "SELECT m.trial_id, m.step, m.metric, m.value FROM step_metrics m \
             JOIN (SELECT trial_id, MAX(step) AS step FROM step_metrics GROUP BY trial_id) last \
             ON last.trial_id = m.trial_id AND last.step = m.step ORDER BY m.trial_id, m.metric",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let mut out: BTreeMap<i64, FinalMetrics> = BTreeMap::new();
        for (id, step, metric, value) in rows {
            let f = out.entry(id).or_default();
            f.step = step;
            f.metrics.insert(metric, value);
        }
        Ok(out)
    }
}

fn finite(rows: Vec<(i64, Option<f64>)>) -> Vec<(i64, f64)> {
    rows.into_iter()
        .filter_map(|(s, l)| Some((s, l.filter(|l| l.is_finite())?)))
        .collect()
}
