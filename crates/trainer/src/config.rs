//! The trial configuration the trainer runs: the one trial schema of
//! `smolsweep-config` (keys, defaults, validation), re-exported so the
//! trainer's modules name it from here.

pub use smolsweep_config::trial::{DpoSettings, TrialConfig, TRIAL_KEYS};
pub use smolsweep_config::{
    Attention, ChatTemplate, DType, DeviceSpec, DpoLoss, Forward, InitKind, LossReduction,
    MicroBatch, Schedule, Stage,
};
