//! The reward model's head: transformers' `LlamaForSequenceClassification`
//! with `num_labels = 1` (its `GenericForSequenceClassification`), a
//! bias-free `score` Linear `[1, hidden]` read at each sequence's last real
//! token, on the hidden state after the final norm.
//!
//! The head is one more variable, `score.weight`, in the network's own
//! `VarStore`, so the optimizer, checkpoints and `save_weights_and_config`
//! carry it with the backbone without knowing about it.
//!
//! Exported directories are made so that `transformers` pools the token
//! smolsweep pools ([`export_config`]): transformers takes the rightmost
//! token that differs from `config.pad_token_id`, and SmolLM2 ships
//! pad == eos, so under a template that ends a conversation with the EOS
//! it would read the token before it.

use std::path::Path;

use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::error::{ModelError, Result};
use crate::files::write_json;
use crate::llama::{InitMode, Llama};
use crate::tokenizer::TextTokenizer;
use crate::{DType, DeviceSpec, LlamaConfig};

/// The head's tensor name, as transformers names it.
pub const SCORE_WEIGHT: &str = "score.weight";

/// How a fresh head is filled.
#[derive(Debug, Clone, Copy)]
pub enum ScoreInit {
    /// Zeros, to be overwritten by a checkpoint.
    Empty,
    /// open-instruct's `layer_init(model.score, std=1/sqrt(hidden+1))`:
    /// N(0, 1/sqrt(hidden + 1)), drawn on the CPU from `seed`.
    Random { seed: i64 },
}

/// Adds `score.weight` `[1, hidden]` to `model`'s variables (its device
/// and dtype) and returns it.
pub fn add_score_head(model: &Llama, init: ScoreInit) -> Result<Tensor> {
    let d = model.config.hidden_size as i64;
    let w = match init {
        ScoreInit::Empty => Tensor::zeros([1, d], (Kind::Float, Device::Cpu)),
        ScoreInit::Random { seed } => {
            // `nn.init.normal_(std=...)` after `torch.manual_seed(seed)`:
            // the same draws as PyTorch's CPU generator gives.
            tch::manual_seed(seed);
            let mut w = Tensor::zeros([1, d], (Kind::Float, Device::Cpu));
            let _ = w.normal_(0.0, 1.0 / ((d + 1) as f64).sqrt());
            w
        }
    };
    let w = w.to_kind(model.kind()).to_device(model.device());
    Ok((&model.vs.root() / "score").add("weight", w, true))
}

/// The hidden state of each row's last real token: `hidden` `[R, L, D]`,
/// `lengths[r]` the real tokens of row `r` (right padding).
pub fn last_token_hidden(hidden: &Tensor, lengths: &[i64]) -> Tensor {
    let (r, l, d) = (hidden.size()[0], hidden.size()[1], hidden.size()[2]);
    let at: Vec<i64> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| i as i64 * l + (n.clamp(1, l) - 1))
        .collect();
    let at = Tensor::from_slice(&at).to_device(hidden.device());
    debug_assert_eq!(at.size()[0], r);
    hidden.reshape([r * l, d]).index_select(0, &at)
}

/// Rewards `[R]` in fp32 of pooled hidden states `[R, D]`.
pub fn rewards(pooled: &Tensor, score: &Tensor) -> Tensor {
    pooled
        .linear(score, None::<Tensor>)
        .squeeze_dim(-1)
        .to_kind(Kind::Float)
}

/// A reward model loaded for scoring.
#[derive(Debug)]
pub struct RewardModel {
    pub model: Llama,
    pub score: Tensor,
    pub tokenizer: TextTokenizer,
}

impl RewardModel {
    /// Loads a `LlamaForSequenceClassification` directory (ours, or one
    /// `transformers` saved): the backbone and `score.weight`.
    pub fn load(path: &Path, device: DeviceSpec, dtype: DType) -> Result<Self> {
        let dir = crate::hf::resolve_model_dir(path)?;
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = TextTokenizer::from_dir(&dir)?;
        if !crate::hf::tensor_names(&dir)?
            .iter()
            .any(|n| n == SCORE_WEIGHT)
        {
            return Err(ModelError::ModelDir {
                path: dir,
                msg: format!(
                    "no `{SCORE_WEIGHT}`: not a reward model (a sequence classifier with one label)"
                ),
            });
        }
        let device = crate::resolve_device(device)?;
        let kind = crate::resolve_kind(dtype, device);
        let model = Llama::new(config, device, kind, InitMode::Empty)?;
        let score = add_score_head(&model, ScoreInit::Empty)?;
        crate::hf::load_weights(&model, &dir)?;
        Ok(RewardModel {
            model,
            score,
            tokenizer,
        })
    }

    /// Rewards of token sequences, `batch` at a time (right padded, plain
    /// causal attention; padding after the last token cannot reach it).
    pub fn score(&self, seqs: &[Vec<u32>], batch: usize) -> Result<Vec<f32>> {
        let _g = tch::no_grad_guard();
        let device = self.model.device();
        let pad = i64::from(self.tokenizer.pad_id());
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(batch.max(1)) {
            let l = chunk.iter().map(Vec::len).max().unwrap_or(1).max(1) as i64;
            let mut ids = Vec::with_capacity(chunk.len() * l as usize);
            for s in chunk {
                ids.extend(s.iter().map(|&t| i64::from(t)));
                ids.extend(std::iter::repeat_n(pad, l as usize - s.len()));
            }
            let r = chunk.len() as i64;
            let ids = Tensor::from_slice(&ids).view([r, l]).to_device(device);
            let pos = Tensor::arange(l, (Kind::Int64, device))
                .unsqueeze(0)
                .expand([r, l], false);
            let h = self
                .model
                .forward_hidden(&ids, &pos, crate::llama::AttnMask::Causal, None)?;
            let lengths: Vec<i64> = chunk.iter().map(|s| s.len() as i64).collect();
            let rw = rewards(&last_token_hidden(&h, &lengths), &self.score);
            out.extend(Vec::<f32>::try_from(&rw)?);
        }
        Ok(out)
    }
}

/// The pad token an exported reward model declares: the tokenizer's own
/// when it is not an EOS, else the lowest-id special token that is not an
/// EOS. transformers pools the rightmost token != pad, so the pad must
/// never be the last token of a scored text: chat templates end a
/// conversation with the EOS (or a newline after it), never with another
/// special token, and a pad id inside a text does not matter (only the
/// rightmost non-pad token is read).
pub fn reward_pad_token(tok: &TextTokenizer, eos_ids: &[u32]) -> Option<(u32, String)> {
    let eos: Vec<u32> = eos_ids.iter().copied().chain(tok.eos_id()).collect();
    if let Some(p) = tok.pad_token.as_deref() {
        if let Some(id) = tok.token_to_id(p) {
            if !eos.contains(&id) {
                return Some((id, p.to_owned()));
            }
        }
    }
    let mut special: Vec<(u32, String)> = tok
        .inner()
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(id, t)| t.special && !eos.contains(id))
        .map(|(id, t)| (id, t.content))
        .collect();
    special.sort();
    special.into_iter().next()
}

/// Rewrites an exported directory's `config.json` (and the tokenizer and
/// generation configs) as a one-label `LlamaForSequenceClassification`
/// whose pad token is [`reward_pad_token`].
///
/// SmolLM2 ships pad == eos: with that pad, transformers would pool the
/// token before the final EOS and score another token than smolsweep
/// trained (which reads each sequence's last real token by its length).
/// Declaring a pad that is not an EOS, in `config.json` and in the
/// tokenizer files alike (so a padded batch pads with it), makes the
/// rightmost non-pad token the last real one, as here. The vocabulary is
/// unchanged, unlike open-instruct's added `[PAD]`, so the weights stay the
/// backbone's shape.
pub fn export_config(dir: &Path, config: &LlamaConfig, torch_dtype: &str) -> Result<()> {
    let tok = TextTokenizer::from_dir(dir)?;
    let (pad_id, pad) =
        reward_pad_token(&tok, &config.eos_ids()).ok_or_else(|| ModelError::ModelDir {
            path: dir.to_path_buf(),
            msg: "no special token other than the EOS to declare as the reward model's pad \
                  (transformers would pool the wrong token)"
                .into(),
        })?;
    let mut cfg = config.to_hf_json(torch_dtype);
    if let Some(o) = cfg.as_object_mut() {
        o.insert(
            "architectures".into(),
            json!(["LlamaForSequenceClassification"]),
        );
        o.insert("id2label".into(), json!({"0": "LABEL_0"}));
        o.insert("label2id".into(), json!({"LABEL_0": 0}));
        o.insert("num_labels".into(), json!(1));
        o.insert("pad_token_id".into(), json!(pad_id));
    }
    write_json(&dir.join("config.json"), &cfg)?;
    for name in [
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
    ] {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let mut v: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        if let Some(o) = v.as_object_mut() {
            if name == "generation_config.json" {
                o.insert("pad_token_id".into(), json!(pad_id));
            } else {
                o.insert("pad_token".into(), json!(pad));
            }
        }
        write_json(&path, &v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pooling reads each row's last real token, whatever follows it.
    #[test]
    fn the_last_real_token_is_pooled() {
        let h = Tensor::arange(2 * 3 * 2, (Kind::Float, Device::Cpu)).view([2, 3, 2]);
        let p = last_token_hidden(&h, &[2, 3]);
        assert_eq!(
            Vec::<f32>::try_from(&p.flatten(0, -1)).expect("vec"),
            [2.0, 3.0, 10.0, 11.0]
        );
    }

    /// open-instruct's init: std 1/sqrt(hidden+1), reproducible by seed.
    #[test]
    fn the_head_is_seeded_with_open_instructs_std() {
        let mut c = LlamaConfig::tiny(32);
        c.hidden_size = 4096;
        c.num_hidden_layers = 0;
        c.intermediate_size = 8;
        let m = Llama::new(c.clone(), Device::Cpu, Kind::Float, InitMode::Empty).expect("model");
        let w = add_score_head(&m, ScoreInit::Random { seed: 3 }).expect("head");
        assert_eq!(w.size(), [1, 4096]);
        let std = w.std(true).double_value(&[]);
        assert!((std - 1.0 / 4097f64.sqrt()).abs() < 0.002, "{std}");
        let m2 = Llama::new(c, Device::Cpu, Kind::Float, InitMode::Empty).expect("model");
        let w2 = add_score_head(&m2, ScoreInit::Random { seed: 3 }).expect("head");
        assert!(w.equal(&w2));
        assert!(m.vs.variables().contains_key(SCORE_WEIGHT));
    }
}
