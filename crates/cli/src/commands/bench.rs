//! `smolsweep bench forward`: forward-pass throughput (tokens/s) of a
//! model at several batch shapes, median of N timed runs after a warm-up.
//! `scripts/reference/bench_forward.py` measures `transformers` the same
//! way, so the two can be run side by side.

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use super::load_model;
use crate::args::{BenchCommand, BenchForwardArgs};

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Forward(a) => forward(&a),
    }
}

fn parse_shape(s: &str) -> Result<(i64, i64)> {
    let (b, t) = s
        .split_once('x')
        .with_context(|| format!("--shape {s}: expected BATCHxSEQ, e.g. 8x256"))?;
    let b: i64 = b.parse().with_context(|| format!("--shape {s}: batch"))?;
    let t: i64 = t
        .parse()
        .with_context(|| format!("--shape {s}: sequence length"))?;
    if b <= 0 || t <= 0 {
        bail!("--shape {s}: batch and length must be positive");
    }
    Ok((b, t))
}

fn forward(a: &BenchForwardArgs) -> Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let shapes = a
        .shapes
        .iter()
        .map(|s| parse_shape(s))
        .collect::<Result<Vec<_>>>()?;
    let m = load_model(&a.model)?;
    let _g = tch::no_grad_guard();
    let vocab = m.model.config.vocab_size as i64;
    println!(
        "{{\"bench\":\"forward\",\"threads\":{}}}",
        tch::get_num_threads()
    );
    for (b, t) in shapes {
        tch::manual_seed(0);
        let x = Tensor::randint(vocab, [b, t], (Kind::Int64, m.model.device()));
        let run_once = || -> Result<f64> {
            let start = std::time::Instant::now();
            let logits = m.model.forward(&x)?;
            // Wait for the device and touch the result.
            let _ = logits
                .narrow(1, t - 1, 1)
                .sum(Kind::Float)
                .double_value(&[]);
            Ok(start.elapsed().as_secs_f64())
        };
        run_once()?;
        let mut times = (0..a.iters.max(1))
            .map(|_| run_once())
            .collect::<Result<Vec<_>>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{}",
            serde_json::json!({
                "impl": "smolsweep", "batch": b, "seq": t,
                "median_s": median, "min_s": times[0], "max_s": times[times.len() - 1],
                "tokens_per_s": (b * t) as f64 / median,
            })
        );
    }
    Ok(())
}
