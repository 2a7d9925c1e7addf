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
//!
//! Packed rows ([`AttnMask::Packed`]) attend either by masked SDPA (the
//! CPU path and the reference) or by varlen flash attention on CUDA
//! ([`Llama::set_attention`]), which needs no mask at all.

use std::sync::atomic::{AtomicU8, Ordering};

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

pub use smolsweep_config::Attention;

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::varlen::Varlen;

/// [`Llama::attention`] states: masked SDPA, varlen flash attention
/// chosen by "auto" (falls back to SDPA if the kernel fails), or insisted
/// on by "varlen" (a kernel failure is an error).
const ATTN_SDPA: u8 = 0;
const ATTN_VARLEN_AUTO: u8 = 1;
const ATTN_VARLEN_FORCED: u8 = 2;

/// How queries may attend to keys in one forward call.
#[derive(Debug, Clone, Copy)]
pub enum AttnMask<'a> {
    /// Causal within the call (and everything already in the cache).
    Causal,
    /// Every query sees every key (one new token against a cache).
    Full,
    /// An explicit boolean mask `[B, 1, T, S]`, true = may attend.
    Explicit(&'a Tensor),
    /// Packed rows (no cache): causal attention inside each span of
    /// `varlen`. `mask` is the same attention as a block-diagonal mask for
    /// the SDPA path; when absent it is built from `varlen` if needed.
    Packed {
        mask: Option<&'a Tensor>,
        varlen: &'a Varlen,
    },
}

/// Key/value cache for incremental decoding: one
/// `[B, kv_heads, allocated, head_dim]` buffer per layer, filled in place so
/// decoding does no re-allocation per token. `capacity` is the limit; the
/// buffers start at what the first call needs (at least
/// [`KvCache::INITIAL`] positions) and double when a call needs more, so a
/// generation allowed the whole context (BBH under `smollm2`) whose
/// answers are a few tokens does not zero, copy and attend over gigabytes
/// it never uses.
///
/// Rows may also be filled independently (continuous batching): prompts
/// prefilled elsewhere are copied into free rows by
/// [`KvCache::copy_rows_from`], and a decoding step that gives each row
/// one token at its own position is announced by
/// [`KvCache::set_row_positions`].
#[derive(Debug)]
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    len: i64,
    capacity: i64,
    /// Per-row write positions `[B]` (int64, on the device) and the
    /// number of key positions the next call attends over.
    rows: Option<(Tensor, i64)>,
}

impl KvCache {
    /// Positions allocated at first, at least (unless `capacity` is less).
    pub const INITIAL: i64 = 256;

    pub fn new(model: &Llama, batch: i64, capacity: i64) -> Self {
        let c = &model.config;
        let shape = [
            batch,
            c.num_kv_heads() as i64,
            capacity.min(Self::INITIAL),
            c.head_dim() as i64,
        ];
        let opts = (model.kind, model.device);
        let n = c.num_hidden_layers;
        KvCache {
            k: (0..n).map(|_| Tensor::zeros(shape, opts)).collect(),
            v: (0..n).map(|_| Tensor::zeros(shape, opts)).collect(),
            len: 0,
            capacity,
            rows: None,
        }
    }

    /// Positions the buffers hold now (at most `capacity`).
    pub fn allocated(&self) -> i64 {
        self.k.first().map_or(0, |t| t.size()[2])
    }

    /// Makes room for `need` positions (at most `capacity`): doubled, or to
    /// `need` if that is more; what is cached is kept, the rest is zeros
    /// (masked keys must be finite: a masked weight of 0 times a NaN value
    /// is NaN).
    fn reserve(&mut self, need: i64) {
        let have = self.allocated();
        if need <= have {
            return;
        }
        let grown = need.max(2 * have).min(self.capacity);
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            let mut size = t.size();
            size[2] = grown;
            let bigger = Tensor::zeros(size.as_slice(), (t.kind(), t.device()));
            bigger.narrow(2, 0, have).copy_(t);
            *t = bigger;
        }
    }

    /// Copies the first `len` positions of every row of `src` (a cache
    /// of the same model) into rows `rows` (int64 on the model's device)
    /// of this one: prompts prefilled together as one batch land in
    /// whichever slots are free.
    pub fn copy_rows_from(&mut self, rows: &Tensor, src: &KvCache, len: i64) {
        self.reserve(len);
        for (dst, s) in self.k.iter().zip(&src.k).chain(self.v.iter().zip(&src.v)) {
            let _ = dst
                .narrow(2, 0, len)
                .index_copy_(0, rows, &s.narrow(2, 0, len));
        }
    }

    /// Announces a decoding step of one token per row where row `r` writes
    /// its key and value at position `at[r]` (int64 `[B]` on the model's
    /// device) and queries attend over the first `span` positions; the
    /// caller's explicit mask says which of them each row may see. Holds
    /// for the next forward call only.
    pub fn set_row_positions(&mut self, at: Tensor, span: i64) {
        self.rows = Some((at, span));
    }

    /// Keeps only the rows `idx` (int64 on the model's device), in that
    /// order: finished rows leave the batch without a copy per step.
    pub fn select_rows(&mut self, idx: &Tensor) {
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = t.index_select(0, idx);
        }
    }

    /// Rows in the buffers.
    pub fn batch(&self) -> i64 {
        self.k.first().map_or(0, |t| t.size()[0])
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
    /// How packed rows attend (`ATTN_*`); set by [`Llama::set_attention`].
    attention: AtomicU8,
}

/// RMSNorm as transformers computes it: normalise in fp32, cast back to
/// `x`'s dtype, then scale (three passes over `x` in low precision).
fn rms_norm_as_transformers(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let y = x
        .to_kind(Kind::Float)
        .rms_norm([x.size()[x.dim() - 1]], None::<Tensor>, eps)
        .to_kind(x.kind());
    y * w
}

/// RMSNorm by libtorch's `rms_norm` with the weight inside (one fused
/// kernel on CUDA, fp32 accumulation): it rounds once where transformers
/// rounds twice, so it differs from [`rms_norm_as_transformers`] by at
/// most about one bf16 step (tested).
fn rms_norm_fused(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    x.rms_norm([x.size()[x.dim() - 1]], Some(w), eps)
}

/// Attention of packed rows by a varlen `kernel`: q `[B, H, T, D]` and
/// k/v `[B, KV, T, D]` go in as the `[B * T, heads, D]` token layout of
/// varlen kernels; the result comes back as `[B, T, H * D]`.
fn attend_varlen<E>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    kernel: impl FnOnce(&Tensor, &Tensor, &Tensor) -> std::result::Result<Tensor, E>,
) -> std::result::Result<Tensor, E> {
    let (b, h, t, hd) = (q.size()[0], q.size()[1], q.size()[2], q.size()[3]);
    let tokens = |x: &Tensor| x.transpose(1, 2).reshape([b * t, x.size()[1], hd]);
    let y = kernel(&tokens(q), &tokens(k), &tokens(v))?;
    Ok(y.reshape([b, t, h * hd]))
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
            attention: AtomicU8::new(ATTN_SDPA),
        })
    }

    /// Chooses how packed rows attend and logs the choice (once per
    /// call): "auto" takes varlen flash attention where it runs (CUDA,
    /// bf16 or fp16, a head dim that is a multiple of 8 up to 256, the
    /// kernels shim built) and masked SDPA elsewhere; "varlen" where it
    /// cannot run is an error. Returns whether varlen attention is used.
    pub fn set_attention(&self, want: Attention) -> Result<bool> {
        let hd = self.config.head_dim() as i64;
        let why_not = if smolsweep_kernels::available() {
            smolsweep_kernels::flash_varlen_supported(self.device, self.kind, hd).err()
        } else {
            Some("smolsweep was built without its kernels shim".to_owned())
        };
        let state = match (want, why_not) {
            (Attention::Sdpa, _) => {
                tracing::info!("attention: masked SDPA (attention = \"sdpa\")");
                ATTN_SDPA
            }
            (Attention::Auto, Some(why)) => {
                tracing::info!("attention: masked SDPA ({why})");
                ATTN_SDPA
            }
            (Attention::Varlen, Some(why)) => {
                return Err(ModelError::Attention {
                    want: want.as_str().to_owned(),
                    msg: why,
                })
            }
            (_, None) => {
                tracing::info!("attention: varlen flash attention over packed rows");
                if want == Attention::Varlen {
                    ATTN_VARLEN_FORCED
                } else {
                    ATTN_VARLEN_AUTO
                }
            }
        };
        self.attention.store(state, Ordering::Relaxed);
        Ok(state != ATTN_SDPA)
    }

    /// Whether packed rows go through varlen flash attention.
    pub fn uses_varlen(&self) -> bool {
        self.attention.load(Ordering::Relaxed) != ATTN_SDPA
    }

    /// Varlen flash attention of one layer: q `[B, H, T, D]`, k/v
    /// `[B, KV, T, D]` → `[B, T, H * D]`. `None` when "auto" chose it and
    /// the kernel failed: logged once, and the model falls back to SDPA.
    fn varlen_attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        varlen: &Varlen,
    ) -> Result<Option<Tensor>> {
        let r = attend_varlen(q, k, v, |q, k, v| {
            let scale = 1.0 / (q.size()[2] as f64).sqrt();
            smolsweep_kernels::flash_attention_varlen(
                q,
                k,
                v,
                &varlen.cu_seqlens,
                varlen.max_seqlen,
                scale,
            )
        });
        match r {
            Ok(y) => Ok(Some(y)),
            Err(e) if self.attention.load(Ordering::Relaxed) == ATTN_VARLEN_AUTO => {
                tracing::warn!("varlen flash attention failed, using masked SDPA from now on: {e}");
                self.attention.store(ATTN_SDPA, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
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
        let eps = self.config.rms_norm_eps;
        if self.kind == Kind::Float {
            rms_norm_as_transformers(x, w, eps)
        } else {
            rms_norm_fused(x, w, eps)
        }
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
            if let Some((_, span)) = &c.rows {
                if t != 1 || *span > c.capacity {
                    return Err(ModelError::Generate(format!(
                        "a per-row step takes one token per row within {} positions, got {t} tokens over {span}",
                        c.capacity
                    )));
                }
            } else if c.len + t > c.capacity {
                return Err(ModelError::Generate(format!(
                    "KV cache holds {} positions, {} needed",
                    c.capacity,
                    c.len + t
                )));
            }
        }
        if let Some(c) = cache.as_deref_mut() {
            let need = match &c.rows {
                Some((_, span)) => *span,
                None => c.len + t,
            };
            c.reserve(need);
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
        // A packed batch's mask, built from its spans only if SDPA needs it.
        let mut packed_mask: Option<Tensor> = None;
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
                if let Some((at, span)) = &c.rows {
                    let idx = at.view([b, 1, 1, 1]).expand([b, kv, 1, hd], false);
                    let _ = c.k[i].scatter_(2, &idx, &k);
                    let _ = c.v[i].scatter_(2, &idx, &v);
                    k = c.k[i].narrow(2, 0, *span);
                    v = c.v[i].narrow(2, 0, *span);
                } else {
                    c.k[i].narrow(2, offset, t).copy_(&k);
                    c.v[i].narrow(2, offset, t).copy_(&v);
                    k = c.k[i].narrow(2, 0, offset + t);
                    v = c.v[i].narrow(2, 0, offset + t);
                }
            }
            if let AttnMask::Packed { varlen, .. } = mask {
                if cache.is_none() && self.uses_varlen() {
                    if let Some(y) = self.varlen_attention(&q, &k, &v, varlen)? {
                        x = &x + y.linear(&layer.o, None::<Tensor>);
                        x = self.mlp(&x, layer);
                        continue;
                    }
                }
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
                AttnMask::Packed { mask: Some(m), .. } => (Some(m.shallow_clone()), false),
                AttnMask::Packed { mask: None, varlen } => {
                    let m = packed_mask.get_or_insert_with(|| {
                        varlen
                            .implied_mask(b as usize, t as usize)
                            .to_device(self.device)
                    });
                    (Some(m.shallow_clone()), false)
                }
            };
            let y = Tensor::scaled_dot_product_attention(&q, &k, &v, m, 0.0, causal, None, true);
            let y = y.transpose(1, 2).reshape([b, t, h * hd]);
            // Out of place: the norm's backward needs the old `x`.
            x = &x + y.linear(&layer.o, None::<Tensor>);
            x = self.mlp(&x, layer);
        }
        if let Some(c) = cache {
            match c.rows.take() {
                Some((_, span)) => c.len = c.len.max(span),
                None => c.len += t,
            }
        }
        Ok(self.rms_norm(&x, &self.norm))
    }

    /// The residual MLP half of a block.
    fn mlp(&self, x: &Tensor, layer: &Block) -> Tensor {
        let hn = self.rms_norm(x, &layer.post_norm);
        let gate = hn.linear(&layer.gate, None::<Tensor>).silu();
        let up = hn.linear(&layer.up, None::<Tensor>);
        x + (gate * up).linear(&layer.down, None::<Tensor>)
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

    /// A cache that starts small and grows (twice here) gives the logits
    /// of one allocated whole: what is cached survives each growth.
    #[test]
    fn a_growing_cache_equals_a_whole_one() {
        let m = tiny();
        let _g = tch::no_grad_guard();
        let n = 2 * KvCache::INITIAL + 40;
        let ids: Vec<i64> = (0..n).map(|i| (i * 7 + 3) % 97).collect();
        let x = Tensor::from_slice(&ids).unsqueeze(0);
        let full = m.forward(&x).expect("fwd");
        let mut cache = KvCache::new(&m, 1, n + 8);
        assert_eq!(cache.allocated(), KvCache::INITIAL);
        let pre = KvCache::INITIAL - 4;
        let pos = Tensor::arange(pre, (Kind::Int64, Device::Cpu)).unsqueeze(0);
        let h = m
            .forward_hidden(
                &x.narrow(1, 0, pre),
                &pos,
                AttnMask::Causal,
                Some(&mut cache),
            )
            .expect("prefill");
        let mut parts = vec![m.logits(&h)];
        for p in pre..n {
            let pos = Tensor::from_slice(&[p]).unsqueeze(0);
            let h = m
                .forward_hidden(&x.narrow(1, p, 1), &pos, AttnMask::Full, Some(&mut cache))
                .expect("step");
            parts.push(m.logits(&h));
        }
        assert_eq!(cache.allocated(), n + 8, "grown to the limit");
        let diff = (full - Tensor::cat(&parts, 1))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-4, "max diff {diff}");
    }

    /// Deterministic test values of `shape` (libtorch's global generator
    /// is shared by tests running at once).
    fn wave(shape: &[i64], f: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        let i = Tensor::arange(n, (Kind::Float, Device::Cpu));
        ((&i * f).sin() + (&i * (f * 0.131)).cos() * 0.5).view(shape)
    }

    /// The varlen token layout with a reference kernel (causal SDPA span
    /// by span) gives what masked SDPA gives for the same packed rows:
    /// the layout and the spans are right, whatever kernel runs on them.
    #[test]
    fn varlen_layout_matches_masked_sdpa() {
        let (b, h, kv, t, d) = (2i64, 6, 2, 7, 8);
        // Row 0: samples of 3 and 4 tokens; row 1: 5 tokens and 2 pads.
        let seg = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, -1, -2];
        let varlen = Varlen::from_segments(&seg, b as usize, t as usize, Device::Cpu);
        let mask = varlen.implied_mask(b as usize, t as usize);
        let q = wave(&[b, h, t, d], 0.7);
        let k = wave(&[b, kv, t, d], 1.3);
        let v = wave(&[b, kv, t, d], 2.9);
        let want =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), 0.0, false, None, true)
                .transpose(1, 2)
                .reshape([b, t, h * d]);
        let reference = |q: &Tensor, k: &Tensor, v: &Tensor| -> Result<Tensor> {
            let spans: Vec<Tensor> = varlen
                .offsets
                .windows(2)
                .map(|w| {
                    let (s, n) = (i64::from(w[0]), i64::from(w[1] - w[0]));
                    let part = |x: &Tensor| x.narrow(0, s, n).transpose(0, 1).unsqueeze(0);
                    Tensor::scaled_dot_product_attention(
                        &part(q),
                        &part(k),
                        &part(v),
                        None::<Tensor>,
                        0.0,
                        true,
                        None,
                        true,
                    )
                    .squeeze_dim(0)
                    .transpose(0, 1)
                })
                .collect();
            Ok(Tensor::cat(&spans, 0))
        };
        let got = attend_varlen(&q, &k, &v, reference).expect("attend");
        // Every token but the pads (whose attention no label reads).
        let real = Tensor::from_slice(&seg.map(|s| s >= 0)).view([b, t, 1]);
        let diff = ((got - want).abs() * real).max().double_value(&[]);
        assert!(diff < 1e-5, "max diff {diff}");
    }

    /// Packed rows without a mask attend through the mask their spans
    /// imply (the SDPA path); "varlen" is refused where it cannot run.
    #[test]
    fn packed_rows_on_the_cpu_use_masked_sdpa() {
        let m = tiny();
        assert!(!m.set_attention(Attention::Auto).expect("auto"));
        assert!(m.set_attention(Attention::Varlen).is_err());
        assert!(!m.set_attention(Attention::Sdpa).expect("sdpa"));
        let _g = tch::no_grad_guard();
        let seg = [0, 0, 0, 1, 1, 1];
        let varlen = Varlen::from_segments(&seg, 1, 6, Device::Cpu);
        let mask = varlen.implied_mask(1, 6);
        let x = Tensor::from_slice(&[3i64, 14, 15, 92, 65, 35]).unsqueeze(0);
        let pos = Tensor::from_slice(&varlen.positions()).unsqueeze(0);
        let run = |mask| m.forward_hidden(&x, &pos, mask, None).expect("fwd");
        let explicit = run(AttnMask::Explicit(&mask));
        let packed = run(AttnMask::Packed {
            mask: None,
            varlen: &varlen,
        });
        assert!(explicit.equal(&packed));
        // The second sample alone gives the same states as inside the row.
        let alone = m
            .forward_hidden(
                &x.narrow(1, 3, 3),
                &pos.narrow(1, 3, 3),
                AttnMask::Causal,
                None,
            )
            .expect("fwd");
        let diff = (alone - packed.narrow(1, 3, 3))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-5, "max diff {diff}");
    }

    /// bf16: the fused norm is within a bf16 rounding step of
    /// transformers' cast -> norm -> cast -> scale, and no further than it
    /// from the fp32 computation on the same inputs, values and gradients.
    #[test]
    fn the_fused_bf16_rms_norm_is_within_a_rounding_step() {
        let x = (wave(&[64, 96], 0.37) * 3.0).to_kind(Kind::BFloat16);
        let w = (wave(&[96], 1.91) * 0.2 + 1.0).to_kind(Kind::BFloat16);
        let up = wave(&[64, 96], 2.3).to_kind(Kind::BFloat16);
        let run = |f: fn(&Tensor, &Tensor, f64) -> Tensor, kind: Kind| {
            let x = x.to_kind(kind).set_requires_grad(true);
            let w = w.to_kind(kind).set_requires_grad(true);
            let y = f(&x, &w, 1e-5);
            assert_eq!(y.kind(), kind);
            let loss = (&y * up.to_kind(kind)).sum(Kind::Float);
            let g = Tensor::run_backward(&[loss], &[&x, &w], false, false);
            [&y.detach(), &g[0], &g[1]].map(|t| t.to_kind(Kind::Float))
        };
        let today = run(rms_norm_as_transformers, Kind::BFloat16);
        let fused = run(rms_norm_fused, Kind::BFloat16);
        let exact = run(rms_norm_as_transformers, Kind::Float);
        let rel =
            |a: &Tensor, b: &Tensor| (a - b).norm().double_value(&[]) / b.norm().double_value(&[]);
        // Values: one bf16 step is 2^-8 of the value (2^-7 at a tie).
        let step = ((&fused[0] - &today[0]).abs() / (today[0].abs() + 1e-2))
            .max()
            .double_value(&[]);
        assert!(
            step <= 2f64.powi(-7),
            "values differ by {step} of themselves"
        );
        for (i, what) in ["values", "grad x", "grad w"].iter().enumerate() {
            let (f, t) = (rel(&fused[i], &exact[i]), rel(&today[i], &exact[i]));
            assert!(
                f <= t * 1.25 + 1e-4,
                "{what}: fused {f} vs today's {t} from fp32"
            );
        }
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
