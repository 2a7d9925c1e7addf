//! One optimizer step: its micro-batches run forward and backward, their
//! gradients accumulating in the parameters; then the non-finite check,
//! gradient clipping, the scheduled learning rate and the AdamW update.

use smolsweep_model::llama::AttnMask;
use smolsweep_model::{Llama, Varlen};
use tch::Tensor;

use super::dump::BatchDump;
use super::setup::{Trainer, Work};
use crate::batch::{micro_batches_in, step_samples, Layout, MicroBatch};
use crate::config::LossReduction;
use crate::dpo::MicroHook;
use crate::error::Result;
use crate::loss::{chunked_lm_loss_lazy, DEFAULT_CHUNK};
use crate::optim::lr_at;

/// The per-epoch sample order last drawn, kept between steps so it is
/// drawn once per epoch.
pub(super) type OrderCache = Option<(u64, Vec<usize>)>;

/// What the forward and backward passes of one step gave.
pub(super) struct Accumulated {
    pub epoch: u64,
    /// The step's loss, as the loss reduction weighs its micro-batches.
    pub loss: f64,
    /// Real (non-pad) tokens seen.
    pub tokens: u64,
    /// A DPO step's rewards and log-probs.
    pub preference: Option<smolsweep_config::PreferenceMetrics>,
    /// A reward-model step's accuracy, margin and rewards.
    pub reward: Option<smolsweep_config::RewardMetrics>,
}

/// An applied update.
pub(super) struct Update {
    pub lr: f64,
    pub grad_norm: f64,
}

/// A step whose loss or gradient norm was not finite; nothing was applied.
pub(super) struct NonFinite {
    pub loss: f64,
    pub grad_norm: f64,
}

impl Trainer<'_> {
    /// Forward and backward over every micro-batch of optimizer step
    /// `step` (0-based), leaving the step's gradient in the parameters.
    pub(super) fn accumulate(
        &self,
        step: u64,
        order: &mut OrderCache,
        dump: &mut Option<BatchDump>,
    ) -> Result<Accumulated> {
        let data = match &self.work {
            Work::Sft(d) => d,
            Work::Dpo(w) => return self.dpo_step(w, step, order, dump),
            Work::Rm(w) => return self.rm_step(w, step, order, dump),
        };
        let (epoch, mbatches) = self.micro_batches(data, step, order);
        let step_labels: i64 = mbatches.iter().map(|m| m.label_tokens).sum();
        let mut acc = Accumulated {
            epoch,
            loss: 0.0,
            tokens: 0,
            preference: None,
            reward: None,
        };
        // The loss stays on the device until the step is done: one read
        // per step, not one per micro-batch.
        let mut loss: Option<Tensor> = None;
        for mb in &mbatches {
            if let Some(d) = dump.as_mut() {
                d.write(step, mb)?;
            }
            acc.tokens += mb.tokens as u64;
            if mb.label_tokens == 0 {
                continue;
            }
            let scale = self.loss_scale(mb, step_labels, mbatches.len());
            let l = self.forward_backward(mb, scale)?;
            loss = Some(match loss {
                Some(sum) => sum + l,
                None => l,
            });
        }
        acc.loss = loss.map_or(0.0, |l| l.double_value(&[]));
        Ok(acc)
    }

    /// A DPO step: the step's pairs, run by the DPO module.
    fn dpo_step(
        &self,
        w: &crate::dpo::DpoWork,
        step: u64,
        order: &mut OrderCache,
        dump: &mut Option<BatchDump>,
    ) -> Result<Accumulated> {
        let (epoch, s) = self.pair_step(step, order, dump, |pairs, mbs, len, pad, hook| {
            w.step(&self.model, pairs, mbs, len, pad, hook)
        })?;
        Ok(Accumulated {
            epoch,
            loss: s.loss,
            tokens: s.tokens,
            preference: Some(s.metrics),
            reward: None,
        })
    }

    /// A reward-model step: the step's pairs, run by the RM module.
    fn rm_step(
        &self,
        w: &crate::rm::RmWork,
        step: u64,
        order: &mut OrderCache,
        dump: &mut Option<BatchDump>,
    ) -> Result<Accumulated> {
        let (epoch, s) = self.pair_step(step, order, dump, |pairs, mbs, len, pad, hook| {
            w.step(&self.model, pairs, mbs, len, pad, hook)
        })?;
        Ok(Accumulated {
            epoch,
            loss: s.loss,
            tokens: s.tokens,
            preference: None,
            reward: Some(s.metrics),
        })
    }

    /// What DPO and reward-model steps share: the step's pairs in the
    /// epoch's order, and the hook that dumps each micro-batch of them;
    /// `run` gets (pairs, micro-batch size, max_seq_len, pad id, hook).
    fn pair_step<S>(
        &self,
        step: u64,
        order: &mut OrderCache,
        dump: &mut Option<BatchDump>,
        run: impl FnOnce(&[usize], usize, usize, u32, &mut MicroHook<'_>) -> Result<S>,
    ) -> Result<(u64, S)> {
        let (p, cfg) = (&self.plan, self.cfg);
        let (epoch, pairs) = step_samples(p.samples, p.batch_size, cfg.seed, step, order);
        let mut on_micro = |idx: &[usize], c: &MicroBatch, r: &MicroBatch| match dump.as_mut() {
            Some(d) => d.write_pairs(step, idx, c, r),
            None => Ok(()),
        };
        let s = run(
            &pairs,
            self.micro_batch_size,
            cfg.max_seq_len,
            self.pad,
            &mut on_micro,
        )?;
        Ok((epoch, s))
    }

    fn micro_batches(
        &self,
        data: &crate::data::Loaded,
        step: u64,
        order: &mut OrderCache,
    ) -> (u64, Vec<MicroBatch>) {
        let (p, cfg) = (&self.plan, self.cfg);
        let (epoch, samples) = step_samples(p.samples, p.batch_size, cfg.seed, step, order);
        let layout = Layout {
            micro_batch_size: self.micro_batch_size,
            packing: cfg.packing,
            max_len: cfg.max_seq_len,
            pad_id: self.pad,
            device: self.device,
            // Varlen attention needs the spans only.
            packed_mask: !self.model.uses_varlen(),
            // Captured graphs replay fixed shapes: fewer distinct lengths.
            len_quantum: self.graphs.as_ref().map(|_| super::graph::LEN_QUANTUM),
        };
        (epoch, micro_batches_in(data, &samples, &layout))
    }

    /// The weight of one micro-batch's summed token loss in the step's loss.
    fn loss_scale(&self, mb: &MicroBatch, step_labels: i64, n_micro: usize) -> f64 {
        match self.cfg.loss_reduction {
            // Every token of the effective batch weighs the same.
            LossReduction::Sum => 1.0 / step_labels as f64,
            // Each micro-batch's mean, averaged over micro-batches.
            LossReduction::Mean => 1.0 / (mb.label_tokens as f64 * n_micro as f64),
        }
    }

    /// Forward and backward of one micro-batch, its loss weighted by
    /// `scale`; returns its share of the step's loss (a device scalar).
    /// By a captured graph's replay where `cuda_graphs` is on and the
    /// shape has one (or gets one now).
    fn forward_backward(&self, mb: &MicroBatch, scale: f64) -> Result<Tensor> {
        if let Some(g) = &self.graphs {
            if let Some(loss) = g.borrow_mut().run(&self.model, mb, scale)? {
                return Ok(loss);
            }
        }
        forward_backward(&self.model, mb, scale)
    }

    /// Applies the accumulated gradient as optimizer step `step` (0-based)
    /// and clears it. [`NonFinite`], with nothing applied, when the step's
    /// loss or gradient norm is not finite: the run has diverged.
    pub(super) fn optimizer_step(
        &mut self,
        step: u64,
        loss: f64,
    ) -> std::result::Result<Update, NonFinite> {
        let grad_norm = self.opt.grad_norm();
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(NonFinite { loss, grad_norm });
        }
        if let Some(c) = self.cfg.grad_clip {
            self.opt.clip(grad_norm, c);
        }
        let p = &self.plan;
        let lr = lr_at(self.cfg.lr, self.cfg.schedule, step, p.warmup, p.total);
        self.opt.step(lr);
        self.opt.zero_grad();
        Ok(Update { lr, grad_norm })
    }
}

/// Forward and backward of one micro-batch, eagerly, its loss weighted by
/// `scale`: only labelled positions reach the LM head. Returns its share
/// of the step's loss (a device scalar).
pub(super) fn forward_backward(model: &Llama, mb: &MicroBatch, scale: f64) -> Result<Tensor> {
    let hidden = model.forward_hidden(&mb.ids, &mb.positions, attn_mask(mb), None)?;
    let d = hidden.size()[2];
    let h = hidden.view([-1, d]).index_select(0, &mb.labelled);
    let y = mb.targets.index_select(0, &mb.labelled);
    let (loss_sum, surrogate) =
        chunked_lm_loss_lazy(&h, model.lm_head_weight(), &y, scale, DEFAULT_CHUNK)?;
    surrogate.f_backward()?;
    Ok(loss_sum * scale)
}

/// The attention a micro-batch asks for: packed spans (with the dense mask
/// when it was built), an explicit mask, or plain causal.
pub(super) fn attn_mask(mb: &MicroBatch) -> AttnMask<'_> {
    attention(mb.varlen.as_ref(), mb.mask.as_ref())
}

/// [`attn_mask`] from the parts: what a captured step's static buffers
/// hold as well.
pub(super) fn attention<'a>(varlen: Option<&'a Varlen>, mask: Option<&'a Tensor>) -> AttnMask<'a> {
    match (varlen, mask) {
        (Some(varlen), mask) => AttnMask::Packed { mask, varlen },
        (None, Some(m)) => AttnMask::Explicit(m),
        (None, None) => AttnMask::Causal,
    }
}
