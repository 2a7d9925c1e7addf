//! One SFT (or DPO, or reward-model: [`crate::dpo`], [`crate::rm`] run their step) job, start to finish: load the model and the (cached) data,
//! then for each optimizer step run its micro-batches forward and
//! backward (gradient accumulation), check for a non-finite loss, clip,
//! update, report, watch for a collapse ([`divergence`]), checkpoint; at
//! the end export a HF model directory.
//!
//! Stopping is cooperative: a SIGTERM/SIGINT sets a flag that is honoured
//! at the next step boundary by writing a checkpoint and returning
//! [`Outcome::Stopped`]; Slurm's warning before a time limit (USR2) is the
//! same stop after at least one step of this process. A stop request file in the output directory
//! ([`STOP_REQUEST_FILE`], written by a sweep's stop rule) is looked for at
//! the same boundaries; it ends the run as it stands, checkpointed and
//! exported ([`Outcome::StoppedEarly`]), to be evaluated.
//!
//! The pieces: [`setup`] (everything before the first step), [`progress`]
//! (resume and checkpoints), [`step`] (one optimizer step), [`export`] (the
//! trained model directory), [`dump`] (`--dump-batches`); this module
//! sequences them.

mod divergence;
mod dump;
mod export;
mod graph;
mod progress;
pub(crate) mod setup;
mod step;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::config::TrialConfig;
use crate::error::{Result, TrainError};
use crate::events::{self, EventSink, TrainEvent};
use divergence::{Rules, Verdict, Watch};
use dump::BatchDump;
use progress::Progress;
use setup::{Trainer, Work};
use smolsweep_config::{DivergenceRule, ExitCode, STOP_REQUEST_FILE};
use step::{Accumulated, NonFinite, OrderCache, Update};

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
        rule: DivergenceRule,
        message: String,
    },
    /// Ended by a stop request at a step boundary: checkpointed, and the
    /// model as it stands exported.
    StoppedEarly {
        step: u64,
        loss: f64,
        export: PathBuf,
        message: String,
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
            Outcome::Done { .. } | Outcome::StoppedEarly { .. } => ExitCode::Done,
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
    /// A stop that waits for one step of this process (Slurm's USR2 before
    /// a time limit): each run of a job that is requeued again and again
    /// still gets somewhere.
    pub preempt: Option<Arc<AtomicBool>>,
}

/// Hash of every setting that changes the optimisation trajectory: a
/// checkpoint written under another fingerprint is not resumed.
pub fn fingerprint(c: &TrialConfig) -> String {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        // The stage keys are left out of an SFT trial's fingerprint, so a
        // checkpoint written before they existed still resumes: removed
        // first, keeping the order of the rest, so the removals below act
        // on exactly the object they always did.
        if o.get("stage").and_then(|s| s.as_str()) == Some("sft") {
            o.shift_remove("stage");
        }
        for k in smolsweep_config::trial::STAGE_ONLY_KEYS {
            if o.get(*k).is_some_and(|x| x.is_null()) {
                o.shift_remove(*k);
            }
        }
        // Which kernel computes attention, not what it computes; a key
        // newer than the removals below, so taken out the same way.
        o.shift_remove("attention");
        // How the step is launched, not what it computes (rows padded for
        // a graph's static shapes add only unlabelled positions).
        o.shift_remove("cuda_graphs");
        for k in [
            "output_dir",
            "checkpoint_every_steps",
            "keep_checkpoints",
            "device",
            "cache_dir",
            "micro_batch_size",
            // When to give up on a run, not how it trains.
            "divergence_patience",
            "divergence_loss",
            "divergence_zero_grad",
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
    Run::start(trainer, at, opts, started)?.train(stop, opts.preempt.as_deref(), events)
}

/// The loop's state beside the trainer: where the run stands, its clocks,
/// and what it writes as it goes.
struct Run<'a> {
    t: Trainer<'a>,
    at: Progress,
    bar: indicatif::ProgressBar,
    dump: Option<BatchDump>,
    order: OrderCache,
    /// The collapse rules' counts.
    watch: Watch,
    /// When `run` was called (setup included).
    started: Instant,
    /// When this process began stepping, and the tokens seen by then: the
    /// base of the throughput and of the time a checkpoint records.
    stepping_since: Instant,
    tokens_at_start: u64,
    /// The reserved peak the last memory event reported (CUDA).
    memory_reported: Option<u64>,
}

impl<'a> Run<'a> {
    fn start(t: Trainer<'a>, at: Progress, opts: &RunOptions, started: Instant) -> Result<Self> {
        let bar = progress_bar(opts.progress, t.plan.total, at.step);
        let dump = BatchDump::create(&opts.dump_batches)?;
        let watch = Watch::new(Rules {
            patience: t.cfg.divergence_patience,
            loss: t.cfg.divergence_loss,
            zero_grad: t.cfg.divergence_zero_grad,
            warmup: t.plan.warmup,
            ln_vocab: match t.work {
                Work::Sft(_) => (t.model.config.vocab_size as f64).ln(),
                Work::Dpo(_) | Work::Rm(_) => std::f64::consts::LN_2,
            },
            chance_name: match t.work {
                Work::Sft(_) => "ln(vocab)",
                Work::Dpo(_) | Work::Rm(_) => "ln 2",
            },
        });
        tracing::info!("{}", watch.describe());
        Ok(Run {
            tokens_at_start: at.tokens_seen,
            t,
            at,
            bar,
            dump,
            order: None,
            watch,
            started,
            stepping_since: Instant::now(),
            memory_reported: None,
        })
    }

    /// Steps to the end of the plan, then checkpoints and exports; returns
    /// early when stopped or diverged.
    fn train(
        mut self,
        stop: &AtomicBool,
        preempt: Option<&AtomicBool>,
        events: &mut dyn EventSink,
    ) -> Result<Outcome> {
        let request = self.t.cfg.output_dir.join(STOP_REQUEST_FILE);
        let first = self.at.step;
        while self.at.step < self.t.plan.total {
            let preempted = preempt.is_some_and(|p| p.load(Ordering::SeqCst));
            if stop.load(Ordering::SeqCst) || (preempted && self.at.step > first) {
                return self.stopped(events);
            }
            // One stat per step: negligible beside a step, and a request
            // survives whoever wrote it (an orchestrator may die after).
            if let Some(message) = stop_request(&request) {
                return self.finish(events, Some(message));
            }
            let acc = self
                .t
                .accumulate(self.at.step, &mut self.order, &mut self.dump)?;
            let update = match self.t.optimizer_step(self.at.step, acc.loss) {
                Ok(u) => u,
                Err(bad) => return Ok(self.non_finite(events, &bad)),
            };
            self.at.advance(acc.loss, acc.tokens);
            self.report(events, &acc, &update);
            self.report_memory(events, false);
            let step = self.at.step;
            if let Some(v) = self.watch.observe(step, acc.loss, update.grad_norm) {
                return Ok(self.diverged(events, step, v));
            }
            if self.at.step % self.t.cfg.checkpoint_every_steps == 0
                && self.at.step < self.t.plan.total
            {
                let path = self.checkpoint()?;
                events.emit(events::checkpoint(self.at.step, &path));
            }
        }
        self.finish(events, None)
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
            total_steps: self.t.plan.total,
            preference: acc.preference,
            reward: acc.reward,
        });
        self.bar.set_position(at.step);
        self.bar.set_message(format!("loss {:.4}", acc.loss));
    }

    /// The memory event, on CUDA: after this process's first step (the
    /// forward, backward and optimizer state are all allocated by then),
    /// whenever the reserved peak has grown since (a longer batch), and at
    /// the end (`last`). Reading the allocator's counters is a host call,
    /// no device sync.
    fn report_memory(&mut self, events: &mut dyn EventSink, last: bool) {
        if !matches!(self.t.device, tch::Device::Cuda(_)) {
            return;
        }
        let m = match smolsweep_kernels::cuda_memory(self.t.device, false) {
            Ok(m) => m,
            Err(e) => {
                if self.memory_reported.is_none() {
                    tracing::debug!("no memory event: {e}");
                    self.memory_reported = Some(u64::MAX);
                }
                return;
            }
        };
        let peak = m.peak_reserved.max(0) as u64;
        if !last && self.memory_reported.is_some_and(|r| peak <= r) {
            return;
        }
        self.memory_reported = Some(peak);
        events.emit(TrainEvent::Memory {
            step: self.at.step,
            peak_reserved_bytes: peak,
            peak_allocated_bytes: m.peak_allocated.max(0) as u64,
            micro_batch_size: self.t.micro_batch_size as u64,
            max_seq_len: self.t.cfg.max_seq_len as u64,
        });
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

    /// The step being taken (1-based) was not finite; nothing of it was
    /// applied.
    fn non_finite(self, events: &mut dyn EventSink, bad: &NonFinite) -> Outcome {
        let step = self.at.step + 1;
        let v = Verdict {
            rule: DivergenceRule::NonFinite,
            message: format!(
                "step {step}: loss {} or gradient norm {} is not finite",
                bad.loss, bad.grad_norm
            ),
        };
        self.diverged(events, step, v)
    }

    /// The run diverged at `step` (1-based) by rule `v`: no checkpoint, no
    /// export, a result to record.
    fn diverged(self, events: &mut dyn EventSink, step: u64, v: Verdict) -> Outcome {
        let last_finite_loss = self.at.last_loss;
        events.emit(events::diverged(step, last_finite_loss, v.rule, &v.message));
        self.bar
            .abandon_with_message(format!("diverged ({})", v.rule));
        Outcome::Diverged {
            step,
            last_finite_loss,
            rule: v.rule,
            message: v.message,
        }
    }

    /// The end of the plan (`early`: None), or of a stop request: a final
    /// checkpoint and the export. After a stop request the checkpoint is
    /// what lets the trial be trained on to the end later.
    fn finish(mut self, events: &mut dyn EventSink, early: Option<String>) -> Result<Outcome> {
        self.bar.finish_and_clear();
        self.report_memory(events, true);
        if let Some(g) = &self.t.graphs {
            let s = g.borrow().stats;
            tracing::info!(
                captured = s.captured,
                replayed = s.replayed,
                warmup = s.warmup,
                eager = s.eager,
                "cuda_graphs: micro-batches by how they ran"
            );
        }
        // Final checkpoint too, so a kill during export resumes to "done".
        let path = self.checkpoint()?;
        if early.is_some() {
            events.emit(events::checkpoint(self.at.step, &path));
        }
        let t = &self.t;
        let export = t.cfg.output_dir.join("final");
        let reward_model = matches!(t.work, Work::Rm(_));
        let dpo = match &t.work {
            Work::Dpo(w) => Some(w.export_record(t.cfg, &t.model_dir)),
            _ => None,
        };
        export::export_model(
            &t.model,
            &t.model_dir,
            &export,
            &t.template,
            reward_model,
            dpo.as_ref(),
        )?;
        let (step, loss) = (self.at.step, self.at.last_loss.unwrap_or(f64::NAN));
        let elapsed_s = self.started.elapsed().as_secs_f64();
        Ok(match early {
            None => {
                events.emit(events::done(step, loss, &export, elapsed_s));
                Outcome::Done { step, loss, export }
            }
            Some(message) => {
                tracing::info!(step, "stopped early: {message}");
                events.emit(events::stopped_early(
                    step, loss, &export, elapsed_s, &message,
                ));
                Outcome::StoppedEarly {
                    step,
                    loss,
                    export,
                    message,
                }
            }
        })
    }
}

/// The message of a stop request, if there is one at `path`. A request
/// that is not JSON with a `message` still stops the run (a user may
/// `touch` the file); it is then described by its path.
fn stop_request(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .filter(|m| !m.is_empty());
    Some(message.unwrap_or_else(|| format!("stop requested by {}", path.display())))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, extra: &str) -> TrialConfig {
        std::fs::create_dir_all(dir.join("m")).expect("mkdir");
        std::fs::write(dir.join("m/config.json"), "{}").expect("config");
        std::fs::write(dir.join("d.jsonl"), "").expect("data");
        let text =
            format!("model = \"m\"\ndata = [\"d.jsonl\"]\nlr = 1e-4\noutput_dir = \"o\"\n{extra}");
        let table: toml::Table = text.parse().expect("toml");
        TrialConfig::from_table(&table, dir).expect("valid trial")
    }

    /// The divergence rules say when to give up, not how to train: a
    /// checkpoint resumes under other rules (and one written before the
    /// rules existed still resumes).
    #[test]
    fn the_fingerprint_ignores_the_divergence_rules() {
        let d = tempfile::tempdir().expect("tmp");
        let base = fingerprint(&config(d.path(), ""));
        let other_rules = config(
            d.path(),
            "divergence_patience = 5\ndivergence_loss = false\ndivergence_zero_grad = false\n",
        );
        assert_eq!(fingerprint(&other_rules), base);
        assert_ne!(fingerprint(&config(d.path(), "seed = 1\n")), base);
    }

    /// Regression: adding the stage keys must not change an SFT trial's
    /// fingerprint, or every checkpoint written before would be refused.
    #[test]
    fn an_sft_fingerprint_is_what_it_was_before_the_stage_keys() {
        let d = tempfile::tempdir().expect("tmp");
        let c = config(d.path(), "grad_clip = 1.0\n");
        let mut v = serde_json::to_value(&c).expect("json");
        let o = v.as_object_mut().expect("object");
        // The fields as they were (no stage or attention keys), then the
        // old removals.
        for k in [
            "attention",
            "cuda_graphs",
            "stage",
            "beta",
            "dpo_loss",
            "label_smoothing",
            "reference_model",
            "forward",
        ] {
            o.shift_remove(k);
        }
        for k in [
            "output_dir",
            "checkpoint_every_steps",
            "keep_checkpoints",
            "device",
            "cache_dir",
            "micro_batch_size",
            "divergence_patience",
            "divergence_loss",
            "divergence_zero_grad",
        ] {
            o.remove(k);
        }
        let before = hex::encode(&Sha256::digest(v.to_string().as_bytes())[..8]);
        assert_eq!(fingerprint(&c), before);
        // A DPO trial's settings are part of its fingerprint.
        let dpo = config(d.path(), "stage = \"dpo\"\n");
        let beta = config(d.path(), "stage = \"dpo\"\nbeta = 1.0\n");
        assert_ne!(fingerprint(&dpo), fingerprint(&beta));
        assert_ne!(fingerprint(&dpo), fingerprint(&c));
    }

    /// Which attention kernel runs is not part of the trajectory's
    /// identity: checkpoints written before the key existed, or under
    /// another choice, resume.
    #[test]
    fn the_fingerprint_ignores_the_attention_kernel() {
        let d = tempfile::tempdir().expect("tmp");
        let base = fingerprint(&config(d.path(), ""));
        for a in ["auto", "varlen", "sdpa"] {
            let c = config(d.path(), &format!("attention = \"{a}\"\n"));
            assert_eq!(fingerprint(&c), base, "{a}");
        }
        // Nor is capturing the step in a CUDA graph.
        let c = config(d.path(), "cuda_graphs = true\n");
        assert_eq!(fingerprint(&c), base, "cuda_graphs");
    }
}
