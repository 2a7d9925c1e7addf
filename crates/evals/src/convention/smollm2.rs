//! The `smollm2` convention: lighteval at commit ea46419a as SmolLM2's
//! evaluation ran it (huggingface/smollm `evaluation/tasks.py` and
//! `smollm2_instruct.txt`; `--use_chat_template`, the vLLM backend, bf16,
//! max_model_length 2048), which is how the SmolTulu paper's numbers were
//! made.
//!
//! - Every prompt is the model's chat template around one user turn (its
//!   default system prompt when it has one); few-shot examples are
//!   user/assistant pairs, the gold target as the assistant turn.
//! - Log-likelihood requests are `(chat(query), choice)`, the choice as the
//!   task writes it (`" the Sun"`); [`super::tok_encode_pair`] moves the
//!   template's trailing `\n` onto it, so `"\n the Sun"` is scored, and
//!   acc_norm divides by the choice's length less its leading space.
//!   Special tokens are added as VLLMModelConfig's default says
//!   (SmolLM2's tokenizer adds none).
//! - ARC, HellaSwag and PIQA are 0-shot; HellaSwag's query keeps its
//!   trailing space and its endings are not stripped.
//! - GSM8K is 5-shot: `random.Random(42)` shuffles the documents, then
//!   the same generator draws `sample(train, 5)` per document in shuffled
//!   order; a shot equal to the document is dropped; while the prompt and
//!   256 new tokens exceed 2048 tokens a shot is dropped (lighteval's
//!   `|1` truncation, its quirk included: when even 0 shots do not fit the
//!   loop ends at `shots[:-1]`). vLLM then received the stop strings
//!   `Question:`, `Question` and the eos token: lighteval's vLLM path never
//!   passes `use_chat_template` to the model config, so the chat model
//!   keeps the task's stops. Score: `quasi_exact_match_gsm8k`.
//! - IFEval: one user turn, the eos token as the only stop, 1280 new
//!   tokens (`tasks/extended/ifeval/main.py`).
//! - Generation prompts longer than 2048 minus the new tokens keep their
//!   last tokens (vLLM's left truncation in lighteval's `greedy_until`).
//!
//! Documents are evaluated in file order; the shuffle only decides which
//! draw of the generator each GSM8K document gets, as in lighteval. With a
//! `limit`, the shuffle is over the documents kept, which is lighteval run
//! on a dataset of those documents.

use smolsweep_model::TextTokenizer;

use super::{ChatWrap, FilterScore, Generation, Gsm8kScore, Prompt};
use crate::error::Result;
use crate::pyrandom::PyRandom;
use crate::tasks::{Gsm8kDoc, IfEvalDoc, McDoc};
use crate::text::py_strip;

/// `VLLMModelConfig.add_special_tokens`'s default.
pub const ADD_SPECIAL_TOKENS: bool = true;

/// SmolLM2's `max_model_length`.
pub const MAX_MODEL_LENGTH: usize = 2048;

/// The seed `create_requests_from_tasks` shuffles documents with.
pub const DOC_SHUFFLE_SEED: u64 = 42;

/// The GSM8K task's `stop_sequence` (SmolLM2's `tasks.py`).
pub const GSM8K_STOP: [&str; 2] = ["Question:", "Question"];

/// The GSM8K task's `generation_size`.
pub const GSM8K_MAX_NEW_TOKENS: usize = 256;

/// IFEval's `generation_size` (lighteval `tasks/extended/ifeval/main.py`).
pub const IFEVAL_MAX_NEW_TOKENS: usize = 1280;

/// The layer for one model.
#[derive(Debug)]
pub struct Smollm2 {
    pub chat: ChatWrap,
}

impl Smollm2 {
    pub fn new(tok: &TextTokenizer) -> Result<Self> {
        Ok(Smollm2 {
            chat: ChatWrap::of_model(tok)?,
        })
    }

    /// `(chat(query), choice)` per choice.
    pub fn mc_requests(&self, doc: &McDoc) -> Result<Vec<(String, String)>> {
        let context = self.chat.prompt("", &[], &doc.lighteval.query)?;
        Ok(doc
            .lighteval
            .choices
            .iter()
            .map(|c| (context.clone(), c.clone()))
            .collect())
    }

    /// GSM8K's prompts in document order.
    pub fn gsm8k_prompts(
        &self,
        tok: &TextTokenizer,
        docs: &[Gsm8kDoc],
        pool: &[Gsm8kDoc],
        k: usize,
    ) -> Result<Vec<Prompt>> {
        let mut order: Vec<usize> = (0..docs.len()).collect();
        let mut rng = PyRandom::new(DOC_SHUFFLE_SEED);
        rng.shuffle(&mut order);
        let mut out: Vec<Option<Prompt>> = vec![None; docs.len()];
        for &i in &order {
            let d = &docs[i];
            let drawn = if k == 0 {
                Vec::new()
            } else {
                rng.sample_indices(pool.len(), k)
                    .ok_or_else(|| super::lm_eval::pool_too_small(pool.len(), k))?
            };
            // `[x for x in samples if x != formatted_doc][:num_fewshot]`.
            let shots: Vec<usize> = drawn
                .into_iter()
                .filter(|&j| !(pool[j].question == d.question && pool[j].answer == d.answer))
                .take(k)
                .collect();
            out[i] = Some(self.gsm8k_prompt(tok, d, pool, &shots, k)?);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// One prompt with lighteval's few-shot truncation
    /// (prompt_manager.py:205-223 at ea46419a).
    fn gsm8k_prompt(
        &self,
        tok: &TextTokenizer,
        d: &Gsm8kDoc,
        pool: &[Gsm8kDoc],
        shots: &[usize],
        k: usize,
    ) -> Result<Prompt> {
        let render = |n: usize| -> Result<String> {
            let targets: Vec<(String, String)> = shots[..n]
                .iter()
                .map(|&j| (pool[j].text(), format!(" {}", pool[j].answer)))
                .collect();
            let turns: Vec<(&str, &str)> = targets
                .iter()
                .map(|(q, a)| (q.as_str(), a.as_str()))
                .collect();
            self.chat.prompt("", &turns, &d.text())
        };
        let mut text = render(shots.len())?;
        let mut n_tokens = tok.encode_with(&text, ADD_SPECIAL_TOKENS)?.len();
        let mut effective = k as i64;
        let mut used = shots.len();
        while n_tokens + GSM8K_MAX_NEW_TOKENS > MAX_MODEL_LENGTH && effective >= 0 {
            effective -= 1;
            // Python's `fewshot_ex[:effective]`: -1 drops the last one.
            used = if effective >= 0 {
                (effective as usize).min(shots.len())
            } else {
                shots.len().saturating_sub(1)
            };
            text = render(used)?;
            n_tokens = tok.encode_with(&text, ADD_SPECIAL_TOKENS)?.len();
        }
        let ids = encode_prompt(tok, &text, GSM8K_MAX_NEW_TOKENS)?;
        Ok(Prompt {
            text,
            ids,
            fewshot: shots[..used].to_vec(),
        })
    }

    pub fn ifeval_prompts(&self, tok: &TextTokenizer, docs: &[IfEvalDoc]) -> Result<Vec<Prompt>> {
        docs.iter()
            .map(|d| {
                let text = self.chat.prompt("", &[], &d.sample.prompt)?;
                Ok(Prompt {
                    ids: encode_prompt(tok, &text, IFEVAL_MAX_NEW_TOKENS)?,
                    text,
                    fewshot: Vec::new(),
                })
            })
            .collect()
    }
}

/// A generation prompt's tokens as lighteval's vLLM `greedy_until` passes
/// them: with special tokens, the last `2048 - max_new_tokens` kept.
pub fn encode_prompt(tok: &TextTokenizer, text: &str, max_new_tokens: usize) -> Result<Vec<u32>> {
    let ids = tok.encode_with(text, ADD_SPECIAL_TOKENS)?;
    let keep = MAX_MODEL_LENGTH.saturating_sub(max_new_tokens);
    if ids.len() + max_new_tokens > MAX_MODEL_LENGTH {
        return Ok(ids[ids.len() - keep.min(ids.len())..].to_vec());
    }
    Ok(ids)
}

/// The task's stop strings plus the eos token (vllm_model.py:188).
fn with_eos(stops: &[&str], tok: &TextTokenizer) -> Vec<String> {
    let mut v: Vec<String> = stops.iter().map(|s| (*s).to_owned()).collect();
    if let Some(eos) = &tok.eos_token {
        v.push(eos.clone());
    }
    v
}

pub fn gsm8k_generation(tok: &TextTokenizer) -> Generation {
    Generation {
        until: with_eos(&GSM8K_STOP, tok),
        max_new_tokens: GSM8K_MAX_NEW_TOKENS,
    }
}

pub fn ifeval_generation(tok: &TextTokenizer) -> Generation {
    Generation {
        until: with_eos(&[], tok),
        max_new_tokens: IFEVAL_MAX_NEW_TOKENS,
    }
}

/// lighteval's `gsm8k_normalizer` (metrics/normalizations.py:341-361):
/// the first `#### (\-?[0-9\.\,]+)` match's group, stripped, commas
/// removed; `[invalid]` when nothing matches.
pub fn gsm8k_normalizer(text: &str) -> String {
    match crate::gsm8k::strict_re().captures(text) {
        Some(c) => py_strip(c.get(1).map_or("", |m| m.as_str())).replace(',', ""),
        None => crate::gsm8k::INVALID.to_owned(),
    }
}

/// `quasi_exact_match_gsm8k`: `ExactMatches(strip_strings=True,
/// normalize_pred=gsm8k_normalizer, normalize_gold=gsm8k_normalizer)`
/// (metrics_sample.py:110-140): an empty response scores 0; otherwise
/// both stripped, normalised and compared. The gold is the task's target,
/// `" " + answer`.
pub fn gsm8k_score(response: &str, answer: &str) -> Gsm8kScore {
    let gold = gsm8k_normalizer(py_strip(&format!(" {answer}")));
    let pred = gsm8k_normalizer(py_strip(response));
    let correct = !response.is_empty() && pred == gold;
    Gsm8kScore {
        filters: vec![FilterScore {
            filter: "strict",
            metric: "exact_match_strict",
            extracted: pred,
            correct,
        }],
        gold,
    }
}
