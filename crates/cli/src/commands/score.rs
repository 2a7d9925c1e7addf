//! `smolsweep score`: the tokenizer's ids for a text and each token's
//! log-probability given the ones before it, as one JSON object.

use anyhow::Result;

use super::load_model;
use crate::args::ScoreArgs;

pub fn run(a: &ScoreArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let ids = m.tokenizer.encode(&a.text)?;
    let logprobs = m.model.token_logprobs(&ids)?;
    println!(
        "{}",
        serde_json::json!({"token_ids": ids, "logprobs": logprobs})
    );
    Ok(())
}
