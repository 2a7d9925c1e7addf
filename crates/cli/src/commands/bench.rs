//! `smolsweep bench`: forward-pass throughput (tokens/s) of a model at
//! several batch shapes, median of N timed runs after a warm-up
//! (`scripts/reference/bench_forward.py` measures `transformers` the same
//! way, so the two can be run side by side); a training step; greedy
//! generation of a task's prompts by each engine.

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use super::load_model;
use crate::args::{BenchCommand, BenchForwardArgs};

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Forward(a) => forward(&a),
        BenchCommand::Train(a) => train_step(&a),
        BenchCommand::Generate(a) => generate(&a),
        BenchCommand::Attention(a) => attention(&a),
        BenchCommand::Tokenise(a) => super::bench_tokenise::run(&a),
    }
}

/// Greedy generation of a task's prompts (built as `eval` builds them) by
/// each engine in turn, on the same loaded model: generated tokens/s, and
/// whether the engines' outputs are the same tokens.
fn generate(a: &crate::args::BenchGenerateArgs) -> Result<()> {
    use crate::args::GenEngine;
    use smolsweep_evals::generation::{generate_all_with, Engine, MaxNew};
    use smolsweep_evals::tasks::{Docs, PromptFormat};
    use smolsweep_evals::{gsm8k, load_task, runner, BatchSize, DataSources, TaskSpec};

    let batch: BatchSize = a
        .batch_size
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--batch-size {e}"))?;
    let spec: TaskSpec = a
        .task
        .parse()
        .with_context(|| format!("--task {}", a.task))?;
    let sources = DataSources {
        data_dir: a.data_dir.clone(),
        fewshot_from: None,
    };
    let data = load_task(&spec, &sources, a.limit).context("loading benchmark data")?;
    let format = PromptFormat::Plain;
    let (prompts, until, default_max): (Vec<String>, &[&str], usize) = match &data.docs {
        Docs::Gsm8k { docs, fewshot } => (
            runner::gsm8k_prompts(
                docs,
                fewshot,
                usize::try_from(a.gsm8k_fewshot).context("--gsm8k-fewshot")?,
                &format,
                runner::FEWSHOT_SEED,
            )?,
            &gsm8k::UNTIL,
            gsm8k::MAX_GEN_TOKS,
        ),
        Docs::IfEval(docs) => (
            docs.iter()
                .map(|d| format.ifeval_prompt(d))
                .collect::<std::result::Result<_, _>>()?,
            &[],
            runner::IFEVAL_MAX_GEN_TOKS,
        ),
        Docs::MultipleChoice(_) | Docs::Preference(_) | Docs::MmluPro { .. } | Docs::Bbh(_) => {
            bail!(
                "--task {}: not one of the generation tasks this bench times (gsm8k, ifeval)",
                a.task
            )
        }
    };
    let max_new = a.max_new_tokens.unwrap_or(default_max);
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let m = load_model(&a.model)?;
    let ids = prompts
        .iter()
        .map(|p| m.tokenizer.encode_with(p, false))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let prompt_tokens: usize = ids.iter().map(Vec::len).sum();
    let engines: &[(Engine, &str)] = match a.engine {
        GenEngine::Continuous => &[(Engine::Continuous, "continuous")],
        GenEngine::Static => &[(Engine::Static, "static")],
        GenEngine::Both => &[
            (Engine::Static, "static"),
            (Engine::Continuous, "continuous"),
        ],
    };
    let mut outputs = Vec::new();
    let runs = engines.iter().cycle().take(engines.len() * a.repeat.max(1));
    for (run, &(engine, name)) in runs.enumerate() {
        let start = std::time::Instant::now();
        let outs = generate_all_with(&m, &ids, until, MaxNew::Tokens(max_new), batch, engine)?;
        let secs = start.elapsed().as_secs_f64();
        let generated: usize = outs.iter().map(|o| o.token_ids.len()).sum();
        println!(
            "{}",
            serde_json::json!({
                "bench": "generate", "task": spec.kind.name(), "engine": name, "run": run / engines.len(),
                "device": format!("{:?}", m.model.device()), "batch_size": a.batch_size,
                "prompts": ids.len(), "prompt_tokens": prompt_tokens, "max_new_tokens": max_new,
                "generated_tokens": generated, "secs": secs,
                "generated_tokens_per_s": generated as f64 / secs,
                "prompts_per_s": ids.len() as f64 / secs,
                "threads": tch::get_num_threads(),
            })
        );
        outputs.push(outs);
    }
    if let [first, rest @ ..] = outputs.as_slice() {
        let same = rest.iter().all(|o| {
            o.len() == first.len() && o.iter().zip(first).all(|(x, y)| x.token_ids == y.token_ids)
        });
        println!(
            "{}",
            serde_json::json!({"bench": "generate", "runs_agree": same})
        );
        anyhow::ensure!(same, "the engines (or runs) generated different tokens");
    }
    Ok(())
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

/// Runs `f` once to warm up, then `n` timed times; (median, min, max) seconds.
fn time_runs(n: usize, mut f: impl FnMut() -> Result<f64>) -> Result<(f64, f64, f64)> {
    f()?;
    let mut times = (0..n.max(1)).map(|_| f()).collect::<Result<Vec<_>>>()?;
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[0], times[times.len() - 1]))
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
        let (median, min, max) = time_runs(a.iters, run_once)?;
        println!(
            "{}",
            serde_json::json!({
                "impl": "smolsweep", "batch": b, "seq": t,
                "median_s": median, "min_s": min, "max_s": max,
                "tokens_per_s": (b * t) as f64 / median,
            })
        );
    }
    Ok(())
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Waits for the device (CUDA work is asynchronous; a host clock read
/// without this times only the launches).
fn sync(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The CUDA device name of `device` as `nvidia-smi` reports it (through
/// `CUDA_VISIBLE_DEVICES` when that lists plain indices).
fn cuda_device_name(device: tch::Device) -> Option<String> {
    let tch::Device::Cuda(i) = device else {
        return None;
    };
    let physical = match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if !v.trim().is_empty() => v.split(',').nth(i)?.trim().parse::<usize>().ok()?,
        _ => i,
    };
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", "-i"])
        .arg(physical.to_string())
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !name.is_empty()).then_some(name)
}

/// Sample lengths filling `rows` rows of `len` tokens, each drawn
/// uniformly from `min..=max` (the last of a row cut to fit), from a
/// fixed seed so every variant trains on the same packing.
fn packed_lengths(rows: usize, len: usize, min: usize, max: usize) -> Vec<Vec<usize>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..rows)
        .map(|_| {
            let mut left = len;
            let mut row = Vec::new();
            while left > 0 {
                let n = min + (next() % (max - min + 1) as u64) as usize;
                row.push(n.min(left));
                left -= n.min(left);
            }
            row
        })
        .collect()
}

/// One training step as `smolsweep train` runs it (forward, LM loss,
/// backward, gradient norm and clipping, AdamW), on random tokens, timed
/// over `--steps` after a warm-up; the optimizer's share is timed apart.
/// With `--packed`, rows are packed samples attending as the `attention`
/// key says. Reports tokens/s, the FLOPs per token (formula and N
/// printed), MFU against the device's peak bf16 rate, every step's loss
/// (for bf16 against f32), and peak memory: RSS, and on CUDA the caching
/// allocator's peak. Run it once per variant: peak RSS is per process.
fn train_step(a: &crate::args::BenchTrainArgs) -> Result<()> {
    use crate::args::OptimImpl;
    use smolsweep_model::flops::{mean_causal_context, peak_bf16_flops, TrainFlops};
    use smolsweep_model::llama::{AttnMask, InitMode};
    use smolsweep_trainer::loss::{chunked_lm_loss, plain_lm_loss, DEFAULT_CHUNK};
    use smolsweep_trainer::optim::{flat::FlatAdamW, AdamW, Optimizer};

    let (b, t) = parse_shape(&a.shape)?;
    let (min_len, max_len) = parse_min_max("--sample-lens", &a.sample_lens)?;
    let device = smolsweep_model::resolve_device(a.device)?;
    let kind = smolsweep_model::resolve_kind(a.dtype, device);
    let dir = smolsweep_model::hf::resolve_model_dir(&a.model)?;
    let cfg = smolsweep_model::LlamaConfig::from_file(&dir.join("config.json"))?;
    let model = if a.random_init {
        smolsweep_model::Llama::new(cfg, device, kind, InitMode::Random { seed: 0 })?
    } else {
        let m = smolsweep_model::Llama::new(cfg, device, kind, InitMode::Empty)?;
        smolsweep_model::hf::load_weights(&m, &dir)?;
        m
    };
    let varlen_on = a.packed && model.set_attention(a.attention)?;
    let named = model.vs.variables().into_iter().collect();
    let mut opt: Box<dyn Optimizer> = match a.optimizer {
        OptimImpl::Fused => Box::new(FlatAdamW::new(named, 0.9, 0.999, 1e-8, 0.0)?),
        OptimImpl::Flat => {
            Box::new(FlatAdamW::new(named, 0.9, 0.999, 1e-8, 0.0)?.without_fused_kernel())
        }
        OptimImpl::PerTensor => Box::new(AdamW::new(named, 0.9, 0.999, 1e-8, 0.0)),
    };
    let mut opt_times = Vec::new();
    let mut losses = Vec::new();
    let vocab = model.config.vocab_size as i64;
    tch::manual_seed(0);
    let x = Tensor::randint(vocab, [b, t + 1], (Kind::Int64, device));
    let ids = x.narrow(1, 0, t);
    let y = x.narrow(1, 1, t).reshape([-1]);
    let (lens, pos, varlen) = if a.packed {
        let rows = packed_lengths(b as usize, t as usize, min_len, max_len);
        let seg: Vec<i64> = rows
            .iter()
            .flat_map(|r| {
                r.iter()
                    .enumerate()
                    .flat_map(|(s, &n)| std::iter::repeat_n(s as i64, n))
            })
            .collect();
        let v = smolsweep_model::Varlen::from_segments(&seg, b as usize, t as usize, device);
        let pos = Tensor::from_slice(&v.positions())
            .view([b, t])
            .to_device(device);
        (rows.concat(), pos, Some(v))
    } else {
        let pos = Tensor::arange(t, (Kind::Int64, device))
            .unsqueeze(0)
            .expand([b, t], false);
        (vec![t as usize; b as usize], pos, None)
    };
    // The SDPA path's block-diagonal mask, built once as the trainer does.
    let mask = match &varlen {
        Some(v) if !varlen_on => Some(v.implied_mask(b as usize, t as usize).to_device(device)),
        _ => None,
    };
    let attn = || match (&varlen, &mask) {
        (Some(v), m) => AttnMask::Packed {
            mask: m.as_ref(),
            varlen: v,
        },
        (None, _) => AttnMask::Causal,
    };
    let flops = TrainFlops::new(&model.config, mean_causal_context(&lens));
    let device_name = cuda_device_name(device);
    let peak = a
        .peak_tflops
        .map(|tf| tf * 1e12)
        .or_else(|| device_name.as_deref().and_then(peak_bf16_flops));
    if device.is_cuda() {
        smolsweep_kernels::cuda_memory(device, true)?;
    }
    let rss_before = peak_rss_mib();
    let step = || -> Result<f64> {
        sync(device);
        let start = std::time::Instant::now();
        let h = model.forward_hidden(&ids, &pos, attn(), None)?;
        let h = h.reshape([b * t, -1]);
        let scale = 1.0 / (b * t) as f64;
        let loss = match a.loss {
            crate::args::LossImpl::Chunked => {
                let (l, s) = chunked_lm_loss(&h, model.lm_head_weight(), &y, scale, DEFAULT_CHUNK)?;
                s.f_backward()?;
                l
            }
            crate::args::LossImpl::Plain => {
                let (l, s) = plain_lm_loss(&h, model.lm_head_weight(), &y, scale);
                s.f_backward()?;
                l
            }
        };
        sync(device);
        let opt_start = std::time::Instant::now();
        let norm = opt.grad_norm();
        opt.clip(norm, 1.0);
        opt.step(1e-5);
        opt.zero_grad();
        sync(device);
        opt_times.push(opt_start.elapsed().as_secs_f64());
        anyhow::ensure!(loss.is_finite(), "non-finite loss");
        // Mean token loss (the loss functions return the sum).
        losses.push(loss / (b * t) as f64);
        Ok(start.elapsed().as_secs_f64())
    };
    let (median, _, _) = time_runs(a.steps, step)?;
    // The warm-up step is not timed.
    let mut opt_times = opt_times.split_off(1);
    opt_times.sort_by(f64::total_cmp);
    let opt_median = opt_times.get(opt_times.len() / 2).copied();
    let tokens_per_s = (b * t) as f64 / median;
    let gpu = if device.is_cuda() {
        Some(smolsweep_kernels::cuda_memory(device, false)?)
    } else {
        None
    };
    let mib = |bytes: i64| bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "N = {} matmul parameters; {}",
        flops.matmul_params,
        flops.formula(&model.config)
    );
    println!(
        "{}",
        serde_json::json!({
            "impl": "smolsweep", "bench": "train", "loss": format!("{:?}", a.loss).to_lowercase(),
            "optimizer": clap::ValueEnum::to_possible_value(&a.optimizer).map(|v| v.get_name().to_owned()), "optimizer_median_s": opt_median,
            "params": model.config.num_parameters(), "batch": b, "seq": t,
            "device": format!("{device:?}"), "device_name": device_name, "dtype": format!("{kind:?}"),
            "packed": a.packed, "attention": if !a.packed { "causal" } else if varlen_on { "varlen" } else { "sdpa" },
            "median_s": median, "tokens_per_s": tokens_per_s,
            "matmul_params": flops.matmul_params, "mean_context": flops.mean_context,
            "flops_per_token": flops.per_token(), "flops_formula": flops.formula(&model.config),
            "peak_flops": peak, "mfu": peak.map(|p| flops.mfu(tokens_per_s, p)),
            "peak_gpu_allocated_mib": gpu.map(|g| mib(g.peak_allocated)),
            "peak_gpu_reserved_mib": gpu.map(|g| mib(g.peak_reserved)),
            "losses": losses,
            "peak_rss_mib": peak_rss_mib(), "rss_before_steps_mib": rss_before,
            "threads": tch::get_num_threads(),
        })
    );
    Ok(())
}

fn parse_min_max(flag: &str, s: &str) -> Result<(usize, usize)> {
    s.split_once(':')
        .and_then(|(x, y)| Some((x.parse::<usize>().ok()?, y.parse::<usize>().ok()?)))
        .filter(|&(x, y)| 0 < x && x <= y)
        .with_context(|| format!("{flag} {s}: expected MIN:MAX, 0 < MIN <= MAX"))
}

/// libtorch's `SDPBackend` enum values.
pub(crate) fn sdpa_backend_name(id: i64) -> &'static str {
    match id {
        0 => "math",
        1 => "flash_attention",
        2 => "efficient_attention",
        3 => "cudnn_attention",
        4 => "overrideable",
        _ => "error (no kernel applies)",
    }
}

/// One layer's causal attention over packed rows, forward and backward,
/// by masked SDPA (the block-diagonal mask, as the SDPA path trains) and
/// by varlen flash attention where it runs: the relative difference of
/// the outputs and of each input's gradient, and the median time of each.
fn attention(a: &crate::args::BenchAttentionArgs) -> Result<()> {
    let (b, t) = parse_shape(&a.shape)?;
    let (min_len, max_len) = parse_min_max("--sample-lens", &a.sample_lens)?;
    let dims: Vec<i64> = a
        .heads
        .split(':')
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .ok()
        .filter(|v: &Vec<i64>| v.len() == 3 && v.iter().all(|&x| x > 0) && v[0] % v[1] == 0)
        .with_context(|| format!("--heads {}: expected H:KV:D with KV dividing H", a.heads))?;
    let (h, kv, hd) = (dims[0], dims[1], dims[2]);
    let device = smolsweep_model::resolve_device(a.device)?;
    let kind = smolsweep_model::resolve_kind(a.dtype, device);
    let rows = packed_lengths(b as usize, t as usize, min_len, max_len);
    let seg: Vec<i64> = rows
        .iter()
        .flat_map(|r| {
            r.iter()
                .enumerate()
                .flat_map(|(s, &n)| std::iter::repeat_n(s as i64, n))
        })
        .collect();
    let varlen = smolsweep_model::Varlen::from_segments(&seg, b as usize, t as usize, device);
    let mask = varlen
        .implied_mask(b as usize, t as usize)
        .to_device(device);
    tch::manual_seed(0);
    let leaf = |shape: [i64; 4]| {
        Tensor::randn(shape, (Kind::Float, device))
            .to_kind(kind)
            .set_requires_grad(true)
    };
    let (q, k, v) = (
        leaf([b, h, t, hd]),
        leaf([b, kv, t, hd]),
        leaf([b, kv, t, hd]),
    );
    let dy = Tensor::randn([b, t, h * hd], (Kind::Float, device)).to_kind(kind);
    let backend =
        Tensor::internal_fused_sdp_choice(&q, &k, &v, Some(&mask), 0.0, false, None, true);
    let masked = || -> Result<Tensor> {
        let y = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(&mask),
            0.0,
            false,
            None,
            true,
        )?;
        Ok(y.transpose(1, 2).reshape([b, t, h * hd]))
    };
    let flash = || -> Result<Tensor> {
        let tokens = |x: &Tensor| x.transpose(1, 2).reshape([b * t, x.size()[1], hd]);
        let y = smolsweep_kernels::flash_attention_varlen(
            &tokens(&q),
            &tokens(&k),
            &tokens(&v),
            &varlen.cu_seqlens,
            varlen.max_seqlen,
            1.0 / (hd as f64).sqrt(),
        )?;
        Ok(y.reshape([b, t, h * hd]))
    };
    // Forward and backward; returns the output and the three gradients.
    let run = |f: &dyn Fn() -> Result<Tensor>| -> Result<Vec<Tensor>> {
        let y = f()?;
        let g = Tensor::run_backward(&[(&y * &dy).sum(Kind::Float)], &[&q, &k, &v], false, false);
        Ok(std::iter::once(y.detach()).chain(g).collect())
    };
    let time = |f: &dyn Fn() -> Result<Tensor>| -> Result<f64> {
        let (median, _, _) = time_runs(a.iters, || {
            sync(device);
            let start = std::time::Instant::now();
            let _ = run(f)?;
            sync(device);
            Ok(start.elapsed().as_secs_f64())
        })?;
        Ok(median)
    };
    let want = run(&masked)?;
    let masked_s = time(&masked)?;
    let why_not = smolsweep_kernels::flash_varlen_supported(device, kind, hd).err();
    let (flash_s, rel) = match &why_not {
        None => {
            let got = run(&flash)?;
            let rel: Vec<f64> = got
                .iter()
                .zip(&want)
                .map(|(g, w)| {
                    let (g, w) = (g.to_kind(Kind::Float), w.to_kind(Kind::Float));
                    (&g - &w).norm().double_value(&[]) / w.norm().double_value(&[]).max(1e-30)
                })
                .collect();
            (Some(time(&flash)?), Some(rel))
        }
        Some(_) => (None, None),
    };
    println!(
        "{}",
        serde_json::json!({
            "bench": "attention", "device": format!("{device:?}"), "dtype": format!("{kind:?}"),
            "batch": b, "seq": t, "heads": h, "kv_heads": kv, "head_dim": hd,
            "samples": rows.iter().map(Vec::len).sum::<usize>(),
            "masked_sdpa_backend": sdpa_backend_name(backend),
            "masked_ms": masked_s * 1e3,
            "varlen_ms": flash_s.map(|s| s * 1e3),
            "varlen_speedup": flash_s.map(|s| masked_s / s),
            "varlen_unavailable": why_not,
            "rel_err": rel.map(|r| serde_json::json!({"out": r[0], "grad_q": r[1], "grad_k": r[2], "grad_v": r[3]})),
        })
    );
    Ok(())
}
