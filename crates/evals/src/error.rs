//! The error type of the benchmarks: every message names the task and,
//! for bad data, the file, the row and the field. A message never repeats
//! its source; the binary prints the whole chain once.

use std::path::PathBuf;

use smolsweep_datasets::DatasetError;
use smolsweep_model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("unknown task `{0}` (known: arc_easy, arc_challenge, hellaswag, piqa, gsm8k, ifeval, mmlu_pro, bbh)")]
    UnknownTask(String),
    #[error("task {task}")]
    Dataset {
        task: String,
        #[source]
        source: DatasetError,
    },
    #[error(
        "task {task}: no data: give `--task {task}=PATH` (a path or ORG/NAME), or a `--data-dir` \
         holding it (searched {})",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoData {
        task: String,
        /// Every folder tried, in order.
        searched: Vec<PathBuf>,
    },
    #[error("task {task}: {location}: field `{field}`: {msg}")]
    Field {
        task: String,
        location: String,
        field: String,
        msg: String,
    },
    #[error("task {task}: {msg}")]
    Task { task: String, msg: String },
    #[error("{path}: {msg}")]
    Path { path: PathBuf, msg: String },
    #[error("evaluation: {0}")]
    Engine(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("libtorch")]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// `err` and every source below it, joined with ": " as the binary prints
/// them: a message never repeats its source, so tests read the whole chain.
#[cfg(test)]
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
