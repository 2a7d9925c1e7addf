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
    /// The run diverged (exit code 3): the loss or gradient norm stopped
    /// being finite, or the run collapsed (the trial's `divergence_*`
    /// keys). `rule` says which; a line written before rules existed has
    /// none and means `non_finite`.
    Diverged {
        step: u64,
        last_finite_loss: Option<f64>,
        #[serde(default)]
        rule: DivergenceRule,
        /// What the rule saw, for people ("loss 10.8027 at or above ...").
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    /// Stopped by USR2 (Slurm's warning before the time limit, or a
    /// preemption): the checkpoint written at the step boundary, then exit
    /// code 4, for the job to be requeued and resume from it.
    Preempted {
        step: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<PathBuf>,
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

/// Which rule declared a run diverged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceRule {
    /// The loss or the global gradient norm was NaN or infinite.
    #[default]
    NonFinite,
    /// After warmup the loss stayed at or above both its initial value and
    /// ln(vocab) (a uniform guess) for `divergence_patience` steps.
    LossPlateau,
    /// The global gradient norm was exactly 0, with a positive loss, for
    /// `divergence_patience` steps: nothing can train any more.
    ZeroGrad,
}

impl DivergenceRule {
    /// Every rule's name, as the event and the sweep record write it.
    pub const NAMES: &'static [&'static str] = &["non_finite", "loss_plateau", "zero_grad"];

    pub fn as_str(self) -> &'static str {
        match self {
            DivergenceRule::NonFinite => "non_finite",
            DivergenceRule::LossPlateau => "loss_plateau",
            DivergenceRule::ZeroGrad => "zero_grad",
        }
    }
}

impl std::fmt::Display for DivergenceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DivergenceRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            DivergenceRule::NonFinite,
            DivergenceRule::LossPlateau,
            DivergenceRule::ZeroGrad,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("{s:?} is not one of {}", Self::NAMES.join(", ")))
    }
}

impl TrainEvent {
    /// The `event` tag.
    pub fn name(&self) -> &'static str {
        match self {
            TrainEvent::Step { .. } => "step",
            TrainEvent::Checkpoint { .. } => "checkpoint",
            TrainEvent::Diverged { .. } => "diverged",
            TrainEvent::Preempted { .. } => "preempted",
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

    /// Event files written before divergence had rules still read, as the
    /// only divergence there was then.
    #[test]
    fn an_old_diverged_line_means_non_finite() {
        let old = TrainEvent::parse(r#"{"event":"diverged","step":3,"last_finite_loss":1.5}"#);
        assert_eq!(
            old,
            Some(TrainEvent::Diverged {
                step: 3,
                last_finite_loss: Some(1.5),
                rule: DivergenceRule::NonFinite,
                message: String::new(),
            })
        );
        let new = TrainEvent::Diverged {
            step: 40,
            last_finite_loss: Some(10.8),
            rule: DivergenceRule::ZeroGrad,
            message: "m".into(),
        };
        assert_eq!(
            new.to_line(),
            r#"{"event":"diverged","step":40,"last_finite_loss":10.8,"rule":"zero_grad","message":"m"}"#
        );
        assert_eq!(TrainEvent::parse(&new.to_line()), Some(new));
    }

    #[test]
    fn rule_names_round_trip() {
        for name in DivergenceRule::NAMES {
            let r: DivergenceRule = name.parse().expect("known rule");
            assert_eq!(r.as_str(), *name);
            assert_eq!(serde_json::to_value(r).expect("json"), *name);
        }
        assert!("nan".parse::<DivergenceRule>().is_err());
    }
}
