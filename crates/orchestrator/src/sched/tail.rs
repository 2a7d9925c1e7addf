//! The trial's event file (`train.events.jsonl`, the trainer's stdout):
//! reading the complete lines written since the recorded offset into the
//! database, moving the trial's bar to the last step, and telling from the
//! whole file what training achieved (done, diverged, or not yet).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;
use serde_json::Value as Json;

use super::stop_rule::StopWatch;
use super::{io_err, RunError};
use smolsweep_config::{DivergenceRule, TrainEvent};

use crate::packing::{Packer, Shape};
use crate::store::{EventLine, Store};

/// What the trial's own files say training has achieved.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TrainState {
    Incomplete,
    Done {
        export: PathBuf,
    },
    /// A stop request ended training; `export` is the model at `step`.
    StoppedEarly {
        export: PathBuf,
        step: i64,
        message: String,
    },
    Diverged {
        step: Option<i64>,
        last_finite_loss: Option<f64>,
        rule: DivergenceRule,
        message: String,
    },
}

/// The last `done`, `stopped_early` or `diverged` event in the file
/// decides; a missing or unreadable file is training not done. A
/// `stopped_early` counts only while its request file (`request`) is
/// there: a trial reopened to train to the end has it removed.
pub(super) fn train_state(events: &Path, request: &Path) -> TrainState {
    let mut text = String::new();
    if File::open(events)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return TrainState::Incomplete;
    }
    let mut state = TrainState::Incomplete;
    for event in text.lines().filter_map(TrainEvent::parse) {
        match event {
            TrainEvent::Done { export, .. } => state = TrainState::Done { export },
            TrainEvent::StoppedEarly {
                export,
                step,
                message,
                ..
            } => {
                state = if request.exists() {
                    TrainState::StoppedEarly {
                        export,
                        step: step as i64,
                        message,
                    }
                } else {
                    TrainState::Incomplete
                }
            }
            TrainEvent::Diverged {
                step,
                last_finite_loss,
                rule,
                message,
            } => {
                state = TrainState::Diverged {
                    step: Some(step as i64),
                    last_finite_loss,
                    rule,
                    message,
                }
            }
            _ => {}
        }
    }
    state
}

/// One trial's event file and how far into it the database has recorded.
pub(super) struct EventTail<'a> {
    trial_id: i64,
    path: PathBuf,
    offset: u64,
    bar: &'a ProgressBar,
    /// The sweep's stop rule, when it has one, looking at each read.
    stop: Option<StopWatch>,
    /// `slots_per_gpu = "auto"`: where the trial's memory events go, and
    /// the trial's shape.
    packing: Option<(Arc<Mutex<Packer>>, Shape)>,
}

impl<'a> EventTail<'a> {
    /// `offset`: the trial's recorded `events_offset`.
    pub(super) fn new(trial_id: i64, path: PathBuf, offset: u64, bar: &'a ProgressBar) -> Self {
        Self {
            trial_id,
            path,
            offset,
            bar,
            stop: None,
            packing: None,
        }
    }

    /// Hands the trial's memory events to the packing from now on.
    pub(super) fn measure(&mut self, packing: Option<(Arc<Mutex<Packer>>, Shape)>) {
        self.packing = packing;
    }

    /// Lets the sweep's stop rule look at every step read from now on.
    pub(super) fn watch(&mut self, stop: Option<StopWatch>) {
        self.stop = stop;
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads complete lines past the recorded offset and records them with
    /// the new offset (a line still being written waits for next time).
    pub(super) async fn read(&mut self, store: &Store) -> Result<(), RunError> {
        let events = self.path.as_path();
        let mut f = match File::open(events) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(events)(e)),
        };
        let offset = self.offset;
        let len = f.metadata().map_err(io_err(events))?.len();
        if len <= offset {
            return Ok(());
        }
        f.seek(SeekFrom::Start(offset)).map_err(io_err(events))?;
        let mut buf = Vec::with_capacity((len - offset) as usize);
        f.take(len - offset)
            .read_to_end(&mut buf)
            .map_err(io_err(events))?;
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let mut lines = Vec::new();
        for raw in buf[..end].split(|&b| b == b'\n') {
            let s = String::from_utf8_lossy(raw);
            let s = s.trim();
            if s.is_empty() {
                continue;
            }
            match serde_json::from_str::<Json>(s) {
                Ok(json) if json.is_object() => lines.push(EventLine::new(json)),
                _ => tracing::debug!(trial = self.trial_id, line = %s, "not an event line"),
            }
        }
        self.show_last_step(&lines);
        if let Some((packer, shape)) = &self.packing {
            for e in &lines {
                if let Some(TrainEvent::Memory {
                    peak_reserved_bytes,
                    ..
                }) = e.event
                {
                    if let Ok(mut p) = packer.lock() {
                        p.measured(self.trial_id, *shape, peak_reserved_bytes);
                    }
                }
            }
        }
        let new_offset = offset + end as u64 + 1;
        store
            .record_events(self.trial_id, &lines, new_offset)
            .await?;
        self.offset = new_offset;
        if let Some(stop) = self.stop.as_mut() {
            stop.observe(store, self.trial_id, &lines).await?;
        }
        Ok(())
    }

    /// The trial's bar shows the last step and its loss.
    fn show_last_step(&self, lines: &[EventLine]) {
        let last = lines.iter().rev().find_map(|e| match e.event {
            Some(TrainEvent::Step { step, loss, .. }) => Some((step, loss)),
            _ => None,
        });
        if let Some((step, loss)) = last {
            self.bar.set_position(step);
            self.bar.set_message(format!("loss {loss:.4}"));
        }
    }
}
