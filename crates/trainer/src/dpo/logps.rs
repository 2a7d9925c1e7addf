//! Sequence log-probs of padded micro-batches (open-instruct's
//! `_get_batch_logps`: shift by one, `log_softmax` in fp32, gather, mask,
//! sum per row), without the `[tokens x vocab]` logits ever existing at
//! once: only the labelled positions reach the LM head, a chunk of them
//! at a time, as in the SFT loss ([`crate::loss`]).
//!
//! The gradient is computed the same way. The DPO loss depends on a
//! token's log-prob only through its sequence's (normalised) sum, so
//! d loss / d logp_t is one weight per row, `coef`; and
//! d logp_t / d logits = onehot - softmax. [`logp_surrogate`] builds the
//! hidden-state and head gradients of `sum_t coef_t * logp_t` chunk by
//! chunk and returns a scalar whose backward delivers them.

use smolsweep_model::llama::AttnMask;
use smolsweep_model::Llama;
use tch::{Kind, Tensor};

use crate::batch::MicroBatch;
use crate::error::Result;

/// Labelled positions per chunk (1024 x 49152 fp32 logits is 200 MB).
pub const CHUNK: i64 = 1024;

/// `log p(targets[t])` for each row of `hidden` `[N, D]` under the head
/// `weight` `[V, D]`, in fp32, without a graph.
pub fn token_logps(hidden: &Tensor, weight: &Tensor, targets: &Tensor, chunk: i64) -> Tensor {
    let _g = tch::no_grad_guard();
    let n = hidden.size()[0];
    let out = Tensor::zeros([n], (Kind::Float, hidden.device()));
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let logits = hidden
            .narrow(0, start, len)
            .linear(weight, None::<Tensor>)
            .to_kind(Kind::Float);
        let y = targets.narrow(0, start, len).unsqueeze(1);
        let lp = logits.gather(1, &y, false).squeeze_dim(1) - logits.logsumexp([-1], false);
        out.narrow(0, start, len).copy_(&lp);
        start += len;
    }
    out
}

/// A scalar whose backward gives `hidden` and `weight` the gradients of
/// `sum_t coef[t] * log p(targets[t])`.
pub fn logp_surrogate(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    coef: &Tensor,
    chunk: i64,
) -> Tensor {
    let n = hidden.size()[0];
    let kind = hidden.kind();
    let (grad_h, grad_w) = {
        let _g = tch::no_grad_guard();
        let h = hidden.detach();
        let w = weight.detach();
        let grad_h = h.zeros_like();
        let mut grad_w = Tensor::zeros(w.size(), (Kind::Float, w.device()));
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let hc = h.narrow(0, start, len);
            let y = targets.narrow(0, start, len).unsqueeze(1);
            let logits = hc.linear(&w, None::<Tensor>).to_kind(Kind::Float);
            // d/dlogits of coef * logp = coef * (onehot - softmax).
            let mut g = -(&logits - logits.logsumexp([-1], true)).exp();
            let _ = g.scatter_add_(1, &y, &Tensor::ones([len, 1], (Kind::Float, g.device())));
            let g = g * coef.narrow(0, start, len).unsqueeze(1);
            let gk = g.to_kind(kind);
            grad_h.narrow(0, start, len).copy_(&gk.matmul(&w));
            grad_w += gk.transpose(0, 1).matmul(&hc).to_kind(Kind::Float);
            start += len;
        }
        (grad_h, grad_w.to_kind(weight.kind()))
    };
    (hidden * grad_h).sum(Kind::Float) + (weight * grad_w).sum(Kind::Float)
}

/// A micro-batch run forward: its labelled positions' hidden states (in
/// the graph when run with gradients) and targets, the row of each, and
/// each row's summed label log-prob and label count.
pub struct Forwarded {
    pub hidden: Tensor,
    pub targets: Tensor,
    /// `[N]` row index of each labelled position.
    pub rows: Tensor,
    pub sums: Vec<f64>,
    pub counts: Vec<f64>,
}

/// Runs `mb` (padded, plain causal attention) through `model`.
pub fn forward(model: &Llama, mb: &MicroBatch) -> Result<Forwarded> {
    let size = mb.ids.size();
    let (r, l) = (size[0], size[1]);
    let hidden = model.forward_hidden(&mb.ids, &mb.positions, AttnMask::Causal, None)?;
    let d = hidden.size()[2];
    let sel = mb.targets.ne(-100).nonzero().squeeze_dim(1);
    let h = hidden.view([-1, d]).index_select(0, &sel);
    let y = mb.targets.index_select(0, &sel);
    let rows = sel.divide_scalar_mode(l, "floor");
    let lp = token_logps(&h, model.lm_head_weight(), &y, CHUNK);
    let device = lp.device();
    let sums =
        Tensor::zeros([r], (Kind::Double, device)).index_add(0, &rows, &lp.to_kind(Kind::Double));
    let counts = Tensor::zeros([r], (Kind::Double, device)).index_add(
        0,
        &rows,
        &Tensor::ones([rows.size()[0]], (Kind::Double, device)),
    );
    Ok(Forwarded {
        hidden: h,
        targets: y,
        rows,
        sums: Vec::<f64>::try_from(&sums)?,
        counts: Vec::<f64>::try_from(&counts)?,
    })
}

impl Forwarded {
    /// The backward surrogate of `sum_rows coef_row[r] * (row r's summed
    /// label log-prob)`.
    pub fn surrogate(&self, model: &Llama, coef_row: &[f64]) -> Tensor {
        let c = Tensor::from_slice(coef_row)
            .to_kind(Kind::Float)
            .to_device(self.hidden.device())
            .index_select(0, &self.rows);
        logp_surrogate(
            &self.hidden,
            model.lm_head_weight(),
            &self.targets,
            &c,
            CHUNK,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The chunked log-probs and gradients equal plain autograd over the
    /// whole logits.
    #[test]
    fn chunked_logps_and_gradients_match_autograd() {
        tch::manual_seed(7);
        let (n, d, v) = (37, 8, 50);
        let opts = (Kind::Float, Device::Cpu);
        let h = Tensor::randn([n, d], opts).set_requires_grad(true);
        let w = Tensor::randn([v, d], opts).set_requires_grad(true);
        let y = Tensor::randint(v, [n], (Kind::Int64, Device::Cpu));
        let coef = Tensor::randn([n], opts);
        let plain = h
            .linear(&w, None::<Tensor>)
            .log_softmax(-1, Kind::Float)
            .gather(1, &y.unsqueeze(1), false)
            .squeeze_dim(1);
        let chunked = token_logps(&h, &w, &y, 5);
        assert!(chunked.allclose(&plain.detach(), 1e-5, 1e-6, false));
        (&plain * &coef).sum(Kind::Float).backward();
        let (gh, gw) = (h.grad().copy(), w.grad().copy());
        let _ = h.grad().zero_();
        let _ = w.grad().zero_();
        logp_surrogate(&h, &w, &y, &coef, 5).backward();
        assert!(h.grad().allclose(&gh, 1e-5, 1e-6, false));
        assert!(w.grad().allclose(&gw, 1e-5, 1e-6, false));
    }
}
