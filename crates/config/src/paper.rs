//! The SmolTulu paper's table rows (Tables 3, 6 and 9): which benchmark
//! metrics each row is made of, how they combine, and the paper's own SFT
//! values for reference. results.json, `status`, `export` and the report
//! all compute the rows here, from whatever task scores a trial has, so a
//! row means the same everywhere and follows tasks added to a sweep later.
//!
//! A row whose parts are not all scored is left out rather than computed
//! from a subset: "ARC (Average)" of ARC-Easy alone would be a different
//! number under the paper's name.

use serde::{Deserialize, Serialize};

use crate::benchmarks::Task;
use crate::results::Metric;

/// One metric of one task a row is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The benchmark's name (`arc_easy`).
    pub task: &'static str,
    /// The metric; `None` is the task's headline metric in the registry,
    /// so a row follows the convention's own metric names.
    pub metric: Option<&'static str>,
}

/// How a row's parts become one value with a standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// One part, as it is.
    Single,
    /// The mean of parts scored on different examples (ARC-Easy and
    /// ARC-Challenge): independent, so the standard error is
    /// sqrt(sum se_i^2) / n.
    MeanIndependent,
    /// The mean of parts scored on the same examples (IFEval's prompt- and
    /// instruction-level accuracy): their correlation is unknown from the
    /// parts, so the standard error is the bound at full correlation,
    /// mean(se_i), which is never smaller than the true one.
    MeanCorrelated,
}

/// A row of the paper's tables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperRow {
    /// The name as the paper prints it.
    pub name: &'static str,
    pub parts: &'static [Part],
    pub combine: Combine,
    /// Table 3's SmolTulu SFT-1130 and SFT-1207 values (percent); `None`
    /// for rows the paper does not print.
    pub sft_1130: Option<f64>,
    pub sft_1207: Option<f64>,
}

const fn headline(task: &'static str) -> Part {
    Part { task, metric: None }
}

const fn metric(task: &'static str, metric: &'static str) -> Part {
    Part {
        task,
        metric: Some(metric),
    }
}

/// Table 9's seven rows in the paper's order, then the loose IFEval
/// average the paper does not say it did not use (strict is the Open LLM
/// Leaderboard's convention; both are reported).
pub const PAPER_ROWS: &[PaperRow] = &[
    PaperRow {
        name: "ARC (Average)",
        parts: &[
            metric("arc_easy", "acc_norm"),
            metric("arc_challenge", "acc_norm"),
        ],
        combine: Combine::MeanIndependent,
        sft_1130: Some(51.0),
        sft_1207: Some(55.6),
    },
    PaperRow {
        name: "BBH (3-shot)",
        parts: &[headline("bbh")],
        combine: Combine::Single,
        sft_1130: Some(34.7),
        sft_1207: Some(34.0),
    },
    PaperRow {
        name: "GSM8K (5-shot)",
        parts: &[headline("gsm8k")],
        combine: Combine::Single,
        sft_1130: Some(49.0),
        sft_1207: Some(42.8),
    },
    PaperRow {
        name: "HellaSwag",
        parts: &[metric("hellaswag", "acc_norm")],
        combine: Combine::Single,
        sft_1130: Some(61.5),
        sft_1207: Some(67.5),
    },
    PaperRow {
        name: "IFEval (Average)",
        parts: &[
            metric("ifeval", "prompt_level_strict_acc"),
            metric("ifeval", "inst_level_strict_acc"),
        ],
        combine: Combine::MeanCorrelated,
        sft_1130: Some(61.0),
        sft_1207: Some(47.8),
    },
    PaperRow {
        name: "MMLU-Pro (MCF)",
        parts: &[headline("mmlu_pro")],
        combine: Combine::Single,
        sft_1130: Some(17.6),
        sft_1207: Some(17.9),
    },
    PaperRow {
        name: "PIQA",
        parts: &[metric("piqa", "acc_norm")],
        combine: Combine::Single,
        sft_1130: Some(72.7),
        sft_1207: Some(76.9),
    },
    PaperRow {
        name: "IFEval (Average, loose)",
        parts: &[
            metric("ifeval", "prompt_level_loose_acc"),
            metric("ifeval", "inst_level_loose_acc"),
        ],
        combine: Combine::MeanCorrelated,
        sft_1130: None,
        sft_1207: None,
    },
];

/// A row computed for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperScore {
    /// The row's name (`"ARC (Average)"`).
    pub row: String,
    pub value: f64,
    pub stderr: Option<f64>,
    /// The `task/metric` scores it was computed from.
    pub from: Vec<String>,
}

impl Part {
    /// The metric's name: the given one, or the task's headline (`None`
    /// for a task the registry does not know).
    pub fn metric_name(&self) -> Option<&'static str> {
        match self.metric {
            Some(m) => Some(m),
            None => self.task.parse::<Task>().ok().map(Task::headline),
        }
    }
}

impl PaperRow {
    /// Whether the row is a combination rather than one task's metric
    /// (the combinations are what tables and figures gain from it).
    pub fn is_combined(&self) -> bool {
        self.combine != Combine::Single
    }

    /// The row for one model, from a lookup of its `(task, metric)`
    /// scores; `None` unless every part is scored.
    pub fn compute(&self, score: impl Fn(&str, &str) -> Option<Metric>) -> Option<PaperScore> {
        let mut values = Vec::with_capacity(self.parts.len());
        let mut from = Vec::with_capacity(self.parts.len());
        for p in self.parts {
            let m = p.metric_name()?;
            values.push(score(p.task, m)?);
            from.push(format!("{}/{m}", p.task));
        }
        let n = values.len() as f64;
        let value = values.iter().map(|m| m.value).sum::<f64>() / n;
        let errors: Option<Vec<f64>> = values.iter().map(|m| m.stderr).collect();
        let stderr = errors.map(|e| match self.combine {
            Combine::Single => e[0],
            Combine::MeanIndependent => e.iter().map(|s| s * s).sum::<f64>().sqrt() / n,
            Combine::MeanCorrelated => e.iter().sum::<f64>() / n,
        });
        Some(PaperScore {
            row: self.name.to_string(),
            value,
            stderr,
            from,
        })
    }
}

/// Every row that can be computed from a model's scores, in the paper's
/// order.
pub fn paper_scores(score: impl Fn(&str, &str) -> Option<Metric>) -> Vec<PaperScore> {
    PAPER_ROWS
        .iter()
        .filter_map(|r| r.compute(&score))
        .collect()
}

/// The row of this name.
pub fn row(name: &str) -> Option<&'static PaperRow> {
    PAPER_ROWS.iter().find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn scores(list: &[(&str, &str, f64, f64)]) -> BTreeMap<(String, String), Metric> {
        list.iter()
            .map(|&(t, m, v, se)| {
                (
                    (t.to_string(), m.to_string()),
                    Metric {
                        value: v,
                        stderr: Some(se),
                    },
                )
            })
            .collect()
    }

    fn lookup(
        s: &BTreeMap<(String, String), Metric>,
    ) -> impl Fn(&str, &str) -> Option<Metric> + '_ {
        |t, m| s.get(&(t.to_string(), m.to_string())).copied()
    }

    #[test]
    fn rows_by_hand() {
        let s = scores(&[
            ("arc_easy", "acc_norm", 0.60, 0.010),
            ("arc_challenge", "acc_norm", 0.30, 0.013),
            ("ifeval", "prompt_level_strict_acc", 0.40, 0.02),
            ("ifeval", "inst_level_strict_acc", 0.50, 0.01),
            ("ifeval", "prompt_level_loose_acc", 0.45, 0.02),
            ("ifeval", "inst_level_loose_acc", 0.55, 0.01),
            ("gsm8k", "exact_match_strict", 0.25, 0.012),
            ("gsm8k", "exact_match_flexible", 0.27, 0.012),
            ("hellaswag", "acc", 0.40, 0.005),
            ("hellaswag", "acc_norm", 0.42, 0.005),
        ]);
        let rows = paper_scores(lookup(&s));
        let names: Vec<&str> = rows.iter().map(|r| r.row.as_str()).collect();
        // PIQA, and BBH / MMLU-Pro, are not scored: left out, in order kept.
        assert_eq!(
            names,
            [
                "ARC (Average)",
                "GSM8K (5-shot)",
                "HellaSwag",
                "IFEval (Average)",
                "IFEval (Average, loose)"
            ]
        );
        let arc = &rows[0];
        assert!((arc.value - 0.45).abs() < 1e-12);
        // sqrt(0.01^2 + 0.013^2) / 2 = 0.0082006...
        assert!((arc.stderr.expect("stderr") - 0.008_200_609_733).abs() < 1e-9);
        assert_eq!(arc.from, ["arc_easy/acc_norm", "arc_challenge/acc_norm"]);
        // GSM8K takes the headline: strict, not flexible.
        assert!((rows[1].value - 0.25).abs() < 1e-12);
        assert_eq!(rows[1].from, ["gsm8k/exact_match_strict"]);
        assert!((rows[2].value - 0.42).abs() < 1e-12);
        let ife = &rows[3];
        assert!((ife.value - 0.45).abs() < 1e-12);
        assert!((ife.stderr.expect("stderr") - 0.015).abs() < 1e-12);
        assert!((rows[4].value - 0.50).abs() < 1e-12);
    }

    #[test]
    fn a_row_needs_every_part() {
        let s = scores(&[("arc_easy", "acc_norm", 0.6, 0.01)]);
        assert!(paper_scores(lookup(&s)).is_empty());
    }

    #[test]
    fn a_part_without_stderr_gives_a_row_without_stderr() {
        let mut s = scores(&[("arc_easy", "acc_norm", 0.6, 0.01)]);
        s.insert(
            ("arc_challenge".into(), "acc_norm".into()),
            Metric {
                value: 0.2,
                stderr: None,
            },
        );
        let rows = paper_scores(lookup(&s));
        assert_eq!(rows.len(), 1);
        assert!((rows[0].value - 0.4).abs() < 1e-12);
        assert_eq!(rows[0].stderr, None);
    }

    #[test]
    fn the_paper_values_are_table_3() {
        let v: Vec<(f64, f64)> = PAPER_ROWS
            .iter()
            .filter_map(|r| Some((r.sft_1130?, r.sft_1207?)))
            .collect();
        assert_eq!(
            v,
            [
                (51.0, 55.6),
                (34.7, 34.0),
                (49.0, 42.8),
                (61.5, 67.5),
                (61.0, 47.8),
                (17.6, 17.9),
                (72.7, 76.9)
            ]
        );
    }
}
