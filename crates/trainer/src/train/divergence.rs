//! Telling a collapsed run from a slow one. A non-finite loss or gradient
//! norm stops a run at once (`optimizer_step`); this module watches the
//! finite steps for the two ways a run dies without a NaN, each of which
//! must hold for `divergence_patience` consecutive steps:
//!
//! - **loss plateau**: after warmup, the loss is at or above both its
//!   initial value and ln(vocab), the loss of a uniform guess. A healthy
//!   run from random weights starts near ln(vocab) and leaves it during
//!   warmup; a pretrained one starts far below it. So only a run that has
//!   unlearned everything (or blown up) sits there once warmup is over.
//! - **zero gradient**: the global gradient norm is exactly 0 while the
//!   loss is positive: the network is saturated and no step can change it
//!   (a step with no labelled token has loss 0 and is not counted).
//!
//! The "initial loss" is the first step this process saw: the run's first
//! step, or the first after a resume (a resumed healthy run is then far
//! below ln(vocab) anyway, and a resumed collapsed one still at it).

use smolsweep_config::DivergenceRule;

/// Relative slack below the loss threshold: a uniform guess computed in
/// f32 (or from bf16 logits) lands within rounding of ln(vocab), on either
/// side of it.
const ROUNDING: f64 = 1e-4;

/// The trial's collapse rules and what they are measured against.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    pub patience: u64,
    pub loss: bool,
    pub zero_grad: bool,
    /// Warmup steps: the loss rule counts only the steps after them.
    pub warmup: u64,
    /// The loss of a guess: ln(vocab) for SFT (uniform over tokens), ln 2
    /// for DPO (the policy no better than the reference).
    pub ln_vocab: f64,
    /// How messages name it.
    pub chance_name: &'static str,
}

/// A rule that fired, and what it saw.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Verdict {
    pub rule: DivergenceRule,
    pub message: String,
}

/// The rules' running counts over a run's steps.
#[derive(Debug, Clone)]
pub(super) struct Watch {
    rules: Rules,
    initial: Option<f64>,
    /// Consecutive steps (ending at the last one) each rule has held.
    loss_run: u64,
    zero_run: u64,
}

impl Watch {
    pub(super) fn new(rules: Rules) -> Self {
        Watch {
            rules,
            initial: None,
            loss_run: 0,
            zero_run: 0,
        }
    }

    /// The loss at or above which the loss rule counts a step.
    fn threshold(&self) -> Option<f64> {
        self.initial.map(|i| i.max(self.rules.ln_vocab))
    }

    /// One finished step: `step` 1-based, its (finite) loss and global
    /// gradient norm before clipping. A verdict when a rule has now held
    /// for `patience` consecutive steps.
    pub(super) fn observe(&mut self, step: u64, loss: f64, grad_norm: f64) -> Option<Verdict> {
        let r = self.rules;
        let initial = *self.initial.get_or_insert(loss);
        let threshold = initial.max(r.ln_vocab);
        self.zero_run = if r.zero_grad && grad_norm == 0.0 && loss > 0.0 {
            self.zero_run + 1
        } else {
            0
        };
        self.loss_run = if r.loss && step > r.warmup && loss >= threshold * (1.0 - ROUNDING) {
            self.loss_run + 1
        } else {
            0
        };
        if self.zero_run >= r.patience {
            return Some(Verdict {
                rule: DivergenceRule::ZeroGrad,
                message: format!(
                    "the global gradient norm was 0 (loss {loss:.4}) for {} consecutive steps, up to step {step}",
                    self.zero_run
                ),
            });
        }
        if self.loss_run >= r.patience {
            return Some(Verdict {
                rule: DivergenceRule::LossPlateau,
                message: format!(
                    "the loss stayed at or above {threshold:.4} = max(initial loss {initial:.4}, {} {:.4}) \
                     for {} consecutive steps after warmup, up to step {step} (loss {loss:.4})",
                    r.chance_name, r.ln_vocab, self.loss_run
                ),
            });
        }
        None
    }

    /// The threshold in force, for the log.
    pub(super) fn describe(&self) -> String {
        let r = self.rules;
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "divergence rules: loss_plateau {} (threshold {}), zero_grad {}, patience {} steps",
            on(r.loss),
            self.threshold().map_or_else(
                || format!("max(initial loss, {} {:.4})", r.chance_name, r.ln_vocab),
                |t| format!("{t:.4}")
            ),
            on(r.zero_grad),
            r.patience
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LN_VOCAB: f64 = 5.556_828_061_699_537; // ln 259, the tiny model's vocabulary

    fn rules(patience: u64, warmup: u64) -> Rules {
        Rules {
            patience,
            loss: true,
            zero_grad: true,
            warmup,
            ln_vocab: LN_VOCAB,
            chance_name: "ln(vocab)",
        }
    }

    /// The first verdict over a series of (loss, grad_norm), with its step.
    fn first_verdict(r: Rules, series: &[(f64, f64)]) -> Option<(u64, Verdict)> {
        let mut w = Watch::new(r);
        series.iter().enumerate().find_map(|(i, &(l, g))| {
            let step = i as u64 + 1;
            w.observe(step, l, g).map(|v| (step, v))
        })
    }

    /// A small deterministic jitter in [-1, 1] (no RNG dependency).
    fn jitter(i: usize) -> f64 {
        ((i as f64 * 12.9898).sin() * 43_758.545_3).rem_euclid(1.0) * 2.0 - 1.0
    }

    #[test]
    fn a_loss_stuck_at_ln_vocab_after_warmup_is_a_plateau() {
        // As LR 1e4 does: a few real steps, then exactly a uniform guess
        // (rounded below ln(vocab) in f32), with a gradient that is not 0.
        let mut s = vec![(5.471, 3.2), (5.5347, 2.7)];
        s.extend((0..60).map(|_| (5.556_828, 1e-3)));
        let (step, v) = first_verdict(rules(20, 10), &s).expect("fires");
        assert_eq!(v.rule, DivergenceRule::LossPlateau);
        // Counting starts after the 10 warmup steps.
        assert_eq!(step, 30);
        assert!(
            v.message.contains("20 consecutive steps") && v.message.contains("step 30"),
            "{}",
            v.message
        );
    }

    #[test]
    fn an_exploded_loss_is_a_plateau_too() {
        // A real first step, then a loss in the hundreds of thousands.
        let mut s = vec![(5.47, 3.2)];
        s.extend((0..40).map(|i| (3e5 * (1.0 + 0.5 * jitter(i)), 1e6)));
        let (step, v) = first_verdict(rules(20, 5), &s).expect("fires");
        assert_eq!((step, v.rule), (25, DivergenceRule::LossPlateau));
    }

    #[test]
    fn a_zero_gradient_fires_without_waiting_for_warmup() {
        let mut s = vec![(5.47, 3.2), (5.53, 2.7)];
        s.extend((0..30).map(|_| (5.556_828, 0.0)));
        let (step, v) = first_verdict(rules(20, 1000), &s).expect("fires");
        assert_eq!((step, v.rule), (22, DivergenceRule::ZeroGrad));
        assert!(v.message.contains("up to step 22"), "{}", v.message);
    }

    #[test]
    fn steps_without_labels_are_not_a_zero_gradient() {
        // A step whose micro-batches had no labelled token: loss 0, grad 0.
        let s: Vec<(f64, f64)> = (0..50).map(|_| (0.0, 0.0)).collect();
        assert_eq!(first_verdict(rules(20, 0), &s), None);
    }

    #[test]
    fn patience_is_the_exact_number_of_consecutive_steps() {
        let zero = (5.5, 0.0);
        let live = (5.0, 1.0);
        // 19 zero-grad steps, one live step, 19 more: never 20 in a row.
        let mut s = vec![zero; 19];
        s.push(live);
        s.extend(vec![zero; 19]);
        assert_eq!(first_verdict(rules(20, 1000), &s), None);
        // The 20th in a row fires, on that step.
        s.push(zero);
        let (step, v) = first_verdict(rules(20, 1000), &s).expect("fires");
        assert_eq!((step, v.rule), (40, DivergenceRule::ZeroGrad));
        // Patience 1: the first such step.
        let (step, _) = first_verdict(rules(1, 1000), &[live, zero]).expect("fires");
        assert_eq!(step, 2);
    }

    #[test]
    fn a_healthy_noisy_run_from_random_weights_never_fires() {
        // Starts at ln(vocab) and jitters above it for the first steps of
        // warmup, then falls with noise, with spikes back to the start.
        let s: Vec<(f64, f64)> = (0..2000)
            .map(|i| {
                let base = 1.0 + (LN_VOCAB + 0.02 - 1.0) * (-(i as f64) / 150.0).exp();
                let spike = if i % 97 == 0 { 2.0 } else { 0.0 };
                (base + 0.15 * jitter(i) + spike, 0.5 + jitter(i).abs())
            })
            .collect();
        assert_eq!(first_verdict(rules(20, 60), &s), None);
        // Without warmup either: the early steps at ln(vocab) are fewer
        // than the patience.
        assert_eq!(first_verdict(rules(20, 0), &s), None);
    }

    #[test]
    fn a_pretrained_run_is_judged_against_ln_vocab_not_its_low_start() {
        // Starts at 1.2; a bad LR doubles the loss but it stays far below
        // ln(vocab): not a collapse.
        let s: Vec<(f64, f64)> = (0..100).map(|i| (2.4 + 0.1 * jitter(i), 3.0)).collect();
        assert_eq!(
            first_verdict(rules(20, 3), &[vec![(1.2, 4.0)], s].concat()),
            None
        );
    }

    #[test]
    fn each_rule_can_be_turned_off() {
        let zero: Vec<(f64, f64)> = (0..40).map(|_| (LN_VOCAB, 0.0)).collect();
        let mut r = rules(20, 0);
        r.zero_grad = false;
        let (_, v) = first_verdict(r, &zero).expect("the loss rule still fires");
        assert_eq!(v.rule, DivergenceRule::LossPlateau);
        r.loss = false;
        assert_eq!(first_verdict(r, &zero), None);
    }
}
