//! The trainer's event stream: one JSON object per line on stdout, read by
//! the orchestrator (and by anyone piping `smolsweep train` into `jq`).

use std::io::Write;

use serde_json::{json, Value};

/// Where events go.
pub trait EventSink {
    fn emit(&mut self, event: Value);
}

/// JSON lines on stdout, flushed per event so a reader sees them live.
#[derive(Debug, Default)]
pub struct StdoutEvents;

impl EventSink for StdoutEvents {
    fn emit(&mut self, event: Value) {
        let mut out = std::io::stdout().lock();
        // A closed pipe must not kill training; the checkpoint still lands.
        let _ = writeln!(out, "{event}");
        let _ = out.flush();
    }
}

/// Collects events in memory (tests, in-process callers).
#[derive(Debug, Default)]
pub struct VecEvents(pub Vec<Value>);

impl EventSink for VecEvents {
    fn emit(&mut self, event: Value) {
        self.0.push(event);
    }
}

#[allow(clippy::too_many_arguments)]
pub fn step(
    step: u64,
    epoch: f64,
    loss: f64,
    lr: f64,
    grad_norm: f64,
    tokens: u64,
    tokens_per_s: f64,
    elapsed_s: f64,
) -> Value {
    json!({"event": "step", "step": step, "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": grad_norm,
           "tokens": tokens, "tokens_per_s": tokens_per_s, "elapsed_s": elapsed_s})
}
