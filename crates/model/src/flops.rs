//! Training FLOPs per token and model FLOP utilisation (MFU), the way
//! PaLM (appendix B) and llm.c count them: `6 N` for the weight matmuls
//! (forward 2, backward 4) plus the attention scores and their weighted
//! sum, `12 L H d_head c` per token, where `c` is the mean number of keys
//! a query attends to (causal: `(T + 1) / 2` for a row of `T`; packed
//! samples: `sum n (n + 1) / 2 / sum n`). Only useful work counts: masked
//! keys a kernel computes anyway are not model FLOPs.
//!
//! Peak dense bf16 rates of the usual training GPUs come from a small table
//! keyed by the CUDA device name; anything else needs the rate given.

use crate::config::LlamaConfig;

/// The count for one model and one attention shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainFlops {
    /// Parameters in matmuls: every linear weight and the LM head (the
    /// embedding when tied; an untied embedding is a lookup, no FLOPs).
    pub matmul_params: u64,
    /// Mean keys per query.
    pub mean_context: f64,
    /// `6 N`.
    pub dense_per_token: f64,
    /// `12 L H d_head c`.
    pub attention_per_token: f64,
}

impl TrainFlops {
    pub fn new(c: &LlamaConfig, mean_context: f64) -> Self {
        let d = c.hidden_size as u64;
        let hd = c.head_dim() as u64;
        let h = c.num_attention_heads as u64;
        let kv = c.num_kv_heads() as u64;
        let ff = c.intermediate_size as u64;
        let layer = d * h * hd + 2 * d * kv * hd + h * hd * d + 3 * d * ff;
        let matmul_params = c.num_hidden_layers as u64 * layer + c.vocab_size as u64 * d;
        TrainFlops {
            matmul_params,
            mean_context,
            dense_per_token: 6.0 * matmul_params as f64,
            attention_per_token: 12.0 * (c.num_hidden_layers as u64 * h * hd) as f64 * mean_context,
        }
    }

    pub fn per_token(&self) -> f64 {
        self.dense_per_token + self.attention_per_token
    }

    /// The formula with this model's numbers, for a report.
    pub fn formula(&self, c: &LlamaConfig) -> String {
        format!(
            "flops/token = 6*N + 12*L*H*d_head*c = 6*{} + 12*{}*{}*{}*{:.1} = {:.4e}",
            self.matmul_params,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.head_dim(),
            self.mean_context,
            self.per_token()
        )
    }

    /// Achieved FLOP/s over `peak`.
    pub fn mfu(&self, tokens_per_s: f64, peak_flops: f64) -> f64 {
        tokens_per_s * self.per_token() / peak_flops
    }
}

/// Mean keys per query of causal attention within samples of these
/// lengths (one full row of `T` is one sample of `T`).
pub fn mean_causal_context(sample_lens: &[usize]) -> f64 {
    let tokens: usize = sample_lens.iter().sum();
    if tokens == 0 {
        return 0.0;
    }
    let pairs: f64 = sample_lens
        .iter()
        .map(|&n| (n as f64) * (n as f64 + 1.0) / 2.0)
        .sum();
    pairs / tokens as f64
}

/// Peak dense (no sparsity) bf16 tensor-core FLOP/s of a GPU by its CUDA
/// device name, from NVIDIA's datasheets; `None` when the name is not in
/// the table.
pub fn peak_bf16_flops(device_name: &str) -> Option<f64> {
    let n = device_name.to_ascii_uppercase();
    let tera = |t: f64| Some(t * 1e12);
    if n.contains("H100") || n.contains("H200") || n.contains("GH200") {
        if n.contains("PCIE") {
            return tera(756.0);
        }
        if n.contains("NVL") {
            return tera(835.5);
        }
        return tera(989.4);
    }
    if n.contains("A100") {
        return tera(312.0);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2_135m() -> LlamaConfig {
        LlamaConfig {
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: Some(3),
            ..LlamaConfig::tiny(49152)
        }
    }

    /// SmolLM2-135M: N is every weight but the norms (the head is the
    /// tied embedding), 6N is the 0.81 GFLOP/token the design counts,
    /// and a packed 2048 row of one sample adds 12*30*9*64*1024.5.
    #[test]
    fn smollm2_135m_counts() {
        let c = smollm2_135m();
        let norms = (2 * 30 + 1) * 576;
        let f = TrainFlops::new(&c, mean_causal_context(&[2048]));
        assert_eq!(f.matmul_params as usize, c.num_parameters() - norms);
        assert_eq!(f.matmul_params, 134_479_872);
        assert!(
            (f.dense_per_token - 0.8069e9).abs() < 1e5,
            "{}",
            f.dense_per_token
        );
        assert_eq!(f.mean_context, 1024.5);
        assert_eq!(f.attention_per_token, 12.0 * 30.0 * 9.0 * 64.0 * 1024.5);
        // On an H100 at 1M tokens/s: (0.807 + 0.212) GFLOP * 1e6 / 989.4e12.
        let mfu = f.mfu(1e6, peak_bf16_flops("NVIDIA H100 80GB HBM3").expect("h100"));
        assert!((mfu - f.per_token() * 1e6 / 989.4e12).abs() < 1e-12);
        assert!((0.99..1.04).contains(&mfu), "{mfu}");
        assert!(f.formula(&c).contains("6*134479872 + 12*30*9*64*1024.5"));
    }

    #[test]
    fn an_untied_head_is_a_matmul_and_the_embedding_is_not() {
        let tied = smollm2_135m();
        let untied = LlamaConfig {
            tie_word_embeddings: false,
            ..smollm2_135m()
        };
        assert_eq!(
            TrainFlops::new(&untied, 1.0).matmul_params,
            TrainFlops::new(&tied, 1.0).matmul_params
        );
        assert_eq!(untied.num_parameters() - tied.num_parameters(), 49152 * 576);
    }

    #[test]
    fn packed_samples_attend_to_fewer_keys() {
        assert_eq!(mean_causal_context(&[1]), 1.0);
        assert_eq!(mean_causal_context(&[4]), 2.5);
        // 512 + 1536: (512*513/2 + 1536*1537/2) / 2048.
        let c = mean_causal_context(&[512, 1536]);
        assert!((c - (131_328.0 + 1_180_416.0) / 2048.0).abs() < 1e-9);
        assert!(c < mean_causal_context(&[2048]));
        assert_eq!(mean_causal_context(&[]), 0.0);
    }

    #[test]
    fn peak_table() {
        assert_eq!(peak_bf16_flops("NVIDIA H200"), Some(989.4e12));
        assert_eq!(peak_bf16_flops("NVIDIA H100 PCIe"), Some(756e12));
        assert_eq!(peak_bf16_flops("NVIDIA H100 NVL"), Some(835.5e12));
        assert_eq!(peak_bf16_flops("NVIDIA A100-SXM4-80GB"), Some(312e12));
        assert_eq!(peak_bf16_flops("NVIDIA GeForce RTX 4090"), None);
    }
}
