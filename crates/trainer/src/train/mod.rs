//! One SFT job, start to finish: load the model and the (cached) data,
//! then for each optimizer step run its micro-batches forward and
//! backward (gradient accumulation), check for divergence, clip, update,
//! report, checkpoint; at the end export a HF model directory.
//!
//! Stopping is cooperative: a SIGTERM/SIGINT sets a flag that is honoured
//! at the next step boundary by writing a checkpoint and returning
//! [`Outcome::Stopped`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};
use smolsweep_model::llama::{AttnMask, InitMode};
use smolsweep_model::{ChatTemplate, DType, DeviceSpec, Llama, LlamaConfig, TextTokenizer};
use tch::{Device, Kind, Tensor};

use crate::batch::{micro_batches, step_samples, steps_per_epoch};
use crate::checkpoint::{self, TrainerState};
use crate::config::{InitKind, LossReduction, MicroBatch, TrialConfig};
use crate::data::{self, TokenizedData};
use crate::error::{Result, TrainError};
use crate::events::{self, EventSink};
use crate::loss::{chunked_lm_loss, DEFAULT_CHUNK};
use crate::optim::{lr_at, AdamW};

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
    Stopped {
        step: u64,
        checkpoint: PathBuf,
    },
}

impl Outcome {
    /// The process exit status the issue fixes: 0 done, 3 diverged, 4 stopped.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Done { .. } => 0,
            Outcome::Diverged { .. } => 3,
            Outcome::Stopped { .. } => 4,
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

fn load_data(
    cfg: &TrialConfig,
    tok: &TextTokenizer,
    template: &ChatTemplate,
    source: &str,
) -> Result<TokenizedData> {
    let key = data::cache_key(&cfg.data, tok, source, cfg.max_seq_len)?;
    let path = cfg.cache_dir().join(format!("tokenized-{key}.bin"));
    if let Some(d) = data::load_cache(&path) {
        tracing::info!(cache = %path.display(), samples = d.len(), "tokenised data from cache");
        return Ok(d);
    }
    let t = Instant::now();
    let records = data::read_records(&cfg.data)?;
    let d = data::tokenize(&records, tok, template, cfg.max_seq_len)?;
    let s = &d.stats;
    tracing::info!(
        rows = s.rows,
        samples = s.samples,
        skipped_no_assistant = s.skipped_no_assistant,
        skipped_truncated_away = s.skipped_truncated_away,
        truncated = s.truncated,
        tokens = s.tokens,
        label_tokens = s.label_tokens,
        secs = format!("{:.1}", t.elapsed().as_secs_f64()),
        "tokenised"
    );
    if let Err(e) = data::save_cache(&path, &d) {
        tracing::warn!("could not write the tokenisation cache: {e}");
    }
    Ok(d)
}

fn template_for(cfg: &TrialConfig, tok: &TextTokenizer) -> Result<(ChatTemplate, String)> {
    Ok(match cfg.chat_template.as_str() {
        "model" => {
            let t = tok.model_chat_template()?;
            (t, tok.chat_template.clone().unwrap_or_default())
        }
        "tulu" => (
            ChatTemplate::builtin("tulu")?,
            smolsweep_model::chat::TULU_TEMPLATE.to_owned(),
        ),
        _ => (
            ChatTemplate::builtin("chatml")?,
            smolsweep_model::chat::CHATML_TEMPLATE.to_owned(),
        ),
    })
}

/// `micro_batch_size`: the configured value, or the largest power of two
/// (at most `batch_size`) whose forward+backward at full length fits. On the
/// CPU, where memory is not the limit but cache is, at most 16k tokens.
fn pick_micro_batch(cfg: &TrialConfig, model: &Llama) -> usize {
    let bs = cfg.batch_size as usize;
    let cap = match cfg.micro_batch_size {
        MicroBatch::Fixed(m) => return (m as usize).min(bs),
        MicroBatch::Auto(_) => bs,
    };
    let len = cfg.max_seq_len;
    let mut m = cap.next_power_of_two().min(cap.max(1));
    if model.device() == Device::Cpu {
        while m > 1 && m * len > 16_384 {
            m /= 2;
        }
        return m;
    }
    // CUDA: try the real thing, halving on failure (out of memory).
    while m > 1 {
        let ok = (|| -> std::result::Result<(), tch::TchError> {
            let x = Tensor::zeros([m as i64, len as i64], (Kind::Int64, model.device()));
            let pos = Tensor::arange(len as i64, (Kind::Int64, model.device()))
                .unsqueeze(0)
                .expand([m as i64, len as i64], false);
            let h = model
                .forward_hidden(&x, &pos, AttnMask::Causal, None)
                .map_err(|e| tch::TchError::Torch(e.to_string()))?;
            let y = x.flatten(0, -1);
            let (_, s) = chunked_lm_loss(
                &h.flatten(0, 1),
                model.lm_head_weight(),
                &y,
                1.0,
                DEFAULT_CHUNK,
            )
            .map_err(|e| tch::TchError::Torch(e.to_string()))?;
            s.f_backward()
        })();
        for (_, v) in model.vs.variables() {
            let mut v = v;
            v.zero_grad();
        }
        if ok.is_ok() {
            break;
        }
        m /= 2;
    }
    tracing::info!(micro_batch_size = m, "auto micro-batch size");
    m
}

/// Runs a trial. `stop` is polled at every step boundary.
pub fn run(
    cfg: &TrialConfig,
    opts: &RunOptions,
    stop: &AtomicBool,
    events: &mut dyn EventSink,
) -> Result<Outcome> {
    let started = Instant::now();
    let device = cfg.device.parse::<DeviceSpec>()?.resolve()?;
    let kind = cfg.dtype.parse::<DType>()?.resolve(device);
    let dir = smolsweep_model::hf::resolve_model_dir(&cfg.model)?;
    let tok = TextTokenizer::from_dir(&dir)?;
    let (template, template_src) = template_for(cfg, &tok)?;
    let data = load_data(cfg, &tok, &template, &template_src)?;
    let mcfg = LlamaConfig::from_file(&dir.join("config.json"))?;
    let model = match cfg.init {
        InitKind::Pretrained => {
            let m = Llama::new(mcfg, device, kind, InitMode::Empty)?;
            smolsweep_model::hf::load_weights(&m, &dir)?;
            m
        }
        InitKind::Random => Llama::new(
            mcfg,
            device,
            kind,
            InitMode::Random {
                seed: cfg.seed as i64,
            },
        )?,
    };
    let mut opt = AdamW::new(
        model.vs.variables().into_iter().collect(),
        cfg.adam_beta1,
        cfg.adam_beta2,
        cfg.adam_eps,
        cfg.weight_decay,
    );
    let n = data.len();
    let bs = cfg.batch_size as usize;
    let per_epoch = steps_per_epoch(n, bs);
    let mut total = ((cfg.epochs * per_epoch as f64).ceil() as u64).max(1);
    if let Some(m) = cfg.max_steps {
        total = total.min(m);
    }
    // As open-instruct: int(total * warmup_ratio).
    let warmup = (total as f64 * cfg.warmup_ratio) as u64;
    let fp = fingerprint(cfg);
    let mbs = pick_micro_batch(cfg, &model);
    let pad = tok.pad_id();

    let mut step = 0u64;
    let mut tokens_seen = 0u64;
    let mut last_loss: Option<f64> = None;
    let mut elapsed_before = 0.0;
    if opts.resume {
        if let Some((path, st, tensors)) = checkpoint::load_latest(&cfg.output_dir) {
            if st.config_fingerprint != fp {
                return Err(TrainError::Checkpoint {
                    path,
                    msg: "was written by a different trial configuration; refusing to resume it"
                        .into(),
                });
            }
            opt.load_state(&tensors, st.adam_t)?;
            step = st.step;
            tokens_seen = st.tokens_seen;
            last_loss = st.last_loss;
            elapsed_before = st.elapsed_s;
            tracing::info!(checkpoint = %path.display(), step, "resuming");
        } else {
            tracing::info!("no checkpoint to resume from; starting fresh");
        }
    }
    tracing::info!(
        samples = n, steps = total, warmup, batch_size = bs, micro_batch_size = mbs,
        params = model.config.num_parameters(), device = ?device, dtype = ?kind, "training"
    );
    let bar = if opts.progress {
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
    bar.set_position(step);
    let mut dump = match &opts.dump_batches {
        Some((p, _)) => Some(std::fs::File::create(p).map_err(|e| TrainError::io(p, e))?),
        None => None,
    };
    let mut order_cache = None;
    let run_start = Instant::now();
    let tokens_at_start = tokens_seen;
    let save = |step: u64, epoch: u64, tokens_seen: u64, last_loss: Option<f64>, opt: &AdamW| {
        let st = TrainerState {
            version: 1,
            step,
            epoch,
            data_cursor: step,
            data_seed: cfg.seed,
            adam_t: opt.t,
            tokens_seen,
            elapsed_s: elapsed_before + run_start.elapsed().as_secs_f64(),
            last_loss,
            config_fingerprint: fp.clone(),
            state_sha256: String::new(),
        };
        checkpoint::save(
            &cfg.output_dir,
            &st,
            &opt.state_tensors(),
            cfg.keep_checkpoints,
        )
    };

    while step < total {
        if stop.load(Ordering::SeqCst) {
            let path = save(step, step / per_epoch, tokens_seen, last_loss, &opt)?;
            events.emit(json!({"event": "checkpoint", "step": step, "path": path}));
            bar.abandon_with_message("stopped");
            return Ok(Outcome::Stopped {
                step,
                checkpoint: path,
            });
        }
        let (epoch, samples) = step_samples(n, bs, cfg.seed, step, &mut order_cache);
        let mbatches = micro_batches(
            &data,
            &samples,
            mbs,
            cfg.packing,
            cfg.max_seq_len,
            pad,
            device,
        );
        let step_labels: i64 = mbatches.iter().map(|m| m.label_tokens).sum();
        let n_micro = mbatches.len() as f64;
        let mut step_loss = 0.0;
        let mut step_tokens = 0u64;
        for mb in &mbatches {
            if let Some(f) = dump.as_mut() {
                if opts.dump_batches.as_ref().is_some_and(|(_, k)| step < *k) {
                    use std::io::Write;
                    let line = json!({"step": step, "ids": Vec::<Vec<i64>>::try_from(&mb.ids)?, "targets": Vec::<i64>::try_from(&mb.targets)?, "positions": Vec::<Vec<i64>>::try_from(&mb.positions)?, "packed": mb.mask.is_some()});
                    writeln!(f, "{line}").map_err(|e| TrainError::Other(e.to_string()))?;
                }
            }
            step_tokens += mb.tokens as u64;
            if mb.label_tokens == 0 {
                continue;
            }
            let mask = mb
                .mask
                .as_ref()
                .map_or(AttnMask::Causal, AttnMask::Explicit);
            let hidden = model.forward_hidden(&mb.ids, &mb.positions, mask, None)?;
            let d = hidden.size()[2];
            let sel = mb.targets.ne(-100).nonzero().squeeze_dim(1);
            let h = hidden.view([-1, d]).index_select(0, &sel);
            let y = mb.targets.index_select(0, &sel);
            // "sum": every token of the effective batch weighs the same;
            // "mean": each micro-batch's mean, averaged over micro-batches.
            let scale = match cfg.loss_reduction {
                LossReduction::Sum => 1.0 / step_labels as f64,
                LossReduction::Mean => 1.0 / (mb.label_tokens as f64 * n_micro),
            };
            let (loss_sum, surrogate) =
                chunked_lm_loss(&h, model.lm_head_weight(), &y, scale, DEFAULT_CHUNK)?;
            step_loss += loss_sum * scale;
            surrogate.f_backward()?;
        }
        let grad_norm = opt.grad_norm();
        if !step_loss.is_finite() || !grad_norm.is_finite() {
            events.emit(
                json!({"event": "diverged", "step": step + 1, "last_finite_loss": last_loss}),
            );
            bar.abandon_with_message("diverged");
            return Ok(Outcome::Diverged {
                step: step + 1,
                last_finite_loss: last_loss,
            });
        }
        if let Some(c) = cfg.grad_clip {
            opt.clip(grad_norm, c);
        }
        let lr = lr_at(cfg.lr, cfg.schedule, step, warmup, total);
        opt.step(lr);
        opt.zero_grad();
        step += 1;
        tokens_seen += step_tokens;
        last_loss = Some(step_loss);
        let el = run_start.elapsed().as_secs_f64();
        let tps = (tokens_seen - tokens_at_start) as f64 / el.max(1e-9);
        let frac_epoch = epoch as f64 + ((step - epoch * per_epoch) as f64 / per_epoch as f64);
        events.emit(events::step(
            step,
            frac_epoch,
            step_loss,
            lr,
            grad_norm,
            tokens_seen,
            tps,
            elapsed_before + el,
        ));
        bar.set_position(step);
        bar.set_message(format!("loss {step_loss:.4}"));
        if step % cfg.checkpoint_every_steps == 0 && step < total {
            let path = save(step, step / per_epoch, tokens_seen, last_loss, &opt)?;
            events.emit(json!({"event": "checkpoint", "step": step, "path": path}));
        }
    }
    bar.finish_and_clear();
    // Final checkpoint too, so a kill during export resumes to "done".
    save(step, step / per_epoch, tokens_seen, last_loss, &opt)?;
    let export = cfg.output_dir.join("final");
    export_model(&model, &dir, &export, cfg, &template_src)?;
    let loss = last_loss.unwrap_or(f64::NAN);
    events.emit(json!({"event": "done", "step": step, "loss": loss, "export": export, "elapsed_s": started.elapsed().as_secs_f64()}));
    Ok(Outcome::Done { step, loss, export })
}

/// Writes the trained model as a HF directory (weights, config, tokenizer
/// files) whose `chat_template` is the one it was trained with.
fn export_model(
    model: &Llama,
    src: &Path,
    out: &Path,
    cfg: &TrialConfig,
    template_src: &str,
) -> Result<()> {
    let tmp = out.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    smolsweep_model::hf::save_weights_and_config(model, &tmp, model.kind())?;
    smolsweep_model::hf::copy_tokenizer_files(src, &tmp)?;
    if cfg.chat_template != "model" {
        let tc = tmp.join("tokenizer_config.json");
        let mut v: serde_json::Value = std::fs::read_to_string(&tc)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| json!({}));
        if let Some(o) = v.as_object_mut() {
            o.insert("chat_template".into(), template_src.into());
        }
        std::fs::write(
            &tc,
            serde_json::to_vec_pretty(&v).map_err(|e| TrainError::Other(e.to_string()))?,
        )
        .map_err(|e| TrainError::io(&tc, e))?;
        let _ = std::fs::remove_file(tmp.join("chat_template.jinja"));
    }
    let _ = std::fs::remove_dir_all(out);
    std::fs::rename(&tmp, out).map_err(|e| TrainError::io(out, e))
}
