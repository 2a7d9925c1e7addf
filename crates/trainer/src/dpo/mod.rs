//! Direct preference optimisation as open-instruct's `dpo_tune_cache.py`
//! runs it for Tulu 3 and SmolTulu: the reference model's log-probs are
//! computed once, before training, and cached ([`reference`]); each step's
//! pairs are split into micro-batches whose chosen and rejected sides run
//! forward separately (or concatenated), padded, through the policy
//! ([`logps`]); the loss and the logged rewards are open-instruct's
//! ([`loss`]).
//!
//! Only the step differs from SFT: the loop, the optimizer, the schedule,
//! checkpoints and resume, divergence, signals and exit codes are the SFT
//! trainer's ([`crate::train`]), which calls [`DpoWork::step`] where it
//! would run SFT micro-batches.
//!
//! Gradient accumulation follows open-instruct (accelerate): each
//! micro-batch's loss is the mean over its pairs, divided by the number of
//! micro-batches of the step.

pub mod implicit;
pub mod logps;
pub mod loss;
pub mod reference;

use std::sync::atomic::AtomicBool;

use smolsweep_config::{DpoLoss, Forward, PreferenceMetrics};
use smolsweep_model::Llama;
use tch::Device;

use crate::batch::{micro_batches, MicroBatch};
use crate::config::{DpoSettings, InitKind, TrialConfig};
use crate::data::load::BuildLock;
use crate::data::preference::{load_or_build_pairs, PreferenceData};
use crate::data::{DataSpec, DataStats, Samples};
use crate::error::{Result, TrainError};
use loss::{pair_loss, MetricSums, PairLogps};
use reference::RefLogps;

/// Which side of the pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Chosen,
    Rejected,
}

impl PreferenceData {
    fn side(&self, s: Side) -> &dyn Samples {
        match s {
            Side::Chosen => &self.chosen,
            Side::Rejected => &self.rejected,
        }
    }
}

/// Pairs `idx` of one side as one padded micro-batch.
pub(crate) fn micro_batch(
    data: &PreferenceData,
    side: Side,
    idx: &[usize],
    max_len: usize,
    pad: u32,
    device: Device,
) -> MicroBatch {
    let mut mbs = micro_batches(data.side(side), idx, idx.len(), false, max_len, pad, device);
    mbs.remove(0)
}

/// Both sides as one samples set: chosen `0..n`, rejected `n..2n`.
struct BothSides<'a>(&'a PreferenceData);

impl Samples for BothSides<'_> {
    fn len(&self) -> usize {
        2 * self.0.len()
    }
    fn sample(&self, i: usize) -> (&[u32], &[u8]) {
        let n = self.0.len();
        if i < n {
            self.0.chosen.sample(i)
        } else {
            self.0.rejected.sample(i - n)
        }
    }
    fn stats(&self) -> &DataStats {
        self.0.chosen.stats()
    }
}

/// A DPO trial's data, its reference log-probs and its settings.
pub(crate) struct DpoWork {
    pub data: PreferenceData,
    pub reference: Vec<RefLogps>,
    pub settings: DpoSettings,
}

/// Sees each micro-batch's pairs and its chosen and rejected sides.
pub(crate) type MicroHook<'a> = dyn FnMut(&[usize], &MicroBatch, &MicroBatch) -> Result<()> + 'a;

/// What one optimizer step's forward and backward passes gave.
pub(crate) struct DpoStep {
    pub loss: f64,
    pub tokens: u64,
    pub metrics: PreferenceMetrics,
}

/// Where the pieces of a DPO trial's setup come from.
pub(crate) struct Setup<'a> {
    pub cfg: &'a TrialConfig,
    pub spec: DataSpec<'a>,
    /// The policy, before any step: the reference when none is set.
    pub policy: &'a Llama,
    pub policy_dir: &'a std::path::Path,
    pub micro: usize,
    pub pad: u32,
}

impl DpoWork {
    /// Tokenises (or maps) the pairs and computes (or reads) the reference
    /// log-probs. A `reference_model` is loaded for this and dropped.
    pub(crate) fn prepare(s: Setup<'_>, stop: &AtomicBool) -> Result<Self> {
        let settings = s
            .cfg
            .dpo()
            .ok_or_else(|| TrainError::Other("not a DPO trial".into()))?;
        let data = load_or_build_pairs(&s.spec, stop)?;
        let kind = s.policy.lm_head_weight().kind();
        let (ref_dir, seed) = match &settings.reference_model {
            Some(r) => (smolsweep_model::hf::resolve_model_dir(r)?, None),
            None => (
                s.policy_dir.to_path_buf(),
                (s.cfg.init == InitKind::Random).then_some(s.cfg.seed),
            ),
        };
        let identity = reference::model_identity(&ref_dir, seed)?;
        let path = reference::cache_path(&s.spec.cache_dir, &data, &identity, kind);
        let (micro, len, pad) = (s.micro, s.cfg.max_seq_len, s.pad);
        // One trial computes, the others of a sweep wait and read its file.
        let lock = std::fs::create_dir_all(&s.spec.cache_dir)
            .map_err(|e| TrainError::io(&s.spec.cache_dir, e))
            .and_then(|()| BuildLock::acquire(&path.with_extension("lock"), stop));
        let _lock = match lock {
            Ok(l) => Some(l),
            Err(TrainError::Stopped) => return Err(TrainError::Stopped),
            Err(_) => None,
        };
        let reference = match reference::read(&path, data.len()) {
            Some(r) => {
                tracing::info!(cache = %path.display(), "reference log-probs from cache");
                r
            }
            None => {
                let refs = match &settings.reference_model {
                    None => reference::compute(s.policy, &data, micro, len, pad, stop)?,
                    Some(_) => {
                        let m = load_reference(&ref_dir, s.policy)?;
                        reference::compute(&m, &data, micro, len, pad, stop)?
                        // `m` is dropped here, before the first step.
                    }
                };
                if let Err(e) = reference::write(&path, &refs) {
                    tracing::warn!(
                        "the reference log-probs are not cached: {}",
                        crate::error::chain_text(&e)
                    );
                }
                refs
            }
        };
        Ok(DpoWork {
            data,
            reference,
            settings,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// What the export records of this trial's DPO (its reference as an
    /// absolute directory; none for a random initialisation).
    pub(crate) fn export_record(
        &self,
        cfg: &TrialConfig,
        policy_dir: &std::path::Path,
    ) -> implicit::DpoExport {
        let reference = match &self.settings.reference_model {
            Some(r) => smolsweep_model::hf::resolve_model_dir(r).ok(),
            None if cfg.init == InitKind::Random => None,
            None => Some(policy_dir.to_path_buf()),
        };
        implicit::DpoExport {
            reference_model: reference.map(|d| std::fs::canonicalize(&d).unwrap_or(d)),
            beta: self.settings.beta,
            dpo_loss: self.settings.loss,
            max_seq_len: cfg.max_seq_len,
        }
    }

    /// Pair `i`'s reference log-probs, normalised as the loss wants.
    fn reference_of(&self, i: usize) -> (f64, f64) {
        let r = &self.reference[i];
        match self.settings.loss {
            DpoLoss::DpoNorm => (
                r.chosen_sum / r.chosen_count.max(1.0),
                r.rejected_sum / r.rejected_count.max(1.0),
            ),
            DpoLoss::Dpo => (r.chosen_sum, r.rejected_sum),
        }
    }

    /// Forward and backward over the pairs `samples` of one optimizer
    /// step, `micro` pairs per micro-batch, leaving the step's gradient in
    /// the policy's parameters. `on_micro` sees each micro-batch's pairs
    /// and its chosen and rejected sides (separate forwards only): the
    /// `--dump-batches` hook.
    pub(crate) fn step(
        &self,
        model: &Llama,
        samples: &[usize],
        micro: usize,
        max_len: usize,
        pad: u32,
        on_micro: &mut MicroHook<'_>,
    ) -> Result<DpoStep> {
        let device = model.device();
        let chunks: Vec<&[usize]> = samples.chunks(micro.max(1)).collect();
        let n_micro = chunks.len() as f64;
        let (beta, ls) = (self.settings.beta, self.settings.label_smoothing);
        let norm = self.settings.loss == DpoLoss::DpoNorm;
        let mut out = DpoStep {
            loss: 0.0,
            tokens: 0,
            metrics: MetricSums::default().metrics(),
        };
        let mut sums = MetricSums::default();
        for idx in chunks {
            let k = idx.len();
            // (forward, the rows of chosen, the rows of rejected)
            let passes: Vec<(logps::Forwarded, usize, usize)> = match self.settings.forward {
                Forward::Separate => {
                    let c = micro_batch(&self.data, Side::Chosen, idx, max_len, pad, device);
                    let r = micro_batch(&self.data, Side::Rejected, idx, max_len, pad, device);
                    on_micro(idx, &c, &r)?;
                    out.tokens += (c.tokens + r.tokens) as u64;
                    vec![
                        (logps::forward(model, &c)?, 0, 0),
                        (logps::forward(model, &r)?, 0, 0),
                    ]
                }
                Forward::Concatenated => {
                    let n = self.data.len();
                    let both: Vec<usize> = idx
                        .iter()
                        .copied()
                        .chain(idx.iter().map(|i| i + n))
                        .collect();
                    let mut mbs = micro_batches(
                        &BothSides(&self.data),
                        &both,
                        2 * k,
                        false,
                        max_len,
                        pad,
                        device,
                    );
                    let mb = mbs.remove(0);
                    out.tokens += mb.tokens as u64;
                    vec![(logps::forward(model, &mb)?, 0, k)]
                }
            };
            // Row j of chosen / rejected: (pass, row).
            let at = |side: Side, j: usize| -> (usize, usize) {
                match (self.settings.forward, side) {
                    (Forward::Separate, Side::Chosen) => (0, j),
                    (Forward::Separate, Side::Rejected) => (1, j),
                    (Forward::Concatenated, Side::Chosen) => (0, j),
                    (Forward::Concatenated, Side::Rejected) => (0, passes[0].2 + j),
                }
            };
            let logp = |side: Side, j: usize| -> (f64, f64) {
                let (p, r) = at(side, j);
                let f = &passes[p].0;
                let scale = if norm { f.counts[r].max(1.0) } else { 1.0 };
                (f.sums[r] / scale, scale)
            };
            let mut coefs: Vec<Vec<f64>> = passes
                .iter()
                .map(|(f, _, _)| vec![0.0; f.sums.len()])
                .collect();
            let mut mb_loss = 0.0;
            for (j, &i) in idx.iter().enumerate() {
                let ((pc, nc), (pr, nr)) = (logp(Side::Chosen, j), logp(Side::Rejected, j));
                let (rc, rr) = self.reference_of(i);
                let p = PairLogps {
                    policy_chosen: pc,
                    policy_rejected: pr,
                    reference_chosen: rc,
                    reference_rejected: rr,
                };
                let l = pair_loss(&p, beta, ls);
                sums.add(&p, &l);
                mb_loss += l.loss / k as f64;
                // d(step loss)/d(row sum) = dloss_dz / (k * n_micro) / norm.
                let g = l.dloss_dz / (k as f64 * n_micro);
                let (cp, cr) = at(Side::Chosen, j);
                coefs[cp][cr] = g / nc;
                let (rp, rrow) = at(Side::Rejected, j);
                coefs[rp][rrow] = -g / nr;
            }
            out.loss += mb_loss / n_micro;
            let mut surrogate: Option<tch::Tensor> = None;
            for ((f, _, _), c) in passes.iter().zip(&coefs) {
                let s = f.surrogate(model, c);
                surrogate = Some(match surrogate {
                    Some(t) => t + s,
                    None => s,
                });
            }
            if let Some(s) = surrogate {
                s.f_backward()?;
            }
        }
        out.metrics = sums.metrics();
        Ok(out)
    }
}

/// The reference model, as the policy is loaded (device, dtype); its
/// vocabulary must be the policy's, since the pairs were tokenised once.
fn load_reference(dir: &std::path::Path, policy: &Llama) -> Result<Llama> {
    let cfg = smolsweep_model::LlamaConfig::from_file(&dir.join("config.json"))?;
    if cfg.vocab_size != policy.config.vocab_size {
        return Err(TrainError::Other(format!(
            "{}: the reference model's vocabulary ({}) is not the policy's ({})",
            dir.display(),
            cfg.vocab_size,
            policy.config.vocab_size
        )));
    }
    let kind = policy.lm_head_weight().kind();
    let m = Llama::new(
        cfg,
        policy.device(),
        kind,
        smolsweep_model::llama::InitMode::Empty,
    )?;
    smolsweep_model::hf::load_weights(&m, dir)?;
    Ok(m)
}
