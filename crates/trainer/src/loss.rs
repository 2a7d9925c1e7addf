//! The LM-head + cross-entropy, computed in chunks of tokens so the
//! `[tokens x vocab]` fp32 logits (49152 wide for SmolLM2, the largest
//! activation of a small model) never exist at once.
//!
//! Chunking alone does not save memory under autograd, which keeps every
//! chunk's logits for the backward pass. So [`chunked_lm_loss`] computes the
//! gradients itself, chunk by chunk, while it computes the loss (the
//! Liger-kernel approach): d(loss)/d(logits) = softmax - onehot, from which
//! the gradients for the hidden states and the head weight follow by two
//! matmuls. It returns the loss value and a *surrogate* scalar,
//! `sum(hidden * g_hidden) + sum(weight * g_weight)`, whose backward
//! delivers exactly those gradients into the rest of the graph.

use tch::{Kind, Tensor};

use crate::error::Result;

/// Tokens per chunk: 1024 x 49152 fp32 logits is 200 MB.
pub const DEFAULT_CHUNK: i64 = 1024;

/// Loss of `hidden` `[N, D]` against `targets` `[N]` (every target valid)
/// under the head `weight` `[V, D]`.
///
/// Returns `(sum of token losses, surrogate)`; calling `backward()` on the
/// surrogate produces the gradients of `scale * sum of token losses`.
pub fn chunked_lm_loss(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    scale: f64,
    chunk: i64,
) -> Result<(f64, Tensor)> {
    let (loss, surrogate) = chunked_lm_loss_lazy(hidden, weight, targets, scale, chunk)?;
    Ok((loss.double_value(&[]), surrogate))
}

/// [`chunked_lm_loss`] with the sum of token losses left on the device as
/// an fp64 scalar, so a training step reads its loss once instead of once
/// per chunk of every micro-batch (each read waits for the device).
pub fn chunked_lm_loss_lazy(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    scale: f64,
    chunk: i64,
) -> Result<(Tensor, Tensor)> {
    chunked(hidden, weight, targets, Weigh::All(scale), chunk)
}

/// [`chunked_lm_loss_lazy`] over every position with a weight per token
/// (`token_weight` `[N]` fp32: the loss scale where there is a label, 0
/// where there is none; `targets` then needs only be a valid id
/// everywhere). The fixed-shape form a captured CUDA graph replays: no
/// selection of labelled positions, whose count changes every batch, and
/// the scale an input tensor, not a constant baked into the graph.
///
/// Returns `(weighted sum of token losses, surrogate)`: the loss is
/// already scaled.
pub fn chunked_lm_loss_weighted(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    token_weight: &Tensor,
    chunk: i64,
) -> Result<(Tensor, Tensor)> {
    chunked(
        hidden,
        weight,
        targets,
        Weigh::PerToken(token_weight),
        chunk,
    )
}

/// How [`chunked`] weighs token losses.
#[derive(Clone, Copy)]
enum Weigh<'a> {
    /// Every token by one scale (the returned loss is unscaled).
    All(f64),
    /// Each token by its own weight (the returned loss is weighted).
    PerToken(&'a Tensor),
}

fn chunked(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    weigh: Weigh<'_>,
    chunk: i64,
) -> Result<(Tensor, Tensor)> {
    let n = hidden.size()[0];
    let kind = hidden.kind();
    let (grad_h, grad_w, loss_sum) = {
        let _g = tch::no_grad_guard();
        let h = hidden.detach();
        let w = weight.detach();
        let grad_h = h.zeros_like();
        let mut grad_w = Tensor::zeros(w.size(), (Kind::Float, w.device()));
        let mut loss_sum = Tensor::zeros([], (Kind::Double, h.device()));
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let hc = h.narrow(0, start, len);
            let y = targets.narrow(0, start, len);
            let logits = hc.linear(&w, None::<Tensor>).to_kind(Kind::Float);
            let lse = logits.logsumexp([-1], true);
            let picked = logits.gather(1, &y.unsqueeze(1), false);
            let token_loss = &lse - &picked;
            // d/dlogits of scale * CE = scale * (softmax - onehot).
            let mut g = (logits - lse).exp();
            let _ = g.scatter_add_(
                1,
                &y.unsqueeze(1),
                &Tensor::full([len, 1], -1.0, (Kind::Float, g.device())),
            );
            let g = match weigh {
                Weigh::All(scale) => {
                    loss_sum += token_loss.sum(Kind::Double);
                    g * scale
                }
                Weigh::PerToken(tw) => {
                    let wc = tw.narrow(0, start, len).unsqueeze(1);
                    loss_sum += (token_loss * &wc).sum(Kind::Double);
                    g * wc
                }
            };
            let gk = g.to_kind(kind);
            grad_h.narrow(0, start, len).copy_(&gk.matmul(&w));
            grad_w += gk.transpose(0, 1).matmul(&hc).to_kind(Kind::Float);
            start += len;
        }
        (grad_h, grad_w.to_kind(weight.kind()), loss_sum)
    };
    let surrogate = (hidden * grad_h).sum(Kind::Float) + (weight * grad_w).sum(Kind::Float);
    Ok((loss_sum, surrogate))
}

/// The plain computation (whole logits, autograd), the reference the
/// chunked one is tested and benchmarked against.
pub fn plain_lm_loss(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    scale: f64,
) -> (f64, Tensor) {
    let logits = hidden.linear(weight, None::<Tensor>).to_kind(Kind::Float);
    let loss = logits.cross_entropy_loss::<Tensor>(targets, None, tch::Reduction::Sum, -100, 0.0);
    let value = loss.double_value(&[]);
    (value, loss * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn setup(seed: i64) -> (Tensor, Tensor, Tensor) {
        tch::manual_seed(seed);
        let h = Tensor::randn([37, 16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let w = Tensor::randn([50, 16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = Tensor::randint(50, [37], (Kind::Int64, Device::Cpu));
        (h, w, y)
    }

    #[test]
    fn chunked_equals_plain_loss_and_gradients() {
        let (h, w, y) = setup(1);
        let (lp, sp) = plain_lm_loss(&h, &w, &y, 0.25);
        sp.backward();
        let (gh, gw) = (h.grad().copy(), w.grad().copy());
        let (h2, w2, _) = setup(1);
        let (lc, sc) = chunked_lm_loss(&h2, &w2, &y, 0.25, 8).expect("chunked");
        sc.backward();
        assert!((lp - lc).abs() / lp.abs() < 1e-6, "{lp} vs {lc}");
        let dh = (h2.grad() - gh).abs().max().double_value(&[]);
        let dw = (w2.grad() - gw).abs().max().double_value(&[]);
        assert!(dh < 1e-5 && dw < 1e-5, "grad diffs {dh} {dw}");
    }

    /// Over every position with weight `scale` where labelled and 0
    /// elsewhere (any valid id there) = over the labelled positions alone
    /// at `scale`: loss (scaled) and both gradients.
    #[test]
    fn weighted_over_all_positions_equals_the_labelled_selection() {
        let (h, w, y) = setup(2);
        let labelled: Vec<i64> = (0..37).filter(|i| i % 3 != 0).collect();
        let sel = Tensor::from_slice(&labelled);
        let (l1, s1) = chunked_lm_loss_lazy(
            &h.index_select(0, &sel),
            &w,
            &y.index_select(0, &sel),
            0.25,
            8,
        )
        .expect("selected");
        s1.backward();
        let (gh, gw) = (h.grad().copy(), w.grad().copy());
        let (h2, w2, _) = setup(2);
        let mask: Vec<f32> = (0..37)
            .map(|i| if i % 3 != 0 { 0.25 } else { 0.0 })
            .collect();
        let tw = Tensor::from_slice(&mask);
        let (l2, s2) = chunked_lm_loss_weighted(&h2, &w2, &y, &tw, 8).expect("weighted");
        s2.backward();
        let (l1, l2) = (l1.double_value(&[]) * 0.25, l2.double_value(&[]));
        assert!((l1 - l2).abs() / l1.abs() < 1e-6, "{l1} vs {l2}");
        let dh = (h2.grad() - gh).abs().max().double_value(&[]);
        let dw = (w2.grad() - gw).abs().max().double_value(&[]);
        assert!(dh < 1e-6 && dw < 1e-6, "grad diffs {dh} {dw}");
    }
}
