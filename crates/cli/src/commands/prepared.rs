//! The record of data preparation: `output_dir/prepare.json`, one entry
//! per distinct training set with its state (`tokenising`, `ready`,
//! `stopped`, `failed`), written by `prepare` and `run` as they go and
//! read by `status`, so a sweep that is still tokenising its data says so
//! (before any trial exists, too).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use smolsweep_orchestrator::SweepSpec;

/// One training set's preparation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub data: String,
    pub max_seq_len: usize,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Seconds since the Unix epoch of the last change.
    pub updated: u64,
}

pub fn path(spec: &SweepSpec) -> PathBuf {
    spec.output_dir.join("prepare.json")
}

/// The entries recorded for the sweep (none when nothing was prepared,
/// or the file is unreadable: it is a display aid, never a source of
/// truth for the trials).
pub fn read(spec: &SweepSpec) -> Vec<Entry> {
    std::fs::read(path(spec))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Replaces the entry for `e.data`/`e.max_seq_len` (or adds it) and
/// writes the file atomically; a failure to write is logged, not fatal.
pub fn update(spec: &SweepSpec, e: Entry) {
    let mut all = read(spec);
    match all
        .iter_mut()
        .find(|x| x.data == e.data && x.max_seq_len == e.max_seq_len)
    {
        Some(x) => *x = e,
        None => all.push(e),
    }
    if let Err(err) = write(&path(spec), &all) {
        tracing::warn!(
            "recording the data preparation in {}: {err}",
            path(spec).display()
        );
    }
}

fn write(p: &Path, all: &[Entry]) -> std::io::Result<()> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = p.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(all).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, p)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `data: SET (max_seq_len N): STATE[, N samples][: detail]`, for status.
pub fn line(e: &Entry) -> String {
    let mut s = format!(
        "data: {} (max_seq_len {}): {}",
        e.data, e.max_seq_len, e.state
    );
    if let Some(n) = e.samples {
        s.push_str(&format!(", {n} samples"));
    }
    if let Some(d) = &e.detail {
        s.push_str(&format!(": {d}"));
    }
    s
}
