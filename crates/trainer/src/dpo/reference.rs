//! The reference model's sequence log-probs, computed once before training
//! (no gradients) and cached on disk, as open-instruct's
//! `dpo_tune_cache.py` does: indexed by pair (not by step, so any order,
//! batch size or resume reads the same entries), under a key of the
//! reference model, the tokenised pairs (data, tokenizer, template,
//! max_seq_len) and the dtype. Every trial of a sweep that shares these
//! reads one file, and the reference model is never in memory while the
//! policy trains.
//!
//! File: magic `SSREF001`, pair count u64, then per pair chosen sum,
//! chosen label count, rejected sum, rejected label count (f64 each), then
//! a crc32 of everything before it; written under a temporary name and
//! renamed. A file whose count is not the data's pair count is rebuilt.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use smolsweep_model::Llama;
use tch::{Device, Kind};

use super::logps;
use super::Side;
use crate::data::preference::PreferenceData;
use crate::error::{Result, TrainError};

const MAGIC: &[u8; 8] = b"SSREF001";

/// One pair's reference log-probs, summed, with their label counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefLogps {
    pub chosen_sum: f64,
    pub chosen_count: f64,
    pub rejected_sum: f64,
    pub rejected_count: f64,
}

/// What identifies the reference model: its directory's config and weight
/// files (name, size, modification time), or, for a randomly initialised
/// policy, its config and seed.
pub fn model_identity(dir: &Path, random_seed: Option<u64>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let cfg = dir.join("config.json");
    out.extend(std::fs::read(&cfg).map_err(|e| TrainError::io(&cfg, e))?);
    if let Some(seed) = random_seed {
        out.extend(format!("random:{seed}").as_bytes());
        return Ok(out);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TrainError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".safetensors") || n.ends_with(".index.json"))
        })
        .collect();
    files.sort();
    for f in files {
        // Hub snapshots are symlinks into blobs/: the blob is the content.
        let meta = std::fs::metadata(&f).map_err(|e| TrainError::io(&f, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        out.extend(format!("{}:{}:{mtime};", f.display(), meta.len()).as_bytes());
    }
    Ok(out)
}

/// The cache file of a reference for `data`.
pub fn cache_path(cache_dir: &Path, data: &PreferenceData, identity: &[u8], kind: Kind) -> PathBuf {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(data.key.as_bytes());
    h.update(identity);
    h.update(format!("{kind:?}").as_bytes());
    let key = hex::encode(&h.finalize()[..12]);
    cache_dir.join(format!("reference-{key}.bin"))
}

/// Reads a cache file of `pairs` entries; `None` when it is absent or not
/// valid (logged).
pub fn read(path: &Path, pairs: usize) -> Option<Vec<RefLogps>> {
    let bytes = std::fs::read(path).ok()?;
    let want = 8 + 8 + pairs * 32 + 4;
    let bad = |why: &str| {
        tracing::warn!(cache = %path.display(), "recomputing the reference log-probs: {why}");
        None
    };
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return bad("not a reference cache");
    }
    let n = u64::from_le_bytes(bytes[8..16].try_into().ok()?) as usize;
    if n != pairs || bytes.len() != want {
        return bad(&format!("it holds {n} pairs, the data {pairs}"));
    }
    let (body, crc) = bytes.split_at(want - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return bad("checksum mismatch");
    }
    let f = |i: usize| f64::from_le_bytes(body[i..i + 8].try_into().unwrap_or([0; 8]));
    Some(
        (0..pairs)
            .map(|p| {
                let at = 16 + p * 32;
                RefLogps {
                    chosen_sum: f(at),
                    chosen_count: f(at + 8),
                    rejected_sum: f(at + 16),
                    rejected_count: f(at + 24),
                }
            })
            .collect(),
    )
}

/// Writes `refs` to `path` atomically.
pub fn write(path: &Path, refs: &[RefLogps]) -> Result<()> {
    let mut body = Vec::with_capacity(20 + refs.len() * 32);
    body.extend(MAGIC);
    body.extend((refs.len() as u64).to_le_bytes());
    for r in refs {
        for v in [
            r.chosen_sum,
            r.chosen_count,
            r.rejected_sum,
            r.rejected_count,
        ] {
            body.extend(v.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&body);
    body.extend(crc.to_le_bytes());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &body).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Every pair's log-probs under `model`, without gradients, `micro` pairs
/// per forward pass; `stop` is polled between passes.
pub fn compute(
    model: &Llama,
    data: &PreferenceData,
    micro: usize,
    max_len: usize,
    pad: u32,
    stop: &AtomicBool,
) -> Result<Vec<RefLogps>> {
    let _g = tch::no_grad_guard();
    let device: Device = model.device();
    let n = data.len();
    let mut out = Vec::with_capacity(n);
    let t = std::time::Instant::now();
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(micro.max(1)) {
        if stop.load(Ordering::Relaxed) {
            return Err(TrainError::Stopped);
        }
        let side = |s: Side| -> Result<logps::Forwarded> {
            let mb = super::micro_batch(data, s, chunk, max_len, pad, device);
            logps::forward(model, &mb)
        };
        let (c, r) = (side(Side::Chosen)?, side(Side::Rejected)?);
        for k in 0..chunk.len() {
            out.push(RefLogps {
                chosen_sum: c.sums[k],
                chosen_count: c.counts[k],
                rejected_sum: r.sums[k],
                rejected_count: r.counts[k],
            });
        }
    }
    tracing::info!(
        pairs = n,
        secs = format!("{:.1}", t.elapsed().as_secs_f64()),
        "reference log-probs computed"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_file_round_trips_and_a_wrong_count_is_refused() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("r.bin");
        let refs: Vec<RefLogps> = (0..5)
            .map(|i| RefLogps {
                chosen_sum: -(i as f64) - 0.25,
                chosen_count: 3.0,
                rejected_sum: -7.5,
                rejected_count: i as f64 + 1.0,
            })
            .collect();
        write(&p, &refs).expect("write");
        assert_eq!(read(&p, 5), Some(refs));
        assert_eq!(read(&p, 6), None);
        let mut bytes = std::fs::read(&p).expect("read");
        bytes[20] ^= 1;
        std::fs::write(&p, bytes).expect("write");
        assert_eq!(read(&p, 5), None);
        assert_eq!(read(&d.path().join("absent.bin"), 5), None);
    }
}
