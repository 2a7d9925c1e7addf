//! The log-likelihood engine: for (context, continuation) requests, the
//! summed log-probability of the continuation and whether greedy decoding
//! would have produced it, as lm-evaluation-harness's HF backend computes
//! them (`HFLM._loglikelihood_tokens`).
//!
//! Tokenisation is lm-eval's `_encode_pair`: trailing whitespace of the
//! context moves to the front of the continuation, `whole =
//! encode(context + continuation)`, `context_enc = encode(context)` and the
//! continuation is `whole[len(context_enc):]`; no special tokens are added
//! (lm-eval's `add_bos_token` is off). An empty context becomes the
//! model's prefix token (bos, else eos), as lm-eval does.
//!
//! The model input for a request is `context_enc + continuation_enc`
//! (minus its last token), so every choice of a question starts with the
//! same `context_enc`. Instead of running that shared context once per
//! choice, each question becomes one packed row: the context once, then
//! every continuation, with an attention mask that lets each continuation
//! see the context and itself only, and RoPE positions that restart after
//! the context for each continuation. That is the same computation as
//! lm-eval's separate rows up to float rounding, for a fraction of the
//! work (HellaSwag's context is most of its tokens). Only the positions
//! that predict continuation tokens go through the 49152-wide LM head.
//!
//! Rows are sorted longest first (lm-eval's order, so the first batch
//! shows the worst-case memory) and batched.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use smolsweep_model::{llama::AttnMask, Llama, TextTokenizer};
use tch::{Device, Kind, Tensor};

use crate::error::EvalError;
use crate::text::py_rstrip;

/// One request's result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Sum of the continuation tokens' log-probabilities.
    pub loglik: f64,
    /// Every continuation token is the argmax of its position's logits.
    pub is_greedy: bool,
}

/// A request after tokenisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub context: Vec<u32>,
    pub continuation: Vec<u32>,
}

/// How many rows go through the model at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    /// Rows up to a token budget (rows x longest row): 4096 tokens on the
    /// CPU, 65536 on a GPU.
    Auto,
    /// This many rows (questions, or prompts for generation) per batch.
    Fixed(usize),
}

impl std::str::FromStr for BatchSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(BatchSize::Auto);
        }
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(BatchSize::Fixed(n)),
            _ => Err(format!("`{s}`: expected `auto` or a positive integer")),
        }
    }
}

/// lm-eval's `prefix_token_id`: bos, else eos (0 if neither exists).
pub fn prefix_token_id(tok: &TextTokenizer) -> u32 {
    tok.bos_id().or_else(|| tok.eos_id()).unwrap_or(0)
}

/// lm-eval's `_encode_pair` (and its empty-context rule).
pub fn encode_pair(
    tok: &TextTokenizer,
    context: &str,
    continuation: &str,
) -> Result<Encoded, EvalError> {
    if context.is_empty() {
        return Ok(Encoded {
            context: vec![prefix_token_id(tok)],
            continuation: tok.encode_with(continuation, false)?,
        });
    }
    let stripped = py_rstrip(context);
    let (context, continuation) = if stripped.len() < context.len() {
        (
            stripped.to_owned(),
            format!("{}{continuation}", &context[stripped.len()..]),
        )
    } else {
        (context.to_owned(), continuation.to_owned())
    };
    let whole = tok.encode_with(&format!("{context}{continuation}"), false)?;
    let context_enc = tok.encode_with(&context, false)?;
    let continuation_enc = whole.get(context_enc.len()..).unwrap_or(&[]).to_vec();
    Ok(Encoded {
        context: context_enc,
        continuation: continuation_enc,
    })
}

/// One packed row: a shared context, then each continuation.
struct Row {
    prefix: Vec<u32>,
    /// (request index, continuation tokens)
    conts: Vec<(usize, Vec<u32>)>,
}

impl Row {
    fn len(&self) -> usize {
        self.prefix.len() + self.conts.iter().map(|(_, c)| c.len()).sum::<usize>()
    }
}

/// Groups requests by identical context into rows, truncating the context
/// from the left where lm-eval's window (`max_length + 1` tokens of
/// context + continuation) would.
fn pack(reqs: &[Encoded], max_length: usize) -> Result<Vec<Row>, EvalError> {
    let mut by_ctx: HashMap<&[u32], usize> = HashMap::new();
    let mut rows: Vec<Row> = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        if r.continuation.is_empty() {
            continue;
        }
        if r.continuation.len() > max_length {
            return Err(EvalError::Engine(format!(
                "a continuation of {} tokens does not fit the model's {} positions",
                r.continuation.len(),
                max_length
            )));
        }
        let g = *by_ctx.entry(&r.context).or_insert_with(|| {
            rows.push(Row {
                prefix: r.context.clone(),
                conts: Vec::new(),
            });
            rows.len() - 1
        });
        rows[g].conts.push((i, r.continuation.clone()));
    }
    for row in &mut rows {
        let longest = row.conts.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
        let keep = (max_length + 1 - longest).min(row.prefix.len());
        if keep < row.prefix.len() {
            tracing::debug!(
                dropped = row.prefix.len() - keep,
                "context truncated from the left"
            );
            row.prefix.drain(..row.prefix.len() - keep);
        }
    }
    Ok(rows)
}

/// Scores every request; results are in request order. An empty
/// continuation scores 0 and counts as greedy.
pub fn score(
    model: &Llama,
    max_length: usize,
    reqs: &[Encoded],
    batch: BatchSize,
) -> Result<Vec<Score>, EvalError> {
    let _guard = tch::no_grad_guard();
    let mut out = vec![
        Score {
            loglik: 0.0,
            is_greedy: true
        };
        reqs.len()
    ];
    let mut rows = pack(reqs, max_length)?;
    // Longest first; ties by tokens, for a deterministic order.
    rows.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.prefix.cmp(&b.prefix)));
    let budget = if model.device() == Device::Cpu {
        4096
    } else {
        65536
    };
    let mut start = 0;
    while start < rows.len() {
        let longest = rows[start].len().max(1);
        let n = match batch {
            BatchSize::Fixed(n) => n,
            BatchSize::Auto => (budget / longest).max(1),
        }
        .min(rows.len() - start);
        score_batch(model, &rows[start..start + n], &mut out)?;
        start += n;
    }
    Ok(out)
}

fn score_batch(model: &Llama, rows: &[Row], out: &mut [Score]) -> Result<(), EvalError> {
    let device = model.device();
    let b = rows.len();
    let t = rows.iter().map(Row::len).max().unwrap_or(1).max(1);
    let mut ids = vec![0i64; b * t];
    let mut pos = vec![0i64; b * t];
    let mut mask = vec![false; b * t * t];
    // Flat hidden-state index predicting each scored token, its target,
    // and the request it belongs to.
    let mut query: Vec<i64> = Vec::new();
    let mut target: Vec<i64> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let base = r * t;
        let p = row.prefix.len();
        // seg[j]: 0 for the shared context, k+1 for continuation k.
        let mut seg = Vec::with_capacity(row.len());
        for (j, &tok) in row.prefix.iter().enumerate() {
            ids[base + j] = i64::from(tok);
            pos[base + j] = j as i64;
            seg.push(0usize);
        }
        let mut at = p;
        for (k, (req, cont)) in row.conts.iter().enumerate() {
            for (m, &tok) in cont.iter().enumerate() {
                ids[base + at + m] = i64::from(tok);
                pos[base + at + m] = (p + m) as i64;
                seg.push(k + 1);
                // Token m is predicted by the position before it: the last
                // context token for m = 0.
                let q = if m == 0 { p - 1 } else { at + m - 1 };
                query.push((base + q) as i64);
                target.push(i64::from(tok));
                owner.push(*req);
            }
            at += cont.len();
        }
        let len = seg.len();
        for q in 0..t {
            let m = &mut mask[(r * t + q) * t..(r * t + q + 1) * t];
            if q >= len {
                // Padding sees itself only, so its softmax row is not empty.
                m[q] = true;
                continue;
            }
            for k in 0..=q {
                m[k] = seg[k] == 0 || seg[k] == seg[q];
            }
        }
    }
    let bt = [b as i64, t as i64];
    let ids_t = Tensor::from_slice(&ids).view(bt).to_device(device);
    let pos_t = Tensor::from_slice(&pos).view(bt).to_device(device);
    let mask_t = Tensor::from_slice(&mask)
        .view([b as i64, 1, t as i64, t as i64])
        .to_device(device);
    let hidden = model.forward_hidden(&ids_t, &pos_t, AttnMask::Explicit(&mask_t), None)?;
    let d = hidden.size()[2];
    let flat = hidden.reshape([-1, d]);
    // The LM head in chunks: [chunk, vocab] fp32 logits at a time.
    const CHUNK: usize = 1024;
    let mut logp: Vec<f32> = Vec::with_capacity(query.len());
    let mut greedy: Vec<bool> = Vec::with_capacity(query.len());
    for (qs, ts) in query.chunks(CHUNK).zip(target.chunks(CHUNK)) {
        let qi = Tensor::from_slice(qs).to_device(device);
        let ti = Tensor::from_slice(ts).to_device(device);
        let lp = model
            .logits(&flat.index_select(0, &qi))
            .log_softmax(-1, Kind::Float);
        let picked = lp.gather(-1, &ti.unsqueeze(-1), false).squeeze_dim(-1);
        let is_max = lp.argmax(-1, false).eq_tensor(&ti);
        logp.extend(Vec::<f32>::try_from(picked.to_device(Device::Cpu))?);
        greedy.extend(Vec::<bool>::try_from(is_max.to_device(Device::Cpu))?);
    }
    for ((req, lp), g) in owner.iter().zip(logp).zip(greedy) {
        out[*req].loglik += f64::from(lp);
        out[*req].is_greedy &= g;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smolsweep_model::llama::InitMode;
    use smolsweep_model::LlamaConfig;

    fn tiny() -> Llama {
        Llama::new(
            LlamaConfig::tiny(97),
            Device::Cpu,
            Kind::Float,
            InitMode::Random { seed: 3 },
        )
        .expect("model")
    }

    /// The packed, shared-context computation equals scoring each request
    /// on its own with a plain causal forward (lm-eval's way).
    #[test]
    fn packed_rows_equal_separate_forwards() {
        let m = tiny();
        let reqs = vec![
            Encoded {
                context: vec![5, 6, 7, 8],
                continuation: vec![9, 10],
            },
            Encoded {
                context: vec![5, 6, 7, 8],
                continuation: vec![11],
            },
            Encoded {
                context: vec![5, 6, 7, 8],
                continuation: vec![12, 13, 14],
            },
            Encoded {
                context: vec![1, 2],
                continuation: vec![3, 4, 5, 6, 7],
            },
            Encoded {
                context: vec![40],
                continuation: vec![],
            },
        ];
        for batch in [BatchSize::Fixed(1), BatchSize::Auto] {
            let got = score(&m, 64, &reqs, batch).expect("score");
            for (r, s) in reqs.iter().zip(&got) {
                let mut all = r.context.clone();
                all.extend(&r.continuation);
                let lps = m.token_logprobs(&all).expect("logprobs");
                let want: f64 = lps[r.context.len() - 1..]
                    .iter()
                    .map(|&x| f64::from(x))
                    .sum();
                assert!((s.loglik - want).abs() < 1e-4, "{} vs {want}", s.loglik);
            }
            assert_eq!(got[4].loglik, 0.0);
        }
    }

    #[test]
    fn greedy_flag_matches_argmax() {
        let m = tiny();
        // Greedy-decode a continuation, then score it: it must be greedy.
        let ctx = vec![7u32, 8, 9];
        let mut seq = ctx.clone();
        for _ in 0..3 {
            let x = Tensor::from_slice(&seq.iter().map(|&i| i64::from(i)).collect::<Vec<_>>())
                .unsqueeze(0);
            let logits = m.forward(&x).expect("forward");
            let next = logits.get(0).get(seq.len() as i64 - 1).argmax(-1, false);
            seq.push(next.int64_value(&[]) as u32);
        }
        let greedy = Encoded {
            context: ctx.clone(),
            continuation: seq[3..].to_vec(),
        };
        let mut other = greedy.clone();
        other.continuation[1] = (other.continuation[1] + 1) % 97;
        let s = score(&m, 64, &[greedy, other], BatchSize::Auto).expect("score");
        assert!(s[0].is_greedy);
        assert!(!s[1].is_greedy);
    }

    #[test]
    fn batch_size_parses() {
        assert_eq!("auto".parse::<BatchSize>(), Ok(BatchSize::Auto));
        assert_eq!("8".parse::<BatchSize>(), Ok(BatchSize::Fixed(8)));
        assert!("0".parse::<BatchSize>().is_err());
    }
}
