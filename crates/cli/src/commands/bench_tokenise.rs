//! `smolsweep bench tokenise`: SFT tokenisation speed of the trainer's
//! path (each conversation tokenised once, prefix lengths counted from it)
//! beside the reference path that re-tokenises every prefix as
//! open-instruct does, on the same rows in the same process. Reading the
//! rows is outside the timings, as `scripts/reference/bench_tokenise.py`
//! times open-instruct's `datasets.map` without `load_dataset`; both
//! outputs must be identical, or the benchmark fails.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use smolsweep_model::{ChatTemplate, TextTokenizer};
use smolsweep_trainer::data::{read_records, tokenize, tokenize_reference, TokenizedData};

use crate::args::BenchTokeniseArgs;

/// CPU seconds (user + system, every thread) this process has used, from
/// /proc/self/stat (fields 14 and 15, in clock ticks of 1/100 s: Linux's
/// USER_HZ on every architecture it exports to user space).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

struct Timed {
    data: TokenizedData,
    wall: f64,
    cpu: Option<f64>,
}

fn timed(f: impl FnOnce() -> smolsweep_trainer::error::Result<TokenizedData>) -> Result<Timed> {
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let data = f()?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(c0).map(|(c1, c0)| c1 - c0);
    Ok(Timed { data, wall, cpu })
}

/// The first sample where the two tokenisations differ.
fn first_difference(a: &TokenizedData, b: &TokenizedData) -> Option<usize> {
    let n = a.offsets.len().min(b.offsets.len()).saturating_sub(1);
    (0..n)
        .find(|&i| {
            let (ra, rb) = (
                a.offsets[i] as usize..a.offsets[i + 1] as usize,
                b.offsets[i] as usize..b.offsets[i + 1] as usize,
            );
            a.ids[ra.clone()] != b.ids[rb.clone()] || a.mask[ra] != b.mask[rb]
        })
        .or((a.offsets.len() != b.offsets.len()).then_some(n))
}

pub fn run(a: &BenchTokeniseArgs) -> Result<()> {
    let tok = TextTokenizer::from_dir(&a.model)?;
    let template = match a.chat_template.as_str() {
        "model" => tok.model_chat_template()?,
        "chatml" | "tulu" => ChatTemplate::builtin(&a.chat_template)?,
        other => bail!("--chat-template {other:?} is not one of model, chatml, tulu"),
    };
    let mut records = read_records(std::slice::from_ref(&a.data))
        .with_context(|| format!("reading {}", a.data.display()))?;
    if let Some(n) = a.limit {
        records.truncate(n);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let reference = timed(|| tokenize_reference(&records, &tok, &template, a.max_seq_len))?;
    let fast = timed(|| tokenize(&records, &tok, &template, a.max_seq_len))?;
    if let Some(i) = first_difference(&reference.data, &fast.data) {
        let sample = |d: &TokenizedData| {
            let r = d.offsets[i] as usize..d.offsets[i + 1] as usize;
            (d.ids[r.clone()].to_vec(), d.mask[r].to_vec())
        };
        bail!(
            "sample {i} of the fast path differs from the reference path's (a bug, please report it):\n\
             reference {:?}\nfast      {:?}",
            sample(&reference.data),
            sample(&fast.data)
        );
    }
    let s = &fast.data.stats;
    println!(
        "{} rows, {} samples, {} tokens, {} label tokens, max_seq_len {}, {} cores; outputs identical",
        s.rows, s.samples, s.tokens, s.label_tokens, a.max_seq_len, cores
    );
    println!(
        "| path | wall s | CPU s | conversations/s per core (CPU) | tokens/s per core (CPU) |"
    );
    println!("|---|---|---|---|---|");
    for (name, t) in [
        ("re-tokenise every prefix (open-instruct's way)", &reference),
        ("one tokenisation per conversation (smolsweep)", &fast),
    ] {
        // Per core: by CPU time where /proc says it, else wall x cores.
        let cpu = t.cpu.filter(|&c| c > 0.0).unwrap_or(t.wall * cores as f64);
        println!(
            "| {name} | {:.2} | {} | {:.0} | {:.0} |",
            t.wall,
            t.cpu.map_or("-".into(), |c| format!("{c:.2}")),
            s.rows as f64 / cpu,
            s.tokens as f64 / cpu
        );
    }
    if let (Some(rc), Some(fc)) = (reference.cpu, fast.cpu) {
        if fc > 0.0 {
            println!("speed-up (CPU time): {:.2}x", rc / fc);
        }
    }
    if let Some(mib) = super::bench::peak_rss_mib() {
        println!("peak RSS {mib:.0} MiB");
    }
    Ok(())
}
