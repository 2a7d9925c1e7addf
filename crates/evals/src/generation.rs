//! The generation engine: greedy decoding of many prompts, in lm-eval's
//! order (longest prompt first) and with its output convention (the
//! continuation decoded without special tokens and cut at the first stop
//! sequence). Each row has its own cap on new tokens: one for all
//! ([`MaxNew::Tokens`]) or what the context window leaves after its own
//! prompt ([`MaxNew::Window`], vLLM's rule for `max_tokens=None`).
//!
//! Prompts run by continuous batching ([`Engine::Continuous`]): a fixed
//! number of slots, each with its own rows of one KV cache; a row that
//! stops is replaced at once by the next prompt (the prompts admitted at
//! one step prefilled together, then copied into their slots), so a batch
//! never waits for its longest row, and every decoding
//! step advances every busy slot by one token at its own position. The
//! attention mask is one `[slots, capacity]` boolean buffer updated in
//! place (one element per row per step), never rebuilt. When the queue is
//! empty and half the slots or more are idle, the busy rows are gathered
//! into a smaller batch, so the tail does no work for idle rows.
//!
//! [`Engine::Static`] is the previous engine (fixed batches of
//! left-padded prompts, each batch running until its longest row ends),
//! kept for the benchmark's before/after figures. Both give the tokens
//! one-at-a-time greedy generation gives (tested).

use smolsweep_model::generate::StopRules;
use smolsweep_model::llama::AttnMask;
use smolsweep_model::{generate, GenerateOptions, Generation, KvCache, Llama, TextTokenizer};
use smolsweep_model::{LoadedModel, StopReason};
use tch::{Device, Kind, Tensor};

use crate::error::{EvalError, Result};
use crate::gsm8k::cut_at_stops;
use crate::loglik::BatchSize;

/// One prompt's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The text lm-eval would score.
    pub text: String,
    pub token_ids: Vec<u32>,
    /// Why generation ended (vLLM's finish_reason "stop" is `Eos` or
    /// `StopString`, "length" is `Length`).
    pub stop_reason: StopReason,
}

/// How prompts are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Slots refilled as rows finish, one KV cache row per slot.
    #[default]
    Continuous,
    /// Fixed batches of left-padded prompts (the reference for speed).
    Static,
}

/// How many new tokens each prompt may generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxNew {
    /// The same cap for every prompt (lm-eval's `max_gen_toks`,
    /// lighteval's `generation_size`); prompts longer than the model's
    /// window less the cap keep their last tokens, as lm-eval's left
    /// truncation does.
    Tokens(usize),
    /// No cap but a context window of this many tokens, each prompt its
    /// own: vLLM's v0 engine (lighteval@ea46419a's, November 2024) given
    /// `max_tokens=None` stops a sequence only once prompt plus output
    /// exceed `max_model_len` (vllm/engine/output_processor/
    /// stop_checker.py, `maybe_stop_sequence`: `seq.get_len() >
    /// max_model_len`, checked after the new token is appended), so a
    /// prompt of `n` tokens gets `window + 1 - n`; the last token is
    /// sampled from position `window - 1` and never fed back. lighteval
    /// keeps a longer prompt's last `window` tokens (`greedy_until`, the
    /// `max_new_tokens is None` branch). vLLM's v1 engine (0.8 on) would
    /// give `window - n` (`max_tokens = max_model_len - len(prompt)` in
    /// vllm/v1/engine/processor.py and `num_tokens >= max_model_len` in
    /// vllm/v1/core/sched/utils.py `check_stop`).
    Window(usize),
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
    generate_all_with(
        m,
        prompts,
        until,
        MaxNew::Tokens(max_new_tokens),
        batch,
        Engine::default(),
    )
}

/// The prompts as the engine receives them (left-truncated) and each
/// one's cap on new tokens.
fn truncate_and_cap(
    prompts: &[Vec<u32>],
    max_new: MaxNew,
    max_length: usize,
) -> (Vec<Vec<u32>>, Vec<usize>) {
    let max_ctx = match max_new {
        MaxNew::Tokens(n) => max_length.saturating_sub(n).max(1),
        MaxNew::Window(w) => w.max(1),
    };
    let kept: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| p[p.len().saturating_sub(max_ctx)..].to_vec())
        .collect();
    let caps = kept
        .iter()
        .map(|p| match max_new {
            MaxNew::Tokens(n) => n,
            MaxNew::Window(w) => (w + 1).saturating_sub(p.len()),
        })
        .collect();
    (kept, caps)
}

/// [`generate_all`] with the given caps and engine.
pub fn generate_all_with(
    m: &LoadedModel,
    prompts: &[Vec<u32>],
    until: &[&str],
    max_new: MaxNew,
    batch: BatchSize,
    engine: Engine,
) -> Result<Vec<Output>> {
    let max_length = m.model.config.max_position_embeddings;
    let (kept, caps) = truncate_and_cap(prompts, max_new, max_length);
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(kept[i].len()));
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
        max_new_tokens: caps.iter().copied().max().unwrap_or(0),
        stop_strings: stop_strings.clone(),
        stop_token_ids: m.stop_token_ids(),
        use_cache: true,
    };
    let stops: Vec<&str> = stop_strings.iter().map(String::as_str).collect();
    let sorted: Vec<Vec<u32>> = order.iter().map(|&i| kept[i].clone()).collect();
    let limits: Vec<usize> = order.iter().map(|&i| caps[i]).collect();
    let t = std::time::Instant::now();
    let gens = match engine {
        Engine::Continuous => {
            continuous_with_limits(&m.model, &m.tokenizer, &sorted, &limits, &opts, per_batch)?
        }
        Engine::Static => {
            let rules = StopRules::new(&m.tokenizer, &opts);
            let mut all = Vec::with_capacity(sorted.len());
            let step = per_batch.max(1);
            for (chunk, lims) in sorted.chunks(step).zip(limits.chunks(step)) {
                // The batch runs to its largest cap; each row is then cut
                // at its own (greedy tokens do not depend on the cap).
                let o = GenerateOptions {
                    max_new_tokens: lims.iter().copied().max().unwrap_or(0),
                    ..opts.clone()
                };
                for (g, &lim) in generate::generate(&m.model, &m.tokenizer, chunk, &o)?
                    .into_iter()
                    .zip(lims)
                {
                    all.push(if g.token_ids.len() > lim {
                        let mut ids = g.token_ids;
                        ids.truncate(lim);
                        rules.finish(ids, Some(StopReason::Length))?
                    } else {
                        g
                    });
                }
            }
            all
        }
    };
    tracing::debug!(
        prompts = sorted.len(),
        slots = per_batch,
        engine = ?engine,
        secs = format!("{:.1}", t.elapsed().as_secs_f64()),
        "generated"
    );
    let mut out: Vec<Option<Output>> = vec![None; prompts.len()];
    for (&i, g) in order.iter().zip(gens) {
        // lm-eval decodes with skip_special_tokens=True, then splits at
        // each stop sequence.
        let text = m.tokenizer.decode(&g.token_ids, true)?;
        out[i] = Some(Output {
            text: cut_at_stops(&text, &stops),
            token_ids: g.token_ids,
            stop_reason: g.stop_reason,
        });
    }
    Ok(out.into_iter().flatten().collect())
}

/// A busy slot: which prompt, how many cache positions it fills, its
/// output so far and the token it feeds next.
#[derive(Debug)]
struct Row {
    prompt: usize,
    len: i64,
    out: Vec<u32>,
    next: i64,
}

/// Greedy generation of `prompts` (in this order of admission) by
/// continuous batching over `slots` rows; results in prompt order, equal
/// to [`generate::generate`] of each prompt alone.
pub fn continuous(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    slots: usize,
) -> Result<Vec<Generation>> {
    let limits = vec![opts.max_new_tokens; prompts.len()];
    continuous_with_limits(model, tokenizer, prompts, &limits, opts, slots)
}

/// [`continuous`] with each prompt's own cap on new tokens (`limits`,
/// at most `opts.max_new_tokens` each): every row ends at its own cap, as
/// it would alone with `max_new_tokens` set to it.
pub fn continuous_with_limits(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    limits: &[usize],
    opts: &GenerateOptions,
    slots: usize,
) -> Result<Vec<Generation>> {
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(EvalError::Engine(format!("prompt #{i} is empty")));
    }
    if limits.len() != prompts.len() {
        return Err(EvalError::Engine(format!(
            "{} caps for {} prompts",
            limits.len(),
            prompts.len()
        )));
    }
    let limits: Vec<usize> = limits.iter().map(|&l| l.min(opts.max_new_tokens)).collect();
    let rules = StopRules::new(tokenizer, opts);
    let mut results: Vec<Option<Generation>> = vec![None; prompts.len()];
    // A prompt with no tokens to generate never takes a slot.
    for (p, _) in limits.iter().enumerate().filter(|(_, &l)| l == 0) {
        results[p] = Some(rules.finish(Vec::new(), Some(StopReason::Length))?);
    }
    let mut queue = (0..prompts.len()).filter(|&p| limits[p] > 0).peekable();
    if queue.peek().is_none() {
        return results
            .into_iter()
            .map(|g| g.ok_or_else(|| EvalError::Engine("no result".into())))
            .collect();
    }
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let mut batch = slots.clamp(1, prompts.len()) as i64;
    // A row fills at most its prompt plus its cap of positions.
    let capacity = prompts
        .iter()
        .zip(&limits)
        .map(|(p, &l)| p.len() + l)
        .max()
        .unwrap_or(0) as i64;
    let mut cache = KvCache::new(model, batch, capacity);
    // Which cache positions each row may attend to.
    let mut valid = Tensor::zeros([batch, capacity], (Kind::Bool, device));
    let mut rows: Vec<Option<Row>> = (0..batch).map(|_| None).collect();
    let pad = i64::from(tokenizer.pad_id());
    let (mut steps, mut row_steps, mut prefill_s) = (0usize, 0usize, 0f64);
    let started = std::time::Instant::now();

    loop {
        // Fill idle slots, prefilling the admitted prompts as one batch;
        // a prompt that stops at its first token frees its slot again.
        loop {
            let free: Vec<usize> = (0..rows.len()).filter(|&r| rows[r].is_none()).collect();
            let admit: Vec<(usize, usize)> = free.into_iter().zip(queue.by_ref()).collect();
            if admit.is_empty() {
                break;
            }
            let t = std::time::Instant::now();
            let firsts = prefill(model, &mut cache, &mut valid, &admit, prompts, pad)?;
            prefill_s += t.elapsed().as_secs_f64();
            for (&(r, p), first) in admit.iter().zip(firsts) {
                let mut out = Vec::new();
                match push_capped(&rules, &mut out, first, limits[p])? {
                    Some(reason) => results[p] = Some(rules.finish(out, Some(reason))?),
                    None => {
                        rows[r] = Some(Row {
                            prompt: p,
                            len: prompts[p].len() as i64,
                            out,
                            next: first,
                        })
                    }
                }
            }
        }
        let busy = rows.iter().filter(|r| r.is_some()).count() as i64;
        if busy == 0 {
            break;
        }
        if queue.peek().is_none() && batch > 1 && busy * 2 <= batch {
            let keep: Vec<i64> = (0..batch).filter(|&r| rows[r as usize].is_some()).collect();
            let idx = Tensor::from_slice(&keep).to_device(device);
            cache.select_rows(&idx);
            valid = valid.index_select(0, &idx);
            rows.retain(Option::is_some);
            batch = busy;
        }
        // One token for every slot; an idle one feeds a pad at position 0
        // (it sees that position only, and nothing reads its output).
        let (tokens, at): (Vec<i64>, Vec<i64>) = rows
            .iter()
            .map(|r| r.as_ref().map_or((pad, 0), |r| (r.next, r.len)))
            .unzip();
        let span = at.iter().max().copied().unwrap_or(0) + 1;
        let at_t = Tensor::from_slice(&at).to_device(device);
        let _ = valid.scatter_value_(1, &at_t.view([batch, 1]), 1);
        let mask = valid.narrow(1, 0, span).view([batch, 1, 1, span]);
        cache.set_row_positions(at_t.shallow_clone(), span);
        let ids = Tensor::from_slice(&tokens)
            .view([batch, 1])
            .to_device(device);
        let hidden = model.forward_hidden(
            &ids,
            &at_t.view([batch, 1]),
            AttnMask::Explicit(&mask),
            Some(&mut cache),
        )?;
        let next = argmax_last(model, &hidden)?;
        steps += 1;
        row_steps += busy as usize;
        for (r, slot) in rows.iter_mut().enumerate() {
            let Some(row) = slot else { continue };
            row.len += 1;
            match push_capped(&rules, &mut row.out, next[r], limits[row.prompt])? {
                Some(reason) => {
                    let row = slot.take().expect("busy row");
                    results[row.prompt] = Some(rules.finish(row.out, Some(reason))?);
                }
                None => row.next = next[r],
            }
        }
    }
    tracing::debug!(
        prompts = prompts.len(),
        slots,
        steps,
        busy_row_steps = row_steps,
        prefill_s = format!("{prefill_s:.2}"),
        total_s = format!("{:.2}", started.elapsed().as_secs_f64()),
        "continuous batching"
    );
    results
        .into_iter()
        .enumerate()
        .map(|(i, g)| g.ok_or_else(|| EvalError::Engine(format!("prompt #{i} was not generated"))))
        .collect()
}

/// [`StopRules::push`], then the row's own cap (checked last, as vLLM's
/// stop checker does: a stop string on the last allowed token is a stop).
fn push_capped(
    rules: &StopRules,
    out: &mut Vec<u32>,
    tok: i64,
    limit: usize,
) -> Result<Option<StopReason>> {
    Ok(rules
        .push(out, tok)?
        .or_else(|| (out.len() >= limit).then_some(StopReason::Length)))
}

/// Prefills the prompts `admit` lists (slot, prompt index) as one batch,
/// right-padded (causal attention keeps the pads out of every real
/// position), into their slots of `cache` from position 0; marks each
/// row's prompt positions visible in `valid` and hides the rest of the
/// row (left by an earlier prompt, or pads). Returns each prompt's first
/// greedy token.
fn prefill(
    model: &Llama,
    cache: &mut KvCache,
    valid: &mut Tensor,
    admit: &[(usize, usize)],
    prompts: &[Vec<u32>],
    pad: i64,
) -> Result<Vec<i64>> {
    let device = model.device();
    let k = admit.len() as i64;
    let lens: Vec<i64> = admit
        .iter()
        .map(|&(_, p)| prompts[p].len() as i64)
        .collect();
    let lmax = lens.iter().copied().max().unwrap_or(1);
    let mut ids = vec![pad; (k * lmax) as usize];
    for (i, &(_, p)) in admit.iter().enumerate() {
        for (j, &tok) in prompts[p].iter().enumerate() {
            ids[i * lmax as usize + j] = i64::from(tok);
        }
    }
    let ids = Tensor::from_slice(&ids).view([k, lmax]).to_device(device);
    let pos = Tensor::arange(lmax, (Kind::Int64, device))
        .unsqueeze(0)
        .expand([k, lmax], false);
    let mut fresh = KvCache::new(model, k, lmax);
    let hidden = model.forward_hidden(&ids, &pos, AttnMask::Causal, Some(&mut fresh))?;
    let slots: Vec<i64> = admit.iter().map(|&(r, _)| r as i64).collect();
    cache.copy_rows_from(&Tensor::from_slice(&slots).to_device(device), &fresh, lmax);
    for (&r, &n) in slots.iter().zip(&lens) {
        let mut v = valid.get(r);
        let _ = v.fill_(0);
        let _ = v.narrow(0, 0, n).fill_(1);
    }
    // Each row's last prompt position.
    let rows = Tensor::arange(k, (Kind::Int64, device));
    let last = Tensor::from_slice(&lens).to_device(device) - 1;
    let h = hidden.index(&[Some(rows), Some(last)]).unsqueeze(1);
    argmax_last(model, &h)
}

/// The greedy token of each row's last position.
fn argmax_last(model: &Llama, hidden: &Tensor) -> Result<Vec<i64>> {
    let t = hidden.size()[1];
    let ids = model
        .logits(&hidden.narrow(1, t - 1, 1))
        .squeeze_dim(1)
        .argmax(-1, false)
        .to_device(Device::Cpu);
    Ok(Vec::<i64>::try_from(ids)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smolsweep_model::llama::InitMode;
    use smolsweep_model::LlamaConfig;

    fn setup() -> (Llama, TextTokenizer, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        smolsweep_model::tokenizer::write_byte_level_tokenizer(dir.path()).expect("tokenizer");
        let tok = TextTokenizer::from_dir(dir.path()).expect("tokenizer");
        // Weights large enough that attention, not the embedding alone,
        // decides the next token: a wrong key shows in the outputs.
        let config = LlamaConfig {
            initializer_range: 0.35,
            ..LlamaConfig::tiny(259)
        };
        let model = Llama::new(
            config,
            Device::Cpu,
            Kind::Float,
            InitMode::Random { seed: 11 },
        )
        .expect("model");
        (model, tok, dir)
    }

    fn prompts(tok: &TextTokenizer) -> Vec<Vec<u32>> {
        [
            "The quick brown fox jumps over",
            "Question: what is two and two?\nAnswer:",
            "Hi",
            "12 + 30 =",
            "a",
            "zz",
            "One more prompt, of middling length",
        ]
        .iter()
        .map(|p| tok.encode(p).expect("encode"))
        .collect()
    }

    fn one_at_a_time(
        m: &Llama,
        tok: &TextTokenizer,
        ps: &[Vec<u32>],
        opts: &GenerateOptions,
    ) -> Vec<Generation> {
        ps.iter()
            .map(|p| {
                generate::generate(m, tok, std::slice::from_ref(p), opts)
                    .expect("single")
                    .remove(0)
            })
            .collect()
    }

    /// Rows of different lengths stopping at different steps (by stop
    /// ids taken from the free-running outputs, so some stop early and
    /// some run to the limit), through fewer slots than prompts: every
    /// refill and the shrinking tail are exercised, and a short prompt
    /// takes the slot of a long one while a longer row runs beside it (so
    /// the old row's positions lie inside the attended span and must be
    /// hidden).
    #[test]
    fn continuous_batching_equals_one_at_a_time() {
        let (m, tok, _d) = setup();
        let ps = prompts(&tok);
        let free = GenerateOptions {
            max_new_tokens: 14,
            ..Default::default()
        };
        let reference = one_at_a_time(&m, &tok, &ps, &free);
        // Ids that end some rows early: the 2nd token of prompt 0 and the
        // 5th of prompt 3.
        let stop_ids = vec![reference[0].token_ids[1], reference[3].token_ids[4]];
        let opts = GenerateOptions {
            stop_token_ids: stop_ids,
            ..free.clone()
        };
        let want = one_at_a_time(&m, &tok, &ps, &opts);
        let lens: Vec<usize> = want.iter().map(|g| g.token_ids.len()).collect();
        assert!(
            lens.iter().any(|&l| l < 14) && lens.contains(&14),
            "rows should stop at different steps: {lens:?}"
        );
        for slots in [1, 2, 3, 7, 16] {
            let got = continuous(&m, &tok, &ps, &opts, slots).expect("continuous");
            assert_eq!(got, want, "{slots} slots");
        }
        // And without early stops.
        let got = continuous(&m, &tok, &ps, &free, 3).expect("continuous");
        assert_eq!(got, reference);
    }

    #[test]
    fn stop_strings_end_rows_as_alone() {
        let (m, tok, _d) = setup();
        let ps = prompts(&tok);
        let free = GenerateOptions {
            max_new_tokens: 10,
            ..Default::default()
        };
        let reference = one_at_a_time(&m, &tok, &ps, &free);
        // Two characters from the middle of two outputs as stop strings.
        let stops: Vec<String> = [1usize, 4]
            .iter()
            .map(|&i| reference[i].text.chars().skip(3).take(2).collect())
            .filter(|s: &String| !s.is_empty())
            .collect();
        let opts = GenerateOptions {
            stop_strings: stops,
            ..free
        };
        let want = one_at_a_time(&m, &tok, &ps, &opts);
        assert!(want.iter().any(|g| g.stop_reason == StopReason::StopString));
        let got = continuous(&m, &tok, &ps, &opts, 3).expect("continuous");
        assert_eq!(got, want);
    }

    /// Under `MaxNew::Window` each prompt generates until it and its output
    /// exceed the window, whatever the other prompts' lengths (one cap for
    /// a band of prompts, the longest's, gave the shorter ones fewer
    /// tokens): prompts of 12, 20 and 40 tokens (the last kept to its final
    /// 30) under a 30-token window get 19, 11 and 1 new tokens, through
    /// both engines and one shared batch, as each does alone.
    #[test]
    fn window_caps_each_prompt_by_its_own_length() {
        let (model, tokenizer, dir) = setup();
        let m = LoadedModel {
            dir: dir.path().to_path_buf(),
            model,
            tokenizer,
        };
        let text = "The quick brown fox jumps over the lazy dog, twice over";
        let all = m.tokenizer.encode(text).expect("encode");
        let ps: Vec<Vec<u32>> = [12, 20, 40].iter().map(|&n| all[..n].to_vec()).collect();
        let window = 30;
        let (kept, caps) = truncate_and_cap(&ps, MaxNew::Window(window), 512);
        assert_eq!(caps, vec![19, 11, 1]);
        assert_eq!(kept[2], ps[2][10..].to_vec());
        let mut stop_strings = Vec::new();
        stop_strings.extend(m.tokenizer.eos_token.clone());
        let base = GenerateOptions {
            stop_strings,
            stop_token_ids: m.stop_token_ids(),
            ..Default::default()
        };
        let alone: Vec<Generation> = kept
            .iter()
            .zip(&caps)
            .map(|(p, &cap)| {
                let o = GenerateOptions {
                    max_new_tokens: cap,
                    ..base.clone()
                };
                one_at_a_time(&m.model, &m.tokenizer, std::slice::from_ref(p), &o).remove(0)
            })
            .collect();
        let lens: Vec<usize> = alone.iter().map(|g| g.token_ids.len()).collect();
        assert_eq!(lens, caps, "every row should run to its cap");
        for engine in [Engine::Continuous, Engine::Static] {
            let got = generate_all_with(
                &m,
                &ps,
                &[],
                MaxNew::Window(window),
                BatchSize::Fixed(3),
                engine,
            )
            .expect("generate");
            for (g, a) in got.iter().zip(&alone) {
                assert_eq!(
                    (&g.token_ids, g.stop_reason),
                    (&a.token_ids, a.stop_reason),
                    "{engine:?}"
                );
            }
        }
        // A fixed cap keeps its truncation: the window less the cap.
        let (kept, caps) = truncate_and_cap(&ps, MaxNew::Tokens(5), 32);
        assert_eq!(caps, vec![5; 3]);
        let kept_lens: Vec<usize> = kept.iter().map(Vec::len).collect();
        assert_eq!(kept_lens, vec![12, 20, 27]);
    }

    #[test]
    fn edge_cases() {
        let (m, tok, _d) = setup();
        let ps = prompts(&tok);
        let none = GenerateOptions {
            max_new_tokens: 0,
            ..Default::default()
        };
        let got = continuous(&m, &tok, &ps, &none, 2).expect("zero tokens");
        assert!(got.iter().all(|g| g.token_ids.is_empty()));
        assert!(continuous(&m, &tok, &[], &none, 2)
            .expect("no prompts")
            .is_empty());
        assert!(continuous(&m, &tok, &[vec![]], &GenerateOptions::default(), 2).is_err());
        // A first token that is an end-of-sequence id.
        let first = one_at_a_time(&m, &tok, &ps[..1], &none)[0].clone();
        assert!(first.token_ids.is_empty());
        let one = GenerateOptions {
            max_new_tokens: 3,
            ..Default::default()
        };
        let eos0 = one_at_a_time(&m, &tok, &ps[..1], &one)[0].token_ids[0];
        let opts = GenerateOptions {
            stop_token_ids: vec![eos0],
            ..one
        };
        let want = one_at_a_time(&m, &tok, &ps, &opts);
        assert_eq!(want[0].token_ids, Vec::<u32>::new());
        assert_eq!(continuous(&m, &tok, &ps, &opts, 2).expect("eos"), want);
    }
}
