//! The DPO loss of one pair and the metrics a step logs, in plain numbers
//! (open-instruct's `dpo_utils.dpo_loss`): the sequence log-probs come in
//! already summed (`dpo`) or divided by their label counts (`dpo_norm`),
//! and the derivative of the loss by the log-ratio difference comes out,
//! from which the trainer forms each label token's gradient weight.

use smolsweep_config::PreferenceMetrics;

/// One pair's sequence log-probs under the policy and the reference, each
/// normalised as the loss wants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLogps {
    pub policy_chosen: f64,
    pub policy_rejected: f64,
    pub reference_chosen: f64,
    pub reference_rejected: f64,
}

/// What a pair contributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLoss {
    pub loss: f64,
    /// d loss / d z, with `z = (pi_c - pi_r) - (ref_c - ref_r)`: the
    /// chosen log-prob's gradient, and minus the rejected one's.
    pub dloss_dz: f64,
    pub reward_chosen: f64,
    pub reward_rejected: f64,
}

/// log(sigmoid(x)), stable for large |x|.
pub fn log_sigmoid(x: f64) -> f64 {
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `-logsigmoid(beta*z)*(1-ls) - logsigmoid(-beta*z)*ls`, its derivative,
/// and the implicit rewards `beta * (policy - reference)`.
pub fn pair_loss(p: &PairLogps, beta: f64, label_smoothing: f64) -> PairLoss {
    let ls = label_smoothing;
    let z = (p.policy_chosen - p.policy_rejected) - (p.reference_chosen - p.reference_rejected);
    let bz = beta * z;
    let loss = -log_sigmoid(bz) * (1.0 - ls) - log_sigmoid(-bz) * ls;
    let dloss_dz = -(1.0 - ls) * beta * sigmoid(-bz) + ls * beta * sigmoid(bz);
    PairLoss {
        loss,
        dloss_dz,
        reward_chosen: beta * (p.policy_chosen - p.reference_chosen),
        reward_rejected: beta * (p.policy_rejected - p.reference_rejected),
    }
}

/// The running sums of a step's pairs, for its [`PreferenceMetrics`].
#[derive(Debug, Clone, Default)]
pub struct MetricSums {
    pairs: usize,
    chosen: f64,
    rejected: f64,
    accurate: usize,
    logps_chosen: f64,
    logps_rejected: f64,
}

impl MetricSums {
    pub fn add(&mut self, p: &PairLogps, l: &PairLoss) {
        self.pairs += 1;
        self.chosen += l.reward_chosen;
        self.rejected += l.reward_rejected;
        // Per pair and strict, as open-instruct since the fix of its
        // batch-mean accuracy: a tie is not a success.
        self.accurate += usize::from(l.reward_chosen > l.reward_rejected);
        self.logps_chosen += p.policy_chosen;
        self.logps_rejected += p.policy_rejected;
    }

    /// The means over the pairs added.
    pub fn metrics(&self) -> PreferenceMetrics {
        let n = self.pairs.max(1) as f64;
        PreferenceMetrics {
            rewards_chosen: self.chosen / n,
            rewards_rejected: self.rejected / n,
            rewards_accuracy: self.accurate as f64 / n,
            rewards_margin: (self.chosen - self.rejected) / n,
            logps_chosen: self.logps_chosen / n,
            logps_rejected: self.logps_rejected / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-7 * b.abs().max(1.0)
    }

    /// The toy pair of docs: per-token log-probs of chosen and rejected
    /// under policy and reference, summed (`dpo`) or averaged (`dpo_norm`).
    fn toy(norm: bool) -> PairLogps {
        let reduce = |v: &[f64]| {
            let s: f64 = v.iter().sum();
            if norm {
                s / v.len() as f64
            } else {
                s
            }
        };
        PairLogps {
            policy_chosen: reduce(&[-1.0, -0.5, -2.0, -0.5]),
            reference_chosen: reduce(&[-1.2, -0.6, -2.2, -0.8]),
            policy_rejected: reduce(&[-1.5, -2.5]),
            reference_rejected: reduce(&[-1.0, -2.0]),
        }
    }

    #[test]
    fn the_toy_pair_gives_the_hand_checked_values() {
        let l = pair_loss(&toy(true), 5.0, 0.0);
        assert!(close(l.loss, 0.029_750_4), "{l:?}");
        assert!(
            close(l.reward_chosen, 1.0) && close(l.reward_rejected, -2.5),
            "{l:?}"
        );
        let l = pair_loss(&toy(false), 0.1, 0.0);
        assert!(close(l.loss, 0.607_191_7), "{l:?}");
        assert!(
            close(l.reward_chosen, 0.08) && close(l.reward_rejected, -0.1),
            "{l:?}"
        );
        let mut m = MetricSums::default();
        m.add(&toy(true), &pair_loss(&toy(true), 5.0, 0.0));
        let m = m.metrics();
        assert!(
            close(m.rewards_margin, 3.5) && m.rewards_accuracy == 1.0,
            "{m:?}"
        );
        assert!(
            close(m.logps_chosen, -1.0) && close(m.logps_rejected, -2.0),
            "{m:?}"
        );
    }

    #[test]
    fn policy_equal_to_reference_gives_ln_2_and_zero_rewards() {
        let p = PairLogps {
            policy_chosen: -3.0,
            policy_rejected: -7.0,
            reference_chosen: -3.0,
            reference_rejected: -7.0,
        };
        let l = pair_loss(&p, 5.0, 0.0);
        assert!(close(l.loss, std::f64::consts::LN_2), "{l:?}");
        assert_eq!((l.reward_chosen, l.reward_rejected), (0.0, 0.0));
        // Ties are not accurate.
        let mut m = MetricSums::default();
        m.add(&p, &l);
        assert_eq!(m.metrics().rewards_accuracy, 0.0);
        // Label smoothing leaves ln 2 at z = 0.
        assert!(close(pair_loss(&p, 5.0, 0.2).loss, std::f64::consts::LN_2));
    }

    #[test]
    fn the_derivative_is_the_loss_slope() {
        for (beta, ls) in [(5.0, 0.0), (0.1, 0.0), (2.0, 0.3)] {
            let at = |dz: f64| {
                let mut p = toy(true);
                p.policy_chosen += dz;
                pair_loss(&p, beta, ls)
            };
            let h = 1e-6;
            let numeric = (at(h).loss - at(-h).loss) / (2.0 * h);
            assert!(
                (numeric - at(0.0).dloss_dz).abs() < 1e-6,
                "beta {beta} ls {ls}: {numeric} vs {}",
                at(0.0).dloss_dz
            );
        }
        // Far in either tail it stays finite.
        assert!(log_sigmoid(-800.0).is_finite() && log_sigmoid(800.0) == 0.0);
    }
}
