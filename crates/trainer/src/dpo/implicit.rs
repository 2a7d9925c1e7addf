//! A DPO policy's implicit reward on held-out preference pairs (the
//! `dpo_reward_accuracy` eval task): for each side
//! `r = beta * (log pi(y|x) - log ref(y|x))`, the label log-probs summed
//! (`dpo`) or divided by the side's label-token count (`dpo_norm`), exactly
//! as the trainer computes the logged `rewards/*`; a pair is ranked right
//! when `r_chosen > r_rejected` (strictly, as open-instruct's
//! `rewards/accuracy`). The pairs are tokenised as the trainer tokenises
//! its training pairs (same template, masks and truncation).
//!
//! What the policy was trained against is read from the file the DPO
//! trainer writes into its export, [`DPO_EXPORT_FILE`]: the reference
//! model, beta, the loss and max_seq_len; each can be given instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};
use smolsweep_config::DpoLoss;
use smolsweep_model::{ChatTemplate, Llama, TextTokenizer};

use super::reference::{self, RefLogps};
use crate::data::preference::{pairs_in_memory, PreferenceData, PreferenceStats};
use crate::data::DataSpec;
use crate::error::{Result, TrainError};

/// The file in a DPO trial's export naming what it was trained against.
pub const DPO_EXPORT_FILE: &str = "smolsweep_dpo.json";

/// What a DPO policy was trained against, as its export records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpoExport {
    /// The reference model's directory; `None` when it was a random
    /// initialisation (`init = "random"` without `reference_model`),
    /// which no directory holds.
    pub reference_model: Option<PathBuf>,
    pub beta: f64,
    pub dpo_loss: DpoLoss,
    pub max_seq_len: usize,
}

impl DpoExport {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let p = dir.join(DPO_EXPORT_FILE);
        let text =
            serde_json::to_string_pretty(self).map_err(|e| TrainError::Other(e.to_string()))?;
        std::fs::write(&p, text + "\n").map_err(|e| TrainError::io(&p, e))
    }

    /// The record of the export `dir`, None when it has none (not a DPO
    /// policy).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let p = dir.join(DPO_EXPORT_FILE);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TrainError::io(&p, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TrainError::Data {
                location: p.display().to_string(),
                msg: e.to_string(),
            })
    }
}

/// One pair's implicit rewards.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairReward {
    pub chosen: f64,
    pub rejected: f64,
}

/// The rewards of every kept pair, with the tokenisation's counts.
#[derive(Debug, Clone)]
pub struct ImplicitRewards {
    pub pairs: Vec<PairReward>,
    pub stats: PreferenceStats,
}

impl ImplicitRewards {
    fn mean(&self, f: impl Fn(&PairReward) -> f64) -> f64 {
        self.pairs.iter().map(f).sum::<f64>() / self.pairs.len().max(1) as f64
    }
    /// Pairs whose chosen reward is strictly above the rejected one.
    pub fn accuracy(&self) -> f64 {
        self.mean(|p| f64::from(u8::from(p.chosen > p.rejected)))
    }
    pub fn margin(&self) -> f64 {
        self.mean(|p| p.chosen - p.rejected)
    }
    pub fn chosen(&self) -> f64 {
        self.mean(|p| p.chosen)
    }
    pub fn rejected(&self) -> f64 {
        self.mean(|p| p.rejected)
    }
}

/// A side's log-prob as the loss uses it.
fn norm(sum: f64, count: f64, loss: DpoLoss) -> f64 {
    match loss {
        DpoLoss::DpoNorm => sum / count.max(1.0),
        DpoLoss::Dpo => sum,
    }
}

/// The implicit rewards from each pair's policy and reference log-probs.
pub fn rewards(
    policy: &[RefLogps],
    reference: &[RefLogps],
    beta: f64,
    loss: DpoLoss,
) -> Vec<PairReward> {
    policy
        .iter()
        .zip(reference)
        .map(|(p, r)| PairReward {
            chosen: beta
                * (norm(p.chosen_sum, p.chosen_count, loss)
                    - norm(r.chosen_sum, r.chosen_count, loss)),
            rejected: beta
                * (norm(p.rejected_sum, p.rejected_count, loss)
                    - norm(r.rejected_sum, r.rejected_count, loss)),
        })
        .collect()
}

/// Scores the preference set `data` (paths as the trainer reads them):
/// tokenised with the policy's tokenizer and `template`, truncated at
/// `max_seq_len`, `micro` pairs per forward pass of each model.
#[allow(clippy::too_many_arguments)]
pub fn score(
    policy: &Llama,
    reference: &Llama,
    tokenizer: &TextTokenizer,
    template: (&ChatTemplate, &str),
    data: &[PathBuf],
    settings: &DpoExport,
    micro: usize,
    stop: &AtomicBool,
) -> Result<ImplicitRewards> {
    let spec = DataSpec {
        data,
        tokenizer,
        template: template.0,
        template_source: template.1,
        max_len: settings.max_seq_len,
        cache_dir: PathBuf::new(),
    };
    let pairs: PreferenceData = pairs_in_memory(&spec, stop)?;
    let pad = tokenizer.pad_id();
    let p = reference::compute(policy, &pairs, micro, settings.max_seq_len, pad, stop)?;
    let r = reference::compute(reference, &pairs, micro, settings.max_seq_len, pad, stop)?;
    Ok(ImplicitRewards {
        pairs: rewards(&p, &r, settings.beta, settings.dpo_loss),
        stats: pairs.stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The toy pair of DESIGN.md section 10: policy chosen per-token
    /// log-probs [-1, -0.5, -2, -0.5], reference [-1.2, -0.6, -2.2, -0.8];
    /// rejected [-1.5, -2.5] against [-1, -2].
    #[test]
    fn the_toy_pair_gives_the_hand_computed_rewards() {
        let p = RefLogps {
            chosen_sum: -4.0,
            chosen_count: 4.0,
            rejected_sum: -4.0,
            rejected_count: 2.0,
        };
        let r = RefLogps {
            chosen_sum: -4.8,
            chosen_count: 4.0,
            rejected_sum: -3.0,
            rejected_count: 2.0,
        };
        let norm = rewards(&[p], &[r], 5.0, DpoLoss::DpoNorm);
        assert!((norm[0].chosen - 1.0).abs() < 1e-12 && (norm[0].rejected + 2.5).abs() < 1e-12);
        let sum = rewards(&[p], &[r], 0.1, DpoLoss::Dpo);
        assert!((sum[0].chosen - 0.08).abs() < 1e-12 && (sum[0].rejected + 0.1).abs() < 1e-12);
        // Strictly above: a tie is not ranked right.
        let tied = ImplicitRewards {
            pairs: vec![
                PairReward {
                    chosen: 1.0,
                    rejected: -2.5,
                },
                PairReward {
                    chosen: 0.0,
                    rejected: 0.0,
                },
            ],
            stats: PreferenceStats::default(),
        };
        assert_eq!(tied.accuracy(), 0.5);
        assert_eq!(tied.margin(), 1.75);
    }
}
