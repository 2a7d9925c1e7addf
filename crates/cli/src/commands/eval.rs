//! `smolsweep eval`: run benchmarks on a model and write results.json
//! (and samples.jsonl). The data of every task is read and checked before
//! the model is loaded, so a bad row fails in a second, not after an hour.
//! Reward-model tasks load the model as a sequence classifier
//! (`smolsweep_evals::reward`); `dpo_reward_accuracy` loads the policy's
//! reference beside it and scores the implicit reward with the trainer's
//! log-probs (`smolsweep_trainer::dpo::implicit`).

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
    if a.limit.is_some() && tasks.iter().any(|t| t.kind.is_dpo()) {
        anyhow::bail!(
            "--limit: dpo_reward_accuracy scores every pair of its data; give it a smaller file"
        );
    }
    let results = if tasks.iter().any(|t| t.kind.is_reward()) {
        let rm = load_reward_model(&a.model)?;
        smolsweep_evals::reward::evaluate(&rm, &a.model.model, &tasks, &opts)
            .context("evaluating")?
    } else {
        // The implicit-reward task runs on the trainer's log-probs, beside
        // the benchmarks.
        let (dpo, lm): (Vec<_>, Vec<_>) = tasks.into_iter().partition(|t| t.kind.is_dpo());
        let m = load_model(&a.model)?;
        let mut r = evaluate(&m, &lm, &opts).context("evaluating")?;
        for d in &dpo {
            let t = std::time::Instant::now();
            let result = dpo_reward_accuracy(a, &m, d)
                .with_context(|| format!("evaluating {}", d.kind.name()))?;
            r.total_wall_s += t.elapsed().as_secs_f64();
            r.tasks.insert(d.kind.name().to_owned(), result);
        }
        r
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

/// `dpo_reward_accuracy`: the policy `m` against its reference on the
/// task's pairs, with the beta, loss and max length its DPO export names
/// (or the flags').
fn dpo_reward_accuracy(
    a: &EvalArgs,
    m: &smolsweep_model::LoadedModel,
    data: &smolsweep_evals::TaskData,
) -> Result<smolsweep_evals::TaskResult> {
    use smolsweep_trainer::dpo::implicit::{self, DpoExport, DPO_EXPORT_FILE};
    let recorded = DpoExport::read(&m.dir)?;
    let missing = |what: &str, flag: &str| {
        anyhow::anyhow!(
            "{}: no {DPO_EXPORT_FILE} naming the {what} (not a smolsweep DPO export); give {flag}",
            m.dir.display()
        )
    };
    let reference = match (&a.reference, recorded.as_ref()) {
        (Some(r), _) => r.clone(),
        (None, Some(rec)) => rec.reference_model.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the policy's reference was a random initialisation (`init = \"random\"`), \
                 which no directory holds; give --reference",
                m.dir.join(DPO_EXPORT_FILE).display()
            )
        })?,
        (None, None) => return Err(missing("reference model", "--reference")),
    };
    let beta = match (a.beta, recorded.as_ref()) {
        (Some(b), _) => b,
        (None, Some(rec)) => rec.beta,
        (None, None) => return Err(missing("beta", "--beta")),
    };
    let dpo_loss = match (&a.dpo_loss, recorded.as_ref()) {
        (Some(l), _) => l
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--dpo-loss {e}"))?,
        (None, Some(rec)) => rec.dpo_loss,
        (None, None) => smolsweep_config::DpoLoss::DpoNorm,
    };
    let settings = DpoExport {
        reference_model: Some(reference.clone()),
        beta,
        dpo_loss,
        // Tulu 3's DPO max length when the export does not say.
        max_seq_len: recorded.as_ref().map_or(2048, |r| r.max_seq_len),
    };
    let start = std::time::Instant::now();
    let reference_model =
        smolsweep_model::LoadedModel::load(&reference, a.model.device, a.model.dtype)
            .with_context(|| format!("loading the reference model {}", reference.display()))?;
    let template = m.tokenizer.model_chat_template()?;
    let source = m.tokenizer.chat_template.clone().unwrap_or_default();
    let never = std::sync::atomic::AtomicBool::new(false);
    let micro = match a.batch_size.parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => 8,
    };
    let r = implicit::score(
        &m.model,
        &reference_model.model,
        &m.tokenizer,
        (&template, &source),
        &data.files,
        &settings,
        micro,
        &never,
    )?;
    let wall = start.elapsed().as_secs_f64();
    let n = r.pairs.len();
    let of = |f: &dyn Fn(&implicit::PairReward) -> f64| {
        smolsweep_evals::runner::mean_and_stderr(&r.pairs.iter().map(f).collect::<Vec<_>>())
    };
    let metrics = [
        (
            "accuracy",
            of(&|p| f64::from(u8::from(p.chosen > p.rejected))),
        ),
        ("margin", of(&|p| p.chosen - p.rejected)),
        ("chosen_reward", of(&|p| p.chosen)),
        ("rejected_reward", of(&|p| p.rejected)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    tracing::info!(
        pairs = n,
        dropped_no_labels = r.stats.dropped_no_labels,
        beta,
        dpo_loss = %dpo_loss,
        reference = %reference.display(),
        "implicit rewards scored"
    );
    Ok(smolsweep_evals::TaskResult {
        task: data.kind.name().to_owned(),
        convention: smolsweep_evals::Convention::LmEval,
        n,
        num_fewshot: 0,
        wall_s: wall,
        examples_per_s: if wall > 0.0 { n as f64 / wall } else { 0.0 },
        metrics,
        data_files: data.files.iter().map(|p| p.display().to_string()).collect(),
        fewshot_files: Vec::new(),
        subtasks: Default::default(),
        samples: if a.samples.is_some() {
            r.pairs
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    serde_json::json!({"task": data.kind.name(), "pair": i, "chosen_reward": p.chosen,
                                       "rejected_reward": p.rejected, "correct": p.chosen > p.rejected})
                })
                .collect()
        } else {
            Vec::new()
        },
    })
}
