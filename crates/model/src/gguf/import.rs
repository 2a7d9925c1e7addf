//! GGUF -> HF model directory. The config comes from the `llama.*`
//! metadata, the weights are dequantised and renamed to HF's names (with
//! llama.cpp's Q/K row permutation undone), and the tokenizer is rebuilt as
//! a byte-level BPE `tokenizer.json` from `tokenizer.ggml.*`, with the
//! pre-tokenizer that `tokenizer.ggml.pre` names.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::{GgufFile, MetaValue};
use crate::config::{LlamaConfig, TokenIds};
use crate::error::{ModelError, Result};
use crate::files::write_json;
use crate::hf::save_weights_and_config;
use crate::llama::{InitMode, Llama};
use crate::tokenizer::{bpe_tokenizer_json, AddedToken, PreTokenizer, TextTokenizer};

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    pub out: PathBuf,
    pub config: LlamaConfig,
    pub tensors: usize,
    /// Count of tensors per GGML type, e.g. ("Q4_1", 210).
    pub types: Vec<(String, usize)>,
}

/// Maps a GGUF tensor name to HF's; `None` for tensors HF does not have.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_owned());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = match part {
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// Undoes llama.cpp's `permute(w, n_head)`, which reorders each head's
/// rows from HF's rotate-half RoPE layout to interleaved pairs.
fn unpermute(w: &Tensor, n_head: i64) -> Tensor {
    let size = w.size();
    let (rows, cols) = (size[0], size[1]);
    w.reshape([n_head, rows / n_head / 2, 2, cols])
        .transpose(1, 2)
        .reshape([rows, cols])
}

struct Meta<'a> {
    g: &'a GgufFile,
}

impl Meta<'_> {
    fn err(&self, key: &str, msg: &str) -> ModelError {
        ModelError::Gguf {
            path: self.g.path.clone(),
            msg: format!("metadata `{key}`: {msg}"),
        }
    }
    fn u64(&self, key: &str) -> Result<u64> {
        self.g
            .get(key)
            .ok_or_else(|| self.err(key, "missing"))?
            .as_u64()
            .ok_or_else(|| self.err(key, "not an integer"))
    }
    fn opt_u32(&self, key: &str) -> Option<u32> {
        self.g
            .get(key)
            .and_then(MetaValue::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }
    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.g.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.err(key, "not a number")),
        }
    }
    fn str(&self, key: &str) -> Result<&str> {
        self.g
            .get(key)
            .ok_or_else(|| self.err(key, "missing"))?
            .as_str()
            .ok_or_else(|| self.err(key, "not a string"))
    }
    fn strings(&self, key: &str) -> Result<Vec<String>> {
        let arr = self
            .g
            .get(key)
            .ok_or_else(|| self.err(key, "missing"))?
            .as_array()
            .ok_or_else(|| self.err(key, "not an array"))?;
        arr.iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.err(key, "not an array of strings"))
            })
            .collect()
    }
}

fn config_from(meta: &Meta<'_>, has_output: bool) -> Result<LlamaConfig> {
    let arch = meta.str("general.architecture")?;
    if arch != "llama" {
        return Err(meta.err(
            "general.architecture",
            &format!("`{arch}` is not supported (only llama, the SmolLM2 family)"),
        ));
    }
    let heads = meta.u64("llama.attention.head_count")? as usize;
    let vocab = match meta.u64("llama.vocab_size") {
        Ok(v) => v as usize,
        Err(_) => meta.strings("tokenizer.ggml.tokens")?.len(),
    };
    let cfg = LlamaConfig {
        vocab_size: vocab,
        hidden_size: meta.u64("llama.embedding_length")? as usize,
        intermediate_size: meta.u64("llama.feed_forward_length")? as usize,
        num_hidden_layers: meta.u64("llama.block_count")? as usize,
        num_attention_heads: heads,
        num_key_value_heads: Some(
            meta.u64("llama.attention.head_count_kv")
                .map_or(heads, |v| v as usize),
        ),
        head_dim: None,
        rms_norm_eps: meta.f64_or("llama.attention.layer_norm_rms_epsilon", 1e-5)?,
        rope_theta: meta.f64_or("llama.rope.freq_base", 10000.0)?,
        max_position_embeddings: meta
            .u64("llama.context_length")
            .map_or(2048, |v| v as usize),
        tie_word_embeddings: !has_output,
        bos_token_id: meta.opt_u32("tokenizer.ggml.bos_token_id"),
        eos_token_id: meta
            .opt_u32("tokenizer.ggml.eos_token_id")
            .map(TokenIds::One),
        pad_token_id: meta.opt_u32("tokenizer.ggml.padding_token_id"),
        hidden_act: "silu".into(),
        initializer_range: 0.02,
        rope_scaling: None,
        attention_bias: false,
        mlp_bias: false,
    };
    // f32 metadata widened to f64 reads 9.999999747e-06; HF configs say 1e-05.
    let cfg = LlamaConfig {
        rms_norm_eps: (cfg.rms_norm_eps as f32)
            .to_string()
            .parse()
            .unwrap_or(cfg.rms_norm_eps),
        rope_theta: (cfg.rope_theta as f32)
            .to_string()
            .parse()
            .unwrap_or(cfg.rope_theta),
        ..cfg
    };
    cfg.validate(&meta.g.path)?;
    Ok(cfg)
}

fn write_tokenizer(meta: &Meta<'_>, cfg: &LlamaConfig, out: &Path) -> Result<()> {
    let model = meta.str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(meta.err(
            "tokenizer.ggml.model",
            &format!("`{model}` is not supported (only byte-level BPE, `gpt2`)"),
        ));
    }
    let pre_name = meta
        .g
        .get("tokenizer.ggml.pre")
        .and_then(MetaValue::as_str)
        .unwrap_or("default");
    let pre = match pre_name {
        "smollm" => PreTokenizer::SmolLm,
        "default" | "gpt2" | "gpt-2" => PreTokenizer::Gpt2,
        "llama-bpe" | "llama3" => PreTokenizer::Llama3,
        other => {
            return Err(meta.err(
                "tokenizer.ggml.pre",
                &format!("pre-tokenizer `{other}` is not supported (smollm, gpt2, llama-bpe)"),
            ))
        }
    };
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let merges = meta.strings("tokenizer.ggml.merges")?;
    let types: Vec<i64> = match meta
        .g
        .get("tokenizer.ggml.token_type")
        .and_then(MetaValue::as_array)
    {
        Some(a) => a.iter().map(|v| v.as_f64().unwrap_or(1.0) as i64).collect(),
        None => vec![1; tokens.len()],
    };
    // llama.cpp token types: 3 = control (special), 4 = user-defined.
    let added: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, &ty))| ty == 3 || ty == 4)
        .map(|(id, (t, &ty))| AddedToken {
            id: id as u32,
            content: t.clone(),
            special: ty == 3,
        })
        .collect();
    write_json(
        &out.join("tokenizer.json"),
        &bpe_tokenizer_json(&tokens, &merges, &added, pre),
    )?;
    let tok = |id: Option<u32>| id.and_then(|i| tokens.get(i as usize)).cloned();
    let added_decoder: serde_json::Map<String, serde_json::Value> = added
        .iter()
        .map(|t| {
            (
                t.id.to_string(),
                serde_json::json!({"content": t.content, "lstrip": false, "normalized": false,
                    "rstrip": false, "single_word": false, "special": t.special}),
            )
        })
        .collect();
    let add_bos = matches!(
        meta.g.get("tokenizer.ggml.add_bos_token"),
        Some(MetaValue::Bool(true))
    );
    let tc = serde_json::json!({
        "add_bos_token": add_bos,
        "add_prefix_space": false,
        "added_tokens_decoder": added_decoder,
        "bos_token": tok(cfg.bos_token_id),
        "eos_token": tok(cfg.eos_ids().first().copied()),
        "pad_token": tok(cfg.pad_token_id),
        "unk_token": tok(meta.opt_u32("tokenizer.ggml.unknown_token_id")),
        "chat_template": meta.g.get("tokenizer.chat_template").and_then(MetaValue::as_str),
        "clean_up_tokenization_spaces": false,
        "model_max_length": cfg.max_position_embeddings,
        "tokenizer_class": "GPT2Tokenizer",
    });
    write_json(&out.join("tokenizer_config.json"), &tc)
}

/// Imports `path` into the HF directory `out`, storing weights as `kind`
/// (Float or BFloat16).
pub fn import_gguf(path: &Path, out: &Path, kind: Kind) -> Result<ImportSummary> {
    let g = GgufFile::open(path)?;
    let meta = Meta { g: &g };
    let has_output = g.tensors.iter().any(|t| t.name == "output.weight");
    let config = config_from(&meta, has_output)?;
    let model = Llama::new(config.clone(), Device::Cpu, Kind::Float, InitMode::Empty)?;
    let vars = model.vs.variables();
    let mut filled = std::collections::HashSet::new();
    let mut types: std::collections::BTreeMap<String, usize> = Default::default();
    let _guard = tch::no_grad_guard();
    for info in &g.tensors {
        let Some(name) = hf_name(&info.name) else {
            tracing::warn!(tensor = %info.name, "GGUF tensor has no HF counterpart; skipped");
            continue;
        };
        let Some(var) = vars.get(&name) else {
            tracing::warn!(tensor = %info.name, "tensor not used by this config; skipped");
            continue;
        };
        let values = g.dequantize(info)?;
        let shape = info.torch_shape();
        if shape != var.size() {
            return Err(ModelError::Shape {
                path: path.to_path_buf(),
                tensor: info.name.clone(),
                expected: var.size(),
                found: shape,
            });
        }
        let mut t = Tensor::from_slice(&values).reshape(&shape);
        if name.ends_with("q_proj.weight") {
            t = unpermute(&t, config.num_attention_heads as i64);
        } else if name.ends_with("k_proj.weight") {
            t = unpermute(&t, config.num_kv_heads() as i64);
        }
        var.shallow_clone().f_copy_(&t)?;
        filled.insert(name);
        *types.entry(info.ty.name()).or_default() += 1;
    }
    let mut missing: Vec<&String> = vars.keys().filter(|k| !filled.contains(*k)).collect();
    missing.sort();
    if let Some(first) = missing.first() {
        return Err(ModelError::MissingTensor {
            path: path.to_path_buf(),
            tensor: (*first).clone(),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;
    write_tokenizer(&meta, &config, out)?;
    save_weights_and_config(&model, out, kind)?;
    // Fail here, not at first use, if the tokenizer we wrote does not load.
    TextTokenizer::from_dir(out)?;
    Ok(ImportSummary {
        out: out.to_path_buf(),
        config,
        tensors: filled.len(),
        types: types.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_name("blk.12.attn_output.weight").as_deref(),
            Some("model.layers.12.self_attn.o_proj.weight")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)
        let w = Tensor::arange(12 * 2, (Kind::Float, Device::Cpu)).reshape([12, 2]);
        let permuted = w.reshape([3, 2, 2, 2]).transpose(1, 2).reshape([12, 2]);
        assert!(unpermute(&permuted, 3).equal(&w));
    }
}

#[cfg(test)]
mod import_tests {
    use super::*;
    use crate::gguf::tests::write_gguf;
    use crate::gguf::GgmlType;

    fn meta() -> Vec<(&'static str, MetaValue)> {
        vec![
            ("general.architecture", MetaValue::Str("llama".into())),
            ("llama.block_count", MetaValue::U32(1)),
            ("llama.embedding_length", MetaValue::U32(32)),
            ("llama.feed_forward_length", MetaValue::U32(64)),
            ("llama.attention.head_count", MetaValue::U32(2)),
            ("llama.attention.head_count_kv", MetaValue::U32(1)),
            ("llama.vocab_size", MetaValue::U32(8)),
        ]
    }

    #[test]
    fn unsupported_quantisation_names_tensor_and_type() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("q6k.gguf");
        // Q6_K (type 14): 256-element blocks of 210 bytes.
        write_gguf(
            &p,
            &meta(),
            &[("token_embd.weight", vec![32, 8], GgmlType(14), vec![0; 210])],
        );
        let err = import_gguf(&p, &dir.path().join("out"), Kind::Float)
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("token_embd.weight") && err.contains("Q6_K") && err.contains("q6k.gguf"),
            "{err}"
        );
    }

    #[test]
    fn missing_metadata_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("m.gguf");
        let mut m = meta();
        m.retain(|(k, _)| *k != "llama.embedding_length");
        write_gguf(&p, &m, &[]);
        let err = import_gguf(&p, &dir.path().join("out"), Kind::Float)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("llama.embedding_length"), "{err}");
    }
}
