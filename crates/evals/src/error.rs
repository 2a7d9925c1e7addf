//! The error type of the benchmarks: every message names the task and,
//! for bad data, the file, the row and the field.

use std::path::PathBuf;

use smolsweep_datasets::DatasetError;
use smolsweep_model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("unknown task `{0}` (known: arc_easy, arc_challenge, hellaswag, piqa, gsm8k, ifeval)")]
    UnknownTask(String),
    #[error("task {task}: {source}")]
    Dataset {
        task: String,
        #[source]
        source: DatasetError,
    },
    #[error(
        "task {task}: no data: give `--task {task}=PATH` or a `--data-dir` holding {expected}"
    )]
    NoData { task: String, expected: String },
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
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
