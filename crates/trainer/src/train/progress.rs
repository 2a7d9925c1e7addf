//! Where a run stands (steps done, tokens seen, last loss, time spent in
//! earlier processes): what a checkpoint records next to the optimizer
//! state, and what resuming restores.

use std::path::PathBuf;

use super::setup::Trainer;
use crate::checkpoint::{self, TrainerState};
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    /// Optimizer steps completed.
    pub step: u64,
    pub tokens_seen: u64,
    pub last_loss: Option<f64>,
    /// Seconds spent training in earlier processes of this trial.
    pub elapsed_before: f64,
}

impl Progress {
    /// Counts one more optimizer step.
    pub(super) fn advance(&mut self, loss: f64, tokens: u64) {
        self.step += 1;
        self.tokens_seen += tokens;
        self.last_loss = Some(loss);
    }
}

impl Trainer<'_> {
    /// Restores the optimizer state and the progress of the newest valid
    /// checkpoint; starts fresh when there is none. A checkpoint of another
    /// configuration is an error, not something to overwrite.
    pub(super) fn resume(&mut self) -> Result<Progress> {
        let Some((path, st, tensors)) = checkpoint::load_latest(&self.cfg.output_dir) else {
            tracing::info!("no checkpoint to resume from; starting fresh");
            return Ok(Progress::default());
        };
        if st.config_fingerprint != self.fingerprint {
            return Err(TrainError::Checkpoint {
                path,
                msg: "was written by a different trial configuration; refusing to resume it".into(),
            });
        }
        self.opt.load_state(&tensors, st.adam_t)?;
        let at = Progress {
            step: st.step,
            tokens_seen: st.tokens_seen,
            last_loss: st.last_loss,
            elapsed_before: st.elapsed_s,
        };
        tracing::info!(checkpoint = %path.display(), step = at.step, "resuming");
        Ok(at)
    }

    /// Writes a checkpoint of `at` and the optimizer state; `elapsed_s` is
    /// the trial's training time so far, earlier processes included.
    pub(super) fn save_checkpoint(&self, at: &Progress, elapsed_s: f64) -> Result<PathBuf> {
        let st = TrainerState {
            version: 1,
            step: at.step,
            epoch: at.step / self.plan.per_epoch,
            data_cursor: at.step,
            data_seed: self.cfg.seed,
            adam_t: self.opt.steps_done(),
            tokens_seen: at.tokens_seen,
            elapsed_s,
            last_loss: at.last_loss,
            config_fingerprint: self.fingerprint.clone(),
            state_sha256: String::new(),
        };
        checkpoint::save(
            &self.cfg.output_dir,
            &st,
            &self.opt.state_tensors(),
            self.cfg.keep_checkpoints,
        )
    }
}
