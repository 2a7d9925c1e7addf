//! AdamW over flat buffers: every parameter's data and gradient are
//! slices of one contiguous buffer each (the parameters with weight decay
//! first), the fp32 master weights and both moments are one buffer each,
//! so an update is two calls of libtorch's fused AdamW kernel (decay and
//! no-decay halves), the global gradient norm is one reduction, clipping
//! one multiply and, for a bf16 model, one copy brings the masters back to
//! the weights. The per-tensor [`super::AdamW`] is the reference it is
//! tested against; both write the same checkpoint tensors.
//!
//! Without the fused kernel (the shim absent, or it refuses the tensors)
//! the same update runs as a handful of flat tensor ops.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::{decays, Optimizer};
use crate::error::{Result, TrainError};

struct Slot {
    name: String,
    var: Tensor,
    /// Element offset of the slot in every flat buffer.
    offset: i64,
    shape: Vec<i64>,
    /// Where backward writes this parameter's gradient.
    grad_ptr: usize,
}

/// AdamW on flat buffers (see the module doc).
pub struct FlatAdamW {
    slots: Vec<Slot>,
    /// Elements `0..n_decay` of each buffer take weight decay.
    n_decay: i64,
    /// The parameters' storage, in the model's dtype.
    weights: Tensor,
    /// The parameters' gradients, in the model's dtype.
    grads: Tensor,
    /// fp32 copies for a low-precision model (see [`super`]'s doc).
    master: Option<Tensor>,
    /// fp32 gradients: `grads` itself for an fp32 model.
    grads32: Tensor,
    m: Tensor,
    v: Tensor,
    /// fp32 scalar update counts for the fused kernel, one per call.
    steps: [Tensor; 2],
    /// A clipping factor to apply in the next [`step`](Self::step).
    pending_clip: Option<f64>,
    /// Whether the fused kernel is used (false once it has failed).
    fused: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates applied so far (bias correction uses t + 1).
    pub t: u64,
}

impl std::fmt::Debug for FlatAdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatAdamW")
            .field("params", &self.slots.len())
            .field("numel", &self.weights.numel())
            .field("fused", &self.fused)
            .field("t", &self.t)
            .finish()
    }
}

fn numel(shape: &[i64]) -> i64 {
    shape.iter().product()
}

impl FlatAdamW {
    /// Moves `named`'s parameters into flat buffers (their values are
    /// kept; the tensors stay the model's, now backed by the buffer) and
    /// installs flat gradients. All must share one dtype and device.
    pub fn new(
        named: Vec<(String, Tensor)>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        let mut named = named;
        // Decayed parameters first, each half in name order.
        named.sort_by(|a, b| (!decays(&a.0), &a.0).cmp(&(!decays(&b.0), &b.0)));
        let (kind, device) = named
            .first()
            .map_or((Kind::Float, Device::Cpu), |(_, t)| (t.kind(), t.device()));
        if let Some((n, t)) = named
            .iter()
            .find(|(_, t)| t.kind() != kind || t.device() != device)
        {
            return Err(TrainError::Other(format!(
                "flat AdamW needs one dtype and device: `{n}` is {:?} on {:?}, not {kind:?} on {device:?}",
                t.kind(),
                t.device()
            )));
        }
        let total: i64 = named.iter().map(|(_, t)| t.numel() as i64).sum();
        let n_decay: i64 = named
            .iter()
            .filter(|(n, _)| decays(n))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        let _g = tch::no_grad_guard();
        let weights = Tensor::zeros([total], (kind, device));
        let grads = Tensor::zeros([total], (kind, device));
        let mut slots = Vec::with_capacity(named.len());
        let mut offset = 0;
        for (name, mut var) in named {
            let shape = var.size();
            let w = smolsweep_kernels::alias(&weights, offset, &shape)?;
            w.shallow_clone().copy_(&var);
            var.f_set_data(&w)?;
            let g = smolsweep_kernels::alias(&grads, offset, &shape)?;
            smolsweep_kernels::set_grad(&var, &g)?;
            slots.push(Slot {
                grad_ptr: g.data_ptr() as usize,
                name,
                var,
                offset,
                shape: shape.clone(),
            });
            offset += numel(&shape);
        }
        let low = kind != Kind::Float;
        let master = low.then(|| weights.to_kind(Kind::Float));
        let grads32 = if low {
            Tensor::zeros([total], (Kind::Float, device))
        } else {
            grads.shallow_clone()
        };
        let zeros = || Tensor::zeros([total], (Kind::Float, device));
        let scalar = || Tensor::zeros([], (Kind::Float, device));
        Ok(FlatAdamW {
            slots,
            n_decay,
            weights,
            grads,
            master,
            grads32,
            m: zeros(),
            v: zeros(),
            steps: [scalar(), scalar()],
            pending_clip: None,
            fused: smolsweep_kernels::available(),
            beta1,
            beta2,
            eps,
            weight_decay,
            t: 0,
        })
    }

    /// Uses the handful-of-flat-ops update instead of the fused kernel.
    pub fn without_fused_kernel(mut self) -> Self {
        self.fused = false;
        self
    }

    /// Whether updates go through libtorch's fused kernel.
    pub fn is_fused(&self) -> bool {
        self.fused
    }

    /// The fp32 weights the update works on.
    fn master_weights(&self) -> &Tensor {
        self.master.as_ref().unwrap_or(&self.weights)
    }

    /// Backward writes into the installed gradients unless something
    /// replaced one (a caller setting `.grad` itself): such a gradient is
    /// copied into its slot and the slot installed again.
    fn reclaim_grads(&mut self) -> Result<()> {
        let _g = tch::no_grad_guard();
        for s in &mut self.slots {
            let now = smolsweep_kernels::grad_data_ptr(&s.var)?;
            if now == Some(s.grad_ptr) {
                continue;
            }
            let slot = smolsweep_kernels::alias(&self.grads, s.offset, &s.shape)?;
            let g = s.var.grad();
            if g.defined() {
                slot.shallow_clone().copy_(&g);
            } else {
                let _ = slot.shallow_clone().zero_();
            }
            smolsweep_kernels::set_grad(&s.var, &slot)?;
            s.grad_ptr = slot.data_ptr() as usize;
        }
        Ok(())
    }

    /// `grads32` = the step's gradient in fp32, clipped when asked.
    fn gradient32(&mut self) {
        if self.master.is_some() {
            self.grads32.copy_(&self.grads);
        }
        if let Some(coef) = self.pending_clip.take() {
            let _ = self.grads32.g_mul_scalar_(coef);
        }
    }

    /// The [decay, no-decay] halves of a flat buffer, with their decay.
    fn halves(&self, t: &Tensor) -> [(Tensor, f64); 2] {
        let total = t.size()[0];
        [
            (t.narrow(0, 0, self.n_decay), self.weight_decay),
            (t.narrow(0, self.n_decay, total - self.n_decay), 0.0),
        ]
    }

    fn fused_update(&mut self, lr: f64) -> Result<()> {
        let w = self.halves(self.master_weights());
        let g = self.halves(&self.grads32);
        let m = self.halves(&self.m);
        let v = self.halves(&self.v);
        for (i, s) in self.steps.iter().enumerate() {
            let _ = s.shallow_clone().fill_(self.t as f64);
            if w[i].0.numel() == 0 {
                continue;
            }
            let h = smolsweep_kernels::AdamHyper {
                lr,
                beta1: self.beta1,
                beta2: self.beta2,
                weight_decay: w[i].1,
                eps: self.eps,
            };
            let t = smolsweep_kernels::AdamTensors {
                params: &[&w[i].0],
                grads: &[&g[i].0],
                exp_avgs: &[&m[i].0],
                exp_avg_sqs: &[&v[i].0],
                steps: &[s],
            };
            smolsweep_kernels::fused_adamw_(t, &h)?;
        }
        Ok(())
    }

    /// The same update as the per-tensor reference, on the flat buffers.
    fn flat_ops_update(&mut self, lr: f64) {
        let t = self.t as f64;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc2_sqrt = (1.0 - b2.powf(t)).sqrt();
        let step_size = lr / (1.0 - b1.powf(t));
        if self.weight_decay != 0.0 && self.n_decay > 0 {
            let _ = self
                .master_weights()
                .narrow(0, 0, self.n_decay)
                .g_mul_scalar_(1.0 - lr * self.weight_decay);
        }
        let g = &self.grads32;
        let _ = self.m.lerp_(g, 1.0 - b1);
        let _ = self.v.g_mul_scalar_(b2);
        let _ = self.v.addcmul_(&(g * (1.0 - b2)), g);
        let denom = self.v.sqrt() / bc2_sqrt + self.eps;
        let _ = self
            .master_weights()
            .shallow_clone()
            .g_sub_(&(&self.m / denom * step_size));
    }
}

impl Optimizer for FlatAdamW {
    fn zero_grad(&mut self) {
        let _ = self.grads.zero_();
        self.pending_clip = None;
    }

    fn grad_norm(&self) -> f64 {
        let _g = tch::no_grad_guard();
        // One reduction in fp32 over every gradient (NaN/inf when any is).
        self.grads
            .norm_scalaropt_dtype(2.0, Kind::Float)
            .double_value(&[])
    }

    fn clip(&mut self, norm: f64, max_norm: f64) {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            self.pending_clip = Some(coef);
        }
    }

    fn step(&mut self, lr: f64) {
        let _g = tch::no_grad_guard();
        if let Err(e) = self.reclaim_grads() {
            tracing::warn!("flat AdamW: {}", crate::error::chain_text(&e));
        }
        self.t += 1;
        self.gradient32();
        if self.fused {
            if let Err(e) = self.fused_update(lr) {
                // Nothing was applied when the kernel refused its inputs.
                tracing::warn!(
                    "fused AdamW unavailable, using flat tensor ops: {}",
                    crate::error::chain_text(&e)
                );
                self.fused = false;
            }
        }
        if !self.fused {
            self.flat_ops_update(lr);
        }
        if let Some(m) = &self.master {
            self.weights.copy_(m);
        }
    }

    fn steps_done(&self) -> u64 {
        self.t
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut slots: Vec<&Slot> = self.slots.iter().collect();
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        let view = |t: &Tensor, s: &Slot| t.narrow(0, s.offset, numel(&s.shape)).view(&s.shape[..]);
        let mut out = Vec::with_capacity(slots.len() * 3);
        for s in slots {
            out.push((format!("param.{}", s.name), view(self.master_weights(), s)));
            out.push((format!("exp_avg.{}", s.name), view(&self.m, s)));
            out.push((format!("exp_avg_sq.{}", s.name), view(&self.v, s)));
        }
        out
    }

    fn load_state(&mut self, tensors: &[(String, Tensor)], t: u64) -> Result<()> {
        let map: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let _g = tch::no_grad_guard();
        for s in &self.slots {
            let get = |prefix: &str| {
                let key = format!("{prefix}.{}", s.name);
                let t = map
                    .get(key.as_str())
                    .copied()
                    .ok_or(TrainError::Other(format!("checkpoint lacks `{key}`")))?;
                if t.size() != s.shape {
                    return Err(TrainError::Other(format!(
                        "checkpoint `{key}` has shape {:?}, model {:?}",
                        t.size(),
                        s.shape
                    )));
                }
                Ok(t)
            };
            let n = numel(&s.shape);
            let put = |dst: &Tensor, src: &Tensor| {
                dst.narrow(0, s.offset, n)
                    .copy_(&src.reshape([n]).to_device(dst.device()));
            };
            let w = get("param")?;
            put(self.master_weights(), w);
            put(&self.m, get("exp_avg")?);
            put(&self.v, get("exp_avg_sq")?);
        }
        if let Some(m) = &self.master {
            self.weights.copy_(m);
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::AdamW;
    use super::*;

    /// A small stand-in model: HF-style names (so some take no decay),
    /// deterministic values, gradients tracked.
    fn params(kind: Kind) -> Vec<(String, Tensor)> {
        let shapes: [(&str, &[i64]); 5] = [
            ("model.embed_tokens.weight", &[7, 3]),
            ("model.layers.0.mlp.up_proj.weight", &[4, 3]),
            ("model.layers.0.input_layernorm.weight", &[3]),
            ("model.layers.0.self_attn.q_proj.weight", &[3, 3]),
            ("model.norm.weight", &[3]),
        ];
        shapes
            .iter()
            .enumerate()
            .map(|(k, (name, shape))| {
                let n = numel(shape);
                let t = ((Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.731 + k as f64).sin()
                    * 0.5)
                    .view(*shape)
                    .to_kind(kind)
                    .set_requires_grad(true);
                ((*name).to_owned(), t)
            })
            .collect()
    }

    /// A loss whose gradient depends on the weights and on the step.
    fn backward(vars: &[(String, Tensor)], step: u64) {
        let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
        for (k, (_, p)) in vars.iter().enumerate() {
            let n = p.numel() as i64;
            let c = (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 1.3
                + (step as f64 * 0.7 + k as f64))
                .cos()
                .view(&p.size()[..]);
            let p = p.to_kind(Kind::Float);
            loss = loss
                + (&p * &p * &c).sum(Kind::Float) * 3.0
                + (&p * &c).sum(Kind::Float) * (0.3 * (step + 1) as f64);
        }
        loss.backward();
    }

    fn shallow(v: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
        v.iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect()
    }

    /// Runs `steps` updates (clipping at `clip`), returning each step's
    /// gradient norm and how many were clipped.
    fn train(
        opt: &mut dyn Optimizer,
        vars: &[(String, Tensor)],
        from: u64,
        steps: u64,
        clip: f64,
    ) -> (Vec<f64>, usize) {
        let mut norms = Vec::new();
        let mut clipped = 0;
        for s in from..from + steps {
            backward(vars, s);
            let norm = opt.grad_norm();
            clipped += usize::from(norm > clip);
            opt.clip(norm, clip);
            opt.step(1e-2 * (1.0 + (s % 3) as f64));
            opt.zero_grad();
            norms.push(norm);
        }
        (norms, clipped)
    }

    /// max |a - b| / max |b| over each pair of same-named state tensors.
    fn worst_relative(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
        assert_eq!(
            a.iter().map(|x| &x.0).collect::<Vec<_>>(),
            b.iter().map(|x| &x.0).collect::<Vec<_>>()
        );
        a.iter()
            .zip(b)
            .map(|((_, x), (_, y))| {
                let diff = (x - y).abs().max().double_value(&[]);
                diff / y.abs().max().double_value(&[]).max(1e-30)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn flat_and_fused_equal_the_per_tensor_reference_over_20_steps() {
        for wd in [0.0, 0.1] {
            for fused in [true, false] {
                let ref_vars = params(Kind::Float);
                let mut reference = AdamW::new(shallow(&ref_vars), 0.9, 0.95, 1e-8, wd);
                let vars = params(Kind::Float);
                let mut flat = FlatAdamW::new(shallow(&vars), 0.9, 0.95, 1e-8, wd).expect("flat");
                if !fused {
                    flat = flat.without_fused_kernel();
                }
                assert_eq!(flat.is_fused(), fused);
                let (want, clipped) = train(&mut reference, &ref_vars, 0, 20, 20.0);
                let (got, _) = train(&mut flat, &vars, 0, 20, 20.0);
                assert!(
                    clipped > 0 && clipped < 20,
                    "clipping on {clipped} of 20 steps: {want:?}"
                );
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-6 * w, "grad norm {g} vs {w}");
                }
                let rel = worst_relative(&flat.state_tensors(), &reference.state_tensors());
                assert!(rel <= 1e-6, "wd {wd} fused {fused}: relative {rel}");
                // The model's own tensors are the updated weights.
                for ((_, a), (_, b)) in vars.iter().zip(&ref_vars) {
                    let d = (a - b).abs().max().double_value(&[]);
                    assert!(d <= 1e-6, "wd {wd} fused {fused}: weights differ by {d}");
                }
                assert_eq!(flat.steps_done(), 20);
                assert_eq!(flat.is_fused(), fused, "the fused kernel failed");
            }
        }
    }

    /// Checkpoints written by the per-tensor optimizer resume in the flat
    /// one: the same tensors are restored, written back byte for byte, and
    /// training goes on as the per-tensor optimizer's would.
    #[test]
    fn a_checkpoint_of_the_per_tensor_optimizer_resumes_in_the_flat_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let ref_vars = params(Kind::Float);
        let mut reference = AdamW::new(shallow(&ref_vars), 0.9, 0.999, 1e-8, 0.1);
        train(&mut reference, &ref_vars, 0, 5, 8.0);
        let old = dir.path().join("old.safetensors");
        smolsweep_model::hf::write_tensors(&old, &reference.state_tensors(), None).expect("w");
        let loaded = smolsweep_model::hf::read_tensors(&old).expect("read");

        // A model with other values, as a fresh process would have.
        let vars: Vec<_> = params(Kind::Float)
            .into_iter()
            .map(|(n, t)| (n, (t.detach() * 3.0).set_requires_grad(true)))
            .collect();
        let mut flat = FlatAdamW::new(shallow(&vars), 0.9, 0.999, 1e-8, 0.1).expect("flat");
        flat.load_state(&loaded, 5).expect("load");
        let new = dir.path().join("new.safetensors");
        smolsweep_model::hf::write_tensors(&new, &flat.state_tensors(), None).expect("w");
        assert_eq!(
            std::fs::read(&old).expect("old"),
            std::fs::read(&new).expect("new")
        );
        for ((_, a), (_, b)) in vars.iter().zip(&ref_vars) {
            assert!(a.equal(b), "model weights not restored");
        }
        train(&mut reference, &ref_vars, 5, 5, 8.0);
        train(&mut flat, &vars, 5, 5, 8.0);
        let rel = worst_relative(&flat.state_tensors(), &reference.state_tensors());
        assert!(rel <= 1e-6, "after resume: relative {rel}");
        assert!(
            flat.load_state(&loaded[1..], 5).is_err(),
            "a missing tensor"
        );
    }

    /// A bf16 model: fp32 masters and moments, the weights their bf16
    /// copy, and a checkpoint holding the fp32 masters.
    #[test]
    fn a_bf16_model_keeps_fp32_masters() {
        let ref_vars = params(Kind::BFloat16);
        let mut reference = AdamW::new(shallow(&ref_vars), 0.9, 0.999, 1e-8, 0.1);
        let vars = params(Kind::BFloat16);
        let mut flat = FlatAdamW::new(shallow(&vars), 0.9, 0.999, 1e-8, 0.1).expect("flat");
        train(&mut reference, &ref_vars, 0, 1, 1e9);
        train(&mut flat, &vars, 0, 1, 1e9);
        let st = flat.state_tensors();
        assert!(st.iter().all(|(_, t)| t.kind() == Kind::Float));
        let rel = worst_relative(&st, &reference.state_tensors());
        assert!(rel <= 1e-6, "bf16 first step: relative {rel}");
        for (name, v) in &vars {
            assert_eq!(v.kind(), Kind::BFloat16);
            let master = &st
                .iter()
                .find(|(n, _)| *n == format!("param.{name}"))
                .expect("master")
                .1;
            assert!(v.equal(&master.to_kind(Kind::BFloat16)), "{name}");
        }
    }

    /// A gradient a caller installed itself still reaches the update.
    #[test]
    fn a_replaced_gradient_is_taken_into_the_flat_buffer() {
        let vars = params(Kind::Float);
        let mut flat = FlatAdamW::new(shallow(&vars), 0.9, 0.999, 1e-8, 0.0).expect("flat");
        let (name, w) = &vars[3];
        let before = w.detach().copy();
        let own = Tensor::ones(&w.size()[..], (Kind::Float, Device::Cpu));
        smolsweep_kernels::set_grad(w, &own).expect("set_grad");
        flat.step(0.1);
        // First step: every element moves by lr against its gradient's sign.
        let moved = (&before - w.detach()).mean(Kind::Float).double_value(&[]);
        assert!((moved - 0.1).abs() < 1e-5, "{name} moved by {moved}");
        assert_eq!(
            smolsweep_kernels::grad_data_ptr(w).expect("ptr"),
            Some(
                flat.slots
                    .iter()
                    .find(|s| &s.name == name)
                    .expect("slot")
                    .grad_ptr
            )
        );
    }

    #[test]
    fn mixed_dtypes_fall_back_to_the_per_tensor_optimizer() {
        let mut v = params(Kind::Float);
        v[0].1 = v[0]
            .1
            .detach()
            .to_kind(Kind::Double)
            .set_requires_grad(true);
        assert!(FlatAdamW::new(shallow(&v), 0.9, 0.999, 1e-8, 0.0).is_err());
        let mut opt = adamw_boxed(v);
        opt.step(0.1);
        assert_eq!(opt.steps_done(), 1);
    }

    fn adamw_boxed(v: Vec<(String, Tensor)>) -> Box<dyn Optimizer> {
        super::super::adamw(v, 0.9, 0.999, 1e-8, 0.0)
    }
}
