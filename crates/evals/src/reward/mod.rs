//! Evaluating a reward model (a one-label sequence classifier,
//! `smolsweep_model::RewardModel`) on preference pairs:
//! - `rewardbench` (allenai/reward-bench, split `filtered`: `prompt`,
//!   `chosen`, `rejected` strings and a `subset`): each subset's accuracy,
//!   the four sections and their averages ([`sections`]);
//! - `preference_accuracy` on any preference set in the schemas the
//!   trainer reads (UltraFeedback `test_prefs` by default): accuracy,
//!   margin and mean rewards over every row (no cap: `--limit` only when
//!   asked).
//!
//! As RewardBench scores a classifier: each side is the conversation
//! (`[user: prompt, assistant: answer]` for string pairs) rendered with the
//! reward model's own chat template, tokenised without added special
//! tokens (the template holds them, as in training), and truncated from
//! the left to [`MAX_LEN`] tokens so the last token, which the head reads,
//! is kept; a pair is correct iff the chosen reward is strictly above the
//! rejected one.

pub mod sections;

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};
use smolsweep_datasets::Record;
use smolsweep_model::{Message, RewardModel};

use crate::error::{EvalError, Result};
use crate::runner::{mean_and_stderr, EvalOptions, EvalResults, Metric, TaskResult};
use crate::tasks::{Docs, TaskData, TaskKind};
use crate::BatchSize;

/// Tokens a side keeps (RewardBench's `max_length`).
pub const MAX_LEN: usize = 2048;

/// One preference pair to score.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceDoc {
    pub index: usize,
    /// "FILE, row N".
    pub location: String,
    /// RewardBench's `subset` (None for other preference sets).
    pub subset: Option<String>,
    pub chosen: Vec<Message>,
    pub rejected: Vec<Message>,
}

/// A pair from one row: the trainer's preference schemas, plus
/// RewardBench's `subset` (one of its 23, or a prior set), required there.
pub fn preference_doc(task: TaskKind, index: usize, rec: &Record) -> Result<PreferenceDoc> {
    let pair = smolsweep_datasets::parse_pair(rec).map_err(|source| EvalError::Dataset {
        task: task.name().to_owned(),
        source,
    })?;
    let field_err = |msg: String| EvalError::Field {
        task: task.name().to_owned(),
        location: rec.location(),
        field: "subset".into(),
        msg,
    };
    let subset = match task {
        TaskKind::Rewardbench => {
            let s = rec
                .row
                .get("subset")
                .and_then(Value::as_str)
                .ok_or_else(|| field_err("missing or not a string".into()))?;
            if sections::example_count(s).is_none() && !sections::PRIOR_SETS.contains(&s) {
                return Err(field_err(format!(
                    "`{s}` is not one of RewardBench's subsets"
                )));
            }
            Some(s.to_owned())
        }
        _ => None,
    };
    let messages = |turns: &[smolsweep_datasets::Turn]| -> Vec<Message> {
        turns
            .iter()
            .map(|t| Message {
                role: t.role.clone(),
                content: t.content.clone(),
            })
            .collect()
    };
    Ok(PreferenceDoc {
        index,
        location: rec.location(),
        subset,
        chosen: messages(&pair.chosen),
        rejected: messages(&pair.rejected),
    })
}

/// Rows per forward: `batch_size`, or about 16k tokens (rows x longest).
fn batches(seqs: &[Vec<u32>], batch: BatchSize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    // Longest first: padding stays small and an out-of-memory shows at once.
    order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let fits = |b: &Vec<usize>| match batch {
            BatchSize::Fixed(n) => b.len() < n.max(1),
            BatchSize::Auto => (b.len() + 1) * seqs[b[0]].len().max(1) <= 16_384,
        };
        match out.last_mut() {
            Some(b) if fits(b) => b.push(i),
            _ => out.push(vec![i]),
        }
    }
    out
}

/// Rewards of the chosen and rejected sides of `docs`.
fn score_docs(
    rm: &RewardModel,
    docs: &[PreferenceDoc],
    batch: BatchSize,
) -> Result<Vec<(f64, f64)>> {
    let template = rm.tokenizer.model_chat_template()?;
    let bos = rm.tokenizer.bos_token.clone().unwrap_or_default();
    let eos = rm.tokenizer.eos_token.clone().unwrap_or_default();
    let mut seqs = Vec::with_capacity(2 * docs.len());
    for d in docs {
        for side in [&d.chosen, &d.rejected] {
            let text = template.render(side, false, &bos, &eos)?;
            let ids = rm.tokenizer.encode_with(&text, false)?;
            let keep = ids.len().saturating_sub(MAX_LEN);
            seqs.push(ids[keep..].to_vec());
        }
    }
    let mut rewards = vec![0.0f64; seqs.len()];
    for b in batches(&seqs, batch) {
        let rows: Vec<Vec<u32>> = b.iter().map(|&i| seqs[i].clone()).collect();
        let r = rm.score(&rows, rows.len())?;
        for (&i, v) in b.iter().zip(r) {
            rewards[i] = f64::from(v);
        }
    }
    Ok(rewards.chunks(2).map(|p| (p[0], p[1])).collect())
}

fn value(v: f64) -> Metric {
    Metric {
        value: v,
        stderr: None,
    }
}

/// Metrics of one task from its pairs' rewards.
fn metrics(kind: TaskKind, docs: &[PreferenceDoc], r: &[(f64, f64)]) -> BTreeMap<String, Metric> {
    let correct: Vec<f64> = r.iter().map(|(c, j)| f64::from(u8::from(c > j))).collect();
    let mut out = BTreeMap::new();
    match kind {
        TaskKind::Rewardbench => {
            let mut by_subset: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for (d, &c) in docs.iter().zip(&correct) {
                if let Some(s) = d.subset.as_deref() {
                    by_subset.entry(s).or_default().push(c);
                }
            }
            let mut acc = BTreeMap::new();
            for (s, xs) in &by_subset {
                let m = mean_and_stderr(xs);
                acc.insert((*s).to_owned(), m.value);
                out.insert((*s).to_owned(), m);
            }
            let s = sections::section_scores(&acc);
            for (name, v) in &s.sections {
                out.insert((*name).to_owned(), value(*v));
            }
            out.insert("average".into(), value(s.average));
            out.insert("leaderboard_average".into(), value(s.leaderboard_average));
            out.insert("weighted_average".into(), value(s.weighted_average));
        }
        _ => {
            let n = r.len().max(1) as f64;
            let chosen: f64 = r.iter().map(|p| p.0).sum::<f64>() / n;
            let rejected: f64 = r.iter().map(|p| p.1).sum::<f64>() / n;
            out.insert("accuracy".into(), mean_and_stderr(&correct));
            out.insert(
                "margin".into(),
                mean_and_stderr(&r.iter().map(|(c, j)| c - j).collect::<Vec<_>>()),
            );
            out.insert("chosen_reward".into(), value(chosen));
            out.insert("rejected_reward".into(), value(rejected));
        }
    }
    out
}

/// Scores every reward task of `tasks` with `rm`, in order; a task that
/// needs a causal LM is an error naming it.
pub fn evaluate(
    rm: &RewardModel,
    dir: &std::path::Path,
    tasks: &[TaskData],
    opts: &EvalOptions,
) -> Result<EvalResults> {
    let start = Instant::now();
    let mut out = BTreeMap::new();
    for task in tasks {
        let name = task.kind.name();
        let Docs::Preference(docs) = &task.docs else {
            return Err(EvalError::Task {
                task: name.to_owned(),
                msg: "is scored by a causal LM, and this model is a reward model".into(),
            });
        };
        tracing::info!(task = name, n = docs.len(), "evaluating");
        let t = Instant::now();
        let rewards = score_docs(rm, docs, opts.batch_size)?;
        let metrics = metrics(task.kind, docs, &rewards);
        let wall = t.elapsed().as_secs_f64();
        let samples = if opts.keep_samples {
            docs.iter()
                .zip(&rewards)
                .map(|(d, (c, r))| {
                    json!({
                        "task": name, "index": d.index, "location": d.location,
                        "subset": d.subset, "chosen_reward": c, "rejected_reward": r,
                        "correct": c > r,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        out.insert(
            name.to_owned(),
            TaskResult {
                task: name.to_owned(),
                n: docs.len(),
                num_fewshot: 0,
                wall_s: wall,
                examples_per_s: if wall > 0.0 {
                    docs.len() as f64 / wall
                } else {
                    0.0
                },
                metrics,
                data_files: task.files.iter().map(|p| p.display().to_string()).collect(),
                fewshot_files: Vec::new(),
                samples,
                // A reward model's accuracy is the same arithmetic in
                // every convention; recorded as asked.
                convention: opts.convention,
                // The subsets are metrics of their own (`subset/NAME`).
                subtasks: Default::default(),
            },
        );
    }
    Ok(EvalResults {
        model: dir.display().to_string(),
        device: format!("{:?}", rm.model.device()),
        dtype: format!("{:?}", rm.model.kind()),
        chat_template: true,
        smolsweep_version: env!("CARGO_PKG_VERSION").to_owned(),
        tasks: out,
        total_wall_s: start.elapsed().as_secs_f64(),
        paper: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(subset: &str) -> PreferenceDoc {
        PreferenceDoc {
            index: 0,
            location: "f, row 1".into(),
            subset: Some(subset.into()),
            chosen: vec![],
            rejected: vec![],
        }
    }

    /// Per subset, strict: a tie is wrong; sections from the subsets.
    #[test]
    fn rewardbench_metrics_are_per_subset_and_strict() {
        let docs = [doc("hep-go"), doc("hep-go"), doc("alpacaeval-easy")];
        let m = metrics(
            TaskKind::Rewardbench,
            &docs,
            &[(1.0, 0.0), (0.5, 0.5), (2.0, 1.0)],
        );
        assert_eq!(m["hep-go"].value, 0.5);
        assert_eq!(m["alpacaeval-easy"].value, 1.0);
        assert_eq!((m["chat"].value, m["reasoning"].value), (1.0, 0.5));
        assert_eq!(m["average"].value, 0.375);
        for k in m.keys() {
            assert!(TaskKind::Rewardbench.metrics().contains(&k.as_str()), "{k}");
        }
    }

    #[test]
    fn batches_hold_every_row_once_longest_first() {
        let seqs: Vec<Vec<u32>> = (0..10).map(|i| vec![0; i + 1]).collect();
        let b = batches(&seqs, BatchSize::Fixed(3));
        assert_eq!(b[0], [9, 8, 7]);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
