//! The pieces of lighteval@ea46419a's `--use_chat_template` path that
//! MMLU-Pro and BBH need under the `smollm2` convention: the query as a
//! user turn after few-shot user/assistant pairs, generation prompt on
//! (`PromptManager.get_examples`); `tok_encode_pair`, which moves the
//! context's trailing whitespace onto the continuation and encodes with
//! the tokenizer's special tokens (`add_special_tokens=True`; SmolLM2's
//! adds none); and the 2048-token `max_model_length` SmolLM2 ran vLLM with.

use smolsweep_model::{LoadedModel, Message, TextTokenizer};

use crate::error::Result;
use crate::loglik::Encoded;
use crate::tasks::PromptFormat;
use crate::text::py_rstrip;

/// `max_model_length` of SmolLM2's lighteval runs.
pub const SMOLLM2_MAX_MODEL_LENGTH: usize = 2048;

/// The stop strings lighteval's vLLM backend received for SmolLM2's
/// generative tasks: the task's `stop_sequence` (the eos text is added
/// by the generation engine).
pub const SMOLLM2_STOP: [&str; 2] = ["Question:", "Question"];

/// The context window: the model's, at most SmolLM2's 2048.
pub fn max_model_length(m: &LoadedModel) -> usize {
    m.model
        .config
        .max_position_embeddings
        .min(SMOLLM2_MAX_MODEL_LENGTH)
}

/// `get_examples` with `use_chat_template`: each (query, target) example a
/// user then an assistant turn, then `query` as the last user turn.
pub fn wrap(format: &PromptFormat, shots: &[(String, String)], query: &str) -> Result<String> {
    let mut turns = Vec::with_capacity(2 * shots.len() + 1);
    for (q, a) in shots {
        turns.push(Message::new("user", q));
        turns.push(Message::new("assistant", a));
    }
    turns.push(Message::new("user", query));
    format.render_turns(&turns)
}

/// lighteval's `tok_encode_pair`.
pub fn tok_encode_pair(tok: &TextTokenizer, context: &str, continuation: &str) -> Result<Encoded> {
    let stripped = py_rstrip(context);
    let (context, continuation) = (
        stripped,
        format!("{}{continuation}", &context[stripped.len()..]),
    );
    let whole = tok.encode_with(&format!("{context}{continuation}"), true)?;
    let context_enc = tok.encode_with(context, true)?;
    Ok(Encoded {
        continuation: whole.get(context_enc.len()..).unwrap_or(&[]).to_vec(),
        context: context_enc,
    })
}
