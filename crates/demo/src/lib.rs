//! The demo sweep's data, generated rather than shipped.
//!
//! The demo (`sweeps/demo.toml`, `make demo`) trains a ~100k-parameter
//! byte-level model from scratch on a 2-core CPU in about a minute per
//! trial, so real benchmarks (and real SFT data) are out of reach: such a
//! model scores chance on them whatever the learning rate. Instead this
//! crate builds a tiny synthetic world (`world`) and writes, in the
//! benchmarks' real HF schemas:
//!
//! - `sft/train.jsonl`: `messages` conversations teaching every skill below;
//! - `arc_easy/test.jsonl`: colour facts ("What color is a banana?") and
//!   "Which number is bigger, 7 or 12?", four choices `A`-`D`;
//! - `arc_challenge/test.jsonl`: "Which number is smaller, ...?" and "What
//!   number comes after 7?", four choices;
//! - `hellaswag/validation.jsonl`: a person doing one step of a fixed
//!   everyday routine (making tea, planting a tree, ...); the right ending
//!   is the routine's next step, the wrong ones steps of other routines;
//! - `piqa/validation.jsonl`: "How do you cut paper?" with the right and a
//!   wrong tool;
//! - `gsm8k/train.jsonl` + `gsm8k/test.jsonl`: one- and two-step word
//!   problems on numbers below 10, answers ending `#### N` (the train split
//!   is the 5-shot pool and also part of the SFT data, as real GSM8K's is);
//! - `ifeval/train.jsonl`: "Write a short sentence about the sun." plus
//!   real IFEval instructions that are easy to follow (all lowercase, all
//!   capitals, no commas, wrap in quotes, end with a fixed phrase, a P.S.,
//!   a <<title>>), with the real instruction ids and kwargs.
//!
//! Test items are held out (`split`): a combination (numbers, person and
//! routine step, name and objects, topic and instruction) that is in a
//! test set is never in the SFT data; only the world's facts (colours,
//! routines, tools, sentences about topics) are shared, as a pretraining
//! corpus would share them with a real benchmark.
//!
//! The SFT conversations (`sft`) are in the form the demo evaluates them
//! with (`chat_template = true`): the user turn is the benchmark's prompt,
//! built by `smolsweep-evals`' own prompt functions, and the assistant turn
//! its answer, few-shot GSM8K problems as earlier turns.
//!
//! Everything comes from one seeded stream (`rng`): the same seed gives the
//! same bytes on every machine, so the demo is reproducible without
//! shipping files.

mod arc;
mod choices;
mod generate;
mod gsm8k;
mod hellaswag;
mod ifeval;
mod piqa;
mod preference;
mod rng;
mod sft;
mod split;
mod world;
mod write;

pub use generate::generate;
pub use write::{write_files, WriteError};
