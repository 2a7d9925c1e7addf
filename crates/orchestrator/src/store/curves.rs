//! Training-loss curves read back from the recorded steps, for the
//! sweep's stop rule: the running trial's own, and those of every trial
//! that trained to the end.

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

fn finite(rows: Vec<(i64, Option<f64>)>) -> Vec<(i64, f64)> {
    rows.into_iter()
        .filter_map(|(s, l)| Some((s, l.filter(|l| l.is_finite())?)))
        .collect()
}
