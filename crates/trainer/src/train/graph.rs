//! `cuda_graphs = true`: a micro-batch's forward and backward captured in
//! a CUDA graph once per shape and replayed, so a step launches one graph
//! per micro-batch instead of thousands of small kernels, each with
//! libtorch's per-op dispatch on the host (what limits a 135M model at small
//! micro-batches).
//!
//! A graph replays fixed tensors, so each shape gets static buffers (ids,
//! positions, targets, per-token loss weights, the packed mask or the
//! span offsets) that every micro-batch of that shape is copied into. What
//! would change shape from batch to batch is made fixed:
//! - rows are padded to a multiple of [`LEN_QUANTUM`] tokens (the batch
//!   builder does it; padding is unlabelled and attends only to padding);
//! - the loss runs over every position with a weight per token (the scale
//!   where labelled, 0 elsewhere) instead of selecting labelled positions;
//! - varlen attention's span offsets are padded to a power-of-two count
//!   with empty spans, and its longest span is taken as the row length
//!   (flash attention's grid bound; the spans themselves come from the
//!   offsets).
//!
//! As `torch.cuda.graph`: a shape's first [`WARMUP`] micro-batches run
//! eagerly on the side stream the capture will use (real work: they count),
//! the next is captured and then replayed once, and from then on it is
//! replayed. All graphs share one memory pool. At most [`MAX_GRAPHS`]
//! shapes are captured; micro-batches of further shapes run eagerly. A
//! capture libtorch refuses turns graphs off for the rest of the trial
//! (logged), and that micro-batch runs eagerly: a capture records kernels
//! without running them, so nothing of it was applied.

use std::collections::HashMap;

use smolsweep_kernels::{CudaGraph, GraphStream};
use smolsweep_model::{Llama, Varlen};
use tch::{Device, Kind, Tensor};

use crate::batch::MicroBatch;
use crate::error::Result;
use crate::loss::{chunked_lm_loss_weighted, DEFAULT_CHUNK};

/// Rows are padded to a multiple of this many tokens under graphs.
pub(super) const LEN_QUANTUM: usize = 128;
/// Shapes captured at most (their graphs share one memory pool).
const MAX_GRAPHS: usize = 16;
/// Eager runs of a shape on the side stream before its capture.
const WARMUP: u32 = 2;
/// Span offsets are padded to at least this many spans.
const MIN_SPANS: i64 = 16;

/// What fixes a micro-batch's tensors' shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    rows: i64,
    len: i64,
    /// A dense `[R, 1, L, L]` mask (packed rows on the SDPA path).
    mask: bool,
    /// Span capacity of the padded offsets (packed rows, varlen).
    spans: Option<i64>,
}

impl Shape {
    fn of(mb: &MicroBatch) -> Result<Self> {
        let (rows, len) = mb.ids.size2()?;
        Ok(Shape {
            rows,
            len,
            mask: mb.mask.is_some(),
            spans: mb
                .varlen
                .as_ref()
                .map(|v| v.spans().max(MIN_SPANS as usize).next_power_of_two() as i64),
        })
    }
}

/// Where the static step runs.
enum Engine {
    /// Captured and replayed on a CUDA device.
    Cuda(GraphStream),
    /// The CPU tests' stand-in for CUDA: the same warm-ups, a "capture"
    /// that runs nothing and a "replay" that reruns the static step over
    /// the buffers and writes the graph's loss tensor in place, which is
    /// what a replay does. Everything but the capture itself is tested so.
    #[cfg(test)]
    Simulated,
}

/// A shape's captured step.
enum Captured {
    Cuda(CudaGraph),
    #[cfg(test)]
    Simulated,
}

/// One shape's static inputs, and its graph once captured with the loss
/// tensor the graph writes.
struct Entry {
    bufs: Static,
    warmups: u32,
    graph: Option<(Captured, Tensor)>,
}

impl Entry {
    /// Launches the captured step once; its loss lands in the graph's loss
    /// tensor.
    fn replay(&self, model: &Llama) -> Result<()> {
        match &self.graph {
            Some((Captured::Cuda(g), _)) => g.replay()?,
            #[cfg(test)]
            Some((Captured::Simulated, loss)) => {
                let fresh = static_step(model, &self.bufs)?;
                let _g = tch::no_grad_guard();
                loss.shallow_clone().copy_(&fresh);
            }
            None => {}
        }
        // Read only by the simulated replay.
        let _ = model;
        Ok(())
    }
}

/// The tensors a captured step reads.
struct Static {
    ids: Tensor,
    positions: Tensor,
    /// `[R * L]` target ids, 0 where there is no label (weight 0 there).
    targets: Tensor,
    /// `[R * L]` fp32 loss weights: the micro-batch's scale where labelled.
    weights: Tensor,
    mask: Option<Tensor>,
    varlen: Option<Varlen>,
}

impl Static {
    fn new(s: Shape, device: Device) -> Self {
        let n = s.rows * s.len;
        Static {
            ids: Tensor::zeros([s.rows, s.len], (Kind::Int64, device)),
            positions: Tensor::zeros([s.rows, s.len], (Kind::Int64, device)),
            targets: Tensor::zeros([n], (Kind::Int64, device)),
            weights: Tensor::zeros([n], (Kind::Float, device)),
            mask: s
                .mask
                .then(|| Tensor::zeros([s.rows, 1, s.len, s.len], (Kind::Bool, device))),
            varlen: s.spans.map(|cap| Varlen {
                cu_seqlens: Tensor::zeros([cap + 1], (Kind::Int, device)),
                offsets: vec![0; cap as usize + 1],
                max_seqlen: s.len,
            }),
        }
    }

    /// Copies `mb` in (device to device, queued on the current stream).
    fn fill(&mut self, mb: &MicroBatch, scale: f64) {
        let _g = tch::no_grad_guard();
        self.ids.copy_(&mb.ids);
        self.positions.copy_(&mb.positions);
        let labelled = mb.targets.ne(-100);
        self.targets.copy_(&mb.targets.clamp_min(0));
        self.weights.copy_(&(labelled.to_kind(Kind::Float) * scale));
        if let (Some(dst), Some(src)) = (&mut self.mask, &mb.mask) {
            dst.copy_(src);
        }
        if let (Some(dst), Some(src)) = (&mut self.varlen, &mb.varlen) {
            let n = src.offsets.len();
            let total = src.offsets.last().copied().unwrap_or(0);
            dst.cu_seqlens.narrow(0, 0, n as i64).copy_(&src.cu_seqlens);
            let rest = dst.offsets.len() - n;
            let _ = dst
                .cu_seqlens
                .narrow(0, n as i64, rest as i64)
                .fill_(i64::from(total));
            // The host copy (used only if varlen attention falls back to
            // SDPA, which builds the mask from it) says the same.
            dst.offsets[..n].copy_from_slice(&src.offsets);
            dst.offsets[n..].fill(total);
        }
    }
}

/// The captured shapes of one trial, and what ran how.
pub(super) struct StepGraphs {
    engine: Engine,
    entries: HashMap<Shape, Entry>,
    /// A capture failed: everything runs eagerly from now on.
    off: bool,
    pub stats: GraphStats,
}

/// Micro-batches by how they ran under `cuda_graphs`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct GraphStats {
    pub captured: u64,
    pub replayed: u64,
    pub warmup: u64,
    /// Shapes beyond [`MAX_GRAPHS`], or after a failed capture.
    pub eager: u64,
}

impl StepGraphs {
    /// Graphs on `device` (CUDA); `Err` says why they cannot be used.
    pub fn cuda(device: Device) -> Result<Self> {
        Ok(Self::with(Engine::Cuda(GraphStream::new(device)?)))
    }

    fn with(engine: Engine) -> Self {
        StepGraphs {
            engine,
            entries: HashMap::new(),
            off: false,
            stats: GraphStats::default(),
        }
    }

    /// Runs `mb`'s forward and backward through its shape's graph (or its
    /// warm-up) and returns its share of the step's loss, as
    /// `forward_backward` does; `None` when `mb` must run eagerly instead.
    pub fn run(&mut self, model: &Llama, mb: &MicroBatch, scale: f64) -> Result<Option<Tensor>> {
        if self.off {
            self.stats.eager += 1;
            return Ok(None);
        }
        let shape = Shape::of(mb)?;
        if !self.entries.contains_key(&shape) {
            if self.entries.len() >= MAX_GRAPHS {
                if self.stats.eager == 0 {
                    tracing::info!(
                        "cuda_graphs: {MAX_GRAPHS} micro-batch shapes captured; further shapes run eagerly"
                    );
                }
                self.stats.eager += 1;
                return Ok(None);
            }
            let entry = Entry {
                bufs: Static::new(shape, model.device()),
                warmups: 0,
                graph: None,
            };
            self.entries.insert(shape, entry);
        }
        let Some(entry) = self.entries.get_mut(&shape) else {
            return Ok(None);
        };
        entry.bufs.fill(mb, scale);
        if entry.graph.is_none() && entry.warmups < WARMUP {
            entry.warmups += 1;
            self.stats.warmup += 1;
            return match &self.engine {
                Engine::Cuda(side) => side.run(|| static_step(model, &entry.bufs))?.map(Some),
                #[cfg(test)]
                Engine::Simulated => static_step(model, &entry.bufs).map(Some),
            };
        }
        if entry.graph.is_none() {
            // A capture records the step without running it: the replay
            // below does this micro-batch's work.
            let captured = match &self.engine {
                Engine::Cuda(side) => CudaGraph::capture(side, || static_step(model, &entry.bufs))
                    .map(|(g, loss)| (Captured::Cuda(g), loss)),
                #[cfg(test)]
                Engine::Simulated => Ok((
                    Captured::Simulated,
                    Tensor::zeros([], (Kind::Double, model.device())),
                )),
            };
            match captured {
                Ok(c) => {
                    entry.graph = Some(c);
                    self.stats.captured += 1;
                    tracing::info!(
                        rows = shape.rows,
                        len = shape.len,
                        spans = shape.spans,
                        "cuda_graphs: captured a micro-batch shape"
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        "cuda_graphs: capturing the step failed, training eagerly from now on: {}",
                        crate::error::chain_text(&e)
                    );
                    self.off = true;
                    self.stats.eager += 1;
                    return Ok(None);
                }
            }
        } else {
            self.stats.replayed += 1;
        }
        entry.replay(model)?;
        // A copy: the next replay overwrites the graph's own output.
        Ok(entry.graph.as_ref().map(|(_, loss)| loss.copy()))
    }
}

/// The fixed-shape step a graph captures: forward over the static inputs,
/// the weighted loss over every position, backward (accumulating into the
/// parameters' gradients in place). Returns the weighted loss.
fn static_step(model: &Llama, s: &Static) -> Result<Tensor> {
    let mask = super::step::attention(s.varlen.as_ref(), s.mask.as_ref());
    let hidden = model.forward_hidden(&s.ids, &s.positions, mask, None)?;
    let d = hidden.size()[2];
    let (loss, surrogate) = chunked_lm_loss_weighted(
        &hidden.view([-1, d]),
        model.lm_head_weight(),
        &s.targets,
        &s.weights,
        DEFAULT_CHUNK,
    )?;
    surrogate.f_backward()?;
    Ok(loss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{micro_batches_in, Layout};
    use crate::data::TokenizedData;
    use smolsweep_model::llama::InitMode;
    use smolsweep_model::LlamaConfig;

    fn data(lens: &[usize]) -> TokenizedData {
        let mut d = TokenizedData {
            offsets: vec![0],
            ..Default::default()
        };
        for (k, &n) in lens.iter().enumerate() {
            for j in 0..n {
                d.ids.push(((7 * k + 3 * j) % 90 + 1) as u32);
                d.mask.push(u8::from(j >= n / 3));
            }
            d.offsets.push(d.ids.len() as u64);
        }
        d
    }

    fn model() -> Llama {
        Llama::new(
            LlamaConfig::tiny(97),
            Device::Cpu,
            Kind::Float,
            InitMode::Random { seed: 3 },
        )
        .expect("model")
    }

    fn grads(m: &Llama) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> =
            m.vs.variables()
                .into_iter()
                .map(|(n, t)| (n, t.grad().copy()))
                .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn zero(m: &Llama) {
        for (_, v) in m.vs.variables() {
            let mut v = v;
            v.zero_grad();
        }
    }

    /// Steps of micro-batches of several shapes (packed and padded, rows
    /// rounded to the quantum, each shape seen often enough to be warmed
    /// up, captured and replayed): through the static buffers, the
    /// weighted loss and the graph's life cycle, every step's loss and
    /// accumulated gradients equal the eager step's.
    #[test]
    fn the_static_step_equals_the_eager_step() {
        let lens = [5, 9, 3, 12, 7, 2, 11, 6, 4, 8];
        let d = data(&lens);
        let a: &[usize] = &[0, 1, 2, 3, 4];
        let b: &[usize] = &[5, 6, 7, 8, 9, 0, 3];
        let steps = [a, b, a, b, a, b, a, b];
        for packing in [true, false] {
            let layout = |q| Layout {
                micro_batch_size: 2,
                packing,
                max_len: 14,
                pad_id: 0,
                device: Device::Cpu,
                packed_mask: true,
                len_quantum: q,
            };
            let eager_model = model();
            let static_model = model();
            let mut graphs = StepGraphs::with(Engine::Simulated);
            for samples in steps {
                let plain = micro_batches_in(&d, samples, &layout(None));
                let padded = micro_batches_in(&d, samples, &layout(Some(8)));
                let labels: i64 = plain.iter().map(|m| m.label_tokens).sum();
                let (mut a, mut b) = (0.0, 0.0);
                for (p, q) in plain.iter().zip(&padded) {
                    let scale = 1.0 / labels as f64;
                    a += super::super::step::forward_backward(&eager_model, p, scale)
                        .expect("eager")
                        .double_value(&[]);
                    b += graphs
                        .run(&static_model, q, scale)
                        .expect("static")
                        .expect("ran")
                        .double_value(&[]);
                }
                assert!(
                    (a - b).abs() < 1e-6 * a.abs(),
                    "packing {packing}: {a} vs {b}"
                );
                for ((n, ga), (_, gb)) in grads(&eager_model).iter().zip(grads(&static_model)) {
                    let diff = (ga - &gb).abs().max().double_value(&[]);
                    let size = ga.abs().max().double_value(&[]);
                    assert!(
                        diff <= 1e-5 * size.max(1e-6),
                        "packing {packing}: {n} {diff} of {size}"
                    );
                }
                zero(&eager_model);
                zero(&static_model);
            }
            assert!(graphs.entries.len() >= 2, "several shapes");
            assert!(graphs.entries.keys().all(|s| s.len % 8 == 0 || s.len == 14));
            let st = graphs.stats;
            assert_eq!(st.captured, graphs.entries.len() as u64, "{st:?}");
            assert_eq!(st.warmup, WARMUP as u64 * st.captured, "{st:?}");
            assert!(st.replayed >= st.captured, "{st:?}");
            assert_eq!(st.eager, 0);
        }
    }

    /// Span offsets are padded with empty spans up to a power of two, on
    /// the device and on the host, and a refill with fewer spans leaves no
    /// stale offset behind.
    #[test]
    fn span_offsets_pad_with_empty_spans() {
        let d = data(&[3, 2, 4, 5, 8, 8]);
        let layout = Layout {
            micro_batch_size: 4,
            packing: true,
            max_len: 8,
            pad_id: 0,
            device: Device::Cpu,
            packed_mask: false,
            len_quantum: Some(8),
        };
        let first = micro_batches_in(&d, &[0, 1, 2, 3], &layout);
        // Rows [s0 s1 pad] [s2 pad] [s3 pad] (7 spans), then [s4] [s5]
        // [s3 pad] (4 spans): one shape.
        let second = micro_batches_in(&d, &[4, 5, 3], &layout);
        let shape = Shape::of(&first[0]).expect("shape");
        assert_eq!(shape, Shape::of(&second[0]).expect("shape"));
        assert_eq!(shape.spans, Some(MIN_SPANS));
        let mut s = Static::new(shape, Device::Cpu);
        for mb in [&first[0], &second[0]] {
            let src = mb.varlen.as_ref().expect("spans");
            s.fill(mb, 0.5);
            let v = s.varlen.as_ref().expect("static spans");
            let cu = Vec::<i32>::try_from(&v.cu_seqlens).expect("cu");
            let total = *src.offsets.last().expect("end");
            let mut want = src.offsets.clone();
            want.resize(MIN_SPANS as usize + 1, total);
            assert_eq!(cu, want);
            assert_eq!(v.offsets, want);
            assert_eq!(v.max_seqlen, 8);
            // Real tokens' positions are unchanged by the empty spans.
            assert_eq!(v.positions(), src.positions());
            let w = Vec::<f32>::try_from(&s.weights).expect("weights");
            let t = Vec::<i64>::try_from(&mb.targets).expect("targets");
            for (wi, ti) in w.iter().zip(&t) {
                assert_eq!(*wi, if *ti == -100 { 0.0 } else { 0.5 });
            }
        }
    }
}
