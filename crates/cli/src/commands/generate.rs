//! `smolsweep generate`: greedy completion of one or more prompts.

use anyhow::{Context, Result};
use smolsweep_model::{generate, ChatTemplate, GenerateOptions, Message};

use super::load_model;
use crate::args::GenerateArgs;

pub fn run(a: &GenerateArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let template = if a.chat {
        Some(match a.template.as_str() {
            "model" => m.tokenizer.model_chat_template()?,
            name => ChatTemplate::builtin(name)?,
        })
    } else {
        None
    };
    let bos = m.tokenizer.bos_token.clone().unwrap_or_default();
    let eos = m.tokenizer.eos_token.clone().unwrap_or_default();
    let prompts = a
        .prompt
        .iter()
        .map(|p| {
            let text = match &template {
                Some(t) => t.render(&[Message::new("user", p)], true, &bos, &eos)?,
                None => p.clone(),
            };
            Ok(m.tokenizer.encode(&text)?)
        })
        .collect::<Result<Vec<_>>>()
        .context("preparing prompts")?;
    let opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        stop_strings: a.stop.clone(),
        stop_token_ids: m.stop_token_ids(),
        use_cache: true,
    };
    let t = std::time::Instant::now();
    let out = generate::generate(&m.model, &m.tokenizer, &prompts, &opts)?;
    let n: usize = out.iter().map(|g| g.token_ids.len()).sum();
    tracing::info!(
        tokens = n,
        tokens_per_s = format!("{:.1}", n as f64 / t.elapsed().as_secs_f64()),
        "generated"
    );
    for g in out {
        if a.json {
            println!(
                "{}",
                serde_json::json!({"text": g.text, "token_ids": g.token_ids, "stop_reason": g.stop_reason})
            );
        } else {
            println!("{}", g.text);
        }
    }
    Ok(())
}
