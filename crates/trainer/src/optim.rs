//! AdamW (PyTorch's `torch.optim.AdamW` update, decoupled weight decay)
//! and the learning-rate schedules of HF `transformers`' `get_scheduler`
//! (linear, cosine, constant — each with linear warmup).
//!
//! Training loops hold an optimizer as a [`Optimizer`] made by [`adamw`]:
//! the flat, fused [`flat::FlatAdamW`] when the parameters allow it, else
//! the per-tensor [`AdamW`] here, which stays as the reference the flat one
//! is tested against. Both write the same checkpoint tensors.
//!
//! Written out in tensor ops rather than using `tch`'s optimizer because
//! its state (the moments) is hidden in C++ and cannot be checkpointed.
//! When the model computes in bf16, the optimizer keeps fp32 master
//! weights: a 3e-6 update is below bf16's resolution for weights near 0.02
//! and would be lost, which would flatten the low-LR half of a sweep.

use tch::{Kind, Tensor};

use crate::config::Schedule;
use crate::error::{Result, TrainError};

pub mod flat;

/// What a training loop asks of its optimizer, step by step: the global
/// gradient norm, clipping, the update, clearing the gradients, and the
/// state a checkpoint holds.
pub trait Optimizer {
    fn zero_grad(&mut self);
    /// Global L2 norm of the gradients (NaN/inf when any is).
    fn grad_norm(&self) -> f64;
    /// Scales the gradients so their norm (`norm`, from [`grad_norm`](Self::grad_norm)) is at most `max_norm`.
    fn clip(&mut self, norm: f64, max_norm: f64);
    /// One update with learning rate `lr`.
    fn step(&mut self, lr: f64);
    /// Updates applied so far.
    fn steps_done(&self) -> u64;
    /// Everything needed to resume: `param.NAME` (fp32 weights),
    /// `exp_avg.NAME`, `exp_avg_sq.NAME`, in name order.
    fn state_tensors(&self) -> Vec<(String, Tensor)>;
    /// Restores [`state_tensors`](Self::state_tensors) (and the model
    /// weights from them) after `t` updates.
    fn load_state(&mut self, tensors: &[(String, Tensor)], t: u64) -> Result<()>;
}

/// AdamW over a model's named parameters: flat and fused
/// ([`flat::FlatAdamW`]) when they share a dtype and device, else per
/// tensor.
pub fn adamw(
    named: Vec<(String, Tensor)>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
) -> Box<dyn Optimizer> {
    let copy: Vec<(String, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    match flat::FlatAdamW::new(copy, beta1, beta2, eps, weight_decay) {
        Ok(f) => {
            tracing::debug!(fused = f.is_fused(), "flat AdamW");
            Box::new(f)
        }
        Err(e) => {
            tracing::warn!("per-tensor AdamW: {}", crate::error::chain_text(&e));
            Box::new(AdamW::new(named, beta1, beta2, eps, weight_decay))
        }
    }
}

struct Param {
    name: String,
    var: Tensor,
    /// fp32 copy when `var` is low precision.
    master: Option<Tensor>,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

/// AdamW over a model's named parameters.
pub struct AdamW {
    params: Vec<Param>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates applied so far (bias correction uses t + 1).
    pub t: u64,
}

impl std::fmt::Debug for AdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW")
            .field("params", &self.params.len())
            .field("t", &self.t)
            .finish()
    }
}

/// Norms and embeddings (and an untied output embedding) get no decay.
fn decays(name: &str) -> bool {
    !(name.contains("norm") || name.contains("embed_tokens") || name.starts_with("lm_head"))
}

impl AdamW {
    pub fn new(
        named: Vec<(String, Tensor)>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Self {
        let mut named = named;
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, var)| {
                let master = (var.kind() != Kind::Float).then(|| var.detach().to_kind(Kind::Float));
                let like = || Tensor::zeros(var.size(), (Kind::Float, var.device()));
                Param {
                    decay: decays(&name),
                    name,
                    m: like(),
                    v: like(),
                    master,
                    var,
                }
            })
            .collect();
        AdamW {
            params,
            beta1,
            beta2,
            eps,
            weight_decay,
            t: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.var.zero_grad();
        }
    }

    /// Global L2 norm of the gradients (NaN/inf when any is).
    pub fn grad_norm(&self) -> f64 {
        let _g = tch::no_grad_guard();
        let mut sq = 0.0;
        for p in &self.params {
            let g = p.var.grad();
            if g.defined() {
                sq += g
                    .to_kind(Kind::Float)
                    .square()
                    .sum(Kind::Double)
                    .double_value(&[]);
            }
        }
        sq.sqrt()
    }

    /// Scales the gradients so their norm is at most `max_norm`.
    pub fn clip(&mut self, norm: f64, max_norm: f64) {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            let _g = tch::no_grad_guard();
            for p in &self.params {
                let mut g = p.var.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(coef);
                }
            }
        }
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        let _g = tch::no_grad_guard();
        self.t += 1;
        let t = self.t as f64;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powf(t);
        let bc2_sqrt = (1.0 - b2.powf(t)).sqrt();
        let step_size = lr / bc1;
        for p in &mut self.params {
            let g = p.var.grad();
            if !g.defined() {
                continue;
            }
            let g = g.to_kind(Kind::Float);
            let mut w = p
                .master
                .as_ref()
                .map_or_else(|| p.var.shallow_clone(), Tensor::shallow_clone);
            if p.decay && self.weight_decay != 0.0 {
                let _ = w.g_mul_scalar_(1.0 - lr * self.weight_decay);
            }
            let _ = p.m.lerp_(&g, 1.0 - b1);
            let _ = p.v.g_mul_scalar_(b2);
            let _ = p.v.addcmul_(&(&g * (1.0 - b2)), &g);
            let denom = p.v.sqrt() / bc2_sqrt + self.eps;
            let _ = w.g_sub_(&(p.m.shallow_clone() / denom * step_size));
            if p.master.is_some() {
                p.var.shallow_clone().copy_(&w);
            }
        }
    }

    /// Everything needed to resume: fp32 weights and both moments.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.params.len() * 3);
        for p in &self.params {
            let w = p
                .master
                .as_ref()
                .map_or_else(|| p.var.to_kind(Kind::Float), Tensor::shallow_clone);
            out.push((format!("param.{}", p.name), w));
            out.push((format!("exp_avg.{}", p.name), p.m.shallow_clone()));
            out.push((format!("exp_avg_sq.{}", p.name), p.v.shallow_clone()));
        }
        out
    }

    /// Restores [`state_tensors`] (and the model weights from them).
    pub fn load_state(&mut self, tensors: &[(String, Tensor)], t: u64) -> Result<()> {
        let map: std::collections::HashMap<&str, &Tensor> =
            tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let _g = tch::no_grad_guard();
        for p in &mut self.params {
            let get = |prefix: &str| {
                let key = format!("{prefix}.{}", p.name);
                map.get(key.as_str())
                    .copied()
                    .ok_or(TrainError::Other(format!("checkpoint lacks `{key}`")))
            };
            let w = get("param")?;
            if w.size() != p.var.size() {
                return Err(TrainError::Other(format!(
                    "checkpoint `param.{}` has shape {:?}, model {:?}",
                    p.name,
                    w.size(),
                    p.var.size()
                )));
            }
            p.var.shallow_clone().copy_(w);
            if let Some(m) = p.master.as_mut() {
                m.copy_(w);
            }
            p.m.copy_(get("exp_avg")?);
            p.v.copy_(get("exp_avg_sq")?);
        }
        self.t = t;
        Ok(())
    }
}

impl Optimizer for AdamW {
    fn zero_grad(&mut self) {
        AdamW::zero_grad(self);
    }
    fn grad_norm(&self) -> f64 {
        AdamW::grad_norm(self)
    }
    fn clip(&mut self, norm: f64, max_norm: f64) {
        AdamW::clip(self, norm, max_norm);
    }
    fn step(&mut self, lr: f64) {
        AdamW::step(self, lr);
    }
    fn steps_done(&self) -> u64 {
        self.t
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        AdamW::state_tensors(self)
    }
    fn load_state(&mut self, tensors: &[(String, Tensor)], t: u64) -> Result<()> {
        AdamW::load_state(self, tensors, t)
    }
}

/// The learning rate of update `step` (0-based), as HF's LambdaLR
/// schedulers give it: warmup from 0 over `warmup` steps, then linear decay
/// to 0 at `total`, half a cosine to 0, or constant.
pub fn lr_at(base: f64, kind: Schedule, step: u64, warmup: u64, total: u64) -> f64 {
    let s = step as f64;
    if step < warmup {
        return base * s / (warmup.max(1) as f64);
    }
    let progress = (s - warmup as f64) / ((total.saturating_sub(warmup)).max(1) as f64);
    match kind {
        Schedule::Constant => base,
        Schedule::Linear => {
            base * ((total as f64 - s) / (total.saturating_sub(warmup).max(1) as f64)).max(0.0)
        }
        Schedule::Cosine => base * (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn schedules_match_transformers() {
        // get_linear_schedule_with_warmup(warmup=2, total=10)
        let lin: Vec<f64> = (0..10)
            .map(|s| lr_at(1.0, Schedule::Linear, s, 2, 10))
            .collect();
        assert_eq!(lin[..3], [0.0, 0.5, 1.0]);
        assert!((lin[6] - 0.5).abs() < 1e-12);
        assert!((lr_at(1.0, Schedule::Cosine, 6, 2, 10) - 0.5).abs() < 1e-12);
        assert_eq!(lr_at(1.0, Schedule::Constant, 9, 2, 10), 1.0);
        assert_eq!(lr_at(1.0, Schedule::Linear, 0, 0, 10), 1.0);
    }

    #[test]
    fn one_step_matches_the_adamw_formula() {
        let w = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let loss = (&w * &w).sum(Kind::Float);
        loss.backward();
        let mut opt = AdamW::new(
            vec![("layer.weight".into(), w.shallow_clone())],
            0.9,
            0.999,
            1e-8,
            0.1,
        );
        opt.step(0.01);
        let got = Vec::<f32>::try_from(&w.detach()).expect("vec");
        // t=1: m_hat = g, v_hat = g^2, update = lr * sign(g); decay first.
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert!(!decays("model.layers.0.input_layernorm.weight"));
        assert!(!decays("model.embed_tokens.weight"));
        assert!(decays("model.layers.0.mlp.up_proj.weight"));
        let _ = Device::Cpu;
    }
}
