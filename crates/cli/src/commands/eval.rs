//! `smolsweep eval`: run benchmarks on a model and write results.json
//! (and samples.jsonl). The data of every task is read and checked before
//! the model is loaded, so a bad row fails in a second, not after an hour.
//! Reward-model tasks load the model as a sequence classifier
//! (`smolsweep_evals::reward`).

use std::io::Write;

use anyhow::{Context, Result};
use smolsweep_evals::{evaluate, load_task, BatchSize, DataSources, EvalOptions, TaskSpec};

use super::load_model;
use crate::args::EvalArgs;

fn load_reward_model(a: &crate::args::ModelArgs) -> Result<smolsweep_model::RewardModel> {
    let rm = smolsweep_model::RewardModel::load(&a.model, a.device, a.dtype)
        .with_context(|| format!("loading reward model {}", a.model.display()))?;
    tracing::info!(device = ?rm.model.device(), dtype = ?rm.model.kind(), "reward model loaded");
    Ok(rm)
}

pub fn run(a: &EvalArgs) -> Result<()> {
    let batch_size: BatchSize = a
        .batch_size
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--batch-size {e}"))?;
    let convention: smolsweep_evals::Convention = a
        .convention
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--convention {e}"))?;
    let sources = DataSources {
        data_dir: a.data_dir.clone(),
        fewshot_from: a.fewshot_from.clone(),
    };
    let mut tasks = Vec::new();
    for t in &a.tasks {
        let spec: TaskSpec = t.parse().with_context(|| format!("--task {t}"))?;
        if tasks
            .iter()
            .any(|d: &smolsweep_evals::TaskData| d.kind == spec.kind)
        {
            anyhow::bail!("--task {t}: task `{}` given twice", spec.kind.name());
        }
        // A reward model's tasks and a causal LM's are never one model's:
        // refused before any data is read.
        if tasks
            .iter()
            .any(|d: &smolsweep_evals::TaskData| d.kind.is_reward() != spec.kind.is_reward())
        {
            anyhow::bail!(
                "--task {t}: reward-model tasks (rewardbench, preference_accuracy) and causal-LM \
                 tasks cannot be scored by one model; evaluate them separately"
            );
        }
        let data = load_task(&spec, &sources, a.limit).context("loading benchmark data")?;
        tracing::info!(
            task = spec.kind.name(),
            n = data.len(),
            files = data.files.len(),
            "data"
        );
        tasks.push(data);
    }
    let opts = EvalOptions {
        chat_template: a.chat_template,
        convention,
        batch_size,
        keep_samples: a.samples.is_some(),
        gsm8k_fewshot: usize::try_from(a.gsm8k_fewshot).context("--gsm8k-fewshot")?,
        ..Default::default()
    };
    let results = if tasks.iter().any(|t| t.kind.is_reward()) {
        let rm = load_reward_model(&a.model)?;
        smolsweep_evals::reward::evaluate(&rm, &a.model.model, &tasks, &opts)
            .context("evaluating")?
    } else {
        let m = load_model(&a.model)?;
        evaluate(&m, &tasks, &opts).context("evaluating")?
    };
    let json = serde_json::to_string_pretty(&results)?;
    match &a.out {
        Some(p) => std::fs::write(p, format!("{json}\n"))
            .with_context(|| format!("writing {}", p.display()))?,
        None => println!("{json}"),
    }
    if let Some(p) = &a.samples {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        );
        for r in results.tasks.values() {
            for s in &r.samples {
                writeln!(f, "{s}").with_context(|| format!("writing {}", p.display()))?;
            }
        }
        f.flush()
            .with_context(|| format!("writing {}", p.display()))?;
    }
    for r in results.tasks.values() {
        let metrics: Vec<String> = r
            .metrics
            .iter()
            .map(|(k, v)| match v.stderr {
                Some(se) => format!("{k}={:.4}±{se:.4}", v.value),
                None => format!("{k}={:.4}", v.value),
            })
            .collect();
        tracing::info!(
            task = r.task,
            n = r.n,
            wall_s = format!("{:.1}", r.wall_s),
            "{}",
            metrics.join(" ")
        );
    }
    Ok(())
}
