//! The one error type of the model crate: every variant names the file and,
//! where there is one, the tensor or field that was wrong, because a user
//! with a broken checkpoint needs to know where to look.
//!
//! A message never repeats its source (the OS or JSON error): the source
//! stays the next link of the chain, which the binary prints once.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}`: {msg}")]
    Config {
        path: PathBuf,
        field: String,
        msg: String,
    },
    /// The model reference led nowhere (its own message names it).
    #[error(transparent)]
    Hub(#[from] smolsweep_hub::HubError),
    #[error("{path}: not a model directory: {msg}")]
    ModelDir { path: PathBuf, msg: String },
    #[error("{path}: tensor `{tensor}` is missing")]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        tensor: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("{path}: tensor `{tensor}`: {msg}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        msg: String,
    },
    #[error("{path}: invalid safetensors file: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    #[error("{path}: invalid GGUF file: {msg}")]
    Gguf { path: PathBuf, msg: String },
    #[error("{path}: tensor `{tensor}` has GGML type {ty}, which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)")]
    UnsupportedGgufType {
        path: PathBuf,
        tensor: String,
        ty: String,
    },
    #[error("{path}: tokenizer: {msg}")]
    Tokenizer { path: PathBuf, msg: String },
    #[error("chat template `{name}`: {msg}")]
    Template { name: String, msg: String },
    #[error("invalid device or dtype `{spec}`: {msg}")]
    Device { spec: String, msg: String },
    #[error("generation: {0}")]
    Generate(String),
    #[error("libtorch")]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Kernel(#[from] smolsweep_kernels::KernelError),
    #[error("attention = \"{want}\": {msg}")]
    Attention { want: String, msg: String },
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `err` and every source below it, joined with ": " as the binary prints
/// them: a message never repeats its source, so tests read the whole chain.
#[cfg(test)]
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
