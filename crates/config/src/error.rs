//! The one error of configuration files: the file, and the key (or line)
//! at fault. The same variant serves trial files, sweep files and the
//! `[eval]` table, so a bad value reads the same wherever it was written.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read; the OS error is the source.
    #[error("cannot read {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML at all; `message` carries the line and column.
    #[error("{}: not valid TOML: {message}", file.display())]
    Toml { file: PathBuf, message: String },
    /// A key with a bad (or missing) value.
    #[error("{}: {key}: {message}", file.display())]
    Key {
        file: PathBuf,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The key at fault, when there is one (tests and callers that relabel
    /// keys, e.g. `lr` -> `grid.lr`).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A bad value before it is tied to a file: the key's suffix (`[1]` for
/// the second item of a list, `.log_space` for a generator) and what is
/// wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct BadValue {
    pub suffix: String,
    pub message: String,
}

impl BadValue {
    pub fn new(message: impl Into<String>) -> Self {
        BadValue {
            suffix: String::new(),
            message: message.into(),
        }
    }

    pub fn at(suffix: impl Into<String>, message: impl Into<String>) -> Self {
        BadValue {
            suffix: suffix.into(),
            message: message.into(),
        }
    }
}
