//! Writing the small JSON files of a model directory (config, generation
//! config, tokenizer files) atomically: a temporary file renamed into
//! place, so a reader never sees half a file. Shared by the weights side
//! ([`crate::hf`], [`crate::gguf`]) and the tokenizer side
//! ([`crate::tokenizer`]), which must not depend on each other for it.

use std::path::Path;

use crate::error::{ModelError, Result};

/// Writes `bytes` to `path` through `PATH.tmp` and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

/// Writes `v` as pretty JSON with a trailing newline, as `transformers`
/// writes its files.
pub(crate) fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}
