//! The Llama network (SmolLM2 is one): token embedding, `num_hidden_layers`
//! pre-norm blocks of grouped-query attention with RoPE and a SwiGLU MLP,
//! a final RMSNorm and an LM head tied to the embedding when the config
//! says so.
//!
//! Parameters live in a `tch` `VarStore` under exactly the names HF uses
//! (`model.layers.3.self_attn.q_proj.weight`, ...), so loading and saving
//! are a walk over the store, and the trainer can hand the same store to
//! its optimizer. The maths follows `transformers`' `modeling_llama.py`
//! (norms in fp32, RoPE tables in fp32) so that logits match it closely.

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};

/// How queries may attend to keys in one forward call.
#[derive(Debug, Clone, Copy)]
pub enum AttnMask<'a> {
    /// Causal within the call (and everything already in the cache).
    Causal,
    /// Every query sees every key (one new token against a cache).
    Full,
    /// An explicit boolean mask `[B, 1, T, S]`, true = may attend.
    Explicit(&'a Tensor),
}

/// Key/value cache for incremental decoding: one preallocated
/// `[B, kv_heads, capacity, head_dim]` buffer per layer, filled in place so
/// decoding does no re-allocation per token.
#[derive(Debug)]
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    len: i64,
    capacity: i64,
}

impl KvCache {
    pub fn new(model: &Llama, batch: i64, capacity: i64) -> Self {
        let c = &model.config;
        let shape = [
            batch,
            c.num_kv_heads() as i64,
            capacity,
            c.head_dim() as i64,
        ];
        let opts = (model.kind, model.device);
        let n = c.num_hidden_layers;
        KvCache {
            k: (0..n).map(|_| Tensor::zeros(shape, opts)).collect(),
            v: (0..n).map(|_| Tensor::zeros(shape, opts)).collect(),
            len: 0,
            capacity,
        }
    }

    /// Number of positions already cached.
    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Debug)]
struct Block {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    input_norm: Tensor,
    post_norm: Tensor,
}

impl Block {
    fn new(p: &nn::Path, c: &LlamaConfig, init: Init) -> Self {
        let d = c.hidden_size as i64;
        let hd = c.head_dim() as i64;
        let h = c.num_attention_heads as i64;
        let kv = c.num_kv_heads() as i64;
        let ff = c.intermediate_size as i64;
        let attn = p / "self_attn";
        let mlp = p / "mlp";
        let w = |p: nn::Path, shape: &[i64]| p.var("weight", shape, init);
        Block {
            q: w(&attn / "q_proj", &[h * hd, d]),
            k: w(&attn / "k_proj", &[kv * hd, d]),
            v: w(&attn / "v_proj", &[kv * hd, d]),
            o: w(&attn / "o_proj", &[d, h * hd]),
            gate: w(&mlp / "gate_proj", &[ff, d]),
            up: w(&mlp / "up_proj", &[ff, d]),
            down: w(&mlp / "down_proj", &[d, ff]),
            input_norm: (p / "input_layernorm").var("weight", &[d], Init::Const(1.0)),
            post_norm: (p / "post_attention_layernorm").var("weight", &[d], Init::Const(1.0)),
        }
    }
}

/// The network. Cheap to share by reference; all state is in `vs`.
#[derive(Debug)]
pub struct Llama {
    pub config: LlamaConfig,
    pub vs: nn::VarStore,
    embed: Tensor,
    layers: Vec<Block>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Tensor,
    kind: Kind,
    device: Device,
}

/// How fresh parameters are filled.
#[derive(Debug, Clone, Copy)]
pub enum InitMode {
    /// Zeros, to be overwritten by a checkpoint.
    Empty,
    /// HF's `_init_weights`: N(0, initializer_range) for linear and
    /// embedding weights, ones for norms, drawn on the CPU from `seed` so
    /// the same seed gives the same model on any device.
    Random { seed: i64 },
}

impl Llama {
    /// Builds the network on `device` in `kind`.
    pub fn new(config: LlamaConfig, device: Device, kind: Kind, init: InitMode) -> Result<Self> {
        let build_device = match init {
            InitMode::Empty => device,
            InitMode::Random { .. } => Device::Cpu,
        };
        // libtorch's generator is global: hold it from seeding until the
        // last weight is drawn, so two models built at once in one process
        // (test threads, a library caller) still get their seeds' weights.
        static SEEDED_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _drawing = matches!(init, InitMode::Random { .. })
            .then(|| SEEDED_INIT.lock().unwrap_or_else(|e| e.into_inner()));
        let weight_init = match init {
            InitMode::Empty => Init::Const(0.0),
            InitMode::Random { seed } => {
                tch::manual_seed(seed);
                Init::Randn {
                    mean: 0.0,
                    stdev: config.initializer_range,
                }
            }
        };
        let mut vs = nn::VarStore::new(build_device);
        let root = vs.root();
        let m = &root / "model";
        let d = config.hidden_size as i64;
        let vocab = config.vocab_size as i64;
        let embed = (&m / "embed_tokens").var("weight", &[vocab, d], weight_init);
        let layers_path = &m / "layers";
        let layers = (0..config.num_hidden_layers)
            .map(|i| Block::new(&(&layers_path / i), &config, weight_init))
            .collect();
        let norm = (&m / "norm").var("weight", &[d], Init::Const(1.0));
        let lm_head = if config.tie_word_embeddings {
            embed.shallow_clone()
        } else {
            (&root / "lm_head").var("weight", &[vocab, d], weight_init)
        };
        if build_device != device {
            vs.set_device(device);
        }
        if kind != Kind::Float {
            vs.set_kind(kind);
        }
        let hd = config.head_dim() as i64;
        // inv_freq exactly as transformers builds it: int64 arange -> float.
        let exponents = Tensor::arange_start_step(0, hd, 2, (Kind::Int64, Device::Cpu))
            .to_kind(Kind::Float)
            / hd as f64;
        let inv_freq = (Tensor::from(config.rope_theta as f32).pow(&exponents))
            .reciprocal()
            .to_device(device);
        Ok(Llama {
            config,
            vs,
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
            kind,
            device,
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Names of the tensors a checkpoint must provide, with their shapes.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<i64>)> {
        let mut v: Vec<_> = self
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.size()))
            .collect();
        v.sort();
        v
    }

    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Tensor {
        // As transformers: normalise in fp32, cast back, then scale.
        let eps = self.config.rms_norm_eps;
        let y = x
            .to_kind(Kind::Float)
            .rms_norm([x.size()[x.dim() - 1]], None::<Tensor>, eps)
            .to_kind(self.kind);
        y * w
    }

    /// RoPE tables `[B, 1, T, head_dim]` for the given positions `[B, T]`.
    fn rope_tables(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        (
            emb.cos().to_kind(self.kind).unsqueeze(1),
            emb.sin().to_kind(self.kind).unsqueeze(1),
        )
    }

    /// Hidden states `[B, T, D]` after the final norm.
    ///
    /// `positions` is `[B, T]` (RoPE positions, which differ from indices
    /// under left padding); with a cache, the new keys are written at
    /// `cache.len()` and attention covers everything cached so far.
    pub fn forward_hidden(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        mask: AttnMask<'_>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.size2()?;
        if let Some(c) = cache.as_deref() {
            if c.len + t > c.capacity {
                return Err(ModelError::Generate(format!(
                    "KV cache holds {} positions, {} needed",
                    c.capacity,
                    c.len + t
                )));
            }
        }
        let c = &self.config;
        let (h, kv, hd) = (
            c.num_attention_heads as i64,
            c.num_kv_heads() as i64,
            c.head_dim() as i64,
        );
        let (cos, sin) = self.rope_tables(positions);
        let rope = |x: &Tensor| {
            let half = hd / 2;
            let x1 = x.narrow(-1, 0, half);
            let x2 = x.narrow(-1, half, half);
            let rotated = Tensor::cat(&[&x2.neg(), &x1], -1);
            x * &cos + rotated * &sin
        };
        let offset = cache.as_deref().map_or(0, |c| c.len);
        let mut x = Tensor::embedding(&self.embed, input_ids, -1, false, false);
        for (i, layer) in self.layers.iter().enumerate() {
            let hn = self.rms_norm(&x, &layer.input_norm);
            let q = hn
                .linear(&layer.q, None::<Tensor>)
                .view([b, t, h, hd])
                .transpose(1, 2);
            let k = hn
                .linear(&layer.k, None::<Tensor>)
                .view([b, t, kv, hd])
                .transpose(1, 2);
            let v = hn
                .linear(&layer.v, None::<Tensor>)
                .view([b, t, kv, hd])
                .transpose(1, 2);
            let q = rope(&q);
            let mut k = rope(&k);
            let mut v = v;
            if let Some(c) = cache.as_deref_mut() {
                c.k[i].narrow(2, offset, t).copy_(&k);
                c.v[i].narrow(2, offset, t).copy_(&v);
                k = c.k[i].narrow(2, 0, offset + t);
                v = c.v[i].narrow(2, 0, offset + t);
            }
            let (m, causal) = match mask {
                AttnMask::Causal if offset == 0 => (None, true),
                AttnMask::Causal => {
                    // Queries at offset..offset+t see keys 0..=their own index.
                    let qi = Tensor::arange_start(offset, offset + t, (Kind::Int64, self.device));
                    let ki = Tensor::arange(offset + t, (Kind::Int64, self.device));
                    (Some(ki.unsqueeze(0).le_tensor(&qi.unsqueeze(1))), false)
                }
                AttnMask::Full => (None, false),
                AttnMask::Explicit(m) => (Some(m.shallow_clone()), false),
            };
            let y = Tensor::scaled_dot_product_attention(&q, &k, &v, m, 0.0, causal, None, true);
            let y = y.transpose(1, 2).reshape([b, t, h * hd]);
            // Out of place: the norm's backward needs the old `x`.
            x = &x + y.linear(&layer.o, None::<Tensor>);
            let hn = self.rms_norm(&x, &layer.post_norm);
            let gate = hn.linear(&layer.gate, None::<Tensor>).silu();
            let up = hn.linear(&layer.up, None::<Tensor>);
            x = &x + (gate * up).linear(&layer.down, None::<Tensor>);
        }
        if let Some(c) = cache {
            c.len += t;
        }
        Ok(self.rms_norm(&x, &self.norm))
    }

    /// Logits `[.., vocab]` in fp32 for hidden states from [`forward_hidden`].
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        hidden
            .linear(&self.lm_head, None::<Tensor>)
            .to_kind(Kind::Float)
    }

    /// The LM head weight `[vocab, D]` (the embedding when tied), for
    /// callers that fuse the head with their loss.
    pub fn lm_head_weight(&self) -> &Tensor {
        &self.lm_head
    }

    /// Full-sequence logits `[B, T, V]` of an unpadded batch.
    pub fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (b, t) = input_ids.size2()?;
        let positions = Tensor::arange(t, (Kind::Int64, self.device))
            .unsqueeze(0)
            .expand([b, t], false);
        let h = self.forward_hidden(input_ids, &positions, AttnMask::Causal, None)?;
        Ok(self.logits(&h))
    }

    /// Log-probability of each token given the ones before it: for ids
    /// `[t0..tn]` returns `n` values, one for each of `t1..tn`.
    pub fn token_logprobs(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.len() < 2 {
            return Ok(Vec::new());
        }
        let _guard = tch::no_grad_guard();
        let input: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let x = Tensor::from_slice(&input)
            .to_device(self.device)
            .unsqueeze(0);
        let logp = self
            .forward(&x)?
            .log_softmax(-1, Kind::Float)
            .squeeze_dim(0);
        let n = ids.len() as i64;
        let targets = x.squeeze_dim(0).narrow(0, 1, n - 1).unsqueeze(-1);
        let picked = logp
            .narrow(0, 0, n - 1)
            .gather(-1, &targets, false)
            .squeeze_dim(-1);
        Ok(Vec::<f32>::try_from(picked.to_device(Device::Cpu))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Llama {
        Llama::new(
            LlamaConfig::tiny(97),
            Device::Cpu,
            Kind::Float,
            InitMode::Random { seed: 7 },
        )
        .expect("model")
    }

    #[test]
    fn parameter_names_are_hf_names() {
        let m = tiny();
        let names: Vec<String> = m.expected_tensors().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"model.embed_tokens.weight".to_owned()));
        assert!(names.contains(&"model.layers.1.self_attn.k_proj.weight".to_owned()));
        assert!(names.contains(&"model.layers.0.post_attention_layernorm.weight".to_owned()));
        assert!(names.contains(&"model.norm.weight".to_owned()));
        // Tied: no separate head.
        assert!(!names.iter().any(|n| n.starts_with("lm_head")));
        let counted: i64 = m
            .expected_tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<i64>())
            .sum();
        assert_eq!(counted as usize, m.config.num_parameters());
    }

    #[test]
    fn same_seed_same_weights() {
        let a = tiny();
        let b = tiny();
        let x = Tensor::from_slice(&[1i64, 5, 9, 3]).unsqueeze(0);
        let la = a.forward(&x).expect("fwd");
        let lb = b.forward(&x).expect("fwd");
        assert!(la.equal(&lb));
    }

    #[test]
    fn incremental_decoding_matches_full_forward() {
        let m = tiny();
        let _g = tch::no_grad_guard();
        let ids = [3i64, 14, 15, 92, 65, 35];
        let x = Tensor::from_slice(&ids).unsqueeze(0);
        let full = m.forward(&x).expect("fwd");
        let mut cache = KvCache::new(&m, 1, 16);
        // Prefill 4, then two single tokens.
        let pos = Tensor::arange(4, (Kind::Int64, Device::Cpu)).unsqueeze(0);
        let h = m
            .forward_hidden(&x.narrow(1, 0, 4), &pos, AttnMask::Causal, Some(&mut cache))
            .expect("prefill");
        let mut parts = vec![m.logits(&h)];
        for p in 4..6 {
            let pos = Tensor::from_slice(&[p]).unsqueeze(0);
            let h = m
                .forward_hidden(&x.narrow(1, p, 1), &pos, AttnMask::Full, Some(&mut cache))
                .expect("step");
            parts.push(m.logits(&h));
        }
        let inc = Tensor::cat(&parts, 1);
        let diff = (full - inc).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "max diff {diff}");
        // A multi-token chunk on top of a cache is causal too.
        let mut cache = KvCache::new(&m, 1, 16);
        let pos = Tensor::arange(2, (Kind::Int64, Device::Cpu)).unsqueeze(0);
        let _ = m
            .forward_hidden(&x.narrow(1, 0, 2), &pos, AttnMask::Causal, Some(&mut cache))
            .expect("prefill");
        let pos = Tensor::arange_start(2, 6, (Kind::Int64, Device::Cpu)).unsqueeze(0);
        let h = m
            .forward_hidden(&x.narrow(1, 2, 4), &pos, AttnMask::Causal, Some(&mut cache))
            .expect("chunk");
        let full = m.forward(&x).expect("fwd").narrow(1, 2, 4);
        let diff = (full - m.logits(&h)).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "max diff {diff}");
    }

    #[test]
    fn cache_overflow_is_an_error() {
        let m = tiny();
        let mut cache = KvCache::new(&m, 1, 2);
        let x = Tensor::from_slice(&[1i64, 2, 3]).unsqueeze(0);
        let pos = Tensor::arange(3, (Kind::Int64, Device::Cpu)).unsqueeze(0);
        assert!(m
            .forward_hidden(&x, &pos, AttnMask::Causal, Some(&mut cache))
            .is_err());
    }
}
