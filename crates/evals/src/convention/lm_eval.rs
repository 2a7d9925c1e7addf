//! The `lm-eval` convention: lm-evaluation-harness's prompts (plain, or
//! with `--apply_chat_template`), its HF backend's tokenisation (no special
//! tokens), GSM8K's `random.Random(seed).sample` few-shot draws, its
//! generation settings and its filters and metrics.

use smolsweep_model::TextTokenizer;

use super::{argmax, FilterScore, Generation, Gsm8kScore, Prompt};
use crate::error::{EvalError, Result};
use crate::gsm8k;
use crate::pyrandom::PyRandom;
use crate::tasks::{Gsm8kDoc, IfEvalDoc, PromptFormat};

pub use smolsweep_config::benchmarks::IFEVAL_MAX_GEN_TOKS;

/// lm-eval's prompt format for one model.
#[derive(Debug)]
pub struct LmEval {
    pub format: PromptFormat,
}

impl LmEval {
    pub fn new(tok: &TextTokenizer, chat_template: bool) -> Result<Self> {
        let format = if chat_template {
            PromptFormat::chat(tok)?
        } else {
            PromptFormat::Plain
        };
        Ok(LmEval { format })
    }

    pub fn gsm8k_prompts(
        &self,
        tok: &TextTokenizer,
        docs: &[Gsm8kDoc],
        fewshot: &[Gsm8kDoc],
        k: usize,
        seed: u64,
    ) -> Result<Vec<Prompt>> {
        let (texts, picks) = gsm8k_prompts_with_picks(docs, fewshot, k, &self.format, seed)?;
        texts
            .into_iter()
            .zip(picks)
            .map(|(text, fewshot)| {
                Ok(Prompt {
                    ids: tok.encode_with(&text, false)?,
                    text,
                    fewshot,
                })
            })
            .collect()
    }

    pub fn ifeval_prompts(&self, tok: &TextTokenizer, docs: &[IfEvalDoc]) -> Result<Vec<Prompt>> {
        docs.iter()
            .map(|d| {
                let text = self.format.ifeval_prompt(d)?;
                Ok(Prompt {
                    ids: tok.encode_with(&text, false)?,
                    text,
                    fewshot: Vec::new(),
                })
            })
            .collect()
    }
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

/// lm-eval's k-shot GSM8K prompts: one `random.Random(seed)` for the task,
/// `sample(train, k)` per question in order.
pub fn gsm8k_prompts(
    docs: &[Gsm8kDoc],
    fewshot: &[Gsm8kDoc],
    k: usize,
    format: &PromptFormat,
    seed: u64,
) -> Result<Vec<String>> {
    Ok(gsm8k_prompts_with_picks(docs, fewshot, k, format, seed)?.0)
}

fn gsm8k_prompts_with_picks(
    docs: &[Gsm8kDoc],
    fewshot: &[Gsm8kDoc],
    k: usize,
    format: &PromptFormat,
    seed: u64,
) -> Result<(Vec<String>, Vec<Vec<usize>>)> {
    let mut rng = PyRandom::new(seed);
    let mut texts = Vec::with_capacity(docs.len());
    let mut picks = Vec::with_capacity(docs.len());
    for d in docs {
        let idx = rng
            .sample_indices(fewshot.len(), k)
            .ok_or_else(|| pool_too_small(fewshot.len(), k))?;
        let shots: Vec<&Gsm8kDoc> = idx.iter().map(|&i| &fewshot[i]).collect();
        texts.push(format.gsm8k_prompt(d, &shots)?);
        picks.push(idx);
    }
    Ok((texts, picks))
}

pub(crate) fn pool_too_small(n: usize, k: usize) -> EvalError {
    EvalError::Task {
        task: "gsm8k".into(),
        msg: format!("the few-shot pool (train split) has {n} examples, {k} are needed"),
    }
}

/// `gsm8k.yaml`'s `until` and lm-eval's default `max_gen_toks`.
pub fn gsm8k_generation() -> Generation {
    Generation {
        until: gsm8k::UNTIL.iter().map(|s| (*s).to_owned()).collect(),
        max_new_tokens: gsm8k::MAX_GEN_TOKS,
    }
}

/// `ifeval.yaml`: no stop strings but the eos token, 1280 new tokens.
pub fn ifeval_generation() -> Generation {
    Generation {
        until: Vec::new(),
        max_new_tokens: IFEVAL_MAX_GEN_TOKS,
    }
}

/// `strict-match` and `flexible-extract`, each with `exact_match`.
pub fn gsm8k_score(response: &str, answer: &str) -> Gsm8kScore {
    let s = gsm8k::extract_strict(response);
    let f = gsm8k::extract_flexible(response);
    Gsm8kScore {
        filters: vec![
            FilterScore {
                filter: "strict",
                metric: "exact_match_strict",
                correct: gsm8k::exact_match(&s, answer),
                extracted: s,
            },
            FilterScore {
                filter: "flexible",
                metric: "exact_match_flexible",
                correct: gsm8k::exact_match(&f, answer),
                extracted: f,
            },
        ],
        gold: gsm8k::normalize(answer),
    }
}
