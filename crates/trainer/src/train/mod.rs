//! One SFT job, start to finish: load the model and the (cached) data,
//! then for each optimizer step run its micro-batches forward and
//! backward (gradient accumulation), check for divergence, clip, update,
//! report, checkpoint; at the end export a HF model directory.
//!
//! Stopping is cooperative: a SIGTERM/SIGINT sets a flag that is honoured
//! at the next step boundary by writing a checkpoint and returning
//! [`Outcome::Stopped`].
//!
//! The pieces: [`setup`] (everything before the first step), [`progress`]
//! (resume and checkpoints), [`step`] (one optimizer step), [`export`] (the
//! trained model directory), [`dump`] (`--dump-batches`); this module
//! sequences them.

mod dump;
mod export;
mod progress;
mod setup;
mod step;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::config::TrialConfig;
use crate::error::{Result, TrainError};
use crate::events::{self, EventSink, TrainEvent};
use dump::BatchDump;
use progress::Progress;
use setup::Trainer;
use smolsweep_config::ExitCode;
use step::{Accumulated, OrderCache, Update};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done {
        step: u64,
        loss: f64,
        export: PathBuf,
    },
    Diverged {
        step: u64,
        last_finite_loss: Option<f64>,
    },
    /// Stopped by a signal: at a step boundary after writing
    /// `checkpoint`, or before the first step (while the data was loaded:
    /// step 0, no checkpoint).
    Stopped {
        step: u64,
        checkpoint: Option<PathBuf>,
    },
}

impl Outcome {
    /// The process exit status of the trial contract (docs/architecture.md,
    /// "The process contract").
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Outcome::Done { .. } => ExitCode::Done,
            Outcome::Diverged { .. } => ExitCode::Diverged,
            Outcome::Stopped { .. } => ExitCode::Stopped,
        }
    }
}

/// Options that are about this process, not the trial.
#[derive(Debug, Default)]
pub struct RunOptions {
    pub resume: bool,
    /// Write the micro-batches of the first N steps (ids, targets) as JSON
    /// lines here: the input of the reference-loop parity script.
    pub dump_batches: Option<(PathBuf, u64)>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Hash of every setting that changes the optimisation trajectory: a
/// checkpoint written under another fingerprint is not resumed.
pub fn fingerprint(c: &TrialConfig) -> String {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        for k in [
            "output_dir",
            "checkpoint_every_steps",
            "keep_checkpoints",
            "device",
            "cache_dir",
            "micro_batch_size",
        ] {
            o.remove(k);
        }
    }
    hex::encode(&Sha256::digest(v.to_string().as_bytes())[..8])
}

/// Runs a trial. `stop` is polled while the data loads and at every step
/// boundary.
pub fn run(
    cfg: &TrialConfig,
    opts: &RunOptions,
    stop: &AtomicBool,
    events: &mut dyn EventSink,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut trainer = match Trainer::new(cfg, stop) {
        Err(TrainError::Stopped) => {
            return Ok(Outcome::Stopped {
                step: 0,
                checkpoint: None,
            })
        }
        other => other?,
    };
    let at = if opts.resume {
        trainer.resume()?
    } else {
        Progress::default()
    };
    trainer.log_plan();
    Run::start(trainer, at, opts, started)?.train(stop, events)
}

/// The loop's state beside the trainer: where the run stands, its clocks,
/// and what it writes as it goes.
struct Run<'a> {
    t: Trainer<'a>,
    at: Progress,
    bar: indicatif::ProgressBar,
    dump: Option<BatchDump>,
    order: OrderCache,
    /// When `run` was called (setup included).
    started: Instant,
    /// When this process began stepping, and the tokens seen by then: the
    /// base of the throughput and of the time a checkpoint records.
    stepping_since: Instant,
    tokens_at_start: u64,
}

impl<'a> Run<'a> {
    fn start(t: Trainer<'a>, at: Progress, opts: &RunOptions, started: Instant) -> Result<Self> {
        let bar = progress_bar(opts.progress, t.plan.total, at.step);
        let dump = BatchDump::create(&opts.dump_batches)?;
        Ok(Run {
            tokens_at_start: at.tokens_seen,
            t,
            at,
            bar,
            dump,
            order: None,
            started,
            stepping_since: Instant::now(),
        })
    }

    /// Steps to the end of the plan, then checkpoints and exports; returns
    /// early when stopped or diverged.
    fn train(mut self, stop: &AtomicBool, events: &mut dyn EventSink) -> Result<Outcome> {
        while self.at.step < self.t.plan.total {
            if stop.load(Ordering::SeqCst) {
                return self.stopped(events);
            }
            let acc = self
                .t
                .accumulate(self.at.step, &mut self.order, &mut self.dump)?;
            let Some(update) = self.t.optimizer_step(self.at.step, acc.loss) else {
                return Ok(self.diverged(events));
            };
            self.at.advance(acc.loss, acc.tokens);
            self.report(events, &acc, &update);
            if self.at.step % self.t.cfg.checkpoint_every_steps == 0
                && self.at.step < self.t.plan.total
            {
                let path = self.checkpoint()?;
                events.emit(events::checkpoint(self.at.step, &path));
            }
        }
        self.finish(events)
    }

    /// The step event and the progress bar, after a step.
    fn report(&self, events: &mut dyn EventSink, acc: &Accumulated, u: &Update) {
        let (at, per_epoch) = (&self.at, self.t.plan.per_epoch);
        let el = self.stepping_since.elapsed().as_secs_f64();
        let tps = (at.tokens_seen - self.tokens_at_start) as f64 / el.max(1e-9);
        let done_in_epoch = at.step - acc.epoch * per_epoch;
        let frac_epoch = acc.epoch as f64 + (done_in_epoch as f64 / per_epoch as f64);
        events.emit(TrainEvent::Step {
            step: at.step,
            epoch: frac_epoch,
            loss: acc.loss,
            lr: u.lr,
            grad_norm: u.grad_norm,
            tokens: at.tokens_seen,
            tokens_per_s: tps,
            elapsed_s: at.elapsed_before + el,
        });
        self.bar.set_position(at.step);
        self.bar.set_message(format!("loss {:.4}", acc.loss));
    }

    fn checkpoint(&self) -> Result<PathBuf> {
        let elapsed_s = self.at.elapsed_before + self.stepping_since.elapsed().as_secs_f64();
        self.t.save_checkpoint(&self.at, elapsed_s)
    }

    fn stopped(self, events: &mut dyn EventSink) -> Result<Outcome> {
        let path = self.checkpoint()?;
        events.emit(events::checkpoint(self.at.step, &path));
        self.bar.abandon_with_message("stopped");
        Ok(Outcome::Stopped {
            step: self.at.step,
            checkpoint: Some(path),
        })
    }

    /// The step being taken (1-based) diverged; nothing of it was applied.
    fn diverged(self, events: &mut dyn EventSink) -> Outcome {
        let (step, last_finite_loss) = (self.at.step + 1, self.at.last_loss);
        events.emit(events::diverged(step, last_finite_loss));
        self.bar.abandon_with_message("diverged");
        Outcome::Diverged {
            step,
            last_finite_loss,
        }
    }

    fn finish(self, events: &mut dyn EventSink) -> Result<Outcome> {
        self.bar.finish_and_clear();
        // Final checkpoint too, so a kill during export resumes to "done".
        self.checkpoint()?;
        let t = &self.t;
        let export = t.cfg.output_dir.join("final");
        export::export_model(&t.model, &t.model_dir, &export, &t.template)?;
        let (step, loss) = (self.at.step, self.at.last_loss.unwrap_or(f64::NAN));
        let elapsed_s = self.started.elapsed().as_secs_f64();
        events.emit(events::done(step, loss, &export, elapsed_s));
        Ok(Outcome::Done { step, loss, export })
    }
}

fn progress_bar(show: bool, total: u64, position: u64) -> indicatif::ProgressBar {
    let bar = if show {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps {msg} [{elapsed_precise}<{eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(position);
    bar
}
