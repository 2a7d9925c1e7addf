//! Running tasks on a model already in memory and the results they give:
//! the entry point both `smolsweep eval` and the sweep orchestrator use
//! ([`evaluate`]), and the results structure written as results.json.
//!
//! Metrics and standard errors are lm-eval's: acc / acc_norm / exact_match
//! are means over examples with `mean_stderr` (sample standard deviation,
//! ddof 1, over sqrt(n); none for n < 2).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};
use smolsweep_model::LoadedModel;

use crate::error::{EvalError, Result};
use crate::generation::generate_all;
use crate::gsm8k;
use crate::ifeval;
use crate::loglik::{self, BatchSize};
use crate::pyrandom::PyRandom;
use crate::tasks::{Docs, Gsm8kDoc, IfEvalDoc, McDoc, PromptFormat, TaskData};

pub use smolsweep_config::benchmarks::{FEWSHOT_SEED, IFEVAL_MAX_GEN_TOKS};
/// results.json, defined with the other contracts in `smolsweep-config`.
pub use smolsweep_config::results::{EvalResults, Metric, TaskResult};
pub use smolsweep_config::Convention;

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Wrap prompts in the model's chat template.
    pub chat_template: bool,
    pub batch_size: BatchSize,
    /// Seed of GSM8K's few-shot draw (lm-eval: 1234).
    pub fewshot_seed: u64,
    /// Solved examples before each GSM8K question (lm-eval: 5). Fewer fit
    /// a short-context model: 5 shots are ~1k tokens, ~4k bytes.
    pub gsm8k_fewshot: usize,
    /// Keep one JSON object per example in [`TaskResult::samples`].
    pub keep_samples: bool,
    /// Whose prompts, few-shot picks and metrics.
    pub convention: Convention,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            chat_template: false,
            batch_size: BatchSize::Auto,
            fewshot_seed: FEWSHOT_SEED,
            gsm8k_fewshot: smolsweep_config::benchmarks::GSM8K_FEWSHOT as usize,
            keep_samples: false,
            convention: Convention::LmEval,
        }
    }
}

/// lm-eval's `mean` and `mean_stderr`.
pub fn mean_and_stderr(xs: &[f64]) -> Metric {
    let n = xs.len();
    if n == 0 {
        return Metric {
            value: f64::NAN,
            stderr: None,
        };
    }
    let nf = n as f64;
    let mean = xs.iter().sum::<f64>() / nf;
    let stderr = (n >= 2).then(|| {
        let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        (ss / (nf - 1.0)).sqrt() / nf.sqrt()
    });
    Metric {
        value: mean,
        stderr,
    }
}

/// numpy's `argmax`: the first maximum.
fn argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// acc and acc_norm of one question, lm-eval's `process_results` for
/// multiple choice: `argmax(lls)` and `argmax(lls / len(choice))`, the
/// length in characters of the choice text (without the delimiter).
pub fn mc_predictions(lls: &[f64], choices: &[String]) -> (usize, usize) {
    let norm: Vec<f64> = lls
        .iter()
        .zip(choices)
        .map(|(l, c)| l / c.chars().count() as f64)
        .collect();
    (argmax(lls), argmax(&norm))
}

/// Evaluates every task on `m`, in order.
pub fn evaluate(m: &LoadedModel, tasks: &[TaskData], opts: &EvalOptions) -> Result<EvalResults> {
    let start = Instant::now();
    let format = if opts.chat_template {
        PromptFormat::chat(&m.tokenizer)?
    } else {
        PromptFormat::Plain
    };
    let mut out = BTreeMap::new();
    for task in tasks {
        let name = task.kind.name();
        tracing::info!(task = name, n = task.len(), "evaluating");
        let t = Instant::now();
        let mut subtasks = BTreeMap::new();
        let (metrics, num_fewshot, samples) = match &task.docs {
            Docs::MultipleChoice(docs) => run_mc(m, name, docs, &format, opts)?,
            Docs::Gsm8k { docs, fewshot } => run_gsm8k(m, docs, fewshot, &format, opts)?,
            Docs::IfEval(docs) => run_ifeval(m, docs, &format, opts)?,
            Docs::MmluPro { .. } | Docs::Bbh(_) => {
                let g = run_group(m, &task.docs, &format, opts)?;
                subtasks = g.subtasks;
                (g.metrics, g.num_fewshot, g.samples)
            }
        };
        let wall = t.elapsed().as_secs_f64();
        let n = task.len();
        tracing::info!(
            task = name,
            n,
            secs = format!("{wall:.1}"),
            per_s = format!("{:.2}", n as f64 / wall),
            "done"
        );
        out.insert(
            name.to_owned(),
            TaskResult {
                task: name.to_owned(),
                n,
                num_fewshot,
                wall_s: wall,
                examples_per_s: if wall > 0.0 { n as f64 / wall } else { 0.0 },
                metrics,
                data_files: task.files.iter().map(|p| p.display().to_string()).collect(),
                fewshot_files: task
                    .fewshot_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
                subtasks,
                samples: if opts.keep_samples {
                    samples
                } else {
                    Vec::new()
                },
            },
        );
    }
    Ok(EvalResults {
        model: m.dir.display().to_string(),
        device: format!("{:?}", m.model.device()),
        dtype: format!("{:?}", m.model.kind()),
        chat_template: opts.chat_template,
        smolsweep_version: env!("CARGO_PKG_VERSION").to_owned(),
        tasks: out,
        total_wall_s: start.elapsed().as_secs_f64(),
    })
}

type Run = (BTreeMap<String, Metric>, usize, Vec<Value>);

/// MMLU-Pro and BBH, in the options' convention (`smollm2` always wraps
/// prompts in the model's chat template, as SmolLM2's runs did).
fn run_group(
    m: &LoadedModel,
    docs: &Docs,
    format: &PromptFormat,
    opts: &EvalOptions,
) -> Result<crate::bbh::GroupRun> {
    let smollm2 = opts.convention == Convention::Smollm2;
    let chat;
    let format = if smollm2 && !format.is_chat() {
        chat = PromptFormat::chat(&m.tokenizer)?;
        &chat
    } else {
        format
    };
    let (batch, keep) = (opts.batch_size, opts.keep_samples);
    match docs {
        Docs::MmluPro { docs, .. } if smollm2 => {
            crate::mmlu_pro::run_smollm2(m, docs, format, batch, keep)
        }
        Docs::MmluPro { docs, fewshot } => {
            crate::mmlu_pro::run_lm_eval(m, docs, fewshot, format, batch, keep)
        }
        Docs::Bbh(subtasks) => crate::bbh::run(m, subtasks, smollm2, format, batch, keep),
        _ => Err(EvalError::Engine("not a task of subtasks".into())),
    }
}

fn run_mc(
    m: &LoadedModel,
    name: &str,
    docs: &[McDoc],
    format: &PromptFormat,
    opts: &EvalOptions,
) -> Result<Run> {
    let mut requests = Vec::new();
    let mut encoded = Vec::new();
    for d in docs {
        for (ctx, cont) in format.mc_requests(d)? {
            encoded.push(loglik::encode_pair(&m.tokenizer, &ctx, &cont)?);
            requests.push((ctx, cont));
        }
    }
    let max_length = m.model.config.max_position_embeddings;
    let scores = loglik::score(&m.model, max_length, &encoded, opts.batch_size)?;
    let (mut accs, mut norms, mut samples) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = 0;
    for d in docs {
        let k = d.choices.len();
        let s = &scores[at..at + k];
        let lls: Vec<f64> = s.iter().map(|x| x.loglik).collect();
        let (pred, pred_norm) = mc_predictions(&lls, &d.choices);
        let acc = f64::from(u8::from(pred == d.gold));
        let acc_norm = f64::from(u8::from(pred_norm == d.gold));
        accs.push(acc);
        norms.push(acc_norm);
        if opts.keep_samples {
            samples.push(json!({
                "task": name,
                "index": d.index,
                "source": d.location,
                "requests": requests[at..at + k],
                "loglik": lls,
                "is_greedy": s.iter().map(|x| x.is_greedy).collect::<Vec<_>>(),
                "pred": pred,
                "pred_norm": pred_norm,
                "gold": d.gold,
                "acc": acc,
                "acc_norm": acc_norm,
                "correct": pred == d.gold,
            }));
        }
        at += k;
    }
    let metrics = BTreeMap::from([
        ("acc".to_owned(), mean_and_stderr(&accs)),
        ("acc_norm".to_owned(), mean_and_stderr(&norms)),
    ]);
    Ok((metrics, 0, samples))
}

/// lm-eval's k-shot GSM8K prompts: one `random.Random(seed)` for the task,
/// `sample(train, k)` per question in order.
pub fn gsm8k_prompts(
    docs: &[Gsm8kDoc],
    fewshot: &[Gsm8kDoc],
    k: usize,
    format: &PromptFormat,
    seed: u64,
) -> Result<Vec<String>> {
    let mut rng = PyRandom::new(seed);
    docs.iter()
        .map(|d| {
            let idx = rng
                .sample_indices(fewshot.len(), k)
                .ok_or_else(|| EvalError::Task {
                    task: "gsm8k".into(),
                    msg: format!(
                        "the few-shot pool (train split) has {} examples, {} are needed",
                        fewshot.len(),
                        k
                    ),
                })?;
            let shots: Vec<&Gsm8kDoc> = idx.iter().map(|&i| &fewshot[i]).collect();
            format.gsm8k_prompt(d, &shots)
        })
        .collect()
}

fn run_gsm8k(
    m: &LoadedModel,
    docs: &[Gsm8kDoc],
    fewshot: &[Gsm8kDoc],
    format: &PromptFormat,
    opts: &EvalOptions,
) -> Result<Run> {
    let prompts = gsm8k_prompts(docs, fewshot, opts.gsm8k_fewshot, format, opts.fewshot_seed)?;
    let ids = prompts
        .iter()
        .map(|p| m.tokenizer.encode_with(p, false))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let outs = generate_all(m, &ids, &gsm8k::UNTIL, gsm8k::MAX_GEN_TOKS, opts.batch_size)?;
    let (mut strict, mut flexible, mut samples) = (Vec::new(), Vec::new(), Vec::new());
    for ((d, p), o) in docs.iter().zip(&prompts).zip(&outs) {
        let s = gsm8k::extract_strict(&o.text);
        let f = gsm8k::extract_flexible(&o.text);
        let ms = gsm8k::exact_match(&s, &d.answer);
        let mf = gsm8k::exact_match(&f, &d.answer);
        strict.push(f64::from(u8::from(ms)));
        flexible.push(f64::from(u8::from(mf)));
        if opts.keep_samples {
            samples.push(json!({
                "task": "gsm8k",
                "index": d.index,
                "source": d.location,
                "prompt": p,
                "response": o.text,
                "extracted": {"strict": s, "flexible": f},
                "gold": gsm8k::normalize(&d.answer),
                "target": d.answer,
                "exact_match": {"strict": ms, "flexible": mf},
                "correct": ms,
            }));
        }
    }
    let metrics = BTreeMap::from([
        ("exact_match_strict".to_owned(), mean_and_stderr(&strict)),
        (
            "exact_match_flexible".to_owned(),
            mean_and_stderr(&flexible),
        ),
    ]);
    Ok((metrics, opts.gsm8k_fewshot, samples))
}

fn run_ifeval(
    m: &LoadedModel,
    docs: &[IfEvalDoc],
    format: &PromptFormat,
    opts: &EvalOptions,
) -> Result<Run> {
    let prompts = docs
        .iter()
        .map(|d| format.ifeval_prompt(d))
        .collect::<Result<Vec<_>>>()?;
    let ids = prompts
        .iter()
        .map(|p| m.tokenizer.encode_with(p, false))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let outs = generate_all(m, &ids, &[], IFEVAL_MAX_GEN_TOKS, opts.batch_size)?;
    let mut verdicts = Vec::with_capacity(docs.len());
    let mut samples = Vec::new();
    for ((d, p), o) in docs.iter().zip(&prompts).zip(&outs) {
        let v = ifeval::evaluate_sample(&d.sample, &o.text).map_err(|e| EvalError::Field {
            task: "ifeval".into(),
            location: d.location.clone(),
            field: "instruction_id_list/kwargs".into(),
            msg: e.to_string(),
        })?;
        if opts.keep_samples {
            samples.push(json!({
                "task": "ifeval",
                "index": d.index,
                "source": d.location,
                "key": d.sample.key,
                "prompt": p,
                "response": o.text,
                "instruction_id_list": v.instruction_id_list,
                "strict": v.strict,
                "loose": v.loose,
                "correct": v.follow_all_strict(),
            }));
        }
        verdicts.push(v);
    }
    let s = ifeval::aggregate(&verdicts);
    let metric = |value, stderr| Metric { value, stderr };
    let metrics = BTreeMap::from([
        (
            "prompt_level_strict_acc".to_owned(),
            metric(s.prompt_level_strict_acc, s.prompt_level_strict_acc_stderr),
        ),
        (
            "inst_level_strict_acc".to_owned(),
            metric(s.inst_level_strict_acc, s.inst_level_strict_acc_stderr),
        ),
        (
            "prompt_level_loose_acc".to_owned(),
            metric(s.prompt_level_loose_acc, s.prompt_level_loose_acc_stderr),
        ),
        (
            "inst_level_loose_acc".to_owned(),
            metric(s.inst_level_loose_acc, s.inst_level_loose_acc_stderr),
        ),
    ]);
    Ok((metrics, 0, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_lm_evals_mean_stderr() {
        let m = mean_and_stderr(&[1.0, 0.0, 1.0, 1.0]);
        assert_eq!(m.value, 0.75);
        // sqrt(0.25 * 4 / 3 ... ) : sample sd = 0.5, / sqrt(4)
        assert!((m.stderr.expect("n>=2") - 0.25).abs() < 1e-12);
        assert_eq!(mean_and_stderr(&[1.0]).stderr, None);
    }

    #[test]
    fn acc_norm_divides_by_characters() {
        let choices = vec!["ab".to_owned(), "ééééé".to_owned()];
        // -3/2 = -1.5 vs -5/5 = -1.0 (5 characters, 10 bytes).
        assert_eq!(mc_predictions(&[-3.0, -5.0], &choices), (0, 1));
        // Ties go to the first, as numpy's argmax.
        assert_eq!(
            mc_predictions(&[-1.0, -1.0], &["a".into(), "b".into()]),
            (0, 0)
        );
    }
}
