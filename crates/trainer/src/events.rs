//! The trainer's event stream: one JSON object per line on stdout, read by
//! the orchestrator (and by anyone piping `smolsweep train` into `jq`). The
//! events are `smolsweep-config`'s [`TrainEvent`]; this module writes them.

use std::io::Write;
use std::path::Path;

pub use smolsweep_config::{DivergenceRule, TrainEvent};

/// Where events go.
pub trait EventSink {
    fn emit(&mut self, event: TrainEvent);
}

/// JSON lines on stdout, flushed per event so a reader sees them live.
#[derive(Debug, Default)]
pub struct StdoutEvents;

impl EventSink for StdoutEvents {
    fn emit(&mut self, event: TrainEvent) {
        let mut out = std::io::stdout().lock();
        // A closed pipe must not kill training; the checkpoint still lands.
        let _ = writeln!(out, "{}", event.to_line());
        let _ = out.flush();
    }
}

/// Collects events in memory (tests, in-process callers).
#[derive(Debug, Default)]
pub struct VecEvents(pub Vec<TrainEvent>);

impl EventSink for VecEvents {
    fn emit(&mut self, event: TrainEvent) {
        self.0.push(event);
    }
}

/// A checkpoint of `step` steps was written to `path`.
pub fn checkpoint(step: u64, path: &Path) -> TrainEvent {
    TrainEvent::Checkpoint {
        step,
        path: path.to_path_buf(),
    }
}

/// The run diverged at step `step` (1-based) by `rule`: a non-finite loss
/// or gradient norm, or a collapse; `message` says what the rule saw.
pub fn diverged(
    step: u64,
    last_finite_loss: Option<f64>,
    rule: DivergenceRule,
    message: &str,
) -> TrainEvent {
    TrainEvent::Diverged {
        step,
        last_finite_loss,
        rule,
        message: message.to_string(),
    }
}

/// A stop request ended the run at `step`; the model as it stands was
/// exported to `export`.
pub fn stopped_early(
    step: u64,
    loss: f64,
    export: &Path,
    elapsed_s: f64,
    message: &str,
) -> TrainEvent {
    TrainEvent::StoppedEarly {
        step,
        loss,
        export: export.to_path_buf(),
        elapsed_s,
        message: message.to_string(),
    }
}

/// Training finished and the model was exported to `export`.
pub fn done(step: u64, loss: f64, export: &Path, elapsed_s: f64) -> TrainEvent {
    TrainEvent::Done {
        step,
        loss,
        export: export.to_path_buf(),
        elapsed_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The orchestrator and users' scripts read these lines: field names and
    // order are an interface.
    #[test]
    fn event_lines_are_stable() {
        let p = Path::new("/o/checkpoints/step-00000002");
        assert_eq!(
            TrainEvent::Step {
                step: 2,
                epoch: 0.5,
                loss: 1.25,
                lr: 1e-3,
                grad_norm: 0.75,
                tokens: 640,
                tokens_per_s: 100.0,
                elapsed_s: 6.5,
                total_steps: 8,
                preference: None,
                reward: None,
            }
            .to_line(),
            r#"{"event":"step","step":2,"epoch":0.5,"loss":1.25,"lr":0.001,"grad_norm":0.75,"tokens":640,"tokens_per_s":100.0,"elapsed_s":6.5,"total_steps":8}"#
        );
        assert_eq!(
            stopped_early(4, 2.5, Path::new("/o/final"), 9.0, "median: worse").to_line(),
            r#"{"event":"stopped_early","step":4,"loss":2.5,"export":"/o/final","elapsed_s":9.0,"message":"median: worse"}"#
        );
        assert_eq!(
            checkpoint(2, p).to_line(),
            r#"{"event":"checkpoint","step":2,"path":"/o/checkpoints/step-00000002"}"#
        );
        assert_eq!(
            diverged(3, Some(1.5), DivergenceRule::NonFinite, "nan").to_line(),
            r#"{"event":"diverged","step":3,"last_finite_loss":1.5,"rule":"non_finite","message":"nan"}"#
        );
        assert_eq!(
            diverged(1, None, DivergenceRule::NonFinite, "").to_line(),
            r#"{"event":"diverged","step":1,"last_finite_loss":null,"rule":"non_finite"}"#
        );
        assert_eq!(
            diverged(30, Some(5.5568), DivergenceRule::LossPlateau, "m").to_line(),
            r#"{"event":"diverged","step":30,"last_finite_loss":5.5568,"rule":"loss_plateau","message":"m"}"#
        );
        assert_eq!(
            TrainEvent::Memory {
                step: 1,
                peak_reserved_bytes: 6 << 30,
                peak_allocated_bytes: 5 << 30,
                micro_batch_size: 8,
                max_seq_len: 2048,
            }
            .to_line(),
            r#"{"event":"memory","step":1,"peak_reserved_bytes":6442450944,"peak_allocated_bytes":5368709120,"micro_batch_size":8,"max_seq_len":2048}"#
        );
        assert_eq!(
            done(4, f64::NAN, Path::new("/o/final"), 9.0).to_line(),
            r#"{"event":"done","step":4,"loss":null,"export":"/o/final","elapsed_s":9.0}"#
        );
    }
}
