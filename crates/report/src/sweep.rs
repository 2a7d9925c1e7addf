//! From a flat list of trials to the LR x BS grid the plots and the analysis
//! work on: distinct axis values, per-point aggregation over seeds, and what
//! each point's state is for one metric.

use crate::{ReportError, TrialResult, TrialState};
use serde::Serialize;
use std::collections::BTreeSet;

/// Two learning rates closer than this (relative) are the same grid value:
/// sweeps write LRs as decimal strings, and `3e-5` read back through
/// arithmetic may differ in the last bit.
const SAME_LR: f64 = 1e-9;

/// The grid's axes: every distinct LR and BS among the trials, ascending.
#[derive(Debug, Clone)]
pub struct Axes {
    pub lrs: Vec<f64>,
    pub bss: Vec<u32>,
}

impl Axes {
    pub fn from_trials(trials: &[TrialResult]) -> Result<Self, ReportError> {
        let mut lrs: Vec<f64> = Vec::new();
        for t in trials {
            if !(t.lr.is_finite() && t.lr > 0.0) {
                return Err(ReportError::Input(format!(
                    "trial with batch size {} has learning rate {}, which is not a positive number",
                    t.batch_size, t.lr
                )));
            }
            if t.batch_size == 0 {
                return Err(ReportError::Input(format!(
                    "trial with learning rate {:e} has batch size 0",
                    t.lr
                )));
            }
            lrs.push(t.lr);
        }
        lrs.sort_by(f64::total_cmp);
        lrs.dedup_by(|a, b| (*a - *b).abs() <= SAME_LR * b.abs());
        let bss: BTreeSet<u32> = trials.iter().map(|t| t.batch_size).collect();
        Ok(Self {
            lrs,
            bss: bss.into_iter().collect(),
        })
    }

    pub fn lr_index(&self, lr: f64) -> usize {
        // Nearest grid value: every trial's LR is within SAME_LR of one.
        let mut best = 0;
        for (i, &v) in self.lrs.iter().enumerate() {
            if (v.ln() - lr.ln()).abs() < (self.lrs[best].ln() - lr.ln()).abs() {
                best = i;
            }
        }
        best
    }

    pub fn bs_index(&self, bs: u32) -> usize {
        self.bss.iter().position(|&b| b == bs).unwrap_or(0)
    }
}

/// What a grid point shows for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    /// At least one completed trial has a score.
    Scored,
    /// No score; at least one trial diverged.
    Diverged,
    /// No score; at least one trial failed (none diverged).
    Failed,
    /// No score yet: trials pending or running, or completed without this
    /// metric.
    Missing,
}

/// One grid point for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub lr: f64,
    pub batch_size: u32,
    pub status: PointStatus,
    /// Scores of the completed (or stopped early) trials, one per seed.
    pub scores: Vec<f64>,
    pub mean: Option<f64>,
    /// Sample standard deviation over seeds (two or more scores).
    pub sd: Option<f64>,
    /// Trials at this point that diverged or failed, whatever the others did.
    pub diverged: usize,
    pub failed: usize,
    /// Scored trials here that the stop rule stopped early.
    pub stopped_early: usize,
}

impl Point {
    /// `LR / BS`.
    pub fn ratio(&self) -> f64 {
        self.lr / f64::from(self.batch_size)
    }
}

/// Every grid point that has at least one trial, for one metric, in
/// LR-major order.
pub fn points_for_metric(axes: &Axes, trials: &[TrialResult], metric: &str) -> Vec<Point> {
    let mut out = Vec::new();
    for (i, &lr) in axes.lrs.iter().enumerate() {
        for &bs in &axes.bss {
            let here: Vec<&TrialResult> = trials
                .iter()
                .filter(|t| t.batch_size == bs && axes.lr_index(t.lr) == i)
                .collect();
            if here.is_empty() {
                continue;
            }
            // Diverged or failed trials are left out even if a score was
            // recorded for them: their numbers describe a broken run. A
            // trial the stop rule stopped counts, scored where it stopped
            // (and marked on the plot).
            let scored: Vec<&&TrialResult> = here
                .iter()
                .filter(|t| t.state.is_scored())
                .filter(|t| t.scores.get(metric).is_some_and(|v| v.is_finite()))
                .collect();
            let stopped_early = scored
                .iter()
                .filter(|t| t.state == TrialState::StoppedEarly)
                .count();
            let scores: Vec<f64> = here
                .iter()
                .filter(|t| t.state.is_scored())
                .filter_map(|t| t.scores.get(metric).copied())
                .filter(|v| v.is_finite())
                .collect();
            let diverged = here
                .iter()
                .filter(|t| t.state == TrialState::Diverged)
                .count();
            let failed = here
                .iter()
                .filter(|t| t.state == TrialState::Failed)
                .count();
            let status = if !scores.is_empty() {
                PointStatus::Scored
            } else if diverged > 0 {
                PointStatus::Diverged
            } else if failed > 0 {
                PointStatus::Failed
            } else {
                PointStatus::Missing
            };
            let (mean, sd) = if scores.is_empty() {
                (None, None)
            } else {
                let (m, s) = crate::stats::mean_sd(&scores);
                (Some(m), s)
            };
            out.push(Point {
                lr,
                batch_size: bs,
                status,
                scores,
                mean,
                sd,
                diverged,
                failed,
                stopped_early,
            });
        }
    }
    out
}

/// Whether a metric improves upward. Benchmark scores do; a loss or a
/// perplexity, should the orchestrator record one, does not.
pub fn higher_is_better(metric: &str) -> bool {
    let m = metric.to_ascii_lowercase();
    !(m.contains("loss") || m.contains("perplexity") || m.contains("ppl"))
}

/// The benchmark a metric belongs to: the part before the first `/`
/// (`"gsm8k/exact_match,strict-match"` -> `"gsm8k"`).
pub fn benchmark_of(metric: &str) -> &str {
    metric.split('/').next().unwrap_or(metric)
}

/// What the paper says about a benchmark (Section 3.3, Figure 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaperClaim {
    /// Reasoning (ARC, GSM8K): better at a higher LR/BS.
    HighRatio,
    /// Pattern recognition (HellaSwag, IFEval): better at a lower LR/BS.
    LowRatio,
    /// Not in Figure 1.
    None,
}

pub fn paper_claim(metric: &str) -> PaperClaim {
    let b = benchmark_of(metric).to_ascii_lowercase();
    if b.starts_with("arc") || b.starts_with("gsm8k") {
        PaperClaim::HighRatio
    } else if b.starts_with("hellaswag") || b.starts_with("ifeval") {
        PaperClaim::LowRatio
    } else {
        PaperClaim::None
    }
}

/// Sort key putting Figure 1's benchmarks first, in its panel order
/// (a) ARC, (b) GSM8K, (c) HellaSwag, (d) IFEval, then the rest by name.
pub fn figure1_order(metric: &str) -> (usize, String) {
    let b = benchmark_of(metric).to_ascii_lowercase();
    let rank = ["arc", "gsm8k", "hellaswag", "ifeval"]
        .iter()
        .position(|p| b.starts_with(p))
        .unwrap_or(4);
    (rank, metric.to_string())
}

/// The four panels of the paper's Figure 1, in its order, each with the
/// metrics that stand for it, preferred first: the paper's averages where
/// the sweep has them (see `smolsweep_config::paper`), else one task of
/// the benchmark, else any metric of it another harness named its way.
pub const FIGURE1_PANELS: [(&str, &[&str], &str); 4] = [
    (
        "ARC (Average)",
        &[
            "ARC (Average)",
            "arc_challenge/acc_norm",
            "arc_easy/acc_norm",
        ],
        "arc",
    ),
    ("GSM8K", &["gsm8k/exact_match_strict"], "gsm8k"),
    ("HellaSwag", &["hellaswag/acc_norm"], "hellaswag"),
    (
        "IFEval (Average)",
        &["IFEval (Average)", "ifeval/prompt_level_strict_acc"],
        "ifeval",
    ),
];

/// Figure 1's panels that this sweep can draw: (panel title, metric).
pub fn figure1_metrics(metrics: &[String]) -> Vec<(&'static str, String)> {
    FIGURE1_PANELS
        .iter()
        .filter_map(|(title, preferred, prefix)| {
            preferred
                .iter()
                .find(|m| metrics.iter().any(|x| x == *m))
                .map(|m| m.to_string())
                .or_else(|| {
                    metrics
                        .iter()
                        .filter(|m| benchmark_of(m).to_ascii_lowercase().starts_with(prefix))
                        .min_by_key(|m| figure1_order(m))
                        .cloned()
                })
                .map(|m| (*title, m))
        })
        .collect()
}

/// A file-name-safe form of a metric name.
pub fn slug(metric: &str) -> String {
    let mut s: String = metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    s.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn trial(lr: f64, bs: u32, state: TrialState, score: Option<f64>) -> TrialResult {
        let mut scores = BTreeMap::new();
        if let Some(s) = score {
            scores.insert("m/acc".to_string(), s);
        }
        TrialResult {
            lr,
            batch_size: bs,
            seed: None,
            state,
            scores,
            extra: BTreeMap::new(),
            divergence: None,
            stopped_at: None,
        }
    }

    #[test]
    fn nearly_equal_learning_rates_are_one_grid_value() {
        let trials = vec![
            trial(3e-5, 8, TrialState::Completed, Some(0.5)),
            trial(3e-5 * (1.0 + 1e-12), 16, TrialState::Completed, Some(0.6)),
            trial(1e-4, 8, TrialState::Completed, Some(0.7)),
        ];
        let axes = Axes::from_trials(&trials).expect("valid");
        assert_eq!(axes.lrs.len(), 2);
        assert_eq!(axes.bss, vec![8, 16]);
    }

    #[test]
    fn seeds_are_averaged_and_broken_runs_left_out() {
        let trials = vec![
            trial(1e-5, 8, TrialState::Completed, Some(0.4)),
            trial(1e-5, 8, TrialState::Completed, Some(0.6)),
            // A diverged run's recorded score must not count.
            trial(1e-5, 8, TrialState::Diverged, Some(0.0)),
            trial(1e-4, 8, TrialState::Diverged, None),
            trial(1e-4, 16, TrialState::Failed, None),
            trial(1e-5, 16, TrialState::Pending, None),
        ];
        let axes = Axes::from_trials(&trials).expect("valid");
        let pts = points_for_metric(&axes, &trials, "m/acc");
        assert_eq!(pts.len(), 4);
        let p = &pts[0];
        assert_eq!(
            (p.lr, p.batch_size, p.status),
            (1e-5, 8, PointStatus::Scored)
        );
        assert!((p.mean.expect("scored") - 0.5).abs() < 1e-12);
        assert!((p.sd.expect("two seeds") - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(p.diverged, 1);
        assert_eq!(pts[1].status, PointStatus::Missing);
        assert_eq!(pts[2].status, PointStatus::Diverged);
        assert_eq!(pts[3].status, PointStatus::Failed);
    }

    #[test]
    fn bad_axis_values_are_named() {
        let err = Axes::from_trials(&[trial(-1.0, 8, TrialState::Completed, None)])
            .expect_err("negative LR");
        assert!(err.to_string().contains("learning rate -1"), "{err}");
    }

    #[test]
    fn names() {
        assert_eq!(
            slug("gsm8k/exact_match,strict-match"),
            "gsm8k_exact_match_strict_match"
        );
        assert_eq!(benchmark_of("ifeval/prompt_level_strict_acc"), "ifeval");
        assert_eq!(paper_claim("arc_challenge/acc_norm"), PaperClaim::HighRatio);
        assert_eq!(paper_claim("hellaswag/acc_norm"), PaperClaim::LowRatio);
        assert_eq!(paper_claim("piqa/acc_norm"), PaperClaim::None);
        assert!(!higher_is_better("train/loss"));
        let mut m = vec![
            "piqa/acc",
            "ifeval/x",
            "arc_easy/acc",
            "gsm8k/em",
            "hellaswag/acc",
        ];
        m.sort_by_key(|s| figure1_order(s));
        assert_eq!(
            m,
            vec![
                "arc_easy/acc",
                "gsm8k/em",
                "hellaswag/acc",
                "ifeval/x",
                "piqa/acc"
            ]
        );
    }
}
