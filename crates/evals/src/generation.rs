//! The generation engine: greedy decoding of many prompts with the model
//! crate's batched, KV-cached `generate`, in lm-eval's order (longest
//! prompt first) and with its output convention (the continuation decoded
//! without special tokens and cut at the first stop sequence).

use smolsweep_model::{generate, GenerateOptions, LoadedModel};
use tch::Device;

use crate::error::Result;
use crate::gsm8k::cut_at_stops;
use crate::loglik::BatchSize;

/// One prompt's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The text lm-eval would score.
    pub text: String,
    pub token_ids: Vec<u32>,
}

/// Greedy-decodes each prompt (token ids) up to `max_new_tokens`,
/// stopping at the model's end-of-sequence ids or any of `until`
/// (lm-eval adds the eos token's text to `until`; the eos id does the same
/// here). Prompts longer than `max_length - max_new_tokens` keep their
/// last tokens, as lm-eval's left truncation does.
pub fn generate_all(
    m: &LoadedModel,
    prompts: &[Vec<u32>],
    until: &[&str],
    max_new_tokens: usize,
    batch: BatchSize,
) -> Result<Vec<Output>> {
    let max_length = m.model.config.max_position_embeddings;
    let max_ctx = max_length.saturating_sub(max_new_tokens).max(1);
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
    let per_batch = match batch {
        BatchSize::Fixed(n) => n,
        BatchSize::Auto if m.model.device() == Device::Cpu => 8,
        BatchSize::Auto => 64,
    };
    let mut stop_strings: Vec<String> = until.iter().map(|s| (*s).to_owned()).collect();
    if let Some(eos) = &m.tokenizer.eos_token {
        if !stop_strings.contains(eos) {
            stop_strings.push(eos.clone());
        }
    }
    let opts = GenerateOptions {
        max_new_tokens,
        stop_strings: stop_strings.clone(),
        stop_token_ids: m.stop_token_ids(),
        use_cache: true,
    };
    let stops: Vec<&str> = stop_strings.iter().map(String::as_str).collect();
    let mut out: Vec<Option<Output>> = vec![None; prompts.len()];
    let total = order.len();
    for (b, chunk) in order.chunks(per_batch).enumerate() {
        let batch_prompts: Vec<Vec<u32>> = chunk
            .iter()
            .map(|&i| {
                let p = &prompts[i];
                p[p.len().saturating_sub(max_ctx)..].to_vec()
            })
            .collect();
        let t = std::time::Instant::now();
        let gens = generate::generate(&m.model, &m.tokenizer, &batch_prompts, &opts)?;
        tracing::debug!(
            batch = b,
            rows = chunk.len(),
            done = ((b * per_batch) + chunk.len()).min(total),
            total,
            secs = format!("{:.1}", t.elapsed().as_secs_f64()),
            "generated"
        );
        for (&i, g) in chunk.iter().zip(gens) {
            // lm-eval decodes with skip_special_tokens=True, then splits at
            // each stop sequence.
            let text = m.tokenizer.decode(&g.token_ids, true)?;
            out[i] = Some(Output {
                text: cut_at_stops(&text, &stops),
                token_ids: g.token_ids,
            });
        }
    }
    Ok(out.into_iter().flatten().collect())
}
