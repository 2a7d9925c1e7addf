//! The only `unsafe` of the crate: the C declarations of `csrc/shim.cpp`
//! and safe wrappers that hand tch tensors over by pointer, take owned
//! results back with `Tensor::from_ptr`, and turn the shim's error strings
//! into [`KernelError`]s.
//!
//! Without the shim (built where libtorch has no headers) the same
//! wrappers exist and return [`KernelError::Unavailable`].
#![allow(unsafe_code)]

use tch::Tensor;

use crate::KernelError;

#[cfg(smolsweep_shim)]
mod sys {
    use std::os::raw::{c_char, c_int, c_void};
    use torch_sys::C_tensor;

    extern "C" {
        pub fn smk_free_error(e: *mut c_char);
        pub fn smk_torch_version() -> *const c_char;
        pub fn smk_alias(
            flat: *const C_tensor,
            offset: i64,
            sizes: *const i64,
            ndim: usize,
            out: *mut *mut C_tensor,
        ) -> *mut c_char;
        pub fn smk_set_grad(var: *const C_tensor, grad: *const C_tensor) -> *mut c_char;
        pub fn smk_grad_data_ptr(t: *const C_tensor, out: *mut *const c_void) -> *mut c_char;
        #[allow(clippy::too_many_arguments)]
        pub fn smk_fused_adamw(
            params: *const *const C_tensor,
            grads: *const *const C_tensor,
            exp_avgs: *const *const C_tensor,
            exp_avg_sqs: *const *const C_tensor,
            steps: *const *const C_tensor,
            n: usize,
            lr: f64,
            beta1: f64,
            beta2: f64,
            weight_decay: f64,
            eps: f64,
        ) -> *mut c_char;
        #[allow(clippy::too_many_arguments)]
        pub fn smk_flash_attention_varlen(
            q: *const C_tensor,
            k: *const C_tensor,
            v: *const C_tensor,
            cu_q: *const C_tensor,
            cu_k: *const C_tensor,
            max_q: i64,
            max_k: i64,
            scale: f64,
            causal: c_int,
            out: *mut *mut C_tensor,
        ) -> *mut c_char;
        pub fn smk_cuda_memory(device: i64, reset_peak: c_int, out: *mut i64) -> *mut c_char;
        pub fn smk_cuda_empty_cache() -> *mut c_char;
    }
}

/// Turns the shim's return value into a result, freeing the message.
#[cfg(smolsweep_shim)]
fn check(op: &'static str, err: *mut std::os::raw::c_char) -> Result<(), KernelError> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string the shim
    // strdup'ed for us; it is read once and freed by the shim's allocator.
    let msg = unsafe {
        let m = std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned();
        sys::smk_free_error(err);
        m
    };
    Err(KernelError::Torch { op, msg })
}

/// Wraps a tensor the shim allocated with `new at::Tensor`.
#[cfg(smolsweep_shim)]
fn owned(op: &'static str, p: *mut torch_sys::C_tensor) -> Result<Tensor, KernelError> {
    if p.is_null() {
        return Err(KernelError::Torch {
            op,
            msg: "the shim returned no tensor".into(),
        });
    }
    // SAFETY: the pointer is a fresh heap `at::Tensor` that nothing else
    // owns; tch frees it when the `Tensor` drops.
    Ok(unsafe { Tensor::from_ptr(p) })
}

#[cfg(smolsweep_shim)]
pub(crate) fn torch_version() -> Option<&'static str> {
    // SAFETY: the shim returns a pointer to a static string literal.
    let s = unsafe { std::ffi::CStr::from_ptr(sys::smk_torch_version()) };
    s.to_str().ok()
}

#[cfg(smolsweep_shim)]
pub(crate) fn alias(flat: &Tensor, offset: i64, sizes: &[i64]) -> Result<Tensor, KernelError> {
    let mut out = std::ptr::null_mut();
    // SAFETY: `flat` is a live tensor, `sizes` a live slice of `len`
    // elements, `out` a valid place for the result pointer.
    let err =
        unsafe { sys::smk_alias(flat.as_ptr(), offset, sizes.as_ptr(), sizes.len(), &mut out) };
    check("alias", err)?;
    owned("alias", out)
}

#[cfg(smolsweep_shim)]
pub(crate) fn set_grad(var: &Tensor, grad: &Tensor) -> Result<(), KernelError> {
    // SAFETY: both are live tensors; the shim copies the handle of `grad`.
    check("set_grad", unsafe {
        sys::smk_set_grad(var.as_ptr(), grad.as_ptr())
    })
}

#[cfg(smolsweep_shim)]
pub(crate) fn grad_data_ptr(var: &Tensor) -> Result<usize, KernelError> {
    let mut out = std::ptr::null();
    // SAFETY: `var` is live and `out` a valid place for a pointer; the
    // pointer is only compared, never dereferenced.
    check("grad_data_ptr", unsafe {
        sys::smk_grad_data_ptr(var.as_ptr(), &mut out)
    })?;
    Ok(out as usize)
}

/// Pointers of a tensor list, for the shim's `const tensor*` arguments.
#[cfg(smolsweep_shim)]
fn ptrs(ts: &[&Tensor]) -> Vec<*const torch_sys::C_tensor> {
    ts.iter().map(|t| t.as_ptr()).collect()
}

#[cfg(smolsweep_shim)]
pub(crate) fn fused_adamw(lists: [&[&Tensor]; 5], h: &crate::AdamHyper) -> Result<(), KernelError> {
    let [p, g, m, v, s] = lists.map(ptrs);
    // SAFETY: five arrays of `p.len()` live tensor pointers (the caller
    // checked the lengths agree); the tensors outlive the call.
    check("_fused_adamw_", unsafe {
        sys::smk_fused_adamw(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            p.len(),
            h.lr,
            h.beta1,
            h.beta2,
            h.weight_decay,
            h.eps,
        )
    })
}

#[cfg(smolsweep_shim)]
pub(crate) fn flash_attention_varlen(
    qkv: [&Tensor; 3],
    cu: [&Tensor; 2],
    max: [i64; 2],
    scale: f64,
    causal: bool,
) -> Result<Tensor, KernelError> {
    let mut out = std::ptr::null_mut();
    // SAFETY: live tensors in, a valid place for the result pointer out.
    let err = unsafe {
        sys::smk_flash_attention_varlen(
            qkv[0].as_ptr(),
            qkv[1].as_ptr(),
            qkv[2].as_ptr(),
            cu[0].as_ptr(),
            cu[1].as_ptr(),
            max[0],
            max[1],
            scale,
            i32::from(causal),
            &mut out,
        )
    };
    check("_flash_attention_forward", err)?;
    owned("_flash_attention_forward", out)
}

#[cfg(smolsweep_shim)]
pub(crate) fn cuda_memory(device: i64, reset_peak: bool) -> Result<[i64; 4], KernelError> {
    let mut out = [0i64; 4];
    // SAFETY: `out` has room for the four counts the shim writes.
    check("cuda_memory", unsafe {
        sys::smk_cuda_memory(device, i32::from(reset_peak), out.as_mut_ptr())
    })?;
    Ok(out)
}

#[cfg(smolsweep_shim)]
pub(crate) fn cuda_empty_cache() -> Result<(), KernelError> {
    // SAFETY: no arguments; the shim catches what the allocator throws.
    check("cuda_empty_cache", unsafe { sys::smk_cuda_empty_cache() })
}

/// The C side of `csrc/graph.cpp` (built with the CUDA runtime headers).
#[cfg(smolsweep_cuda_graphs)]
mod graph_sys {
    use std::os::raw::{c_char, c_void};

    extern "C" {
        pub fn smk_graph_side_new(device: i64, out: *mut *mut c_void) -> *mut c_char;
        pub fn smk_graph_side_free(side: *mut c_void);
        pub fn smk_graph_side_enter(side: *mut c_void) -> *mut c_char;
        pub fn smk_graph_side_leave(side: *mut c_void) -> *mut c_char;
        pub fn smk_graph_new(side: *mut c_void, out: *mut *mut c_void) -> *mut c_char;
        pub fn smk_graph_free(graph: *mut c_void);
        pub fn smk_graph_capture_begin(side: *mut c_void, graph: *mut c_void) -> *mut c_char;
        pub fn smk_graph_capture_end(graph: *mut c_void) -> *mut c_char;
        pub fn smk_graph_replay(graph: *mut c_void) -> *mut c_char;
    }
}

/// A side stream with its graph memory pool (owned; freed on drop).
#[cfg(smolsweep_cuda_graphs)]
pub(crate) struct Side(*mut std::os::raw::c_void);

/// A CUDA graph (owned; freed on drop).
#[cfg(smolsweep_cuda_graphs)]
pub(crate) struct Graph(*mut std::os::raw::c_void);

#[cfg(smolsweep_cuda_graphs)]
impl Drop for Side {
    fn drop(&mut self) {
        // SAFETY: the pointer came from smk_graph_side_new and is freed once.
        unsafe { graph_sys::smk_graph_side_free(self.0) }
    }
}

#[cfg(smolsweep_cuda_graphs)]
impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: the pointer came from smk_graph_new and is freed once.
        unsafe { graph_sys::smk_graph_free(self.0) }
    }
}

#[cfg(smolsweep_cuda_graphs)]
pub(crate) fn graph_side_new(device: i64) -> Result<Side, KernelError> {
    let mut out = std::ptr::null_mut();
    // SAFETY: `out` is a valid place for the handle the shim allocates.
    check("cuda graph stream", unsafe {
        graph_sys::smk_graph_side_new(device, &mut out)
    })?;
    Ok(Side(out))
}

#[cfg(smolsweep_cuda_graphs)]
pub(crate) fn graph_side_enter(side: &Side) -> Result<(), KernelError> {
    // SAFETY: `side` is a live handle.
    check("cuda graph stream", unsafe {
        graph_sys::smk_graph_side_enter(side.0)
    })
}

#[cfg(smolsweep_cuda_graphs)]
pub(crate) fn graph_side_leave(side: &Side) -> Result<(), KernelError> {
    // SAFETY: `side` is a live handle.
    check("cuda graph stream", unsafe {
        graph_sys::smk_graph_side_leave(side.0)
    })
}

#[cfg(smolsweep_cuda_graphs)]
pub(crate) fn graph_new(side: &Side) -> Result<Graph, KernelError> {
    let mut out = std::ptr::null_mut();
    // SAFETY: `side` is live, `out` a valid place for the new handle.
    check("cuda graph", unsafe {
        graph_sys::smk_graph_new(side.0, &mut out)
    })?;
    Ok(Graph(out))
}

#[cfg(smolsweep_cuda_graphs)]
pub(crate) fn graph_capture_begin(side: &Side, graph: &Graph) -> Result<(), KernelError> {
    // SAFETY: both handles are live.
    check("cuda graph capture", unsafe {
        graph_sys::smk_graph_capture_begin(side.0, graph.0)
    })
}

#[cfg(smolsweep_cuda_graphs)]
pub(crate) fn graph_capture_end(graph: &Graph) -> Result<(), KernelError> {
    // SAFETY: `graph` is live.
    check("cuda graph capture", unsafe {
        graph_sys::smk_graph_capture_end(graph.0)
    })
}

#[cfg(smolsweep_cuda_graphs)]
pub(crate) fn graph_replay(graph: &Graph) -> Result<(), KernelError> {
    // SAFETY: `graph` is live.
    check("cuda graph replay", unsafe {
        graph_sys::smk_graph_replay(graph.0)
    })
}

/// Without `csrc/graph.cpp`: the same calls, each unavailable.
#[cfg(not(smolsweep_cuda_graphs))]
mod no_graphs {
    use super::KernelError;

    pub(crate) struct Side;
    pub(crate) struct Graph;

    const OP: &str = "cuda graphs";

    fn unavailable<T>() -> Result<T, KernelError> {
        Err(KernelError::Unsupported {
            op: OP,
            msg: "smolsweep-kernels was built without CUDA graphs (no CUDA runtime headers or no torch_cuda)".into(),
        })
    }
    pub(crate) fn graph_side_new(_: i64) -> Result<Side, KernelError> {
        unavailable()
    }
    pub(crate) fn graph_side_enter(_: &Side) -> Result<(), KernelError> {
        unavailable()
    }
    pub(crate) fn graph_side_leave(_: &Side) -> Result<(), KernelError> {
        unavailable()
    }
    pub(crate) fn graph_new(_: &Side) -> Result<Graph, KernelError> {
        unavailable()
    }
    pub(crate) fn graph_capture_begin(_: &Side, _: &Graph) -> Result<(), KernelError> {
        unavailable()
    }
    pub(crate) fn graph_capture_end(_: &Graph) -> Result<(), KernelError> {
        unavailable()
    }
    pub(crate) fn graph_replay(_: &Graph) -> Result<(), KernelError> {
        unavailable()
    }
}
#[cfg(not(smolsweep_cuda_graphs))]
pub(crate) use no_graphs::*;

#[cfg(not(smolsweep_shim))]
mod absent {
    use super::*;

    pub(crate) fn torch_version() -> Option<&'static str> {
        None
    }
    pub(crate) fn alias(_: &Tensor, _: i64, _: &[i64]) -> Result<Tensor, KernelError> {
        Err(KernelError::Unavailable { op: "alias" })
    }
    pub(crate) fn set_grad(_: &Tensor, _: &Tensor) -> Result<(), KernelError> {
        Err(KernelError::Unavailable { op: "set_grad" })
    }
    pub(crate) fn grad_data_ptr(_: &Tensor) -> Result<usize, KernelError> {
        Err(KernelError::Unavailable {
            op: "grad_data_ptr",
        })
    }
    pub(crate) fn fused_adamw(_: [&[&Tensor]; 5], _: &crate::AdamHyper) -> Result<(), KernelError> {
        Err(KernelError::Unavailable {
            op: "_fused_adamw_",
        })
    }
    pub(crate) fn cuda_memory(_: i64, _: bool) -> Result<[i64; 4], KernelError> {
        Err(KernelError::Unavailable { op: "cuda_memory" })
    }
    pub(crate) fn cuda_empty_cache() -> Result<(), KernelError> {
        Err(KernelError::Unavailable {
            op: "cuda_empty_cache",
        })
    }
    pub(crate) fn flash_attention_varlen(
        _: [&Tensor; 3],
        _: [&Tensor; 2],
        _: [i64; 2],
        _: f64,
        _: bool,
    ) -> Result<Tensor, KernelError> {
        Err(KernelError::Unavailable {
            op: "_flash_attention_forward",
        })
    }
}
#[cfg(not(smolsweep_shim))]
pub(crate) use absent::*;
