//! Everything a trial needs before its first step: the device and dtype,
//! the model directory, tokenizer and chat template, the tokenised data
//! (from the cache when it is there), the model, the optimizer, the step
//! counts and the micro-batch size.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use smolsweep_model::llama::{AttnMask, InitMode};
use smolsweep_model::{
    resolve_device, resolve_kind, ChatTemplate, Llama, LlamaConfig, TextTokenizer,
};
use tch::{Device, Kind, Tensor};

use super::fingerprint;
use super::graph::StepGraphs;
use crate::batch::steps_per_epoch;
use crate::config::{self, InitKind, MicroBatch, Stage, TrialConfig};
use crate::data::{self, DataSpec, Loaded, Samples};
use crate::dpo::DpoWork;
use crate::error::Result;
use crate::loss::{chunked_lm_loss, DEFAULT_CHUNK};
use crate::optim::{self, Optimizer};
use crate::rm::RmWork;

/// A trial ready to train: what the loop reads, and the model and
/// optimizer it updates.
pub(super) struct Trainer<'a> {
    pub cfg: &'a TrialConfig,
    pub device: Device,
    pub kind: Kind,
    /// The model directory the weights and tokenizer came from.
    pub model_dir: PathBuf,
    pub template: Template,
    pub pad: u32,
    pub work: Work,
    pub model: Llama,
    pub opt: Box<dyn Optimizer>,
    pub plan: Plan,
    pub micro_batch_size: usize,
    /// [`fingerprint`] of `cfg`, written into every checkpoint.
    pub fingerprint: String,
    /// `cuda_graphs`, where it applies (CUDA, SFT) and could start.
    pub graphs: Option<RefCell<StepGraphs>>,
}

/// What the trial trains on.
pub(super) enum Work {
    /// SFT: tokenised conversations.
    Sft(Loaded),
    /// DPO: preference pairs and their reference log-probs.
    Dpo(Box<DpoWork>),
    /// A reward model: preference pairs and the score head.
    Rm(Box<RmWork>),
}

impl Work {
    /// Samples (SFT) or pairs (DPO): what `batch_size` counts.
    pub fn len(&self) -> usize {
        match self {
            Work::Sft(d) => d.len(),
            Work::Dpo(w) => w.len(),
            Work::Rm(w) => w.len(),
        }
    }
}

/// The chat template the data is rendered with.
pub(crate) struct Template {
    pub chat: ChatTemplate,
    /// Its Jinja source: part of the tokenisation cache key, and written
    /// into the exported tokenizer config.
    pub source: String,
    /// The model's own template, which the exported tokenizer files
    /// already carry.
    pub is_models_own: bool,
}

/// How many optimizer steps, and how they divide into epochs and warmup.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// Samples in the data.
    pub samples: usize,
    pub batch_size: usize,
    pub per_epoch: u64,
    pub total: u64,
    pub warmup: u64,
}

impl<'a> Trainer<'a> {
    /// `stop` is polled while the data is read and tokenised: a signal
    /// then ends setup with [`crate::TrainError::Stopped`].
    pub(super) fn new(cfg: &'a TrialConfig, stop: &AtomicBool) -> Result<Self> {
        let (device, kind) = device_and_kind(cfg)?;
        let model_dir = smolsweep_model::hf::resolve_model_dir(&cfg.model)?;
        let tok = TextTokenizer::from_dir(&model_dir)?;
        let template = template_for(cfg, &tok)?;
        let data = match cfg.stage {
            Stage::Sft => Some(load_data(cfg, &tok, &template, stop)?),
            Stage::Dpo | Stage::Rm => None,
        };
        let model = init_model(cfg, &model_dir, device, kind)?;
        let micro_batch_size = pick_micro_batch(cfg, &model);
        let work = match data {
            Some(d) => Work::Sft(d),
            // The head joins the model's variables before the optimizer
            // collects them.
            None if cfg.stage == Stage::Rm => Work::Rm(Box::new(RmWork::prepare(
                cfg,
                &data_spec(cfg, &tok, &template),
                &model,
                &model_dir,
                stop,
            )?)),
            None => Work::Dpo(Box::new(DpoWork::prepare(
                crate::dpo::Setup {
                    cfg,
                    spec: data_spec(cfg, &tok, &template),
                    policy: &model,
                    policy_dir: &model_dir,
                    micro: micro_batch_size,
                    pad: tok.pad_id(),
                },
                stop,
            )?)),
        };
        if cfg.packing {
            model.set_attention(cfg.attention)?;
        }
        let opt = optim::adamw(
            model.vs.variables().into_iter().collect(),
            cfg.adam_beta1,
            cfg.adam_beta2,
            cfg.adam_eps,
            cfg.weight_decay,
        );
        let plan = Plan::new(cfg, work.len());
        let fingerprint = fingerprint(cfg);
        let graphs = step_graphs(cfg, device).map(RefCell::new);
        Ok(Trainer {
            cfg,
            device,
            kind,
            model_dir,
            template,
            pad: tok.pad_id(),
            work,
            model,
            opt,
            plan,
            micro_batch_size,
            fingerprint,
            graphs,
        })
    }

    pub(super) fn log_plan(&self) {
        let p = &self.plan;
        tracing::info!(
            samples = p.samples, steps = p.total, warmup = p.warmup, batch_size = p.batch_size,
            micro_batch_size = self.micro_batch_size, params = self.model.config.num_parameters(),
            device = ?self.device, dtype = ?self.kind, "training"
        );
    }
}

impl Plan {
    fn new(cfg: &TrialConfig, samples: usize) -> Self {
        let batch_size = cfg.batch_size as usize;
        let per_epoch = steps_per_epoch(samples, batch_size);
        let mut total = ((cfg.epochs * per_epoch as f64).ceil() as u64).max(1);
        if let Some(m) = cfg.max_steps {
            total = total.min(m);
        }
        // As open-instruct: int(total * warmup_ratio).
        let warmup = (total as f64 * cfg.warmup_ratio) as u64;
        Plan {
            samples,
            batch_size,
            per_epoch,
            total,
            warmup,
        }
    }
}

/// `cuda_graphs = true` where it can act: an SFT trial on a CUDA device
/// with graph support. Elsewhere the trial trains eagerly and says why.
fn step_graphs(cfg: &TrialConfig, device: Device) -> Option<StepGraphs> {
    if !cfg.cuda_graphs {
        return None;
    }
    let why = if cfg.stage != Stage::Sft {
        "it applies to SFT steps, not DPO or reward-model ones".to_owned()
    } else if !device.is_cuda() {
        format!("it needs a CUDA device, and this trial trains on {device:?}")
    } else {
        match StepGraphs::cuda(device) {
            Ok(g) => {
                tracing::info!("cuda_graphs: each micro-batch shape is captured once and replayed");
                return Some(g);
            }
            Err(e) => crate::error::chain_text(&e),
        }
    };
    tracing::warn!("cuda_graphs is on but unused, training eagerly: {why}");
    None
}

fn device_and_kind(cfg: &TrialConfig) -> Result<(Device, Kind)> {
    let device = resolve_device(cfg.device)?;
    let kind = resolve_kind(cfg.dtype, device);
    Ok((device, kind))
}

pub(crate) fn template_for(cfg: &TrialConfig, tok: &TextTokenizer) -> Result<Template> {
    let (chat, source, is_models_own) = match cfg.chat_template {
        config::ChatTemplate::Model => (
            tok.model_chat_template()?,
            tok.chat_template.clone().unwrap_or_default(),
            true,
        ),
        config::ChatTemplate::Tulu => (
            ChatTemplate::builtin("tulu")?,
            smolsweep_model::chat::TULU_TEMPLATE.to_owned(),
            false,
        ),
        config::ChatTemplate::Chatml => (
            ChatTemplate::builtin("chatml")?,
            smolsweep_model::chat::CHATML_TEMPLATE.to_owned(),
            false,
        ),
    };
    Ok(Template {
        chat,
        source,
        is_models_own,
    })
}

pub(crate) fn data_spec<'a>(
    cfg: &'a TrialConfig,
    tok: &'a TextTokenizer,
    template: &'a Template,
) -> DataSpec<'a> {
    DataSpec {
        data: &cfg.data,
        tokenizer: tok,
        template: &template.chat,
        template_source: &template.source,
        max_len: cfg.max_seq_len,
        cache_dir: cfg.cache_dir(),
    }
}

pub(crate) fn load_data(
    cfg: &TrialConfig,
    tok: &TextTokenizer,
    template: &Template,
    stop: &AtomicBool,
) -> Result<Loaded> {
    data::load_or_build(&data_spec(cfg, tok, template), stop)
}

fn init_model(
    cfg: &TrialConfig,
    dir: &std::path::Path,
    device: Device,
    kind: Kind,
) -> Result<Llama> {
    let mcfg = LlamaConfig::from_file(&dir.join("config.json"))?;
    Ok(match cfg.init {
        InitKind::Pretrained => {
            let m = Llama::new(mcfg, device, kind, InitMode::Empty)?;
            smolsweep_model::hf::load_weights(&m, dir)?;
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
    })
}

/// `micro_batch_size`: the configured value, or the largest power of two
/// (at most `batch_size`) whose forward+backward at full length fits. On the
/// CPU, where memory is not the limit but cache is, at most 16k tokens.
fn pick_micro_batch(cfg: &TrialConfig, model: &Llama) -> usize {
    let bs = cfg.batch_size as usize;
    let cap = match cfg.micro_batch_size {
        MicroBatch::Fixed(m) => return (m as usize).min(bs),
        // A DPO or RM micro-batch of m pairs holds 2m sequences' graphs.
        MicroBatch::Auto if cfg.stage != Stage::Sft => bs.div_ceil(2),
        MicroBatch::Auto => bs,
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
        let ok = try_forward_backward(model, m, len);
        for (_, v) in model.vs.variables() {
            let mut v = v;
            v.zero_grad();
        }
        if ok.is_ok() {
            break;
        }
        m /= 2;
    }
    // The probe's cached blocks (those of the sizes that did not fit too)
    // go back to the device and the peaks restart: what the run then holds
    // and reports is training's, which a sweep packs trials by.
    if let Err(e) = smolsweep_kernels::cuda_empty_cache(model.device())
        .and_then(|()| smolsweep_kernels::cuda_memory(model.device(), true))
    {
        tracing::debug!("after the micro-batch probe: {e}");
    }
    tracing::info!(micro_batch_size = m, "auto micro-batch size");
    m
}

/// One forward and backward of `rows` sequences of `len` tokens; an error
/// is what running out of device memory looks like.
fn try_forward_backward(
    model: &Llama,
    rows: usize,
    len: usize,
) -> std::result::Result<(), tch::TchError> {
    let x = Tensor::zeros([rows as i64, len as i64], (Kind::Int64, model.device()));
    let pos = Tensor::arange(len as i64, (Kind::Int64, model.device()))
        .unsqueeze(0)
        .expand([rows as i64, len as i64], false);
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
}
