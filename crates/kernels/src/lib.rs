//! libtorch ops that `tch` 0.24 has no bindings for, through a small C++
//! shim (`csrc/shim.cpp`, compiled by `build.rs` against the headers of
//! the libtorch `torch-sys` links): the fused AdamW kernel
//! (`_fused_adamw_`, CPU and CUDA), varlen flash attention
//! (`_flash_attention_forward`, CUDA only, with autograd through the
//! dispatcher), and the aliasing that lets a model's parameters and
//! gradients live in flat buffers; and CUDA-graph capture and replay
//! ([`CudaGraph`]).
//!
//! C++ exceptions come back as [`KernelError`]s; every `unsafe` block is
//! in [`ffi`]. When the shim could not be built, each entry point returns
//! [`KernelError::Unavailable`] and [`available`] is false, so callers
//! keep a plain-tch path.

mod ffi;
mod graph;

pub use graph::{cuda_graphs_built, CudaGraph, GraphStream};

use tch::{Device, Kind, Tensor};

/// What went wrong in a kernel call.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// libtorch threw; `msg` is its exception text.
    #[error("libtorch {op}: {msg}")]
    Torch { op: &'static str, msg: String },
    /// The arguments cannot go to this kernel (checked before the call).
    #[error("{op}: {msg}")]
    Unsupported { op: &'static str, msg: String },
    /// The crate was built without its shim.
    #[error("{op}: smolsweep-kernels was built without its C++ shim (no libtorch headers found)")]
    Unavailable { op: &'static str },
}

pub type Result<T> = std::result::Result<T, KernelError>;

/// Whether the C++ shim was compiled in.
pub fn available() -> bool {
    cfg!(smolsweep_shim)
}

/// The libtorch version whose headers the shim was compiled against.
pub fn torch_version() -> Option<&'static str> {
    ffi::torch_version()
}

/// A contiguous tensor of shape `sizes` over `flat`'s memory from element
/// `offset`. It shares storage with `flat` without being an autograd view
/// of it, so it can serve as a parameter's data or its gradient.
pub fn alias(flat: &Tensor, offset: i64, sizes: &[i64]) -> Result<Tensor> {
    ffi::alias(flat, offset, sizes)
}

/// Installs `grad` as `var`'s gradient; backward then accumulates into
/// it in place (same shape, dtype and device required).
pub fn set_grad(var: &Tensor, grad: &Tensor) -> Result<()> {
    ffi::set_grad(var, grad)
}

/// Where `var`'s gradient lives (`None` when it has none), to check that
/// backward kept writing into an installed gradient.
pub fn grad_data_ptr(var: &Tensor) -> Result<Option<usize>> {
    ffi::grad_data_ptr(var).map(|p| (p != 0).then_some(p))
}

/// AdamW's hyper-parameters for one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
}

/// The tensors one fused AdamW call updates, index by index; all share a
/// dtype and a device. `steps` are fp32 scalars the caller keeps at the
/// number of updates applied, this one included.
#[derive(Debug, Clone, Copy)]
pub struct AdamTensors<'a> {
    pub params: &'a [&'a Tensor],
    pub grads: &'a [&'a Tensor],
    pub exp_avgs: &'a [&'a Tensor],
    pub exp_avg_sqs: &'a [&'a Tensor],
    pub steps: &'a [&'a Tensor],
}

/// One AdamW update by libtorch's `_fused_adamw_` (no amsgrad, no grad
/// scaling): on the CPU it equals `torch.optim.AdamW(foreach=False)`.
pub fn fused_adamw_(t: AdamTensors<'_>, h: &AdamHyper) -> Result<()> {
    let n = t.params.len();
    let lens = [
        t.grads.len(),
        t.exp_avgs.len(),
        t.exp_avg_sqs.len(),
        t.steps.len(),
    ];
    if lens.iter().any(|&l| l != n) {
        return Err(KernelError::Unsupported {
            op: "_fused_adamw_",
            msg: format!("{n} parameters but lists of {lens:?}"),
        });
    }
    if n == 0 {
        return Ok(());
    }
    ffi::fused_adamw([t.params, t.grads, t.exp_avgs, t.exp_avg_sqs, t.steps], h)
}

/// Whether [`flash_attention_varlen`] can take attention of this shape:
/// CUDA, bf16 or fp16, head dim a multiple of 8 up to 256. `Err` says why
/// not.
pub fn flash_varlen_supported(
    device: Device,
    kind: Kind,
    head_dim: i64,
) -> std::result::Result<(), String> {
    if !device.is_cuda() {
        return Err(format!("flash attention has no {device:?} kernel"));
    }
    if !matches!(kind, Kind::BFloat16 | Kind::Half) {
        return Err(format!("flash attention needs bf16 or fp16, not {kind:?}"));
    }
    if head_dim % 8 != 0 || head_dim > 256 {
        return Err(format!(
            "flash attention needs a head dim that is a multiple of 8 up to 256, not {head_dim}"
        ));
    }
    Ok(())
}

/// Causal self-attention over packed samples by
/// `_flash_attention_forward`: `q` is `[T, Hq, D]`, `k` and `v`
/// `[T, Hkv, D]` (grouped-query attention natively), `cu_seqlens` the
/// int32 offsets `[n + 1]` of the samples in the `T` rows and
/// `max_seqlen` the longest sample. Returns `[T, Hq, D]`; gradients flow
/// to `q`, `k` and `v`.
pub fn flash_attention_varlen(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cu_seqlens: &Tensor,
    max_seqlen: i64,
    scale: f64,
) -> Result<Tensor> {
    let op = "_flash_attention_forward";
    let d = q.size().last().copied().unwrap_or(0);
    flash_varlen_supported(q.device(), q.kind(), d)
        .map_err(|msg| KernelError::Unsupported { op, msg })?;
    if cu_seqlens.kind() != Kind::Int {
        return Err(KernelError::Unsupported {
            op,
            msg: format!("cu_seqlens must be int32, not {:?}", cu_seqlens.kind()),
        });
    }
    ffi::flash_attention_varlen(
        [q, k, v],
        [cu_seqlens, cu_seqlens],
        [max_seqlen, max_seqlen],
        scale,
        true,
    )
}

/// The CUDA caching allocator's byte counts for one device, as
/// `torch.cuda.memory_stats` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaMemory {
    pub allocated: i64,
    pub peak_allocated: i64,
    pub reserved: i64,
    pub peak_reserved: i64,
}

/// The allocator's counts for `device` (a CUDA device), and with
/// `reset_peak` the peaks restarted from the current values afterwards.
/// An error on the CPU or where libtorch has no CUDA allocator.
pub fn cuda_memory(device: Device, reset_peak: bool) -> Result<CudaMemory> {
    let Device::Cuda(i) = device else {
        return Err(KernelError::Unsupported {
            op: "cuda_memory",
            msg: format!("{device:?} is not a CUDA device"),
        });
    };
    let [allocated, peak_allocated, reserved, peak_reserved] =
        ffi::cuda_memory(i as i64, reset_peak)?;
    Ok(CudaMemory {
        allocated,
        peak_allocated,
        reserved,
        peak_reserved,
    })
}

/// Returns the CUDA caching allocator's unused cached blocks to the device
/// (`torch.cuda.empty_cache()`), so that another process can use them. An
/// error on the CPU or where libtorch has no CUDA allocator.
pub fn cuda_empty_cache(device: Device) -> Result<()> {
    if !matches!(device, Device::Cuda(_)) {
        return Err(KernelError::Unsupported {
            op: "cuda_empty_cache",
            msg: format!("{device:?} is not a CUDA device"),
        });
    }
    ffi::cuda_empty_cache()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_is_built_against_the_linked_libtorch() {
        assert!(available(), "built without the shim");
        let v = torch_version().expect("version");
        assert!(v.starts_with("2."), "{v}");
    }

    #[test]
    fn an_alias_shares_memory_with_its_flat_tensor() {
        let flat = Tensor::zeros([10], (Kind::Float, Device::Cpu));
        let a = alias(&flat, 4, &[2, 3]).expect("alias");
        assert_eq!(a.size(), [2, 3]);
        let _ = a.shallow_clone().fill_(7.0);
        let got = Vec::<f32>::try_from(&flat).expect("vec");
        assert_eq!(got, [0., 0., 0., 0., 7., 7., 7., 7., 7., 7.]);
        // Out of range is libtorch's exception, turned into an error.
        let e = alias(&flat, 8, &[3]).expect_err("out of range");
        assert!(e.to_string().contains("outside a flat tensor"), "{e}");
    }

    #[test]
    fn backward_accumulates_into_an_installed_gradient() {
        let flat = Tensor::zeros([5], (Kind::Float, Device::Cpu));
        let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
        let g = alias(&flat, 1, &[3]).expect("alias");
        set_grad(&w, &g).expect("set_grad");
        for _ in 0..2 {
            (&w * &w).sum(Kind::Float).backward();
        }
        assert_eq!(
            Vec::<f32>::try_from(&flat).expect("vec"),
            [0., 4., 8., 12., 0.]
        );
        assert_eq!(grad_data_ptr(&w).expect("ptr"), Some(g.data_ptr() as usize));
        // tch's zero_grad zeroes in place and keeps the buffer.
        let mut w2 = w.shallow_clone();
        w2.zero_grad();
        assert_eq!(Vec::<f32>::try_from(&flat).expect("vec"), [0.0; 5]);
        let bad = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        assert!(set_grad(&w, &bad).is_err());
    }

    #[test]
    fn fused_adamw_takes_one_adamw_step() {
        let p = Tensor::from_slice(&[1.0f32, -2.0]);
        let g = Tensor::from_slice(&[2.0f32, -4.0]);
        let (m, v) = (p.zeros_like(), p.zeros_like());
        let s = Tensor::from(1.0f32);
        let h = AdamHyper {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            weight_decay: 0.1,
            eps: 1e-8,
        };
        let t = AdamTensors {
            params: &[&p],
            grads: &[&g],
            exp_avgs: &[&m],
            exp_avg_sqs: &[&v],
            steps: &[&s],
        };
        fused_adamw_(t, &h).expect("fused");
        // t=1: decay first, then lr * sign(g).
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        let got = Vec::<f32>::try_from(&p).expect("vec");
        for (a, b) in got.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // A dtype mismatch is libtorch's exception, not a crash.
        let g16 = g.to_kind(Kind::Double);
        let bad = AdamTensors {
            grads: &[&g16],
            ..t
        };
        assert!(matches!(
            fused_adamw_(bad, &h),
            Err(KernelError::Torch { .. })
        ));
        assert!(matches!(
            fused_adamw_(AdamTensors { steps: &[], ..t }, &h),
            Err(KernelError::Unsupported { .. })
        ));
    }

    #[test]
    fn flash_attention_refuses_the_cpu_before_calling_libtorch() {
        let q = Tensor::zeros([4, 2, 8], (Kind::BFloat16, Device::Cpu));
        let cu = Tensor::from_slice(&[0i32, 4]);
        let e = flash_attention_varlen(&q, &q, &q, &cu, 4, 0.35).expect_err("cpu");
        assert!(matches!(e, KernelError::Unsupported { .. }), "{e}");
        assert!(flash_varlen_supported(Device::Cuda(0), Kind::BFloat16, 64).is_ok());
        assert!(flash_varlen_supported(Device::Cuda(0), Kind::Float, 64).is_err());
        assert!(flash_varlen_supported(Device::Cuda(0), Kind::BFloat16, 60).is_err());
        // Past the checks, libtorch itself refuses (it has no CPU kernel):
        // its exception comes back as an error naming the op.
        let e = ffi::flash_attention_varlen([&q, &q, &q], [&cu, &cu], [4, 4], 0.35, true)
            .expect_err("no CPU kernel");
        assert!(matches!(e, KernelError::Torch { .. }), "{e}");
        assert!(e.to_string().contains("_flash_attention_forward"), "{e}");
    }

    /// On the CPU the memory counts are refused before libtorch; on a
    /// machine without a GPU libtorch's own refusal comes back as an
    /// error, not a crash. With a GPU, a tensor's bytes show.
    #[test]
    fn cuda_memory_is_an_error_without_a_gpu_and_counts_with_one() {
        assert!(matches!(
            cuda_memory(Device::Cpu, false),
            Err(KernelError::Unsupported { .. })
        ));
        if !tch::Cuda::is_available() {
            assert!(cuda_memory(Device::Cuda(0), false).is_err());
            return;
        }
        let before = cuda_memory(Device::Cuda(0), true).expect("stats");
        let t = Tensor::zeros([1 << 20], (Kind::Float, Device::Cuda(0)));
        let after = cuda_memory(Device::Cuda(0), false).expect("stats");
        assert!(
            after.peak_allocated >= before.allocated + (4 << 20),
            "{after:?}"
        );
        drop(t);
    }

    /// Refused on the CPU; without a GPU libtorch's answer comes back
    /// (whatever it is) without a crash; with one, a dropped tensor's
    /// cached block goes back to the device.
    #[test]
    fn empty_cache_returns_cached_blocks() {
        assert!(matches!(
            cuda_empty_cache(Device::Cpu),
            Err(KernelError::Unsupported { .. })
        ));
        if !tch::Cuda::is_available() {
            let _ = cuda_empty_cache(Device::Cuda(0));
            return;
        }
        let t = Tensor::zeros([1 << 22], (Kind::Float, Device::Cuda(0)));
        let held = cuda_memory(Device::Cuda(0), false).expect("stats");
        drop(t);
        cuda_empty_cache(Device::Cuda(0)).expect("empty_cache");
        let after = cuda_memory(Device::Cuda(0), false).expect("stats");
        assert!(
            after.reserved + (16 << 20) <= held.reserved,
            "{held:?} -> {after:?}"
        );
    }
}
