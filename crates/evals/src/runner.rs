//! Running tasks on a model already in memory and the results they give:
//! the entry point both `smolsweep eval` and the sweep orchestrator use
//! ([`evaluate`]), and the results structure written as results.json.
//!
//! What differs between conventions (prompts, tokenisation, few-shot
//! picks, generation settings, per-example scoring) is asked of a
//! [`Layer`]; the runner only batches requests through the engines and
//! aggregates. Metrics and standard errors are lm-eval's: acc / acc_norm /
//! exact_match are means over examples with `mean_stderr` (sample standard
//! deviation, ddof 1, over sqrt(n); none for n < 2), which is also
//! lighteval's `mean` stderr.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};
use smolsweep_model::LoadedModel;

use crate::convention::{Generation, Layer};
use crate::error::{EvalError, Result};
use crate::generation::generate_all;
use crate::ifeval;
use crate::loglik::{self, BatchSize};
use crate::tasks::{Docs, Gsm8kDoc, IfEvalDoc, McDoc, PromptFormat, TaskData};

pub use crate::convention::lm_eval::gsm8k_prompts;

pub use smolsweep_config::benchmarks::{FEWSHOT_SEED, IFEVAL_MAX_GEN_TOKS};
/// results.json, defined with the other contracts in `smolsweep-config`.
pub use smolsweep_config::results::{EvalResults, Metric, TaskResult};
pub use smolsweep_config::Convention;

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Wrap prompts in the model's chat template (lm-eval's
    /// `--apply_chat_template`; `smollm2` always does).
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

/// acc and acc_norm of one question, lm-eval's way (see
/// [`crate::convention::lm_eval::mc_predictions`]).
pub fn mc_predictions(lls: &[f64], choices: &[String]) -> (usize, usize) {
    crate::convention::lm_eval::mc_predictions(lls, choices)
}

/// Evaluates every task on `m`, in order.
pub fn evaluate(m: &LoadedModel, tasks: &[TaskData], opts: &EvalOptions) -> Result<EvalResults> {
    let start = Instant::now();
    let layer = Layer::new(opts.convention, &m.tokenizer, opts.chat_template)?;
    let mut out = BTreeMap::new();
    for task in tasks {
        let name = task.kind.name();
        tracing::info!(task = name, n = task.len(), "evaluating");
        let t = Instant::now();
        let mut subtasks = BTreeMap::new();
        let (metrics, num_fewshot, samples) = match &task.docs {
            Docs::MultipleChoice(docs) => run_mc(m, name, docs, &layer, opts)?,
            Docs::Gsm8k { docs, fewshot } => run_gsm8k(m, docs, fewshot, &layer, opts)?,
            Docs::IfEval(docs) => run_ifeval(m, docs, &layer, opts)?,
            Docs::Preference(_) => {
                return Err(EvalError::Task {
                    task: name.to_owned(),
                    msg: "is scored by a reward model (a sequence classifier), and this model is a causal LM".into(),
                })
            }
            Docs::MmluPro { .. } | Docs::Bbh(_) => {
                // MMLU-Pro and BBH build their prompts with the prompt
                // format (chat-wrapped under smollm2, see run_group).
                let format = if opts.chat_template {
                    PromptFormat::chat(&m.tokenizer)?
                } else {
                    PromptFormat::Plain
                };
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
                convention: layer.convention(),
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
        chat_template: layer.uses_chat_template(),
        smolsweep_version: env!("CARGO_PKG_VERSION").to_owned(),
        tasks: out,
        total_wall_s: start.elapsed().as_secs_f64(),
        paper: Vec::new(),
    }
    .with_paper_rows())
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
    layer: &Layer,
    opts: &EvalOptions,
) -> Result<Run> {
    let mut requests = Vec::new();
    let mut encoded = Vec::new();
    for d in docs {
        for (ctx, cont) in layer.mc_requests(d)? {
            encoded.push(layer.encode_pair(&m.tokenizer, &ctx, &cont)?);
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
        let (pred, pred_norm) = layer.mc_predictions(d, &lls);
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

fn run_gsm8k(
    m: &LoadedModel,
    docs: &[Gsm8kDoc],
    fewshot: &[Gsm8kDoc],
    layer: &Layer,
    opts: &EvalOptions,
) -> Result<Run> {
    let prompts = layer.gsm8k_prompts(
        &m.tokenizer,
        docs,
        fewshot,
        opts.gsm8k_fewshot,
        opts.fewshot_seed,
    )?;
    let gen = layer.gsm8k_generation(&m.tokenizer);
    let outs = generate(m, &prompts, &gen, opts.batch_size)?;
    let mut by_metric: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut samples = Vec::new();
    for ((d, p), o) in docs.iter().zip(&prompts).zip(&outs) {
        let score = layer.gsm8k_score(&o.text, &d.answer);
        for f in &score.filters {
            by_metric
                .entry(f.metric.to_owned())
                .or_default()
                .push(f64::from(u8::from(f.correct)));
        }
        if opts.keep_samples {
            let extracted: serde_json::Map<String, Value> = score
                .filters
                .iter()
                .map(|f| (f.filter.to_owned(), json!(f.extracted)))
                .collect();
            let matches: serde_json::Map<String, Value> = score
                .filters
                .iter()
                .map(|f| (f.filter.to_owned(), json!(f.correct)))
                .collect();
            samples.push(json!({
                "task": "gsm8k",
                "index": d.index,
                "source": d.location,
                "prompt": p.text,
                "fewshot": p.fewshot,
                "until": gen.until,
                "max_new_tokens": gen.max_new_tokens,
                "response": o.text,
                "generated_tokens": o.token_ids.len(),
                "stop_reason": o.stop_reason,
                "extracted": extracted,
                "gold": score.gold,
                "target": d.answer,
                "exact_match": matches,
                "correct": score.filters.first().is_some_and(|f| f.correct),
            }));
        }
    }
    let metrics = by_metric
        .into_iter()
        .map(|(k, v)| (k, mean_and_stderr(&v)))
        .collect();
    Ok((metrics, opts.gsm8k_fewshot, samples))
}

/// Greedy generation of prompts already encoded by the convention.
fn generate(
    m: &LoadedModel,
    prompts: &[crate::convention::Prompt],
    gen: &Generation,
    batch: BatchSize,
) -> Result<Vec<crate::generation::Output>> {
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
    let until: Vec<&str> = gen.until.iter().map(String::as_str).collect();
    generate_all(m, &ids, &until, gen.max_new_tokens, batch)
}

fn run_ifeval(
    m: &LoadedModel,
    docs: &[IfEvalDoc],
    layer: &Layer,
    opts: &EvalOptions,
) -> Result<Run> {
    let prompts = layer.ifeval_prompts(&m.tokenizer, docs)?;
    let gen = layer.ifeval_generation(&m.tokenizer);
    let outs = generate(m, &prompts, &gen, opts.batch_size)?;
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
                "prompt": p.text,
                "until": gen.until,
                "max_new_tokens": gen.max_new_tokens,
                "response": o.text,
                "generated_tokens": o.token_ids.len(),
                "stop_reason": o.stop_reason,
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
