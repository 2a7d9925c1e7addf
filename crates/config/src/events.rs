//! The trainer's event stream: one JSON object per line on stdout,
//! `{"event": NAME, ...}`, written by `smolsweep train` and read by the
//! orchestrator (and by anyone piping `smolsweep train` into `jq`). One
//! tagged enum is both the writer's and the reader's definition.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// An optimizer step finished.
    Step {
        step: u64,
        /// Fractional epoch reached.
        epoch: f64,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        /// Tokens trained on so far (this run and those it resumed).
        tokens: u64,
        tokens_per_s: f64,
        elapsed_s: f64,
    },
    /// A checkpoint was written (periodic, or on a stop request).
    Checkpoint { step: u64, path: PathBuf },
    /// The loss or the gradient norm stopped being finite (exit code 3).
    Diverged {
        step: u64,
        last_finite_loss: Option<f64>,
    },
    /// Training finished and the final model was exported (exit code 0).
    Done {
        step: u64,
        /// NaN when no step ran; JSON has no NaN, so it is written as null.
        #[serde(with = "nan_as_null")]
        loss: f64,
        export: PathBuf,
        elapsed_s: f64,
    },
}

impl TrainEvent {
    /// The `event` tag.
    pub fn name(&self) -> &'static str {
        match self {
            TrainEvent::Step { .. } => "step",
            TrainEvent::Checkpoint { .. } => "checkpoint",
            TrainEvent::Diverged { .. } => "diverged",
            TrainEvent::Done { .. } => "done",
        }
    }

    /// One line of the stream (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses one line; `None` for anything that is not an event (a stray
    /// print, a truncated last line).
    pub fn parse(line: &str) -> Option<TrainEvent> {
        serde_json::from_str(line).ok()
    }
}

mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_the_tag() {
        let e = TrainEvent::Checkpoint {
            step: 3,
            path: "/x/ckpt".into(),
        };
        let line = e.to_line();
        assert_eq!(line, r#"{"event":"checkpoint","step":3,"path":"/x/ckpt"}"#);
        assert_eq!(TrainEvent::parse(&line), Some(e));
        assert_eq!(TrainEvent::parse("not json"), None);
        let done = TrainEvent::parse(
            r#"{"event":"done","step":2,"loss":null,"export":"e","elapsed_s":1.0}"#,
        );
        assert!(matches!(done, Some(TrainEvent::Done { loss, .. }) if loss.is_nan()));
    }
}
