//! `--dump-batches`: the micro-batches of the first steps as JSON lines
//! (ids, targets, positions, whether packed), the input of the
//! reference-loop parity script. A DPO micro-batch is one line with its
//! pairs' indices and both sides.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use crate::batch::MicroBatch;
use crate::error::{Result, TrainError};

/// The dump file and how many steps go into it.
pub(super) struct BatchDump {
    file: std::fs::File,
    steps: u64,
}

impl BatchDump {
    /// Creates the file of `RunOptions::dump_batches`, if any.
    pub(super) fn create(target: &Option<(PathBuf, u64)>) -> Result<Option<Self>> {
        let Some((path, steps)) = target else {
            return Ok(None);
        };
        let file = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
        Ok(Some(BatchDump {
            file,
            steps: *steps,
        }))
    }

    /// Writes one micro-batch of optimizer step `step` (0-based) if that
    /// step is among the first `steps`.
    pub(super) fn write(&mut self, step: u64, mb: &MicroBatch) -> Result<()> {
        if step >= self.steps {
            return Ok(());
        }
        let line = json!({
            "step": step,
            "ids": Vec::<Vec<i64>>::try_from(&mb.ids)?,
            "targets": Vec::<i64>::try_from(&mb.targets)?,
            "positions": Vec::<Vec<i64>>::try_from(&mb.positions)?,
            "packed": mb.mask.is_some(),
        });
        writeln!(self.file, "{line}").map_err(|e| TrainError::Other(e.to_string()))
    }

    /// Writes one DPO micro-batch (the pairs `pairs`, chosen and rejected
    /// sides) of optimizer step `step` (0-based), as [`Self::write`] does.
    pub(super) fn write_pairs(
        &mut self,
        step: u64,
        pairs: &[usize],
        chosen: &MicroBatch,
        rejected: &MicroBatch,
    ) -> Result<()> {
        if step >= self.steps {
            return Ok(());
        }
        let side = |mb: &MicroBatch| -> Result<serde_json::Value> {
            Ok(json!({
                "ids": Vec::<Vec<i64>>::try_from(&mb.ids)?,
                "targets": Vec::<i64>::try_from(&mb.targets)?,
                "positions": Vec::<Vec<i64>>::try_from(&mb.positions)?,
            }))
        };
        let line = json!({
            "step": step,
            "pairs": pairs,
            "chosen": side(chosen)?,
            "rejected": side(rejected)?,
        });
        writeln!(self.file, "{line}").map_err(|e| TrainError::Other(e.to_string()))
    }
}
