//! The command-line interface definition (clap), kept apart from the
//! commands' logic in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "smolsweep", version, about = "Learning-rate x batch-size sweeps of small language models", long_about = None)]
pub struct Cli {
    /// Log filter for stderr (e.g. `info`, `debug`, `smolsweep_model=trace`); RUST_LOG also works.
    #[arg(long, global = true, default_value = "info", env = "SMOLSWEEP_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Versions, libtorch location, CUDA devices and the attention backend.
    Info,
    /// Greedy completion of a prompt.
    Generate(GenerateArgs),
    /// Per-token log-probabilities of a text, as JSON.
    Score(ScoreArgs),
    /// Convert a GGUF file (llama architecture) into a HF model directory.
    ImportGguf(ImportArgs),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// HF model directory, hub cache folder (models--ORG--NAME), or ORG/NAME in the local HF cache.
    #[arg(long)]
    pub model: PathBuf,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// auto (f32 on CPU, bf16 on CUDA), f32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt (repeat for a batch).
    #[arg(long, required = true)]
    pub prompt: Vec<String>,
    /// Wrap each prompt as one user message in the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// Chat template: `model` (the model's own), `tulu` or `chatml`.
    #[arg(long, default_value = "model")]
    pub template: String,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Stop at this string (repeatable); the output is cut before it.
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Print one JSON object per prompt instead of the bare text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to score, tokenised as-is.
    #[arg(long)]
    pub text: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SaveDtype {
    F32,
    Bf16,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The .gguf file.
    pub file: PathBuf,
    /// Output model directory.
    #[arg(long)]
    pub out: PathBuf,
    /// dtype of the written safetensors.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: SaveDtype,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Forward-pass tokens/s of a model at several batch shapes.
    Forward(BenchForwardArgs),
}

#[derive(Debug, Args)]
pub struct BenchForwardArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Batch shapes as BATCHxSEQ (repeatable).
    #[arg(long = "shape", default_values = ["1x256", "8x256"])]
    pub shapes: Vec<String>,
    /// Timed iterations per shape (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// libtorch intra-op threads (0 = libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
}
