//! The trial schema: one training job's every setting, as `smolsweep train
//! --config` reads it and as each grid point of a sweep becomes. Defaults
//! are the Tulu 3 SFT recipe (open-instruct): AdamW (0.9, 0.999, 1e-8), no
//! weight decay, linear schedule with 3% warmup, 2 epochs, max length 4096,
//! loss reduction "sum", no clipping, seed 123. A DPO trial (`stage =
//! "dpo"`) starts from Tulu 3's DPO recipe instead: warmup ratio 0.1, one
//! epoch, max length 2048, `dpo_norm` with beta 5. Unknown keys are an
//! error, so a typo never silently trains with a default, and so is a key
//! of another stage (a `beta` in an SFT trial would otherwise do nothing).

use std::path::{Path, PathBuf};

use crate::enums::{
    Attention, ChatTemplate, DType, DeviceSpec, DpoLoss, Forward, InitKind, LossReduction,
    MicroBatch, Schedule, Stage,
};
use crate::error::ConfigError;
use crate::keys::{check_table, fill_defaults, schema, KeyError, Kind, Range};

schema! {
    /// One trial. Field names are the TOML keys; `smolsweep schema trial`
    /// prints them all with their defaults.
    pub struct TrialConfig, keys TRIAL_KEYS;

    /// "sft" (chat data), "dpo" or "rm" (preference pairs); a DPO trial's defaults are Tulu 3's DPO recipe.
    stage: Stage = "\"sft\"", Kind::Choice(Stage::NAMES);
    /// HF model directory, hub cache folder (models--ORG--NAME) or snapshot, or ORG/NAME[@REV] in the local hub cache.
    model: PathBuf = required, Kind::ModelDir;
    /// "pretrained" starts from the model's weights, "random" from fresh weights seeded by `seed`.
    init: InitKind = "\"pretrained\"", Kind::Choice(InitKind::NAMES);
    /// Parquet/JSONL files, dataset directories, hub cache folders or ORG/NAME[@REV]: a `messages` column (sft), or `chosen`/`rejected` message lists or `prompt` + `chosen`/`rejected` strings (dpo).
    data: Vec<PathBuf> = required, Kind::Paths;
    /// "model" (the model's own Jinja template), "tulu" or "chatml".
    chat_template: ChatTemplate = "\"model\"", Kind::Choice(ChatTemplate::NAMES);
    /// Tokens per sample; longer conversations are truncated (start kept). DPO default 2048.
    max_seq_len: usize = "4096", Kind::Int { min: 2 };
    /// Peak learning rate (after warmup).
    lr: f64 = required, Kind::Float(Range::Positive);
    /// Sequences per optimizer step: the paper's "batch size".
    batch_size: u32 = "128", Kind::Int { min: 1 };
    /// Sequences per forward pass (gradient accumulation fills the batch), or "auto".
    micro_batch_size: MicroBatch = "\"auto\"", Kind::IntOrAuto;
    /// Passes over the data (fractions allowed). DPO default 1.
    epochs: f64 = "2.0", Kind::Float(Range::Positive);
    /// Stop after this many optimizer steps (fewer than `epochs` would take).
    max_steps: Option<u64> = unset, Kind::Int { min: 1 };
    /// Fraction of the steps spent warming the learning rate up from 0. DPO default 0.1.
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
    /// CUDA only, SFT steps: capture each micro-batch shape's forward and backward in a CUDA graph once and replay it (rows' length rounded up to a multiple of 128); off by default until a GPU run shows it helps. Elsewhere the trial trains eagerly and says so.
    cuda_graphs: bool = "false", Kind::Bool;
    /// Tokenised-data cache shared by trials (default $SMOLSWEEP_CACHE or ~/.cache/smolsweep).
    cache_dir: Option<PathBuf> = unset, Kind::NewPath;
    /// DPO: strength of the KL penalty; default 5 with "dpo_norm", 0.1 with "dpo".
    beta: Option<f64> = unset, Kind::Float(Range::Positive);
    /// DPO: "dpo_norm" (each sequence's log-prob divided by its label count; default) or "dpo" (summed).
    dpo_loss: Option<DpoLoss> = unset, Kind::Choice(DpoLoss::NAMES);
    /// DPO: conservative-DPO label smoothing (the chance a preference label is flipped); default 0.
    label_smoothing: Option<f64> = unset, Kind::Float(Range::UnitOpen);
    /// DPO: the reference model, as `model`; default the initial policy.
    reference_model: Option<PathBuf> = unset, Kind::ModelDir;
    /// DPO: "separate" forward passes for chosen and rejected (default) or one "concatenated" pass.
    forward: Option<Forward> = unset, Kind::Choice(Forward::NAMES);
}

/// The keys only one stage reads, and that stage.
const STAGE_KEYS: &[(&str, Stage)] = &[
    ("beta", Stage::Dpo),
    ("dpo_loss", Stage::Dpo),
    ("label_smoothing", Stage::Dpo),
    ("reference_model", Stage::Dpo),
    ("forward", Stage::Dpo),
];

/// The keys only one stage reads.
pub const STAGE_ONLY_KEYS: &[&str] = &[
    "beta",
    "dpo_loss",
    "label_smoothing",
    "reference_model",
    "forward",
];

/// The stage a key belongs to, when only one stage reads it.
pub fn stage_of(key: &str) -> Option<Stage> {
    STAGE_KEYS.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
}

/// Defaults a stage changes (Tulu 3's DPO recipe, open-instruct's
/// `dpo_tune_cache.py`; its reward-model recipe, `reward_modeling.py`), and the defaults of its own keys; `beta` depends
/// on the loss and is set apart.
const STAGE_DEFAULTS: &[(Stage, &str, &str)] = &[
    (Stage::Dpo, "warmup_ratio", "0.1"),
    (Stage::Dpo, "epochs", "1.0"),
    (Stage::Dpo, "max_seq_len", "2048"),
    (Stage::Dpo, "schedule", "\"linear\""),
    (Stage::Dpo, "dpo_loss", "\"dpo_norm\""),
    (Stage::Dpo, "label_smoothing", "0.0"),
    (Stage::Dpo, "forward", "\"separate\""),
    // open-instruct's `reward_modeling.py` (SmolTulu RM-1130): one epoch,
    // max length 2048, linear decay with no warmup (`warm_up_steps = 0`).
    (Stage::Rm, "warmup_ratio", "0.0"),
    (Stage::Rm, "epochs", "1.0"),
    (Stage::Rm, "max_seq_len", "2048"),
    (Stage::Rm, "schedule", "\"linear\""),
];

/// What `key` is when a trial of `stage` does not set it: the stage's
/// default, else the key's own (None for a key without a default).
pub fn default_for(stage: Stage, key: &str) -> Option<toml::Value> {
    if let Some((_, _, literal)) = STAGE_DEFAULTS
        .iter()
        .find(|(s, k, _)| *s == stage && *k == key)
    {
        let t: toml::Table = format!("v = {literal}").parse().ok()?;
        return t.get("v").cloned();
    }
    crate::keys::find(TRIAL_KEYS, key)?.default_value()
}

/// The stage of a checked table, its keys of other stages refused, and
/// the stage's defaults filled in (before the schema's own defaults).
fn apply_stage(t: &mut toml::Table) -> Result<Stage, KeyError> {
    let stage = match t.get("stage").and_then(|v| v.as_str()) {
        Some(s) => s.parse().map_err(|e: String| KeyError::new("stage", e))?,
        None => Stage::Sft,
    };
    for (key, owner) in STAGE_KEYS {
        if *owner != stage && t.contains_key(*key) {
            return Err(KeyError::new(
                *key,
                format!("is a key of stage \"{owner}\", and this trial's stage is \"{stage}\""),
            ));
        }
    }
    for (s, key, literal) in STAGE_DEFAULTS {
        if *s == stage && !t.contains_key(*key) {
            let v: toml::Table = format!("v = {literal}")
                .parse()
                .map_err(|e: toml::de::Error| KeyError::new(*key, e.to_string()))?;
            if let Some(v) = v.get("v") {
                t.insert((*key).to_string(), v.clone());
            }
        }
    }
    if stage == Stage::Dpo && !t.contains_key("beta") {
        let beta = match t.get("dpo_loss").and_then(|v| v.as_str()) {
            Some("dpo") => 0.1,
            _ => 5.0,
        };
        t.insert("beta".into(), toml::Value::Float(beta));
    }
    Ok(stage)
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
        apply_stage(&mut t)?;
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

    /// The DPO settings, for a DPO trial (every one set by `from_table`).
    pub fn dpo(&self) -> Option<DpoSettings> {
        if self.stage != Stage::Dpo {
            return None;
        }
        Some(DpoSettings {
            beta: self.beta.unwrap_or(5.0),
            loss: self.dpo_loss.unwrap_or(DpoLoss::DpoNorm),
            label_smoothing: self.label_smoothing.unwrap_or(0.0),
            reference_model: self.reference_model.clone(),
            forward: self.forward.unwrap_or(Forward::Separate),
        })
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

/// A DPO trial's own settings, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoSettings {
    pub beta: f64,
    pub loss: DpoLoss,
    pub label_smoothing: f64,
    /// `None`: the initial policy.
    pub reference_model: Option<PathBuf>,
    pub forward: Forward,
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

    #[test]
    fn a_dpo_trial_starts_from_the_tulu3_dpo_recipe() {
        let d = tempfile::tempdir().expect("tmp");
        let base = "model = \"m\"\ndata = [\"d.jsonl\"]\nlr = 5e-7\noutput_dir = \"out\"\nstage = \"dpo\"\n";
        let c = TrialConfig::from_file(&write(d.path(), base)).expect("parse");
        assert_eq!(c.stage, Stage::Dpo);
        assert_eq!((c.warmup_ratio, c.epochs, c.max_seq_len), (0.1, 1.0, 2048));
        assert_eq!(c.schedule, Schedule::Linear);
        let dpo = c.dpo().expect("dpo settings");
        assert_eq!(
            dpo,
            DpoSettings {
                beta: 5.0,
                loss: DpoLoss::DpoNorm,
                label_smoothing: 0.0,
                reference_model: None,
                forward: Forward::Separate,
            }
        );
        assert_eq!(c.beta, Some(5.0));
        // Plain DPO's usual beta; explicit values win over stage defaults.
        let c = TrialConfig::from_file(&write(
            d.path(),
            &format!("{base}dpo_loss = \"dpo\"\nepochs = 3\nreference_model = \"m\"\n"),
        ))
        .expect("parse");
        let dpo = c.dpo().expect("dpo");
        assert_eq!((dpo.beta, dpo.loss, c.epochs), (0.1, DpoLoss::Dpo, 3.0));
        assert_eq!(dpo.reference_model, Some(d.path().join("m")));
        // An SFT trial keeps the SFT recipe and has no DPO settings.
        let sft = TrialConfig::from_file(&write(
            d.path(),
            "model = \"m\"\ndata = [\"d.jsonl\"]\nlr = 5e-6\noutput_dir = \"out\"\n",
        ))
        .expect("parse");
        assert_eq!((sft.stage, sft.epochs, sft.beta), (Stage::Sft, 2.0, None));
        assert_eq!(sft.dpo(), None);
    }

    #[test]
    fn an_rm_trial_starts_from_open_instructs_reward_model_recipe() {
        let d = tempfile::tempdir().expect("tmp");
        let base = "model = \"m\"\ndata = [\"d.jsonl\"]\nlr = 4e-5\noutput_dir = \"out\"\nstage = \"rm\"\n";
        let c = TrialConfig::from_file(&write(d.path(), base)).expect("parse");
        assert_eq!(c.stage, Stage::Rm);
        assert_eq!((c.warmup_ratio, c.epochs, c.max_seq_len), (0.0, 1.0, 2048));
        assert_eq!((c.dpo(), c.beta), (None, None));
        // DPO's keys are not a reward model's.
        let e = TrialConfig::from_file(&write(d.path(), &format!("{base}beta = 5.0\n")))
            .expect_err("beta in an RM trial")
            .to_string();
        assert!(e.contains("beta") && e.contains("stage \"dpo\""), "{e}");
    }

    #[test]
    fn stage_only_keys_are_the_stage_keys() {
        let names: Vec<&str> = STAGE_KEYS.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, STAGE_ONLY_KEYS);
    }

    #[test]
    fn a_key_of_another_stage_is_an_error_naming_it() {
        let d = tempfile::tempdir().expect("tmp");
        let base = "model = \"m\"\ndata = [\"d.jsonl\"]\nlr = 5e-7\noutput_dir = \"out\"\n";
        for (extra, key) in [
            ("beta = 5.0\n", "beta"),
            ("dpo_loss = \"dpo\"\n", "dpo_loss"),
            (
                "stage = \"sft\"\nlabel_smoothing = 0.1\n",
                "label_smoothing",
            ),
            ("stage = \"rm\"\nforward = \"separate\"\n", "forward"),
            ("reference_model = \"m\"\n", "reference_model"),
            ("stage = \"ppo\"\n", "stage"),
            ("stage = \"dpo\"\nbeta = 0.0\n", "beta"),
            ("stage = \"dpo\"\nforward = \"both\"\n", "forward"),
        ] {
            let e = TrialConfig::from_file(&write(d.path(), &format!("{base}{extra}")))
                .expect_err(extra);
            assert_eq!(e.key(), Some(key), "{extra}: {e}");
            assert!(e.to_string().contains("trial.toml"), "{extra}: {e}");
        }
        let e = TrialConfig::from_file(&write(d.path(), &format!("{base}beta = 5.0\n")))
            .expect_err("beta in sft")
            .to_string();
        assert!(e.contains("stage \"dpo\"") && e.contains("\"sft\""), "{e}");
    }
}
