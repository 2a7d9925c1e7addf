//! Evaluation conventions: whose prompts, tokenisation, few-shot picks,
//! generation settings and metrics a task follows.
//!
//! The runner never asks which convention is on; it asks a [`Layer`] for
//! each of those things and the layer answers as its convention does:
//!
//! - [`lm_eval`]: lm-evaluation-harness, task by task (its YAMLs, its HF
//!   backend's `_encode_pair`, `random.Random(1234)` few-shot draws);
//! - [`smollm2`]: lighteval at commit ea46419a as SmolLM2's evaluation ran
//!   it (`--use_chat_template`, the vLLM backend, max_model_length 2048),
//!   the convention of the SmolTulu paper's tables.
//!
//! Two pieces of the `smollm2` convention are for any task to use, not
//! only the ones here: [`ChatWrap::prompt`] (a query, with few-shot
//! examples as user/assistant turns, in the model's own chat template, as
//! lighteval's `PromptManager` writes it) and [`tok_encode_pair`]
//! (lighteval's tokenisation of a (context, continuation) request, which
//! moves the context's trailing whitespace onto the continuation), with
//! [`acc_norm_nospace`], the acc_norm lighteval's `*_nospace` metrics take.

use smolsweep_model::{ChatTemplate, Message, TextTokenizer};

use crate::error::{EvalError, Result};
use crate::loglik::Encoded;
use crate::tasks::{Gsm8kDoc, IfEvalDoc, McDoc};
use crate::text::py_rstrip;

pub mod lm_eval;
pub mod smollm2;

pub use smolsweep_config::Convention;

/// How one task's generation requests are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Stop strings, as the convention's engine received them (the engine
    /// adds the eos token's text when it is missing).
    pub until: Vec<String>,
    pub max_new_tokens: usize,
}

/// A generation prompt ready for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub text: String,
    /// Its tokens, as the convention's engine encodes (and truncates) them.
    pub ids: Vec<u32>,
    /// Few-shot examples used (rows of the few-shot pool), in prompt order.
    pub fewshot: Vec<usize>,
}

/// One GSM8K answer, scored by each of the convention's filters; the
/// first is the headline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gsm8kScore {
    pub filters: Vec<FilterScore>,
    /// The reference answer as compared.
    pub gold: String,
}

/// One filter's answer and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterScore {
    /// The filter's short name in samples.jsonl (`strict`, `flexible`).
    pub filter: &'static str,
    /// The metric it feeds in results.json.
    pub metric: &'static str,
    pub extracted: String,
    pub correct: bool,
}

/// A convention, ready to answer for one model.
#[derive(Debug)]
pub enum Layer {
    LmEval(lm_eval::LmEval),
    Smollm2(smollm2::Smollm2),
}

impl Layer {
    /// The layer for `convention` on a model with tokenizer `tok`.
    /// `chat_template` is lm-eval's `--apply_chat_template`; `smollm2`
    /// always wraps prompts in the model's template, as SmolLM2 ran it.
    pub fn new(convention: Convention, tok: &TextTokenizer, chat_template: bool) -> Result<Self> {
        Ok(match convention {
            Convention::LmEval => Layer::LmEval(lm_eval::LmEval::new(tok, chat_template)?),
            Convention::Smollm2 => Layer::Smollm2(smollm2::Smollm2::new(tok)?),
        })
    }

    pub fn convention(&self) -> Convention {
        match self {
            Layer::LmEval(_) => Convention::LmEval,
            Layer::Smollm2(_) => Convention::Smollm2,
        }
    }

    /// Whether prompts go through the model's chat template.
    pub fn uses_chat_template(&self) -> bool {
        match self {
            Layer::LmEval(l) => l.format.is_chat(),
            Layer::Smollm2(_) => true,
        }
    }

    /// (context, continuation) for each choice of a question, before
    /// tokenisation.
    pub fn mc_requests(&self, doc: &McDoc) -> Result<Vec<(String, String)>> {
        match self {
            Layer::LmEval(l) => l.format.mc_requests(doc),
            Layer::Smollm2(s) => s.mc_requests(doc),
        }
    }

    /// A request's tokens.
    pub fn encode_pair(&self, tok: &TextTokenizer, context: &str, cont: &str) -> Result<Encoded> {
        match self {
            Layer::LmEval(_) => crate::loglik::encode_pair(tok, context, cont),
            Layer::Smollm2(_) => tok_encode_pair(tok, context, cont, smollm2::ADD_SPECIAL_TOKENS),
        }
    }

    /// (acc prediction, acc_norm prediction) from each choice's
    /// log-likelihood.
    pub fn mc_predictions(&self, doc: &McDoc, lls: &[f64]) -> (usize, usize) {
        match self {
            Layer::LmEval(_) => lm_eval::mc_predictions(lls, &doc.choices),
            Layer::Smollm2(_) => (argmax(lls), acc_norm_nospace(lls, &doc.lighteval.choices)),
        }
    }

    /// GSM8K's prompts, one per document in document order. `k` and
    /// `seed` are lm-eval's; `smollm2` draws from its own `Random(42)`.
    pub fn gsm8k_prompts(
        &self,
        tok: &TextTokenizer,
        docs: &[Gsm8kDoc],
        fewshot: &[Gsm8kDoc],
        k: usize,
        seed: u64,
    ) -> Result<Vec<Prompt>> {
        match self {
            Layer::LmEval(l) => l.gsm8k_prompts(tok, docs, fewshot, k, seed),
            Layer::Smollm2(s) => s.gsm8k_prompts(tok, docs, fewshot, k),
        }
    }

    pub fn gsm8k_generation(&self, tok: &TextTokenizer) -> Generation {
        match self {
            Layer::LmEval(_) => lm_eval::gsm8k_generation(),
            Layer::Smollm2(_) => smollm2::gsm8k_generation(tok),
        }
    }

    pub fn gsm8k_score(&self, response: &str, answer: &str) -> Gsm8kScore {
        match self {
            Layer::LmEval(_) => lm_eval::gsm8k_score(response, answer),
            Layer::Smollm2(_) => smollm2::gsm8k_score(response, answer),
        }
    }

    /// IFEval's prompts, one per document.
    pub fn ifeval_prompts(&self, tok: &TextTokenizer, docs: &[IfEvalDoc]) -> Result<Vec<Prompt>> {
        match self {
            Layer::LmEval(l) => l.ifeval_prompts(tok, docs),
            Layer::Smollm2(s) => s.ifeval_prompts(tok, docs),
        }
    }

    pub fn ifeval_generation(&self, tok: &TextTokenizer) -> Generation {
        match self {
            Layer::LmEval(_) => lm_eval::ifeval_generation(),
            Layer::Smollm2(_) => smollm2::ifeval_generation(tok),
        }
    }
}

/// A model's chat template with its special tokens: the wrapping of the
/// `smollm2` convention.
#[derive(Debug)]
pub struct ChatWrap {
    template: Box<ChatTemplate>,
    bos: String,
    eos: String,
}

impl ChatWrap {
    /// The model's own template (an error when the model has none).
    pub fn of_model(tok: &TextTokenizer) -> Result<Self> {
        Ok(ChatWrap {
            template: Box::new(tok.model_chat_template()?),
            bos: tok.bos_token.clone().unwrap_or_default(),
            eos: tok.eos_token.clone().unwrap_or_default(),
        })
    }

    /// A template of one's own (tests).
    pub fn new(template: ChatTemplate, bos: &str, eos: &str) -> Self {
        ChatWrap {
            template: Box::new(template),
            bos: bos.to_owned(),
            eos: eos.to_owned(),
        }
    }

    /// lighteval's `PromptManager.get_examples` with `use_chat_template`
    /// and no system prompt (lighteval/tasks/prompt_manager.py:227-256 at
    /// ea46419a): each few-shot example a user turn (its query) and an
    /// assistant turn (its gold target, as the task writes it, leading
    /// space included), then `query` as the last user turn; `instruction`
    /// goes in front of the first turn's text; the template's generation
    /// prompt is on. The template supplies its default system prompt when
    /// it has one (SmolLM2's does). `query` and the examples' queries are
    /// without the instruction (lighteval's `doc_to_text`).
    pub fn prompt(&self, instruction: &str, shots: &[(&str, &str)], query: &str) -> Result<String> {
        let mut turns = Vec::with_capacity(2 * shots.len() + 1);
        for (q, a) in shots {
            turns.push(Message::new("user", q));
            turns.push(Message::new("assistant", a));
        }
        turns.push(Message::new("user", query));
        if !instruction.is_empty() {
            turns[0].content = format!("{instruction}{}", turns[0].content);
        }
        Ok(self.template.render(&turns, true, &self.bos, &self.eos)?)
    }
}

/// lighteval's `LightevalModel.tok_encode_pair` (non-pairwise; lighteval/
/// models/abstract_model.py:162-209 at ea46419a) with its vLLM backend's
/// empty-context rule (models/vllm_model.py:325-327): the context's
/// trailing whitespace moves to the front of the continuation;
/// `whole = encode(context + continuation)`, `context_enc =
/// encode(context)`, both with `add_special_tokens`; when the
/// continuation merged into the context's last token (equal lengths) that
/// token is scored as the continuation; the continuation is
/// `whole[len(context_enc):]`. An empty context is the eos token.
pub fn tok_encode_pair(
    tok: &TextTokenizer,
    context: &str,
    continuation: &str,
    add_special_tokens: bool,
) -> Result<Encoded> {
    if context.is_empty() {
        let eos = tok.eos_id().ok_or_else(|| {
            EvalError::Engine("an empty context needs the model's eos token".into())
        })?;
        return Ok(Encoded {
            context: vec![eos],
            continuation: tok.encode_with(continuation, add_special_tokens)?,
        });
    }
    let stripped = py_rstrip(context);
    let moved = format!("{}{continuation}", &context[stripped.len()..]);
    let whole = tok.encode_with(&format!("{stripped}{moved}"), add_special_tokens)?;
    let mut context_enc = tok.encode_with(stripped, add_special_tokens)?;
    if context_enc.len() == whole.len() {
        context_enc = whole[..whole.len().saturating_sub(1)].to_vec();
    }
    let continuation_enc = whole.get(context_enc.len()..).unwrap_or(&[]).to_vec();
    if context_enc.is_empty() {
        // Nothing to condition on (a context of whitespace only): score
        // after the eos token, as the empty-context rule does.
        return tok_encode_pair(tok, "", &moved, add_special_tokens);
    }
    Ok(Encoded {
        context: context_enc,
        continuation: continuation_enc,
    })
}

/// numpy's `argmax`: the first maximum.
pub fn argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// lighteval's `LogProbCharNorm(ignore_first_space=True)` then argmax
/// (metrics/normalizations.py:469-474 at ea46419a): each log-likelihood
/// over the choice's length in characters, minus one when the choice
/// starts with a space. The divisor is the choice text, whatever the
/// tokeniser scored (the moved `\n` is scored but not counted).
pub fn acc_norm_nospace(lls: &[f64], choices: &[String]) -> usize {
    let norm: Vec<f64> = lls
        .iter()
        .zip(choices)
        .map(|(l, c)| {
            let n = c.chars().count();
            let n = if c.starts_with(' ') { n - 1 } else { n };
            l / n as f64
        })
        .collect();
    argmax(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acc_norm_leaves_out_a_leading_space_only() {
        // " ab": 2 characters; "cd": 2; " é": 1 (one code point).
        let choices = vec![" ab".to_owned(), "cd".to_owned(), " é".to_owned()];
        assert_eq!(acc_norm_nospace(&[-2.0, -3.0, -1.5], &choices), 0);
        assert_eq!(acc_norm_nospace(&[-2.0, -1.0, -1.5], &choices), 1);
        assert_eq!(acc_norm_nospace(&[-2.0, -3.0, -0.9], &choices), 2);
        assert_eq!(argmax(&[1.0, 1.0]), 0);
    }

    #[test]
    fn chat_prompt_turns_and_instruction() {
        let chat = ChatWrap::new(
            ChatTemplate::builtin("chatml").expect("chatml"),
            "",
            "<|im_end|>",
        );
        let p = chat
            .prompt("Intro.\n", &[("Q1", " A1")], "Q2")
            .expect("prompt");
        assert!(p.contains("<|im_start|>user\nIntro.\nQ1<|im_end|>"), "{p}");
        assert!(p.contains("<|im_start|>assistant\n A1<|im_end|>"), "{p}");
        assert!(
            p.ends_with("<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"),
            "{p}"
        );
    }
}
