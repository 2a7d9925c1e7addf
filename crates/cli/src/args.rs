//! The command-line interface definition (clap), kept apart from the
//! commands' logic in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use smolsweep_config::benchmarks::GSM8K_FEWSHOT;
use smolsweep_config::{Attention, DType, DeviceSpec};

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
    /// Figure-1 contours, the LR/BS ratio analysis, report.md/html and results.csv of a sweep.
    Report(ReportArgs),
    /// One SFT or DPO job from a trial TOML (exit 0 done, 3 diverged, 4 stopped, 1 error).
    Train(TrainArgs),
    /// A new model directory (config + byte-level tokenizer) for training from scratch.
    InitModel(InitModelArgs),
    /// The demo sweep's data: synthetic SFT and benchmark sets, from a seed.
    DemoData(DemoDataArgs),
    /// Benchmarks (ARC, HellaSwag, PIQA, GSM8K, IFEval, MMLU-Pro, BBH) as lm-evaluation-harness
    /// (or, with `--convention smollm2`, SmolLM2's lighteval) scores them.
    Eval(EvalArgs),
    /// Run (or resume) a sweep: train and evaluate every grid point.
    Run(RunArgs),
    /// Check a sweep's data and tokenise its training data once, before any trial starts.
    Prepare(PrepareArgs),
    /// Evaluate every completed trial of a sweep on TASKS into a new, named results set (no training).
    EvalSweep(EvalSweepArgs),
    /// A sweep's grid points with state, progress, loss and scores.
    Status(StatusArgs),
    /// A sweep's trials as CSV: hyperparameters, state and every score.
    Export(ExportArgs),
    /// Print a fully commented trial or sweep TOML: every key, its kind and default.
    Schema(SchemaArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// A trial file (`smolsweep train --config`).
    Trial,
    /// A sweep file (`smolsweep run`).
    Sweep,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file.
    #[arg(value_enum)]
    pub kind: SchemaKind,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// HF model directory, hub cache folder (models--ORG--NAME), or ORG/NAME in the local HF cache.
    #[arg(long)]
    pub model: PathBuf,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceSpec,
    /// auto (f32 on CPU, bf16 on CUDA), f32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: DType,
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
    /// Training-step tokens/s (forward, loss, backward, AdamW) and peak RSS.
    Train(BenchTrainArgs),
    /// Generated tokens/s of GSM8K or IFEval prompts, by each generation engine.
    Generate(BenchGenerateArgs),
    /// One layer's attention over packed rows, forward + backward: varlen flash vs masked SDPA (parity and time).
    Attention(BenchAttentionArgs),
    /// SFT tokenisation speed: the fast prefix counting vs re-tokenising every prefix (open-instruct's way), same rows, same run.
    Tokenise(BenchTokeniseArgs),
}

#[derive(Debug, Args)]
pub struct BenchTokeniseArgs {
    /// Model directory (its tokenizer.json and, for `model`, its chat template).
    #[arg(long)]
    pub model: PathBuf,
    /// SFT data: a file, a dataset directory or a hub-cache path, as `data` in a trial.
    #[arg(long)]
    pub data: PathBuf,
    /// model, chatml or tulu (the `chat_template` trial key).
    #[arg(long, default_value = "model")]
    pub chat_template: String,
    #[arg(long, default_value_t = 2048)]
    pub max_seq_len: usize,
    /// Only the first N rows.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct BenchAttentionArgs {
    /// Packed rows BATCHxSEQ.
    #[arg(long, default_value = "8x2048")]
    pub shape: String,
    /// Shortest and longest packed sample, MIN:MAX tokens.
    #[arg(long, default_value = "64:1024")]
    pub sample_lens: String,
    /// Query heads, key/value heads, head dim (SmolLM2-135M's by default).
    #[arg(long, default_value = "9:3:64")]
    pub heads: String,
    /// Timed iterations (after one warm-up).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    #[arg(long, default_value = "auto")]
    pub device: DeviceSpec,
    /// auto (f32 on CPU, bf16 on CUDA), f32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: DType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenEngine {
    /// Slots refilled as rows finish (what `eval` uses).
    Continuous,
    /// Fixed batches of left-padded prompts (the previous engine).
    Static,
    /// Both on the same prompts, in one run, outputs compared.
    Both,
}

#[derive(Debug, Args)]
pub struct BenchGenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// gsm8k or ifeval, or NAME=PATH as `eval --task` takes it.
    #[arg(long)]
    pub task: String,
    /// Where the task's data is found (as `eval --data-dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Tokens per prompt at most (default: the task's, 256 for GSM8K, 1280 for IFEval).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Solved examples before each GSM8K question.
    #[arg(long, default_value_t = GSM8K_FEWSHOT)]
    pub gsm8k_fewshot: u64,
    /// Rows per batch (slots), or `auto` (as `eval --batch-size`).
    #[arg(long, default_value = "auto")]
    pub batch_size: String,
    #[arg(long, value_enum, default_value = "both")]
    pub engine: GenEngine,
    /// Runs of each engine, alternating (so load from elsewhere falls on both alike).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// libtorch intra-op threads (0 = libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossImpl {
    /// Chunked LM head + cross-entropy (what `train` uses).
    Chunked,
    /// Whole [tokens x vocab] logits under autograd (the reference).
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimImpl {
    /// Flat buffers, libtorch's fused AdamW kernel (what `train` uses).
    Fused,
    /// Flat buffers, the update as a handful of flat tensor ops.
    Flat,
    /// One update per parameter tensor (the reference).
    PerTensor,
}

#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// Model directory (its config.json decides the shape).
    #[arg(long)]
    pub model: PathBuf,
    /// Start from random weights instead of the directory's safetensors.
    #[arg(long)]
    pub random_init: bool,
    /// Micro-batch shape BATCHxSEQ.
    #[arg(long, default_value = "8x256")]
    pub shape: String,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, value_enum, default_value = "chunked")]
    pub loss: LossImpl,
    /// The AdamW implementation (run once per variant to compare).
    #[arg(long, value_enum, default_value = "fused")]
    pub optimizer: OptimImpl,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// auto (f32 on CPU, bf16 on CUDA), f32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: DType,
    /// Rows packed from samples of random lengths (seeded), as `packing = true` trains.
    #[arg(long)]
    pub packed: bool,
    /// Shortest and longest packed sample, MIN:MAX tokens.
    #[arg(long, default_value = "64:1024")]
    pub sample_lens: String,
    /// How packed rows attend: auto, varlen or sdpa (the `attention` trial key).
    #[arg(long, default_value = "auto")]
    pub attention: Attention,
    /// Peak dense bf16 TFLOP/s for MFU (default: from the CUDA device name, H100/H200/A100).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
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

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The sweep TOML.
    pub sweep: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The sweep TOML ([sweep], [train], [grid], [eval], [resources]).
    pub sweep: PathBuf,
    /// Do not draw the progress display (logs only).
    #[arg(long)]
    pub no_progress: bool,
    /// Validate the sweep (every grid point, the GPUs) and print its size; record and start nothing.
    #[arg(long)]
    pub check: bool,
    /// Slurm: submit what can be submitted now (up to max_concurrent), record it and exit; `status` follows, a later `run` picks up.
    #[arg(long, conflicts_with = "check")]
    pub detach: bool,
    /// Slurm: Ctrl-C (and SIGTERM) cancels the sweep's jobs (scancel) without asking; the next `run` submits them again.
    #[arg(long, conflicts_with = "check")]
    pub cancel: bool,
}

#[derive(Debug, Args)]
pub struct EvalSweepArgs {
    /// The sweep TOML (recorded by `smolsweep run`; its [eval] gives the options not set here).
    pub sweep: PathBuf,
    /// Tasks, comma-separated: NAME or NAME=PATH (PATH relative to the current directory).
    #[arg(long, required = true, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Name of the results set (default: the task names joined by '+'); the same name again resumes it.
    #[arg(long)]
    pub name: Option<String>,
    /// An [eval] option for this set, KEY=VALUE as in TOML (e.g. limit=50, gsm8k_fewshot=0); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Do not draw the progress display (logs only).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The sweep TOML.
    pub sweep: PathBuf,
    /// One JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Show the scores of this results set (`eval-sweep --name`) instead of the sweep's own.
    #[arg(long, value_name = "NAME")]
    pub results: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The sweep TOML.
    pub sweep: PathBuf,
    /// Where to write the CSV (`-` for stdout).
    #[arg(long)]
    pub csv: PathBuf,
    /// Export the scores of this results set (`eval-sweep --name`) instead of the sweep's own.
    #[arg(long, value_name = "NAME")]
    pub results: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// NAME or NAME=PATH (repeatable): arc_easy, arc_challenge, hellaswag, piqa, gsm8k, ifeval,
    /// mmlu_pro, bbh, dpo_reward_accuracy (a DPO policy); rewardbench, preference_accuracy (a reward model); PATH is a Parquet/JSONL file or an HF dataset directory (or hub cache folder).
    #[arg(long = "task", required = true)]
    pub tasks: Vec<String>,
    /// Where tasks without a PATH are found: NAME/ folders or hub cache folders (datasets--ORG--NAME).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// GSM8K's few-shot pool (default: the train split beside the test split).
    #[arg(long)]
    pub fewshot_from: Option<PathBuf>,
    /// Evaluate only the first N examples of each task.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Solved examples before each GSM8K question (lm-eval's default: 5).
    #[arg(long, default_value_t = GSM8K_FEWSHOT)]
    pub gsm8k_fewshot: u64,
    /// Wrap prompts in the model's chat template (few-shot as alternating turns).
    #[arg(long)]
    pub chat_template: bool,
    /// Whose conventions: `lm-eval` (lm-evaluation-harness) or `smollm2` (lighteval as SmolLM2 ran it).
    #[arg(long, default_value = "lm-eval")]
    pub convention: String,
    /// Questions (or prompts) per forward pass, or `auto`.
    #[arg(long, default_value = "auto")]
    pub batch_size: String,
    /// results.json (printed to stdout when not given).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// One JSON line per example.
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// dpo_reward_accuracy: the reference model (default: the one the DPO export names).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// dpo_reward_accuracy: beta of the implicit reward (default: the DPO export's).
    #[arg(long)]
    pub beta: Option<f64>,
    /// dpo_reward_accuracy: `dpo_norm` (length-normalised) or `dpo` (default: the DPO export's).
    #[arg(long)]
    pub dpo_loss: Option<String>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The trial TOML (keys documented in the README).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue from the newest valid checkpoint in output_dir (fresh start if none).
    #[arg(long)]
    pub resume: bool,
    /// Validate the trial file and exit (nothing is loaded or written).
    #[arg(long)]
    pub check: bool,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Write the first --dump-steps steps' micro-batches as JSON lines (for the reference-loop parity script).
    #[arg(long, hide = true)]
    pub dump_batches: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 20)]
    pub dump_steps: u64,
}

#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// Output directory (sft/ and one folder per benchmark).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the generator: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct InitModelArgs {
    /// Output model directory.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 64)]
    pub hidden_size: usize,
    #[arg(long, default_value_t = 176)]
    pub intermediate_size: usize,
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 2)]
    pub kv_heads: usize,
    #[arg(long, default_value_t = 2048)]
    pub max_position_embeddings: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Also write seeded random weights (model.safetensors).
    #[arg(long)]
    pub weights: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The sweep TOML.
    pub sweep: PathBuf,
    /// Output directory (default: the sweep's output_dir/report, or report.NAME with --results).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Report the scores of this results set (`eval-sweep --name`) instead of the sweep's own.
    #[arg(long, value_name = "NAME")]
    pub results: Option<String>,
}
