//! Batched greedy generation with the KV cache.
//!
//! Prompts of different lengths are left-padded into one batch; each row
//! gets its own RoPE positions (counting only its real tokens) and a mask
//! that hides its padding. A row stops at an end-of-sequence token, at the
//! first stop string in its decoded text, or at the token limit; the batch
//! stops when every row has.

use tch::{Device, Kind, Tensor};

use crate::error::{ModelError, Result};
use crate::llama::{AttnMask, KvCache, Llama};
use crate::tokenizer::TextTokenizer;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// Strings that end a generation; the text is cut before the first one.
    pub stop_strings: Vec<String>,
    /// Token ids that end a generation (not included in the output).
    pub stop_token_ids: Vec<u32>,
    /// Use the KV cache (false recomputes the whole sequence each step:
    /// slow, kept as the reference the cache is tested against).
    pub use_cache: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 256,
            stop_strings: Vec::new(),
            stop_token_ids: Vec::new(),
            use_cache: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Eos,
    StopString,
    Length,
}

/// One row's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Generated ids, without the end-of-sequence token.
    pub token_ids: Vec<u32>,
    /// Decoded text, cut before the first stop string.
    pub text: String,
    pub stop_reason: StopReason,
}

/// One row's stop rules, shared by [`generate`] and by callers that
/// schedule rows themselves (continuous batching), so that both stop at
/// the same token.
#[derive(Debug)]
pub struct StopRules<'a> {
    tokenizer: &'a TextTokenizer,
    opts: &'a GenerateOptions,
    stop_ids: Vec<i64>,
    longest_stop: usize,
}

impl<'a> StopRules<'a> {
    pub fn new(tokenizer: &'a TextTokenizer, opts: &'a GenerateOptions) -> Self {
        StopRules {
            tokenizer,
            opts,
            stop_ids: opts.stop_token_ids.iter().map(|&i| i64::from(i)).collect(),
            longest_stop: opts.stop_strings.iter().map(|s| s.len()).max().unwrap_or(0),
        }
    }

    /// Takes the row's next greedy token `tok`; returns why the row stops
    /// here, if it does (an end-of-sequence id is not kept).
    pub fn push(&self, out: &mut Vec<u32>, tok: i64) -> Result<Option<StopReason>> {
        if self.stop_ids.contains(&tok) {
            return Ok(Some(StopReason::Eos));
        }
        out.push(tok as u32);
        if self.longest_stop > 0 {
            // A new stop string can only end in the last few tokens;
            // decoding a window keeps this linear in the output length.
            let window = &out[out.len().saturating_sub(self.longest_stop + 2)..];
            let tail = self.tokenizer.decode(window, false)?;
            if self
                .opts
                .stop_strings
                .iter()
                .any(|s| tail.contains(s.as_str()))
            {
                return Ok(Some(StopReason::StopString));
            }
        }
        if out.len() >= self.opts.max_new_tokens {
            return Ok(Some(StopReason::Length));
        }
        Ok(None)
    }

    /// The row's result: its text decoded and cut before the first stop
    /// string.
    pub fn finish(&self, token_ids: Vec<u32>, reason: Option<StopReason>) -> Result<Generation> {
        let mut text = self.tokenizer.decode(&token_ids, false)?;
        let mut stop_reason = reason.unwrap_or(StopReason::Length);
        if let Some(cut) = self
            .opts
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(cut);
            stop_reason = StopReason::StopString;
        }
        Ok(Generation {
            token_ids,
            text,
            stop_reason,
        })
    }
}

/// Boolean mask `[B, 1, T, S]` for `t` queries at the end of `s` keys:
/// causal, padding hidden, and each query always sees itself so that no
/// row of the softmax is empty (an empty row gives NaN, which would leak
/// through `0 * NaN` into the real rows of later layers).
fn padded_mask(valid: &Tensor, t: i64) -> Tensor {
    let s = valid.size()[1];
    let device = valid.device();
    let qi = Tensor::arange_start(s - t, s, (Kind::Int64, device)).unsqueeze(1);
    let ki = Tensor::arange(s, (Kind::Int64, device)).unsqueeze(0);
    let causal = ki.le_tensor(&qi); // [t, s]
    let diag = ki.eq_tensor(&qi);
    let m = causal.unsqueeze(0).logical_and(&valid.unsqueeze(1)); // [B, t, s]
    m.logical_or(&diag.unsqueeze(0)).unsqueeze(1)
}

/// Greedy-decodes every prompt (token ids) as one batch.
pub fn generate(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
) -> Result<Vec<Generation>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(ModelError::Generate(format!("prompt #{i} is empty")));
    }
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let b = prompts.len() as i64;
    let lmax = prompts.iter().map(Vec::len).max().unwrap_or(0) as i64;
    let pad = tokenizer.pad_id() as i64;
    let mut ids = vec![pad; (b * lmax) as usize];
    let mut valid = vec![false; (b * lmax) as usize];
    let mut pos = vec![0i64; (b * lmax) as usize];
    for (r, p) in prompts.iter().enumerate() {
        let off = lmax as usize - p.len();
        for (j, &tok) in p.iter().enumerate() {
            let k = r * lmax as usize + off + j;
            ids[k] = tok as i64;
            valid[k] = true;
            pos[k] = j as i64;
        }
    }
    let padded = prompts.iter().any(|p| p.len() as i64 != lmax);
    let mut seq = Tensor::from_slice(&ids).view([b, lmax]).to_device(device);
    let mut valid_t = Tensor::from_slice(&valid).view([b, lmax]).to_device(device);
    let positions = Tensor::from_slice(&pos).view([b, lmax]).to_device(device);
    let mut next_pos: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();

    let max_new = opts.max_new_tokens as i64;
    let mut cache = opts
        .use_cache
        .then(|| KvCache::new(model, b, lmax + max_new.max(1)));
    let rules = StopRules::new(tokenizer, opts);
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut reason: Vec<Option<StopReason>> = vec![None; prompts.len()];
    if max_new == 0 {
        reason
            .iter_mut()
            .for_each(|r| *r = Some(StopReason::Length));
    }

    // Prefill.
    let mask = padded.then(|| padded_mask(&valid_t, lmax));
    let hidden = model.forward_hidden(
        &seq,
        &positions,
        mask.as_ref().map_or(AttnMask::Causal, AttnMask::Explicit),
        cache.as_mut(),
    )?;
    let mut last_hidden = hidden.narrow(1, lmax - 1, 1);
    let mut all_positions = positions;

    for step in 0..max_new {
        let next: Vec<i64> = Vec::<i64>::try_from(
            model
                .logits(&last_hidden)
                .squeeze_dim(1)
                .argmax(-1, false)
                .to_device(Device::Cpu),
        )?;
        for (r, &tok) in next.iter().enumerate() {
            if reason[r].is_none() {
                reason[r] = rules.push(&mut out[r], tok)?;
            }
        }
        if reason.iter().all(Option::is_some) || step + 1 == max_new {
            break;
        }
        let next_t = Tensor::from_slice(&next).view([b, 1]).to_device(device);
        let step_pos = Tensor::from_slice(&next_pos).view([b, 1]).to_device(device);
        next_pos.iter_mut().for_each(|p| *p += 1);
        valid_t = Tensor::cat(&[&valid_t, &Tensor::ones([b, 1], (Kind::Bool, device))], 1);
        let hidden = match cache.as_mut() {
            Some(c) => {
                let mask = padded.then(|| padded_mask(&valid_t, 1));
                model.forward_hidden(
                    &next_t,
                    &step_pos,
                    mask.as_ref().map_or(AttnMask::Full, AttnMask::Explicit),
                    Some(c),
                )?
            }
            None => {
                seq = Tensor::cat(&[&seq, &next_t], 1);
                all_positions = Tensor::cat(&[&all_positions, &step_pos], 1);
                let s = seq.size()[1];
                let mask = padded.then(|| padded_mask(&valid_t, s));
                model.forward_hidden(
                    &seq,
                    &all_positions,
                    mask.as_ref().map_or(AttnMask::Causal, AttnMask::Explicit),
                    None,
                )?
            }
        };
        let t = hidden.size()[1];
        last_hidden = hidden.narrow(1, t - 1, 1);
    }

    out.into_iter()
        .zip(reason)
        .map(|(token_ids, reason)| rules.finish(token_ids, reason))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LlamaConfig;
    use crate::llama::InitMode;

    fn setup() -> (Llama, TextTokenizer, tempfile::TempDir) {
        let dir = crate::tokenizer::tests::byte_tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tokenizer");
        let model = Llama::new(
            LlamaConfig::tiny(259),
            Device::Cpu,
            Kind::Float,
            InitMode::Random { seed: 11 },
        )
        .expect("model");
        (model, tok, dir)
    }

    fn prompts(tok: &TextTokenizer) -> Vec<Vec<u32>> {
        ["Hi", "The quick brown fox", "a", "12 + 30 ="]
            .iter()
            .map(|p| tok.encode(p).expect("encode"))
            .collect()
    }

    #[test]
    fn kv_cache_gives_the_same_tokens_as_full_recompute() {
        let (m, tok, _d) = setup();
        let opts = GenerateOptions {
            max_new_tokens: 12,
            ..Default::default()
        };
        let with = generate(&m, &tok, &prompts(&tok), &opts).expect("cached");
        let without = generate(
            &m,
            &tok,
            &prompts(&tok),
            &GenerateOptions {
                use_cache: false,
                ..opts
            },
        )
        .expect("uncached");
        assert_eq!(with, without);
        assert!(with.iter().all(|g| g.token_ids.len() == 12));
    }

    #[test]
    fn batched_equals_one_by_one() {
        let (m, tok, _d) = setup();
        let opts = GenerateOptions {
            max_new_tokens: 10,
            ..Default::default()
        };
        let ps = prompts(&tok);
        let batched = generate(&m, &tok, &ps, &opts).expect("batched");
        for (p, b) in ps.iter().zip(&batched) {
            let single = generate(&m, &tok, std::slice::from_ref(p), &opts).expect("single");
            assert_eq!(&single[0], b);
        }
    }

    #[test]
    fn stops_at_stop_strings_and_eos() {
        let (m, tok, _d) = setup();
        let ps = prompts(&tok);
        let free = generate(
            &m,
            &tok,
            &ps[..1],
            &GenerateOptions {
                max_new_tokens: 8,
                ..Default::default()
            },
        )
        .expect("free");
        let ids = &free[0].token_ids;
        // The third generated token as an end-of-sequence id.
        let eos = generate(
            &m,
            &tok,
            &ps[..1],
            &GenerateOptions {
                max_new_tokens: 8,
                stop_token_ids: vec![ids[2]],
                ..Default::default()
            },
        )
        .expect("eos");
        let first = ids.iter().position(|&t| t == ids[2]).expect("present");
        assert_eq!(eos[0].token_ids, ids[..first].to_vec());
        assert_eq!(eos[0].stop_reason, StopReason::Eos);
        // The text of the generation from its third char as a stop string.
        let text = &free[0].text;
        let stop: String = text.chars().skip(2).take(2).collect();
        if !stop.is_empty() {
            let cut = generate(
                &m,
                &tok,
                &ps[..1],
                &GenerateOptions {
                    max_new_tokens: 8,
                    stop_strings: vec![stop.clone()],
                    ..Default::default()
                },
            )
            .expect("stop");
            assert_eq!(cut[0].stop_reason, StopReason::StopString);
            assert_eq!(cut[0].text, text[..text.find(&stop).expect("found")]);
        }
    }

    #[test]
    fn empty_prompt_is_an_error() {
        let (m, tok, _d) = setup();
        assert!(generate(&m, &tok, &[vec![]], &GenerateOptions::default()).is_err());
    }
}
