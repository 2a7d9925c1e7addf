//! Checkpoints: `output_dir/checkpoints/step-NNNNNNNN/` holding
//! `state.safetensors` (fp32 weights and both AdamW moments) and
//! `trainer_state.json` (step, epoch, data cursor, RNG seed, tokens seen,
//! a fingerprint of the configuration and the SHA-256 of the state file).
//!
//! A checkpoint is written under a temporary name and renamed into place,
//! so a kill mid-write leaves no half checkpoint; on resume the newest one
//! whose checksum verifies is used, falling back to older ones.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::Tensor;

use crate::error::{Result, TrainError};

/// Named tensors of a checkpoint's state file.
pub type StateTensors = Vec<(String, Tensor)>;

/// What `trainer_state.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub version: u32,
    /// Optimizer steps completed.
    pub step: u64,
    pub epoch: u64,
    /// Position in the data: optimizer step `step` of the per-epoch order
    /// drawn from `data_seed` (the order is a pure function of both).
    pub data_cursor: u64,
    pub data_seed: u64,
    pub adam_t: u64,
    pub tokens_seen: u64,
    pub elapsed_s: f64,
    pub last_loss: Option<f64>,
    pub config_fingerprint: String,
    pub state_sha256: String,
}

pub fn checkpoints_dir(output_dir: &Path) -> PathBuf {
    output_dir.join("checkpoints")
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Writes a checkpoint and keeps only the newest `keep`.
pub fn save(
    output_dir: &Path,
    state: &TrainerState,
    tensors: &[(String, Tensor)],
    keep: usize,
) -> Result<PathBuf> {
    let root = checkpoints_dir(output_dir);
    std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
    let name = format!("step-{:08}", state.step);
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let st = tmp.join("state.safetensors");
    smolsweep_model::hf::write_tensors(&st, tensors, None)?;
    let mut state = state.clone();
    state.state_sha256 = sha256_file(&st)?;
    let json = serde_json::to_vec_pretty(&state).map_err(|e| TrainError::Other(e.to_string()))?;
    let js = tmp.join("trainer_state.json");
    std::fs::write(&js, json).map_err(|e| TrainError::io(&js, e))?;
    let dst = root.join(&name);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::rename(&tmp, &dst).map_err(|e| TrainError::io(&dst, e))?;
    for old in list(output_dir).into_iter().rev().skip(keep) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(dst)
}

/// Checkpoint directories, oldest first.
pub fn list(output_dir: &Path) -> Vec<PathBuf> {
    let root = checkpoints_dir(output_dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("step-"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Reads and verifies one checkpoint.
pub fn load(dir: &Path) -> Result<(TrainerState, StateTensors)> {
    let bad = |msg: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        msg,
    };
    let js = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&js).map_err(|e| bad(format!("trainer_state.json: {e}")))?;
    let state: TrainerState =
        serde_json::from_str(&text).map_err(|e| bad(format!("trainer_state.json: {e}")))?;
    let st = dir.join("state.safetensors");
    let sum = sha256_file(&st).map_err(|e| bad(crate::error::chain_text(&e)))?;
    if sum != state.state_sha256 {
        return Err(bad(
            "state.safetensors does not match its checksum (corrupt)".into(),
        ));
    }
    let tensors =
        smolsweep_model::hf::read_tensors(&st).map_err(|e| bad(crate::error::chain_text(&e)))?;
    Ok((state, tensors))
}

/// The newest checkpoint that verifies; corrupt ones are reported and
/// skipped.
pub fn load_latest(output_dir: &Path) -> Option<(PathBuf, TrainerState, StateTensors)> {
    for dir in list(output_dir).into_iter().rev() {
        match load(&dir) {
            Ok((s, t)) => return Some((dir, s, t)),
            Err(e) => tracing::warn!("skipping checkpoint: {}", crate::error::chain_text(&e)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64) -> TrainerState {
        TrainerState {
            version: 1,
            step,
            epoch: 0,
            data_cursor: step,
            data_seed: 1,
            adam_t: step,
            tokens_seen: 0,
            elapsed_s: 0.0,
            last_loss: Some(1.0),
            config_fingerprint: "x".into(),
            state_sha256: String::new(),
        }
    }

    #[test]
    fn rotation_and_fallback_past_a_corrupt_checkpoint() {
        let d = tempfile::tempdir().expect("tmp");
        let t = vec![("param.w".to_owned(), Tensor::from_slice(&[1.0f32, 2.0]))];
        for s in [1, 2, 3] {
            save(d.path(), &state(s), &t, 2).expect("save");
        }
        assert_eq!(list(d.path()).len(), 2);
        let newest = list(d.path()).pop().expect("newest");
        let (_, s, _) = load_latest(d.path()).expect("latest");
        assert_eq!(s.step, 3);
        // Corrupt the newest: flip bytes in its state file.
        let f = newest.join("state.safetensors");
        let mut b = std::fs::read(&f).expect("read");
        let n = b.len();
        b[n - 1] ^= 0xff;
        std::fs::write(&f, b).expect("write");
        let (_, s, tensors) = load_latest(d.path()).expect("fallback");
        assert_eq!(s.step, 2);
        assert_eq!(tensors[0].0, "param.w");
    }
}
