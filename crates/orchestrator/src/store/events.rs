//! The event log (`events`: what happened to the sweep and each trial, in
//! order) and the trainer's events read from a trial's event file, recorded
//! together with the file offset after them (`steps`, `step_metrics`, the
//! trial's progress columns) so each lands exactly once.

use serde_json::Value as Json;
use smolsweep_config::TrainEvent;

use super::{now, Store, StoreError};

/// A line of a trial's event file, as recorded: the trainer's event when
/// it is one (`event` None: a JSON object of some other program, logged
/// as `train.unknown`), and the line as written, for the event log.
#[derive(Debug, Clone)]
pub struct EventLine {
    pub event: Option<TrainEvent>,
    pub json: Json,
}

impl EventLine {
    pub fn new(json: Json) -> Self {
        EventLine {
            event: serde_json::from_value(json.clone()).ok(),
            json,
        }
    }

    /// The event's name (`step`, `done`, ...), or `unknown`.
    pub fn kind(&self) -> &str {
        self.event.as_ref().map_or("unknown", TrainEvent::name)
    }
}

/// One row of `events`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// None for a sweep-level event.
    pub trial_id: Option<i64>,
    /// Unix seconds.
    pub at: f64,
    pub kind: String,
    pub data_json: Option<String>,
}

impl Store {
    /// Records trainer events read from the trial's event file, and the
    /// file offset after them, in one transaction: each event is recorded
    /// exactly once however often the orchestrator restarts.
    pub async fn record_events(
        &self,
        id: i64,
        events: &[EventLine],
        new_offset: u64,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let t = now();
        for ev in events {
            match &ev.event {
                Some(TrainEvent::Step {
                    step,
                    epoch,
                    loss,
                    lr,
                    grad_norm,
                    tokens,
                    tokens_per_s,
                    elapsed_s,
                    ..
                }) => {
                    w.execute(
                        sqlx::query(
                            "INSERT OR REPLACE INTO steps (trial_id, step, epoch, loss, lr, grad_norm, tokens, tokens_per_s, elapsed_s, recorded_at) \
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        )
                        .bind(id)
                        .bind(*step as i64)
                        .bind(epoch)
                        .bind(loss)
                        .bind(lr)
                        .bind(grad_norm)
                        .bind(*tokens as i64)
                        .bind(tokens_per_s)
                        .bind(elapsed_s)
                        .bind(t),
                    )
                    .await?;
                    // A non-finite value (a diverging step) is left out:
                    // SQLite would store NaN as NULL.
                    for (metric, value) in ev
                        .event
                        .as_ref()
                        .map(TrainEvent::step_metrics)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(_, v)| v.is_finite())
                    {
                        w.execute(
                            sqlx::query(
                                "INSERT OR REPLACE INTO step_metrics (trial_id, step, metric, value) VALUES (?, ?, ?, ?)",
                            )
                            .bind(id)
                            .bind(*step as i64)
                            .bind(metric)
                            .bind(value),
                        )
                        .await?;
                    }
                    w.execute(
                        sqlx::query(
                            "UPDATE trials SET step = ?, epoch = ?, last_loss = ?, tokens = ?, heartbeat_at = ? WHERE id = ?",
                        )
                        .bind(*step as i64)
                        .bind(epoch)
                        .bind(loss)
                        .bind(*tokens as i64)
                        .bind(t)
                        .bind(id),
                    )
                    .await?;
                }
                other => {
                    match other {
                        Some(TrainEvent::Done {
                            step, loss, export, ..
                        }) => {
                            w.execute(
                                sqlx::query("UPDATE trials SET export_dir = ?, step = COALESCE(?, step), last_loss = COALESCE(?, last_loss) WHERE id = ?")
                                    .bind(export.display().to_string())
                                    .bind(*step as i64)
                                    .bind(loss.is_finite().then_some(*loss))
                                    .bind(id),
                            )
                            .await?;
                        }
                        Some(TrainEvent::StoppedEarly {
                            step,
                            loss,
                            export,
                            message,
                            ..
                        }) => {
                            w.execute(
                                sqlx::query("UPDATE trials SET export_dir = ?, step = ?, last_loss = COALESCE(?, last_loss), stopped_step = ?, stopped_message = ? WHERE id = ?")
                                    .bind(export.display().to_string())
                                    .bind(*step as i64)
                                    .bind(loss.is_finite().then_some(*loss))
                                    .bind(*step as i64)
                                    .bind((!message.is_empty()).then_some(message.as_str()))
                                    .bind(id),
                            )
                            .await?;
                        }
                        Some(TrainEvent::Diverged {
                            step,
                            last_finite_loss,
                            rule,
                            message,
                        }) => {
                            w.execute(
                                sqlx::query("UPDATE trials SET diverged_step = ?, last_finite_loss = ?, diverged_rule = ?, diverged_message = ? WHERE id = ?")
                                    .bind(*step as i64)
                                    .bind(last_finite_loss)
                                    .bind(rule.as_str())
                                    .bind((!message.is_empty()).then_some(message.as_str()))
                                    .bind(id),
                            )
                            .await?;
                        }
                        _ => {}
                    }
                    w.log_event(Some(id), &format!("train.{}", ev.kind()), &ev.json)
                        .await?;
                }
            }
        }
        w.execute(
            sqlx::query("UPDATE trials SET events_offset = ?, heartbeat_at = ? WHERE id = ?")
                .bind(new_offset as i64)
                .bind(t)
                .bind(id),
        )
        .await?;
        w.commit().await
    }

    /// An event for the log on its own (`trial` None: a sweep-level one).
    pub async fn event(
        &self,
        trial: Option<i64>,
        kind: &str,
        data: &Json,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.log_event(trial, kind, data).await?;
        w.commit().await
    }

    /// The events of some kinds (all when `kinds` is empty), in order (used
    /// by tests and overhead measurements).
    pub async fn events(&self, kinds: &[&str]) -> Result<Vec<EventRow>, StoreError> {
        let all = sqlx::query_as::<_, EventRow>(
            "SELECT trial_id, at, kind, data_json FROM events ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(all
            .into_iter()
            .filter(|e| kinds.is_empty() || kinds.contains(&e.kind.as_str()))
            .collect())
    }
}
