//! The trainer's error type. Messages name the file and the key, line or
//! data row, so a user can fix the input without reading code. A message
//! never repeats its source (a wrapper of another crate's error is
//! transparent); the binary prints the whole chain once, so a caller that
//! shows one of these errors itself should walk its sources.

use std::path::PathBuf;

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bad trial file: the file and key are in the message.
    #[error(transparent)]
    Config(#[from] smolsweep_config::ConfigError),
    #[error("{location}: {msg}")]
    Data { location: String, msg: String },
    #[error(transparent)]
    Dataset(#[from] smolsweep_datasets::DatasetError),
    #[error(transparent)]
    Model(#[from] smolsweep_model::ModelError),
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error("libtorch")]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Kernel(#[from] smolsweep_kernels::KernelError),
    /// SIGTERM/SIGINT arrived before the first step (while the data was
    /// read, tokenised or waited for): nothing to checkpoint, and nothing
    /// half-written left behind. The trial ends as a stop (exit 4).
    #[error("stopped by a signal before training started")]
    Stopped,
    #[error("{0}")]
    Other(String),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `err` and every source below it, joined with ": " as the binary prints
/// them, for callers that log or embed an error themselves.
pub fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
