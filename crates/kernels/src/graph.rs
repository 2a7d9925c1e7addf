//! CUDA graphs, the way `torch.cuda.graph` uses them: a side stream and a
//! memory pool per user ([`GraphStream`]); warm-up runs on that stream
//! ([`GraphStream::run`]); capture on it ([`CudaGraph::capture`]), which
//! records the kernels a closure launches without running them; and
//! [`CudaGraph::replay`], which launches them all at once on the current
//! stream. Inputs and outputs are the tensors the closure used: a replay
//! reads whatever they hold then, and writes its results where the capture
//! wrote them.
//!
//! Only with the shim's `csrc/graph.cpp` (built where the CUDA runtime
//! headers and `torch_cuda` are found); elsewhere, and for a device that is
//! not CUDA, every call is a [`KernelError::Unsupported`].

use tch::Device;

use crate::ffi;
use crate::{KernelError, Result};

/// Whether the crate was built with CUDA-graph support (a CUDA device is
/// still needed at run time).
pub fn cuda_graphs_built() -> bool {
    cfg!(smolsweep_cuda_graphs)
}

/// A side stream on one CUDA device and the memory pool its graphs share.
/// Sharing is safe for graphs replayed one after another on one stream
/// whose outputs stay alive (the caller keeps them).
pub struct GraphStream {
    side: ffi::Side,
}

impl std::fmt::Debug for GraphStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GraphStream")
    }
}

impl GraphStream {
    /// A side stream on `device`, which must be CUDA.
    pub fn new(device: Device) -> Result<Self> {
        let Device::Cuda(i) = device else {
            return Err(KernelError::Unsupported {
                op: "cuda graphs",
                msg: format!("{device:?} is not a CUDA device"),
            });
        };
        Ok(GraphStream {
            side: ffi::graph_side_new(i as i64)?,
        })
    }

    /// Runs `f` with the side stream current (after what the current
    /// stream has queued; the current stream then waits for `f`'s work):
    /// the warm-up runs before a capture, which must see the same stream.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        ffi::graph_side_enter(&self.side)?;
        let out = f();
        ffi::graph_side_leave(&self.side)?;
        Ok(out)
    }
}

/// A captured graph, replayable as often as wanted.
pub struct CudaGraph {
    graph: ffi::Graph,
}

impl std::fmt::Debug for CudaGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CudaGraph")
    }
}

impl CudaGraph {
    /// Captures what `f` launches on `stream`'s side stream. Nothing runs:
    /// call [`CudaGraph::replay`] to do the work once. `f`'s own error (the
    /// `Err` of its result) ends the capture and is returned as is; a
    /// capture libtorch refuses is a [`KernelError`].
    pub fn capture<T, E: From<KernelError>>(
        stream: &GraphStream,
        f: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<(CudaGraph, T), E> {
        let graph = ffi::graph_new(&stream.side)?;
        ffi::graph_side_enter(&stream.side)?;
        let out = match ffi::graph_capture_begin(&stream.side, &graph) {
            Ok(()) => {
                let out = f();
                // Always leave capture mode, even after `f` failed.
                let end = ffi::graph_capture_end(&graph);
                match (out, end) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(k)) => Err(E::from(k)),
                }
            }
            Err(k) => Err(E::from(k)),
        };
        let leave = ffi::graph_side_leave(&stream.side);
        let v = out?;
        leave?;
        Ok((CudaGraph { graph }, v))
    }

    /// Launches the captured work on the current stream.
    pub fn replay(&self) -> Result<()> {
        ffi::graph_replay(&self.graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_device_is_refused_not_crashed() {
        let e = GraphStream::new(Device::Cpu).expect_err("cpu");
        assert!(e.to_string().contains("not a CUDA device"), "{e}");
    }

    /// Where the crate has graph support but the machine no GPU, creating
    /// a stream is an error from libtorch, not an abort.
    #[test]
    fn no_gpu_is_an_error() {
        if tch::Cuda::is_available() {
            return;
        }
        let e = GraphStream::new(Device::Cuda(0)).expect_err("no gpu");
        let s = e.to_string();
        assert!(s.contains("cuda graph") || s.contains("CUDA"), "{s}");
    }
}
