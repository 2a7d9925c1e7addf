//! One supervised fine-tuning job of the Tulu 3 recipe, as `smolsweep
//! train` runs it: the trial configuration ([`config`]), chat data and its
//! tokenisation cache ([`data`]), batching and packing ([`batch`]), the
//! chunked LM loss ([`loss`]), AdamW and schedules ([`optim`]),
//! checkpoints ([`checkpoint`]), the event stream ([`events`]) and the loop
//! that ties them together ([`train`]). A DPO trial runs the same loop
//! with its own step ([`dpo`]), and so does a reward-model trial ([`rm`]).

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dpo;
pub mod error;
pub mod events;
pub mod loss;
pub mod optim;
pub mod prepare;
pub mod rm;
pub mod train;

pub use config::TrialConfig;
pub use error::{Result, TrainError};
pub use train::{run, Outcome, RunOptions};
