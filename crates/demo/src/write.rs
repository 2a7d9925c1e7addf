//! Turning rows into JSON-lines text, and the generated files onto disk.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why the demo data could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One JSON object per line, as HF's JSONL files are.
pub(crate) fn jsonl(rows: impl IntoIterator<Item = Value>) -> String {
    let mut s = String::new();
    for r in rows {
        // A Value always serialises; write! to a String cannot fail.
        let _ = writeln!(s, "{r}");
    }
    s
}

/// Writes each (path relative to `out`, contents) pair, creating folders
/// as needed.
pub fn write_files(out: &Path, files: &[(String, String)]) -> Result<(), WriteError> {
    for (rel, text) in files {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| WriteError::Write { path, source })?;
    }
    Ok(())
}
