//! The benchmarks every grid point is judged by: ARC (easy, challenge),
//! HellaSwag and PIQA by log-likelihood, GSM8K and IFEval by greedy
//! generation, each faithful to lm-evaluation-harness (and, for IFEval, to
//! Google's reference checker) or, under the `smollm2` convention
//! ([`convention`]), to lighteval as SmolLM2's evaluation ran it; a reward
//! model is scored on preference pairs (RewardBench, any preference set)
//! by [`reward`].
//!
//! [`load_task`] reads and validates a task's data (every bad row is an
//! error naming the task, file, row and field); [`evaluate`] runs tasks
//! on a model already in memory and returns [`EvalResults`], the
//! structure `smolsweep eval` writes as results.json.

pub mod bbh;
pub mod chat_wrap;
pub mod convention;
pub mod data;
pub mod error;
pub mod generation;
pub mod gsm8k;
pub mod ifeval;
pub mod loglik;
pub mod mmlu_pro;
pub mod pyrandom;
pub mod reward;
pub mod runner;
pub mod tasks;
pub mod text;

pub use data::{load_task, DataSources, TaskSpec};
pub use error::EvalError;
pub use loglik::BatchSize;
pub use runner::{evaluate, Convention, EvalOptions, EvalResults, Metric, TaskResult};
pub use tasks::{TaskData, TaskKind};
