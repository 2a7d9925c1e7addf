//! The trial schema: one training job's every setting, as `smolsweep train
//! --config` reads it and as each grid point of a sweep becomes. Defaults
//! are the Tulu 3 SFT recipe (open-instruct): AdamW (0.9, 0.999, 1e-8), no
//! weight decay, linear schedule with 3% warmup, 2 epochs, max length 4096,
//! loss reduction "sum", no clipping, seed 123. Unknown keys are an error,
//! so a typo never silently trains with a default.

use std::path::{Path, PathBuf};

use crate::enums::{
    Attention, ChatTemplate, DType, DeviceSpec, InitKind, LossReduction, MicroBatch, Schedule,
};
use crate::error::ConfigError;
use crate::keys::{check_table, fill_defaults, schema, KeyError, Kind, Range};

schema! {
    /// One trial. Field names are the TOML keys; `smolsweep schema trial`
    /// prints them all with their defaults.
    pub struct TrialConfig, keys TRIAL_KEYS;

    /// HF model directory, hub cache folder (models--ORG--NAME) or snapshot, or ORG/NAME[@REV] in the local hub cache.
    model: PathBuf = required, Kind::ModelDir;
    /// "pretrained" starts from the model's weights, "random" from fresh weights seeded by `seed`.
    init: InitKind = "\"pretrained\"", Kind::Choice(InitKind::NAMES);
    /// SFT data: Parquet/JSONL files, dataset directories, hub cache folders or ORG/NAME[@REV], with a `messages` column.
    data: Vec<PathBuf> = required, Kind::Paths;
    /// "model" (the model's own Jinja template), "tulu" or "chatml".
    chat_template: ChatTemplate = "\"model\"", Kind::Choice(ChatTemplate::NAMES);
    /// Tokens per sample; longer conversations are truncated (start kept).
    max_seq_len: usize = "4096", Kind::Int { min: 2 };
    /// Peak learning rate (after warmup).
    lr: f64 = required, Kind::Float(Range::Positive);
    /// Sequences per optimizer step: the paper's "batch size".
    batch_size: u32 = "128", Kind::Int { min: 1 };
    /// Sequences per forward pass (gradient accumulation fills the batch), or "auto".
    micro_batch_size: MicroBatch = "\"auto\"", Kind::IntOrAuto;
    /// Passes over the data (fractions allowed).
    epochs: f64 = "2.0", Kind::Float(Range::Positive);
    /// Stop after this many optimizer steps (fewer than `epochs` would take).
    max_steps: Option<u64> = unset, Kind::Int { min: 1 };
    /// Fraction of the steps spent warming the learning rate up from 0.
    warmup_ratio: f64 = "0.03", Kind::Float(Range::UnitOpen);
    /// Learning-rate decay after warmup: "linear", "cosine" or "constant".
    schedule: Schedule = "\"linear\"", Kind::Choice(Schedule::NAMES);
    /// AdamW's decoupled weight decay.
    weight_decay: f64 = "0.0", Kind::Float(Range::NonNegative);
    /// AdamW's beta1.
    adam_beta1: f64 = "0.9", Kind::Float(Range::UnitOpen);
    /// AdamW's beta2.
    adam_beta2: f64 = "0.999", Kind::Float(Range::UnitOpen);
    /// AdamW's epsilon.
    adam_eps: f64 = "1e-8", Kind::Float(Range::Positive);
    /// "sum" weighs every token of the effective batch equally (open-instruct); "mean" averages micro-batch means.
    loss_reduction: LossReduction = "\"sum\"", Kind::Choice(LossReduction::NAMES);
    /// Clip the global gradient norm to this (unset: no clipping).
    grad_clip: Option<f64> = unset, Kind::Float(Range::Positive);
    /// Consecutive steps a collapse rule must hold before the trial stops as diverged.
    divergence_patience: u64 = "20", Kind::Int { min: 1 };
    /// Diverged when, after warmup, the loss stays at or above max(initial loss, ln(vocab)) for `divergence_patience` steps.
    divergence_loss: bool = "true", Kind::Bool;
    /// Diverged when the global gradient norm is exactly 0 (with a positive loss) for `divergence_patience` steps.
    divergence_zero_grad: bool = "true", Kind::Bool;
    /// Seed of the data order and of random initialisation.
    seed: u64 = "123", Kind::Int { min: 0 };
    /// Pack several samples into each row (attention kept inside each sample).
    packing: bool = "true", Kind::Bool;
    /// Checkpoints, events and the final model go here (a sweep sets it per trial).
    output_dir: PathBuf = required, Kind::OutputDir;
    /// Steps between checkpoints.
    checkpoint_every_steps: u64 = "500", Kind::Int { min: 1 };
    /// Checkpoints kept on disk (oldest removed first).
    keep_checkpoints: usize = "2", Kind::Int { min: 1 };
    /// "auto", "cpu", "cuda" or "cuda:N".
    device: DeviceSpec = "\"auto\"", Kind::Device;
    /// "auto" (f32 on CPU, bf16 on CUDA), "f32" or "bf16".
    dtype: DType = "\"auto\"", Kind::Choice(DType::NAMES);
    /// Attention over packed rows: "auto" (varlen flash attention on CUDA in bf16 with a supported head dim, else masked SDPA), "varlen" or "sdpa".
    attention: Attention = "\"auto\"", Kind::Choice(Attention::NAMES);
    /// Tokenised-data cache shared by trials (default $SMOLSWEEP_CACHE or ~/.cache/smolsweep).
    cache_dir: Option<PathBuf> = unset, Kind::NewPath;
}

impl TrialConfig {
    /// Reads and validates a trial TOML; relative paths are taken from the
    /// file's directory.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Toml {
                file: path.to_path_buf(),
                message: e.to_string().trim_end().to_string(),
            })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::from_table(&table, base).map_err(|e| ConfigError::Key {
            file: path.to_path_buf(),
            key: e.key,
            message: e.message,
        })
    }

    /// Validates a table of trial keys (the same code for a trial file and
    /// for a sweep's grid point); relative paths resolve against `base`.
    pub fn from_table(table: &toml::Table, base: &Path) -> Result<Self, KeyError> {
        let mut t = check_table(TRIAL_KEYS, table, base, "trial")?;
        fill_defaults(TRIAL_KEYS, &mut t)?;
        Self::check_types(&t)?;
        let cfg: TrialConfig = toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| KeyError::new("", e.to_string()))?;
        cfg.check_together()?;
        Ok(cfg)
    }

    /// Rules that involve more than one key.
    fn check_together(&self) -> Result<(), KeyError> {
        if let MicroBatch::Fixed(m) = self.micro_batch_size {
            if m > self.batch_size {
                return Err(KeyError::new(
                    "micro_batch_size",
                    format!("{m} is larger than batch_size {}", self.batch_size),
                ));
            }
        }
        Ok(())
    }

    /// Where tokenised data is cached: `cache_dir`, else `$SMOLSWEEP_CACHE`,
    /// else `~/.cache/smolsweep`.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(c) = &self.cache_dir {
            return c.clone();
        }
        if let Some(c) = std::env::var_os("SMOLSWEEP_CACHE") {
            return PathBuf::from(c);
        }
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/smolsweep"))
            .unwrap_or_else(|| self.output_dir.join("cache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join("m")).expect("mkdir");
        std::fs::write(dir.join("m/config.json"), "{}").expect("config");
        std::fs::write(dir.join("d.jsonl"), "").expect("data");
        let p = dir.join("trial.toml");
        std::fs::write(&p, body).expect("write");
        p
    }

    #[test]
    fn defaults_are_the_tulu3_recipe() {
        let d = tempfile::tempdir().expect("tmp");
        let p = write(
            d.path(),
            "model = \"m\"\ndata = [\"d.jsonl\"]\nlr = 5e-6\noutput_dir = \"out\"\n",
        );
        let c = TrialConfig::from_file(&p).expect("parse");
        assert_eq!(c.batch_size, 128);
        assert_eq!(c.epochs, 2.0);
        assert_eq!(c.warmup_ratio, 0.03);
        assert_eq!(c.schedule, Schedule::Linear);
        assert_eq!(c.loss_reduction, LossReduction::Sum);
        assert_eq!(c.seed, 123);
        assert_eq!(c.max_seq_len, 4096);
        assert_eq!((c.adam_beta1, c.adam_beta2, c.adam_eps), (0.9, 0.999, 1e-8));
        assert_eq!(c.weight_decay, 0.0);
        assert_eq!(c.grad_clip, None);
        assert_eq!(c.micro_batch_size, MicroBatch::Auto);
        assert_eq!(c.chat_template, ChatTemplate::Model);
        assert_eq!(c.output_dir, d.path().join("out"));
        assert_eq!(c.divergence_patience, 20);
        assert!(c.divergence_loss && c.divergence_zero_grad);
    }

    /// Integer keys are bounded by their field's type, not by one cap for
    /// all: a 64-bit seed is a seed.
    #[test]
    fn a_large_seed_is_accepted() {
        let d = tempfile::tempdir().expect("tmp");
        let p = write(
            d.path(),
            "model = \"m\"\ndata = [\"d.jsonl\"]\nlr = 5e-6\noutput_dir = \"out\"\nseed = 8589934592\n",
        );
        let c = TrialConfig::from_file(&p).expect("parse");
        assert_eq!(c.seed, 8_589_934_592);
    }

    #[test]
    fn every_default_parses_as_its_kind() {
        for key in TRIAL_KEYS {
            if let Some(v) = key.default_value() {
                crate::keys::check(key.kind, &v, Path::new("/"))
                    .unwrap_or_else(|e| panic!("{}: default {v} refused: {e:?}", key.name));
            } else {
                assert!(
                    !matches!(key.default, crate::keys::Default::Toml(_)),
                    "{}: default does not parse",
                    key.name
                );
            }
        }
    }

    #[test]
    fn errors_name_the_key() {
        let d = tempfile::tempdir().expect("tmp");
        let base = "model = \"m\"\ndata = [\"d.jsonl\"]\noutput_dir = \"out\"\n";
        for (extra, key) in [
            ("lr = -1.0\n", "lr"),
            ("lr = 1e-5\nbatch_size = 0\n", "batch_size"),
            ("lr = 1e-5\nlearning_rate = 1e-5\n", "learning_rate"),
            ("lr = \"fast\"\n", "lr"),
            ("lr = 1e-5\nschedule = \"step\"\n", "schedule"),
            (
                "lr = 1e-5\nmicro_batch_size = \"big\"\n",
                "micro_batch_size",
            ),
            ("lr = 1e-5\ndevice = \"tpu\"\n", "device"),
            ("lr = 1e-5\nwarmup_ratio = 1.0\n", "warmup_ratio"),
            ("lr = 1e-5\nmax_seq_len = 1\n", "max_seq_len"),
            (
                "lr = 1e-5\nbatch_size = 4\nmicro_batch_size = 8\n",
                "micro_batch_size",
            ),
            ("lr = 1e-5\nbatch_size = 5000000000\n", "batch_size"),
            (
                "lr = 1e-5\ndivergence_patience = 0\n",
                "divergence_patience",
            ),
            ("lr = 1e-5\ndivergence_loss = 1\n", "divergence_loss"),
        ] {
            let p = write(d.path(), &format!("{base}{extra}"));
            let e = TrialConfig::from_file(&p).expect_err(extra);
            assert_eq!(e.key(), Some(key), "{extra}: {e}");
            assert!(e.to_string().contains("trial.toml"), "{extra}: {e}");
        }
        let p = write(
            d.path(),
            "model = \"m\"\ndata = [\"nope.jsonl\"]\nlr = 1e-5\noutput_dir = \"o\"\n",
        );
        let e = TrialConfig::from_file(&p)
            .expect_err("missing data")
            .to_string();
        assert!(e.contains("data[0]") && e.contains("nope.jsonl"), "{e}");
    }
}
