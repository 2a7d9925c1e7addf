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
        /// Optimizer steps the run plans in all: with `step`, the fraction
        /// of its training a stop rule compares trials at (0 in lines
        /// written before it was recorded).
        #[serde(default)]
        total_steps: u64,
        /// A DPO step's rewards and log-probs (absent for SFT).
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        preference: Option<PreferenceMetrics>,
        /// A reward-model step's accuracy, margin and rewards (absent for
        /// SFT and DPO).
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        reward: Option<RewardMetrics>,
    },
    /// A checkpoint was written (periodic, or on a stop request).
    Checkpoint { step: u64, path: PathBuf },
    /// The CUDA caching allocator's peaks so far in this process (CUDA
    /// runs only): after the first step, whenever the reserved peak grows,
    /// and before the end. `peak_reserved_bytes` is what the process holds
    /// from the device and no other process can use; what
    /// `slots_per_gpu = "auto"` packs trials by.
    Memory {
        step: u64,
        peak_reserved_bytes: u64,
        peak_allocated_bytes: u64,
        /// The micro-batch the run trains with (`micro_batch_size`
        /// resolved; pairs for DPO and reward models).
        micro_batch_size: u64,
        max_seq_len: u64,
    },
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
    /// Stopped at a step boundary because a stop request (the file
    /// [`STOP_REQUEST_FILE`] in the output directory, written by the
    /// sweep's stop rule) asked it to: checkpointed, and the model as it
    /// stands exported to be evaluated (exit code 0).
    StoppedEarly {
        step: u64,
        #[serde(with = "nan_as_null")]
        loss: f64,
        export: PathBuf,
        elapsed_s: f64,
        /// Why, as the request said ("median: ...").
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
}

/// The file in a trainer's output directory that asks it to stop early:
/// checked at every step boundary; its JSON `message` is copied into the
/// `stopped_early` event.
pub const STOP_REQUEST_FILE: &str = "stop_early.json";
/// What a DPO step logs beside its loss, as open-instruct names it: the
/// means over the step's pairs of the implicit rewards
/// `beta * (policy - reference)` of chosen and rejected, of the accuracy
/// (per pair, chosen strictly above rejected), of the margin, and of the
/// policy's log-probs (normalised by label count under `dpo_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreferenceMetrics {
    #[serde(rename = "rewards/chosen")]
    pub rewards_chosen: f64,
    #[serde(rename = "rewards/rejected")]
    pub rewards_rejected: f64,
    #[serde(rename = "rewards/accuracy")]
    pub rewards_accuracy: f64,
    #[serde(rename = "rewards/margin")]
    pub rewards_margin: f64,
    #[serde(rename = "logps/chosen")]
    pub logps_chosen: f64,
    #[serde(rename = "logps/rejected")]
    pub logps_rejected: f64,
}

/// What a reward-model step logs beside its loss, as open-instruct's
/// `reward_modeling.py` names it (`train/rm/...`): the means over the
/// step's pairs of the accuracy (chosen strictly above rejected), of the
/// reward margin, and of the chosen and rejected rewards.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardMetrics {
    #[serde(rename = "rm/accuracy")]
    pub accuracy: f64,
    #[serde(rename = "rm/reward_margin")]
    pub margin: f64,
    #[serde(rename = "rm/chosen_rewards")]
    pub chosen: f64,
    #[serde(rename = "rm/rejected_rewards")]
    pub rejected: f64,
}

/// The name the record, `status --json`, `export` and the report give a
/// trial's final training metrics as a group: `train/rewards/accuracy`
/// beside the eval tasks' `arc_easy/acc_norm`.
pub const TRAIN_METRICS: &str = "train";

/// The final training metrics the report draws as contours, as a DPO and
/// a reward-model step log them: the reward accuracy and margin (the
/// others, recorded too, are the rewards and log-probs they are made of).
pub const TRAIN_HEADLINES: &[&str] = &[
    "rewards/accuracy",
    "rewards/margin",
    "rm/accuracy",
    "rm/reward_margin",
];

/// A metrics struct's fields under their serde names: the one place the
/// names are declared is the struct's `rename`s.
fn named<T: Serialize>(m: &T) -> Vec<(String, f64)> {
    match serde_json::to_value(m) {
        Ok(serde_json::Value::Object(o)) => o
            .into_iter()
            .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
            .collect(),
        _ => Vec::new(),
    }
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
            TrainEvent::Memory { .. } => "memory",
            TrainEvent::Diverged { .. } => "diverged",
            TrainEvent::Preempted { .. } => "preempted",
            TrainEvent::Done { .. } => "done",
            TrainEvent::StoppedEarly { .. } => "stopped_early",
        }
    }

    /// A step's stage metrics beside its loss, under the names its line
    /// gives them (`rewards/accuracy`, `rm/reward_margin`, ...): none for
    /// an SFT step or another event.
    pub fn step_metrics(&self) -> Vec<(String, f64)> {
        match self {
            TrainEvent::Step {
                preference, reward, ..
            } => {
                let mut out = preference.as_ref().map(named).unwrap_or_default();
                out.extend(reward.as_ref().map(named).unwrap_or_default());
                out
            }
            _ => Vec::new(),
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

    /// A DPO step line carries its metrics under open-instruct's names; an
    /// SFT line has none and reads back without them.
    #[test]
    fn a_dpo_step_line_carries_the_preference_metrics() {
        let m = PreferenceMetrics {
            rewards_chosen: 1.0,
            rewards_rejected: -2.5,
            rewards_accuracy: 1.0,
            rewards_margin: 3.5,
            logps_chosen: -1.0,
            logps_rejected: -2.0,
        };
        let step = |preference| TrainEvent::Step {
            step: 1,
            epoch: 0.5,
            loss: 0.5,
            lr: 1e-6,
            grad_norm: 1.0,
            tokens: 10,
            tokens_per_s: 5.0,
            elapsed_s: 2.0,
            total_steps: 4,
            preference,
            reward: None,
        };
        let line = step(Some(m)).to_line();
        assert!(
            line.ends_with(r#""elapsed_s":2.0,"total_steps":4,"rewards/chosen":1.0,"rewards/rejected":-2.5,"rewards/accuracy":1.0,"rewards/margin":3.5,"logps/chosen":-1.0,"logps/rejected":-2.0}"#),
            "{line}"
        );
        assert_eq!(TrainEvent::parse(&line), Some(step(Some(m))));
        let sft = step(None).to_line();
        assert!(!sft.contains("rewards"), "{sft}");
        assert_eq!(TrainEvent::parse(&sft), Some(step(None)));
    }

    /// A reward-model step line carries its metrics under open-instruct's
    /// names and reads back as one, neither a DPO line nor an SFT one.
    #[test]
    fn an_rm_step_line_carries_the_reward_metrics() {
        let m = RewardMetrics {
            accuracy: 0.5,
            margin: 0.25,
            chosen: 0.25,
            rejected: 0.0,
        };
        let e = TrainEvent::Step {
            step: 1,
            epoch: 0.5,
            loss: 0.8132617,
            lr: 1e-6,
            grad_norm: 1.0,
            tokens: 10,
            tokens_per_s: 5.0,
            elapsed_s: 2.0,
            total_steps: 4,
            preference: None,
            reward: Some(m),
        };
        let line = e.to_line();
        assert!(
            line.ends_with(r#""total_steps":4,"rm/accuracy":0.5,"rm/reward_margin":0.25,"rm/chosen_rewards":0.25,"rm/rejected_rewards":0.0}"#),
            "{line}"
        );
        let names: Vec<(String, f64)> = e.step_metrics();
        assert_eq!(TrainEvent::parse(&line), Some(e));
        assert_eq!(
            names,
            [
                ("rm/accuracy", 0.5),
                ("rm/reward_margin", 0.25),
                ("rm/chosen_rewards", 0.25),
                ("rm/rejected_rewards", 0.0),
            ]
            .map(|(k, v)| (k.to_string(), v))
        );
    }

    /// The headlines the report draws are names a step line writes.
    #[test]
    fn train_headlines_are_step_metric_names() {
        let dpo = TrainEvent::Step {
            step: 1,
            epoch: 0.5,
            loss: 0.5,
            lr: 1e-6,
            grad_norm: 1.0,
            tokens: 10,
            tokens_per_s: 5.0,
            elapsed_s: 2.0,
            total_steps: 4,
            preference: Some(PreferenceMetrics {
                rewards_chosen: 1.0,
                rewards_rejected: -2.5,
                rewards_accuracy: 1.0,
                rewards_margin: 3.5,
                logps_chosen: -1.0,
                logps_rejected: -2.0,
            }),
            reward: Some(RewardMetrics {
                accuracy: 0.5,
                margin: 0.25,
                chosen: 0.25,
                rejected: 0.0,
            }),
        };
        let names: Vec<String> = dpo.step_metrics().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names.len(), 10, "{names:?}");
        for h in TRAIN_HEADLINES {
            assert!(names.iter().any(|n| n == h), "{h}: {names:?}");
        }
        let done = TrainEvent::Checkpoint {
            step: 1,
            path: "c".into(),
        };
        assert!(done.step_metrics().is_empty());
    }
}
