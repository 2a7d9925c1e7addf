//! The trainer's error type. Messages name the file and the key, line or
//! data row, so a user can fix the input without reading code.

use std::path::PathBuf;

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
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
    #[error("{0}")]
    Dataset(#[from] smolsweep_datasets::DatasetError),
    #[error("{0}")]
    Model(#[from] smolsweep_model::ModelError),
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
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
