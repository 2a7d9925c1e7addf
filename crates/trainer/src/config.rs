//! The trial TOML: one SFT job's every setting. Defaults are the Tulu 3 SFT
//! recipe (open-instruct): AdamW (0.9, 0.999, 1e-8), no weight decay,
//! linear schedule with 3% warmup, 2 epochs, max length 4096, loss
//! reduction "sum", no clipping, seed 123. Unknown keys are an error, so a
//! typo never silently trains with a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    Pretrained,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Linear,
    Cosine,
    Constant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossReduction {
    Sum,
    Mean,
}

/// `micro_batch_size`: a number or "auto".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MicroBatch {
    Fixed(u32),
    Auto(AutoTag),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoTag {
    Auto,
}

fn d_init() -> InitKind {
    InitKind::Pretrained
}
fn d_template() -> String {
    "model".into()
}
fn d_max_seq_len() -> usize {
    4096
}
fn d_batch() -> u32 {
    128
}
fn d_micro() -> MicroBatch {
    MicroBatch::Auto(AutoTag::Auto)
}
fn d_epochs() -> f64 {
    2.0
}
fn d_warmup() -> f64 {
    0.03
}
fn d_schedule() -> Schedule {
    Schedule::Linear
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.999
}
fn d_eps() -> f64 {
    1e-8
}
fn d_reduction() -> LossReduction {
    LossReduction::Sum
}
fn d_seed() -> u64 {
    123
}
fn d_true() -> bool {
    true
}
fn d_ckpt_every() -> u64 {
    500
}
fn d_keep() -> usize {
    2
}
fn d_auto() -> String {
    "auto".into()
}

/// One trial. Field names are the TOML keys (documented in the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialConfig {
    /// HF model directory (or hub cache folder).
    pub model: PathBuf,
    /// "pretrained" weights, or "random" weights from the config and seed.
    #[serde(default = "d_init")]
    pub init: InitKind,
    /// Parquet/JSONL files or dataset directories with `messages`.
    pub data: Vec<PathBuf>,
    /// "model" (the model's own Jinja template), "tulu" or "chatml".
    #[serde(default = "d_template")]
    pub chat_template: String,
    #[serde(default = "d_max_seq_len")]
    pub max_seq_len: usize,
    pub lr: f64,
    /// Sequences per optimizer step (the paper's "batch size").
    #[serde(default = "d_batch")]
    pub batch_size: u32,
    #[serde(default = "d_micro")]
    pub micro_batch_size: MicroBatch,
    #[serde(default = "d_epochs")]
    pub epochs: f64,
    #[serde(default)]
    pub max_steps: Option<u64>,
    #[serde(default = "d_warmup")]
    pub warmup_ratio: f64,
    #[serde(default = "d_schedule")]
    pub schedule: Schedule,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "d_beta1")]
    pub adam_beta1: f64,
    #[serde(default = "d_beta2")]
    pub adam_beta2: f64,
    #[serde(default = "d_eps")]
    pub adam_eps: f64,
    #[serde(default = "d_reduction")]
    pub loss_reduction: LossReduction,
    #[serde(default)]
    pub grad_clip: Option<f64>,
    #[serde(default = "d_seed")]
    pub seed: u64,
    #[serde(default = "d_true")]
    pub packing: bool,
    pub output_dir: PathBuf,
    #[serde(default = "d_ckpt_every")]
    pub checkpoint_every_steps: u64,
    #[serde(default = "d_keep")]
    pub keep_checkpoints: usize,
    /// "auto", "cpu" or "cuda:N".
    #[serde(default = "d_auto")]
    pub device: String,
    /// "auto", "f32" or "bf16".
    #[serde(default = "d_auto")]
    pub dtype: String,
    /// Where tokenised data is cached (shared by a sweep's trials);
    /// default `$SMOLSWEEP_CACHE` or `~/.cache/smolsweep`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

impl TrialConfig {
    /// Parses and validates a trial TOML; relative paths are taken from
    /// the file's directory.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let mut cfg: TrialConfig = toml::from_str(&text).map_err(|e| TrainError::Config {
            path: path.to_path_buf(),
            key: String::new(),
            msg: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut cfg.model);
        cfg.data.iter_mut().for_each(abs);
        abs(&mut cfg.output_dir);
        if let Some(c) = cfg.cache_dir.as_mut() {
            abs(c);
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |key: &str, msg: String| {
            Err(TrainError::Config {
                path: path.to_path_buf(),
                key: key.to_owned(),
                msg,
            })
        };
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        if !finite_pos(self.lr) {
            return bad("lr", format!("must be a positive number, got {}", self.lr));
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if let MicroBatch::Fixed(m) = self.micro_batch_size {
            if m == 0 {
                return bad("micro_batch_size", "must be at least 1 or \"auto\"".into());
            }
        }
        if self.data.is_empty() {
            return bad("data", "lists no files".into());
        }
        if !finite_pos(self.epochs) {
            return bad("epochs", format!("must be positive, got {}", self.epochs));
        }
        if self.max_steps == Some(0) {
            return bad("max_steps", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(
                "warmup_ratio",
                format!("must be in [0, 1), got {}", self.warmup_ratio),
            );
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", "must be >= 0".into());
        }
        for (key, v) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(key, format!("must be in [0, 1), got {v}"));
            }
        }
        if !finite_pos(self.adam_eps) {
            return bad("adam_eps", "must be positive".into());
        }
        if let Some(c) = self.grad_clip {
            if !finite_pos(c) {
                return bad("grad_clip", "must be positive".into());
            }
        }
        if self.max_seq_len < 2 {
            return bad("max_seq_len", "must be at least 2".into());
        }
        if self.checkpoint_every_steps == 0 {
            return bad("checkpoint_every_steps", "must be at least 1".into());
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints", "must be at least 1".into());
        }
        if !["model", "tulu", "chatml"].contains(&self.chat_template.as_str()) {
            return bad(
                "chat_template",
                format!("`{}`: expected model, tulu or chatml", self.chat_template),
            );
        }
        if let Err(e) = self.device.parse::<smolsweep_model::DeviceSpec>() {
            return bad("device", e.to_string());
        }
        if let Err(e) = self.dtype.parse::<smolsweep_model::DType>() {
            return bad("dtype", e.to_string());
        }
        if !self.model.exists() {
            return bad("model", format!("{} does not exist", self.model.display()));
        }
        for d in &self.data {
            if !d.exists() {
                return bad("data", format!("{} does not exist", d.display()));
            }
        }
        Ok(())
    }

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
        assert_eq!(c.micro_batch_size, MicroBatch::Auto(AutoTag::Auto));
        assert_eq!(c.output_dir, d.path().join("out"));
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
            ("lr = 1e-5\nwarmup_ratio = 1.5\n", "warmup_ratio"),
        ] {
            let p = write(d.path(), &format!("{base}{extra}"));
            let e = TrialConfig::from_file(&p).expect_err(extra).to_string();
            assert!(e.contains(key) && e.contains("trial.toml"), "{extra}: {e}");
        }
        let p = write(
            d.path(),
            "model = \"m\"\ndata = [\"nope.jsonl\"]\nlr = 1e-5\noutput_dir = \"o\"\n",
        );
        let e = TrialConfig::from_file(&p)
            .expect_err("missing data")
            .to_string();
        assert!(e.contains("data") && e.contains("nope.jsonl"), "{e}");
    }
}
