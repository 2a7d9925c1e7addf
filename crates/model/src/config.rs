//! The model configuration, mirroring HF `config.json` for the Llama family
//! (SmolLM2 is a `LlamaForCausalLM`). Field names are HF's, so a file
//! written by `transformers` reads here and one written here reads there.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// `eos_token_id` is an integer or a list of integers in HF configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10000.0
}
fn default_max_position_embeddings() -> usize {
    2048
}
fn default_initializer_range() -> f64 {
    0.02
}
fn default_hidden_act() -> String {
    "silu".to_owned()
}

/// HF `LlamaConfig`, the fields that decide the network. The shape fields
/// are required (a missing one is an error naming it); the rest take HF's
/// defaults, as `transformers` does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
}

impl LlamaConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let cfg: LlamaConfig = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        // Reject families we would silently get wrong.
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if let Some(mt) = value.get("model_type").and_then(|v| v.as_str()) {
            if mt != "llama" {
                return Err(ModelError::Config {
                    path: path.to_path_buf(),
                    field: "model_type".into(),
                    msg: format!("`{mt}` is not supported (only `llama`, the SmolLM2 family)"),
                });
            }
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks the invariants the network relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |field: &str, msg: String| ModelError::Config {
            path: path.to_path_buf(),
            field: field.to_owned(),
            msg,
        };
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
        ] {
            if v == 0 {
                return Err(err(field, "must be positive".into()));
            }
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return Err(err(
                "num_attention_heads",
                format!(
                    "hidden_size {} is not divisible by {} heads",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if self.head_dim() % 2 != 0 {
            return Err(err("head_dim", "must be even for RoPE".into()));
        }
        let kv = self.num_kv_heads();
        if kv == 0 || self.num_attention_heads % kv != 0 {
            return Err(err(
                "num_key_value_heads",
                format!(
                    "{kv} does not divide num_attention_heads {}",
                    self.num_attention_heads
                ),
            ));
        }
        if self.hidden_act != "silu" {
            return Err(err(
                "hidden_act",
                format!("`{}` is not supported (only `silu`)", self.hidden_act),
            ));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(err("rope_scaling", "RoPE scaling is not supported".into()));
        }
        if self.attention_bias || self.mlp_bias {
            return Err(err(
                "attention_bias",
                "biased projections are not supported".into(),
            ));
        }
        if self.rms_norm_eps.is_nan()
            || self.rms_norm_eps <= 0.0
            || self.rope_theta.is_nan()
            || self.rope_theta <= 0.0
        {
            return Err(err(
                "rms_norm_eps",
                "rms_norm_eps and rope_theta must be positive".into(),
            ));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Parameter count (embedding counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let d = self.hidden_size;
        let hd = self.head_dim();
        let q = d * self.num_attention_heads * hd;
        let kv = 2 * d * self.num_kv_heads() * hd;
        let o = self.num_attention_heads * hd * d;
        let mlp = 3 * d * self.intermediate_size;
        let layer = q + kv + o + mlp + 2 * d;
        let emb = self.vocab_size * d;
        let head = if self.tie_word_embeddings { 0 } else { emb };
        emb + head + self.num_hidden_layers * layer + d
    }

    /// The JSON we write as `config.json`: HF's own keys, so `transformers`
    /// loads it as a `LlamaForCausalLM`.
    pub fn to_hf_json(&self, torch_dtype: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "architectures".into(),
                serde_json::json!(["LlamaForCausalLM"]),
            );
            obj.insert("model_type".into(), "llama".into());
            obj.insert("torch_dtype".into(), torch_dtype.into());
            obj.insert("head_dim".into(), self.head_dim().into());
            obj.insert("num_key_value_heads".into(), self.num_kv_heads().into());
            obj.insert("pretraining_tp".into(), 1.into());
            obj.insert("use_cache".into(), true.into());
            obj.insert("attention_dropout".into(), 0.0.into());
        }
        v
    }

    /// A tiny configuration for tests (two layers, GQA, tied embeddings).
    pub fn tiny(vocab_size: usize) -> Self {
        LlamaConfig {
            vocab_size,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            max_position_embeddings: 512,
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: None,
            hidden_act: default_hidden_act(),
            initializer_range: 0.02,
            rope_scaling: None,
            attention_bias: false,
            mlp_bias: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_field_names_the_field_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"vocab_size": 10, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}"#,
        )
        .expect("write");
        let err = crate::error::chain_text(&LlamaConfig::from_file(&path).expect_err("must fail"));
        assert!(err.contains("config.json"), "{err}");
        assert!(err.contains("hidden_size"), "{err}");
    }

    #[test]
    fn eos_may_be_a_list() {
        let mut v = serde_json::to_value(LlamaConfig::tiny(32)).expect("json");
        v["eos_token_id"] = serde_json::json!([2, 3]);
        let cfg: LlamaConfig = serde_json::from_value(v).expect("parse");
        assert_eq!(cfg.eos_ids(), vec![2, 3]);
    }

    #[test]
    fn bad_gqa_is_refused() {
        let mut cfg = LlamaConfig::tiny(32);
        cfg.num_key_value_heads = Some(3);
        let err = cfg.validate(Path::new("c.json")).expect_err("must fail");
        assert!(err.to_string().contains("num_key_value_heads"));
    }
}
