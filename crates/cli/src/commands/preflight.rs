//! What `smolsweep run` checks before it records or starts anything:
//! every eval task's data, found by the same resolver and read with the
//! same row checks as `smolsweep eval`, and the first rows of each
//! training data set, read as the trainer reads them. A wrong path or a
//! bad row then costs seconds, not a training run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use smolsweep_config::Stage;
use smolsweep_evals::{load_task, DataSources, TaskSpec};
use smolsweep_orchestrator::SweepSpec;

/// Rows of each training data set checked before the sweep starts: enough
/// to catch a wrong schema, few enough to read a tulu-sized file's first
/// row group in a moment.
const TRAIN_ROWS_CHECKED: usize = 64;

/// Checks the sweep's eval tasks and training data; the error names the
/// sweep file, the key and the file, row and field at fault.
pub fn check(spec: &SweepSpec) -> Result<()> {
    let file = spec.file.display();
    let mut data_sets: Vec<(Vec<PathBuf>, Stage)> = Vec::new();
    for point in spec.points() {
        // Grid points were validated when the spec was loaded.
        let trial = spec
            .trial(&point, &spec.output_dir)
            .map_err(|e| anyhow::anyhow!("{file}: {}: {}", e.key, e.message))?;
        let set = (trial.data, trial.stage);
        if !data_sets.contains(&set) {
            data_sets.push(set);
        }
    }
    for (data, stage) in &data_sets {
        for (i, path) in data.iter().enumerate() {
            check_training_data(path, *stage)
                .with_context(|| format!("{file}: train.data[{i}]"))?;
        }
    }
    let Some(eval) = &spec.eval else {
        return Ok(());
    };
    let sources = DataSources {
        data_dir: eval.data_dir.clone(),
        fewshot_from: None,
    };
    let limit = eval.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let trains_rm = data_sets.iter().any(|(_, s)| *s == Stage::Rm);
    let trains_lm = data_sets.iter().any(|(_, s)| *s != Stage::Rm);
    for (i, task) in eval.tasks.iter().enumerate() {
        let spec_of: TaskSpec = task
            .parse()
            .with_context(|| format!("{file}: eval.tasks[{i}]"))?;
        // A reward model is scored on preference pairs, a causal LM on the
        // LM benchmarks: a task the sweep's models cannot run would fail
        // every trial's evaluation after its training.
        let name = spec_of.kind.name();
        if spec_of.kind.is_reward() && trains_lm {
            anyhow::bail!(
                "{file}: eval.tasks[{i}]: `{name}` scores a reward model, and this sweep trains \
                 a causal LM (a reward model is `stage = \"rm\"`)"
            );
        }
        // The implicit reward needs the reference a DPO trial recorded in
        // its export.
        if spec_of.kind.is_dpo() && data_sets.iter().any(|(_, s)| *s != Stage::Dpo) {
            anyhow::bail!(
                "{file}: eval.tasks[{i}]: `{name}` scores a DPO policy against its reference, and \
                 this sweep trains {} (it needs `stage = \"dpo\"`)",
                if trains_rm {
                    "a reward model"
                } else {
                    "by SFT"
                }
            );
        }
        if spec_of.kind.is_dpo() && limit.is_some() {
            anyhow::bail!(
                "{file}: eval.limit: `{name}` (eval.tasks[{i}]) scores every pair of its data; \
                 give it a smaller file instead"
            );
        }
        if !spec_of.kind.is_reward() && trains_rm {
            anyhow::bail!(
                "{file}: eval.tasks[{i}]: `{name}` scores a causal LM, and this sweep trains a \
                 reward model (`stage = \"rm\"`: rewardbench, preference_accuracy)"
            );
        }
        load_task(&spec_of, &sources, limit).with_context(|| format!("{file}: eval.tasks[{i}]"))?;
    }
    Ok(())
}

/// The first rows of a training data reference, as the trainer parses
/// them: conversations for SFT, preference pairs otherwise.
fn check_training_data(path: &std::path::Path, stage: Stage) -> Result<()> {
    let files = smolsweep_datasets::training_files(path)?;
    let first = &files[0];
    let rows = smolsweep_datasets::read_head(first, TRAIN_ROWS_CHECKED)?;
    if rows.is_empty() && files.len() == 1 {
        anyhow::bail!("{}: the dataset is empty", first.display());
    }
    for (index, row) in rows.into_iter().enumerate() {
        let rec = smolsweep_datasets::Record {
            file: first.clone(),
            index,
            row,
        };
        match stage {
            Stage::Sft => {
                smolsweep_trainer::data::parse_messages(&rec)?;
            }
            Stage::Dpo | Stage::Rm => {
                smolsweep_datasets::parse_pair(&rec)?;
            }
        }
    }
    Ok(())
}
