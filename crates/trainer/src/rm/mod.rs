//! Reward-model training as open-instruct's `reward_modeling.py` runs it
//! for Tulu 3 and SmolTulu: the policy's backbone with a bias-free `score`
//! head `[1, hidden]` (`smolsweep_model::score`, initialised N(0,
//! 1/sqrt(hidden+1)) unless the model already has one), read at each
//! sequence's last real token; the loss of a pair is
//! `-log sigmoid(r_chosen - r_rejected)`, averaged over a micro-batch's
//! pairs; logged: the accuracy (per pair, strict >), the margin and the
//! mean chosen and rejected rewards.
//!
//! Only the step differs from SFT and DPO: the loop, the optimizer, the
//! schedule, checkpoints and resume (the head is one more parameter of
//! the model), divergence, signals and exit codes are the SFT trainer's
//! ([`crate::train`]), which calls [`RmWork::step`] where it would run SFT
//! micro-batches. The pairs are the DPO trainer's ([`crate::dpo`]): the
//! same tokenisation and cache, the same micro-batches of chosen and
//! rejected sides (run forward separately, as open-instruct's
//! concatenated pass computes the same rewards), the same dump.
//!
//! Gradient accumulation follows open-instruct (accelerate): each
//! micro-batch's mean loss is divided by the number of micro-batches of
//! the step.

use std::sync::atomic::AtomicBool;

use smolsweep_config::RewardMetrics;
use smolsweep_model::llama::AttnMask;
use smolsweep_model::score::{self, ScoreInit, SCORE_WEIGHT};
use smolsweep_model::Llama;
use tch::{Kind, Tensor};

use crate::batch::MicroBatch;
use crate::config::{InitKind, TrialConfig};
use crate::data::preference::{load_or_build_pairs, PreferenceData};
use crate::data::{DataSpec, Samples};
use crate::dpo::{micro_batch, MicroHook, Side};
use crate::error::Result;

/// A reward-model trial's pairs and the head it trains.
pub(crate) struct RmWork {
    pub data: PreferenceData,
    /// `score.weight` `[1, hidden]`, a variable of the model's store.
    pub score: Tensor,
}

/// What one optimizer step's forward and backward passes gave.
pub(crate) struct RmStep {
    pub loss: f64,
    pub tokens: u64,
    pub metrics: RewardMetrics,
}

/// `-log sigmoid(r_c - r_r)`, the mean over a micro-batch's pairs.
pub fn pair_loss(chosen: &Tensor, rejected: &Tensor) -> Tensor {
    -(chosen - rejected).log_sigmoid().mean(Kind::Float)
}

/// The running sums of a step's pairs, for its [`RewardMetrics`].
#[derive(Debug, Clone, Default)]
pub struct RewardSums {
    pairs: usize,
    accurate: usize,
    chosen: f64,
    rejected: f64,
}

impl RewardSums {
    pub fn add(&mut self, chosen: &[f32], rejected: &[f32]) {
        for (&c, &r) in chosen.iter().zip(rejected) {
            self.pairs += 1;
            // Strict, as open-instruct: a tie is not a success.
            self.accurate += usize::from(c > r);
            self.chosen += f64::from(c);
            self.rejected += f64::from(r);
        }
    }

    /// The means over the pairs added.
    pub fn metrics(&self) -> RewardMetrics {
        let n = self.pairs.max(1) as f64;
        RewardMetrics {
            accuracy: self.accurate as f64 / n,
            margin: (self.chosen - self.rejected) / n,
            chosen: self.chosen / n,
            rejected: self.rejected / n,
        }
    }
}

impl RmWork {
    /// Tokenises (or maps) the pairs and gives `model` its score head: the
    /// one in `model_dir` when it has one (training on from a reward
    /// model), else a fresh one seeded by the trial's seed.
    pub(crate) fn prepare(
        cfg: &TrialConfig,
        spec: &DataSpec<'_>,
        model: &Llama,
        model_dir: &std::path::Path,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let data = load_or_build_pairs(spec, stop)?;
        let has_head = cfg.init == InitKind::Pretrained
            && smolsweep_model::hf::tensor_names(model_dir)?
                .iter()
                .any(|n| n == SCORE_WEIGHT);
        let score = if has_head {
            let s = score::add_score_head(model, ScoreInit::Empty)?;
            // The backbone is read again with the head: once, at setup.
            smolsweep_model::hf::load_weights(model, model_dir)?;
            s
        } else {
            score::add_score_head(
                model,
                ScoreInit::Random {
                    seed: cfg.seed as i64,
                },
            )?
        };
        Ok(RmWork { data, score })
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Rewards `[R]` (fp32, in the graph) of the rows of one side's
    /// micro-batch of pairs `idx`.
    fn rewards(&self, model: &Llama, mb: &MicroBatch, side: Side, idx: &[usize]) -> Result<Tensor> {
        let samples: &dyn Samples = match side {
            Side::Chosen => &self.data.chosen,
            Side::Rejected => &self.data.rejected,
        };
        let lengths: Vec<i64> = idx
            .iter()
            .map(|&i| samples.sample(i).0.len() as i64)
            .collect();
        let h = model.forward_hidden(&mb.ids, &mb.positions, AttnMask::Causal, None)?;
        Ok(score::rewards(
            &score::last_token_hidden(&h, &lengths),
            &self.score,
        ))
    }

    /// Forward and backward over the pairs `samples` of one optimizer
    /// step, `micro` pairs per micro-batch, leaving the step's gradient in
    /// the model's parameters (the head's included). `on_micro` sees each
    /// micro-batch's pairs and sides: the `--dump-batches` hook.
    pub(crate) fn step(
        &self,
        model: &Llama,
        samples: &[usize],
        micro: usize,
        max_len: usize,
        pad: u32,
        on_micro: &mut MicroHook<'_>,
    ) -> Result<RmStep> {
        let device = model.device();
        let chunks: Vec<&[usize]> = samples.chunks(micro.max(1)).collect();
        let n_micro = chunks.len() as f64;
        let mut sums = RewardSums::default();
        let (mut loss, mut tokens) = (0.0, 0u64);
        for idx in chunks {
            let c = micro_batch(&self.data, Side::Chosen, idx, max_len, pad, device);
            let r = micro_batch(&self.data, Side::Rejected, idx, max_len, pad, device);
            on_micro(idx, &c, &r)?;
            tokens += (c.tokens + r.tokens) as u64;
            let rc = self.rewards(model, &c, Side::Chosen, idx)?;
            let rr = self.rewards(model, &r, Side::Rejected, idx)?;
            let l = pair_loss(&rc, &rr);
            (&l / n_micro).f_backward()?;
            loss += l.double_value(&[]) / n_micro;
            sums.add(
                &Vec::<f32>::try_from(&rc.detach())?,
                &Vec::<f32>::try_from(&rr.detach())?,
            );
        }
        Ok(RmStep {
            loss,
            tokens,
            metrics: sums.metrics(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-checked pair of docs: rewards [1, -0.5] vs [0, 0.5].
    #[test]
    fn the_hand_checked_rewards_give_the_documented_loss() {
        let c = Tensor::from_slice(&[1.0f32, -0.5]);
        let r = Tensor::from_slice(&[0.0f32, 0.5]);
        let l = pair_loss(&c, &r).double_value(&[]);
        assert!((l - 0.813_261_7).abs() < 1e-6, "{l}");
        let mut s = RewardSums::default();
        s.add(&[1.0, -0.5], &[0.0, 0.5]);
        let m = s.metrics();
        assert_eq!(m.accuracy, 0.5);
        assert!((m.margin - 0.0).abs() < 1e-12 && (m.chosen - 0.25).abs() < 1e-12);
        assert!((m.rejected - 0.25).abs() < 1e-12, "{m:?}");
        // A tie is not accurate.
        let mut t = RewardSums::default();
        t.add(&[0.3], &[0.3]);
        assert_eq!(t.metrics().accuracy, 0.0);
    }
}
