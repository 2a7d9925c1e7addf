//! SmolLM2 / Llama-family language models in libtorch (through `tch`).
//!
//! This crate is everything the rest of smolsweep needs to hold a model:
//! reading and writing Hugging Face checkpoints ([`hf`]), the network itself
//! ([`llama`]), greedy generation with a KV cache ([`generate`]), the
//! tokenizer and chat templates ([`tokenizer`], [`chat`]), importing GGUF
//! files ([`gguf`]), choosing a device and dtype ([`device`]) and the
//! reward model's score head ([`score`]).

pub mod chat;
pub mod config;
pub mod device;
pub mod error;
mod files;
pub mod flops;
pub mod generate;
pub mod gguf;
pub mod hf;
pub mod llama;
pub mod mmap;
pub mod prefix_tokens;
pub mod score;
pub mod tokenizer;
pub mod varlen;

pub use chat::{ChatTemplate, Message};
pub use config::LlamaConfig;
pub use device::{resolve_device, resolve_kind, DType, DeviceSpec};
pub use error::{ModelError, Result};
pub use generate::{GenerateOptions, Generation, StopReason};
pub use hf::LoadedModel;
pub use llama::{KvCache, Llama};
pub use prefix_tokens::PrefixTokens;
pub use score::RewardModel;
pub use tokenizer::TextTokenizer;
pub use varlen::Varlen;
