//! The `[eval]` options: what every trial's evaluation runs, declared once
//! for the sweep's `[eval]` table and for the `smolsweep eval` flags the
//! orchestrator passes on (see [`EvalConfig::eval_args`]).

use std::path::{Path, PathBuf};

use crate::benchmarks::GSM8K_FEWSHOT;
use crate::enums::{Convention, DeviceSpec, MicroBatch};
use crate::keys::{check_table, fill_defaults, schema, KeyError, Kind};

schema! {
    /// `[eval]` of a sweep file.
    pub struct EvalConfig, keys EVAL_KEYS;

    /// Benchmarks to run: NAME (found in data_dir or the local hub cache), or NAME=PATH (a Parquet/JSONL file, dataset directory, hub cache folder or ORG/NAME).
    tasks: Vec<String> = required, Kind::Tasks;
    /// Where tasks without a PATH are found: NAME/ folders or hub cache folders (datasets--ORG--NAME).
    data_dir: Option<PathBuf> = unset, Kind::Dir;
    /// Evaluate only the first N examples of each task.
    limit: Option<u64> = unset, Kind::Int { min: 1 };
    /// Solved examples before each GSM8K question (lm-eval's default: 5).
    gsm8k_fewshot: u64 = "5", Kind::Int { min: 0 };
    /// Wrap prompts in the model's chat template (lm-eval's --apply_chat_template).
    chat_template: bool = "false", Kind::Bool;
    /// Whose prompts, few-shot picks, generation settings and metrics: "lm-eval" or "smollm2" (the paper's lighteval setup).
    convention: Convention = "\"lm-eval\"", Kind::Choice(Convention::NAMES);
    /// Questions (or prompts) per forward pass, or "auto".
    batch_size: MicroBatch = "\"auto\"", Kind::IntOrAuto;
    /// Device of the evaluation (default: the trial's `device`).
    device: Option<DeviceSpec> = unset, Kind::Device;
    /// Write per-sample outputs (samples.jsonl) beside results.json.
    samples: bool = "false", Kind::Bool;
}

impl EvalConfig {
    /// Validates an `[eval]` table; relative paths resolve against `base`.
    pub fn from_table(table: &toml::Table, base: &Path) -> Result<Self, KeyError> {
        let mut t = check_table(EVAL_KEYS, table, base, "eval")?;
        fill_defaults(EVAL_KEYS, &mut t)
            .map_err(|e| KeyError::new(e.key, "missing (list the benchmarks to run)"))?;
        Self::check_types(&t)?;
        toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| KeyError::new("", e.to_string()))
    }

    /// The `smolsweep eval` arguments (after `--model`) these options
    /// stand for; `device` is the trial's when `[eval]` sets none.
    pub fn eval_args(&self, trial_device: Option<&str>) -> Vec<String> {
        let mut args = Vec::new();
        for t in &self.tasks {
            args.extend(["--task".to_string(), t.clone()]);
        }
        if let Some(d) = &self.data_dir {
            args.extend(["--data-dir".to_string(), d.display().to_string()]);
        }
        if let Some(n) = self.limit {
            args.extend(["--limit".to_string(), n.to_string()]);
        }
        if self.gsm8k_fewshot != GSM8K_FEWSHOT {
            args.extend([
                "--gsm8k-fewshot".to_string(),
                self.gsm8k_fewshot.to_string(),
            ]);
        }
        if self.chat_template {
            args.push("--chat-template".into());
        }
        if self.convention != Convention::LmEval {
            args.extend(["--convention".to_string(), self.convention.to_string()]);
        }
        args.extend(["--batch-size".to_string(), self.batch_size.to_string()]);
        let device = self
            .device
            .map(|d| d.to_string())
            .or(trial_device.map(str::to_string));
        if let Some(d) = device {
            args.extend(["--device".to_string(), d]);
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().expect("test TOML")
    }

    #[test]
    fn convention_defaults_to_lm_eval_and_is_passed_on_otherwise() {
        let base = Path::new(".");
        let c = EvalConfig::from_table(&table("tasks = [\"piqa\"]"), base).expect("valid");
        assert_eq!(c.convention, Convention::LmEval);
        assert!(!c.eval_args(None).contains(&"--convention".to_string()));
        let c =
            EvalConfig::from_table(&table("tasks = [\"piqa\"]\nconvention = \"smollm2\""), base)
                .expect("valid");
        assert_eq!(c.convention, Convention::Smollm2);
        let args = c.eval_args(None);
        let i = args.iter().position(|a| a == "--convention").expect("flag");
        assert_eq!(args[i + 1], "smollm2");
    }

    #[test]
    fn an_unknown_convention_names_the_key() {
        let e = EvalConfig::from_table(
            &table("tasks = [\"piqa\"]\nconvention = \"helm\""),
            Path::new("."),
        )
        .expect_err("refused");
        assert_eq!(e.key, "convention");
        assert!(e.message.contains("smollm2"), "{}", e.message);
    }
}
