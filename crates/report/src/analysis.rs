//! The ratio analysis of one metric: Spearman's rho of the grid points' mean
//! scores against `log10(LR/BS)` with a bootstrap interval, the best grid
//! point, and the sentence that says whether the sweep supports the paper.
//!
//! The unit of analysis is the grid point (its mean over seeds), not the
//! trial: seeds at one point share their LR/BS, so counting them as separate
//! observations would overstate the evidence. The bootstrap resamples grid
//! points.

use crate::plot::{fmt_lr, fmt_ratio_e6, ValueFmt};
use crate::stats::{bootstrap_spearman, spearman, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED};
use crate::sweep::{benchmark_of, paper_claim, PaperClaim, Point, PointStatus};
use serde::Serialize;

/// Confidence level of the bootstrap interval.
pub const CI_LEVEL: f64 = 0.95;

/// The best grid point of a metric.
#[derive(Debug, Clone, Serialize)]
pub struct BestPoint {
    pub lr: f64,
    pub batch_size: u32,
    /// `LR / BS` (multiply by 1e6 for the paper's unit).
    pub ratio: f64,
    pub mean: f64,
    pub sd: Option<f64>,
    pub seeds: usize,
}

/// How the sweep's evidence relates to the paper's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The interval excludes 0 on the side the paper predicts.
    Supports,
    /// The interval excludes 0 on the other side.
    Contradicts,
    /// The interval includes 0, or there is too little data.
    CannotTell,
    /// The paper's Figure 1 makes no claim for this benchmark.
    NoClaim,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Supports => "supports",
            Verdict::Contradicts => "contradicts",
            Verdict::CannotTell => "cannot tell",
            Verdict::NoClaim => "no claim in the paper",
        }
    }
}

/// The analysis of one metric.
#[derive(Debug, Clone, Serialize)]
pub struct RatioAnalysis {
    pub metric: String,
    pub higher_is_better: bool,
    pub claim: PaperClaim,
    /// Grid points with a score.
    pub n_points: usize,
    /// Spearman's rho of mean score against log10(LR/BS).
    pub rho: Option<f64>,
    /// Bootstrap percentile interval of rho at [`CI_LEVEL`].
    pub ci: Option<(f64, f64)>,
    /// Resamples left out because rho was undefined in them.
    pub degenerate_resamples: usize,
    /// Rho against log LR and against log BS alone, to show which axis
    /// drives a ratio effect.
    pub rho_lr: Option<f64>,
    pub rho_bs: Option<f64>,
    pub best: Option<BestPoint>,
    pub verdict: Verdict,
    /// One plain sentence for the report.
    pub sentence: String,
}

pub fn analyse(
    metric: &str,
    points: &[Point],
    higher_is_better: bool,
    fmt: ValueFmt,
) -> RatioAnalysis {
    let scored: Vec<&Point> = points
        .iter()
        .filter(|p| p.status == PointStatus::Scored)
        .collect();
    let ratio: Vec<f64> = scored.iter().map(|p| p.ratio().log10()).collect();
    let lr: Vec<f64> = scored.iter().map(|p| p.lr.log10()).collect();
    let bs: Vec<f64> = scored.iter().map(|p| f64::from(p.batch_size)).collect();
    let y: Vec<f64> = scored.iter().map(|p| p.mean.unwrap_or(f64::NAN)).collect();
    let rho = spearman(&ratio, &y);
    let boot = bootstrap_spearman(&ratio, &y, BOOTSTRAP_RESAMPLES, CI_LEVEL, BOOTSTRAP_SEED);
    let ci = rho.and(boot.as_ref().map(|b| (b.lo, b.hi)));
    let best = scored
        .iter()
        .copied()
        .max_by(|a, b| {
            let (a, b) = (a.mean.unwrap_or(f64::NAN), b.mean.unwrap_or(f64::NAN));
            if higher_is_better {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            }
        })
        .map(|p| BestPoint {
            lr: p.lr,
            batch_size: p.batch_size,
            ratio: p.ratio(),
            mean: p.mean.unwrap_or(f64::NAN),
            sd: p.sd,
            seeds: p.scores.len(),
        });
    let claim = paper_claim(metric);
    let (verdict, sentence) = verdict(
        metric,
        claim,
        higher_is_better,
        scored.len(),
        rho,
        ci,
        best.as_ref(),
        fmt,
    );
    RatioAnalysis {
        metric: metric.to_string(),
        higher_is_better,
        claim,
        n_points: scored.len(),
        rho,
        ci,
        degenerate_resamples: boot.map_or(0, |b| b.degenerate),
        rho_lr: spearman(&lr, &y),
        rho_bs: spearman(&bs, &y),
        best,
        verdict,
        sentence,
    }
}

/// `rho = 0.71, 95% CI [0.35, 0.90]`; with fewer than 3 scored points no
/// statistic at all (two points always rank-correlate at ±1, which would
/// sit beside a sentence saying they are too few).
pub fn fmt_rho(n_points: usize, rho: Option<f64>, ci: Option<(f64, f64)>) -> String {
    if n_points < MIN_POINTS {
        return format!("not computed (fewer than {MIN_POINTS} scored points)");
    }
    match (rho, ci) {
        (Some(r), Some((lo, hi))) => {
            format!("ρ = {r:.2}, {:.0}% CI [{lo:.2}, {hi:.2}]", CI_LEVEL * 100.0)
        }
        (Some(r), None) => format!("ρ = {r:.2} (no interval: too few points)"),
        _ => "ρ undefined".to_string(),
    }
}

/// Scored grid points below which no rank correlation is reported.
pub const MIN_POINTS: usize = 3;

#[allow(clippy::too_many_arguments)]
fn verdict(
    metric: &str,
    claim: PaperClaim,
    higher_is_better: bool,
    n: usize,
    rho: Option<f64>,
    ci: Option<(f64, f64)>,
    best: Option<&BestPoint>,
    fmt: ValueFmt,
) -> (Verdict, String) {
    let bench = benchmark_of(metric);
    let best_txt = best
        .map(|b| {
            format!(
                " The best grid point is LR {} at BS {} (LR/BS × 10⁶ = {}, score {}).",
                fmt_lr(b.lr),
                b.batch_size,
                fmt_ratio_e6(b.ratio),
                fmt.fmt(b.mean)
            )
        })
        .unwrap_or_default();
    let (kind, favoured) = match claim {
        PaperClaim::HighRatio => ("reasoning", "high"),
        PaperClaim::LowRatio => ("pattern-recognition", "low"),
        PaperClaim::None => ("", ""),
    };
    if n < MIN_POINTS {
        let v = if claim == PaperClaim::None {
            Verdict::NoClaim
        } else {
            Verdict::CannotTell
        };
        return (
            v,
            format!(
                "Only {n} grid point(s) of {bench} have a score, too few for a rank correlation, so this sweep cannot tell how {metric} depends on LR/BS yet.{best_txt}"
            ),
        );
    }
    let Some(r) = rho else {
        let v = if claim == PaperClaim::None {
            Verdict::NoClaim
        } else {
            Verdict::CannotTell
        };
        return (
            v,
            format!(
                "{metric} does not vary over the scored grid points (or they share one LR/BS), so its rank correlation with LR/BS is undefined and this sweep cannot tell.{best_txt}"
            ),
        );
    };
    // The direction in which the score improves with the ratio: positive
    // when a higher ratio gives a better score.
    let better_sign = if higher_is_better { 1.0 } else { -1.0 };
    let stats = fmt_rho(n, rho, ci);
    let trend = |s: f64| {
        if s * better_sign > 0.0 {
            "improves"
        } else {
            "worsens"
        }
    };
    match (claim, ci) {
        (PaperClaim::None, Some((lo, hi))) => {
            let tail = if lo > 0.0 || hi < 0.0 {
                format!(
                    "the interval excludes 0: {metric} {} as LR/BS rises",
                    trend(r)
                )
            } else {
                "the interval includes 0, so there is no clear trend with LR/BS".to_string()
            };
            (
                Verdict::NoClaim,
                format!(
                    "The paper's Figure 1 makes no claim for {bench}. Here {stats}; {tail}.{best_txt}"
                ),
            )
        }
        (PaperClaim::None, None) => (
            Verdict::NoClaim,
            format!("The paper's Figure 1 makes no claim for {bench}. Here {stats}.{best_txt}"),
        ),
        (_, Some((lo, hi))) => {
            // Predicted sign of rho (on scores where higher is better).
            let predicted = if claim == PaperClaim::HighRatio {
                1.0
            } else {
                -1.0
            } * better_sign;
            let excludes_zero = lo > 0.0 || hi < 0.0;
            let sign = if lo > 0.0 { 1.0 } else { -1.0 };
            if excludes_zero && sign == predicted {
                (
                    Verdict::Supports,
                    format!(
                        "Supports the paper: {metric} {} as LR/BS rises ({stats}, which excludes 0), as the paper found for {kind} benchmarks, which favour {favoured} ratios.{best_txt}",
                        trend(sign)
                    ),
                )
            } else if excludes_zero {
                (
                    Verdict::Contradicts,
                    format!(
                        "Contradicts the paper: {metric} {} as LR/BS rises ({stats}, which excludes 0), whereas the paper found {kind} benchmarks favour {favoured} ratios.{best_txt}",
                        trend(sign)
                    ),
                )
            } else {
                let lean = if r * predicted > 0.0 {
                    "towards"
                } else {
                    "against"
                };
                (
                    Verdict::CannotTell,
                    format!(
                        "Inconclusive: {stats} leans {lean} the paper's finding that {kind} benchmarks favour {favoured} LR/BS ratios, but the {:.0}% interval includes 0, so this sweep cannot tell.{best_txt}",
                        CI_LEVEL * 100.0
                    ),
                )
            }
        }
        (_, None) => (
            Verdict::CannotTell,
            format!("Here {stats}, with no interval, so this sweep cannot tell.{best_txt}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lr: f64, bs: u32, score: f64) -> Point {
        Point {
            lr,
            batch_size: bs,
            status: PointStatus::Scored,
            scores: vec![score],
            mean: Some(score),
            sd: None,
            diverged: 0,
            failed: 0,
            stopped_early: 0,
        }
    }

    /// Scores that rise with the ratio plus noise that can flip a few ranks.
    fn grid(sign: f64, noise: f64) -> Vec<Point> {
        let mut out = Vec::new();
        let mut k = 0.0;
        for e in [-6.0, -5.5, -5.0, -4.5, -4.0] {
            for bs in [8, 16, 32, 64] {
                let lr = 10f64.powf(e);
                let ratio = (lr / f64::from(bs)).log10();
                k += 1.0;
                let wiggle = noise * ((k * 12.9898f64).sin() * 43758.5453).fract();
                out.push(point(lr, bs, 0.5 + sign * 0.02 * ratio + wiggle));
            }
        }
        out
    }

    #[test]
    fn a_clear_rise_supports_reasoning_and_contradicts_pattern_claims() {
        let pts = grid(1.0, 0.0);
        let fmt = ValueFmt { percent: true };
        let a = analyse("gsm8k/exact_match,strict-match", &pts, true, fmt);
        assert_eq!(a.verdict, Verdict::Supports, "{}", a.sentence);
        assert!(a.rho.expect("defined") > 0.9);
        assert!(a.ci.expect("interval").0 > 0.0);
        assert!(
            a.sentence.starts_with("Supports the paper"),
            "{}",
            a.sentence
        );
        let h = analyse("hellaswag/acc_norm", &pts, true, fmt);
        assert_eq!(h.verdict, Verdict::Contradicts, "{}", h.sentence);
        let p = analyse("piqa/acc_norm", &pts, true, fmt);
        assert_eq!(p.verdict, Verdict::NoClaim);
        // The best point is the highest ratio: LR 1e-4, BS 8.
        let best = a.best.expect("scored");
        assert_eq!(best.batch_size, 8);
        assert!((best.lr - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn noise_alone_cannot_tell() {
        let pts = grid(0.0, 0.05);
        let a = analyse(
            "ifeval/prompt_level_strict_acc",
            &pts,
            true,
            ValueFmt { percent: true },
        );
        let (lo, hi) = a.ci.expect("interval");
        assert!(lo < 0.0 && hi > 0.0, "{lo} {hi}");
        assert_eq!(a.verdict, Verdict::CannotTell);
        assert!(
            a.sentence.contains("includes 0, so this sweep cannot tell"),
            "{}",
            a.sentence
        );
    }

    #[test]
    fn too_few_points_say_so() {
        let pts = vec![point(1e-5, 8, 0.4), point(1e-4, 8, 0.5)];
        let a = analyse(
            "arc_challenge/acc_norm",
            &pts,
            true,
            ValueFmt { percent: true },
        );
        assert_eq!(a.verdict, Verdict::CannotTell);
        assert!(a.sentence.contains("too few"), "{}", a.sentence);
        assert_eq!(a.ci, None);
        // Regression: "ρ = 1.00" was printed beside "too few for a rank
        // correlation" (two points always rank-correlate at ±1).
        let shown = fmt_rho(a.n_points, a.rho, a.ci);
        assert!(
            !shown.contains("1.00") && shown.contains("not computed"),
            "{shown}"
        );
    }
}
