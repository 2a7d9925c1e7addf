//! `smolsweep init-model`: a new model directory for training from
//! scratch — `config.json` for a Llama-family shape and a byte-level
//! tokenizer with the ChatML template — optionally with seeded random
//! weights (`--weights`).

use anyhow::{Context, Result};
use smolsweep_model::config::TokenIds;
use smolsweep_model::llama::InitMode;
use smolsweep_model::{Llama, LlamaConfig};
use tch::{Device, Kind};

use crate::args::InitModelArgs;

pub fn run(a: &InitModelArgs) -> Result<()> {
    smolsweep_model::tokenizer::write_byte_level_tokenizer(&a.out)
        .with_context(|| format!("writing the tokenizer into {}", a.out.display()))?;
    let cfg = LlamaConfig {
        vocab_size: 256 + smolsweep_model::tokenizer::BYTE_LEVEL_SPECIALS.len(),
        hidden_size: a.hidden_size,
        intermediate_size: a.intermediate_size,
        num_hidden_layers: a.layers,
        num_attention_heads: a.heads,
        num_key_value_heads: Some(a.kv_heads),
        max_position_embeddings: a.max_position_embeddings,
        bos_token_id: Some(257),
        eos_token_id: Some(TokenIds::One(258)),
        pad_token_id: Some(256),
        tie_word_embeddings: true,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        ..LlamaConfig::tiny(259)
    };
    cfg.validate(&a.out.join("config.json"))?;
    let model = Llama::new(
        cfg,
        Device::Cpu,
        Kind::Float,
        InitMode::Random { seed: a.seed },
    )?;
    if a.weights {
        smolsweep_model::hf::save_weights_and_config(&model, &a.out, Kind::Float)?;
    } else {
        let json = model.config.to_hf_json("float32");
        std::fs::write(a.out.join("config.json"), serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", a.out.join("config.json").display()))?;
    }
    tracing::info!(params = model.config.num_parameters(), dir = %a.out.display(), "model initialised");
    println!("{}", a.out.display());
    Ok(())
}
