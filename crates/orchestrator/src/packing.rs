//! `slots_per_gpu = "auto"`: how many trials share one GPU, decided from
//! the GPU's memory and the peak memory the trials measured, instead of a
//! fixed number.
//!
//! The trainer reports the CUDA caching allocator's reserved peak (memory
//! the process holds and no other process can use) in `memory` events
//! after its first step, whenever it grows, and at the end. A GPU takes
//! its first trial unmeasured; a second only once every trial on it has a
//! figure (its own, or one measured by a trial of the same shape) and the
//! newcomer's figure fits beside them:
//!
//! ```text
//! sum over trials on the GPU (peak + CONTEXT) + foreign + (new peak + CONTEXT)
//!     <= total * (1 - MARGIN)
//! ```
//!
//! where `foreign` is what nvidia-smi counts as used beyond this sweep's
//! figures (other users, or a trial holding more than it reported). The
//! numbers and why:
//!
//! - [`CONTEXT_BYTES`], 512 MiB per process: what a process holds outside
//!   the caching allocator (the CUDA context and the kernels loaded into
//!   it), which the allocator's peak does not include but nvidia-smi does.
//!   A CUDA 12 context with lazy module loading is a few hundred MiB on
//!   Hopper; 512 MiB errs on the large side. Not yet measured here (the
//!   device check's "auto" row is where it would show).
//! - [`MARGIN`], 10 % of the GPU: fragmentation, a peak that grows after
//!   the first steps (longer unpacked batches), and the evaluation that
//!   runs in the same slot after training, which is not measured.
//!
//! A trial of a shape nothing measured yet is estimated from the others,
//! scaled up (never down) by its rows per micro-batch and, quadratically
//! for attention's scores, by its sequence length ([`estimate`]). An out
//! of memory on a GPU shared with other trials lowers that GPU's ceiling
//! to one trial fewer than ran there, and the trial is retried without
//! counting the attempt (the coordinator's side).

use std::collections::HashMap;

use smolsweep_config::sweep::AUTO_SLOTS_MAX;
use smolsweep_config::trial::default_for;
use smolsweep_config::Stage;

/// Bytes in a MiB (nvidia-smi reports MiB).
pub const MIB: u64 = 1 << 20;

/// Memory a trial process holds outside the caching allocator.
pub const CONTEXT_BYTES: u64 = 512 * MIB;

/// Fraction of a GPU's memory never planned for.
pub const MARGIN: f64 = 0.10;

/// One GPU's memory as nvidia-smi reports it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuMemory {
    pub total: u64,
    pub used: u64,
}

/// What a trial's memory grows with, from its config: the sequences one
/// micro-batch holds at most (`micro_batch_size`, or `batch_size` when
/// that is "auto"; preference pairs count two) and their length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub rows: u64,
    pub seq_len: u64,
}

impl Shape {
    /// The shape of a trial whose settings are `value(key)` (the sweep's
    /// `[train]` and the trial's grid point), defaults filled in from the
    /// trial schema.
    pub fn of<'a>(value: impl Fn(&str) -> Option<&'a toml::Value>) -> Shape {
        let stage: Stage = value("stage")
            .and_then(toml::Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(Stage::Sft);
        let int = |key: &str| {
            value(key)
                .cloned()
                .or_else(|| default_for(stage, key))
                .and_then(|v| v.as_integer())
                .map(|n| n.max(1) as u64)
        };
        let batch = int("batch_size").unwrap_or(1);
        // "auto" is at most what the trainer's probe starts from: the
        // batch, or half of it in pairs (each pair two sequences).
        let pairs = stage != Stage::Sft;
        let micro = match int("micro_batch_size") {
            Some(m) => m.min(batch),
            None if pairs => batch.div_ceil(2),
            None => batch,
        };
        let per = if pairs { 2 } else { 1 };
        Shape {
            rows: micro * per,
            seq_len: int("max_seq_len").unwrap_or(1),
        }
    }
}

/// The packing's settings (the constants above, and the cap).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub margin: f64,
    pub context_bytes: u64,
    pub max_per_gpu: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            margin: MARGIN,
            context_bytes: CONTEXT_BYTES,
            max_per_gpu: AUTO_SLOTS_MAX,
        }
    }
}

/// Whether a GPU takes one more trial now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing runs there: a trial alone is what one slot per GPU does.
    Alone,
    /// It fits: `need` bytes planned of `budget`.
    Fits { need: u64, budget: u64 },
    /// As many as the cap (or the ceiling an out of memory left) allow.
    Full { limit: u32 },
    /// A trial there, or the newcomer, has no figure yet.
    Unmeasured,
    /// nvidia-smi said nothing about this GPU.
    NoMemoryInfo,
    /// It would not fit: `need` bytes against `budget`.
    NoRoom { need: u64, budget: u64 },
}

impl Decision {
    pub fn admits(&self) -> bool {
        matches!(self, Decision::Alone | Decision::Fits { .. })
    }
}

/// Whether a GPU with `gpu` memory, running trials needing `running`
/// bytes each (None: no figure), takes one needing `candidate`, with at
/// most `ceiling` trials there.
pub fn admit(
    policy: &Policy,
    gpu: Option<GpuMemory>,
    running: &[Option<u64>],
    candidate: Option<u64>,
    ceiling: u32,
) -> Decision {
    if running.is_empty() {
        return Decision::Alone;
    }
    let limit = policy.max_per_gpu.min(ceiling).max(1);
    if running.len() >= limit as usize {
        return Decision::Full { limit };
    }
    let Some(gpu) = gpu else {
        return Decision::NoMemoryInfo;
    };
    let (Some(candidate), Some(ours)) = (
        candidate,
        running
            .iter()
            .try_fold(0u64, |sum, r| Some(sum + (*r)? + policy.context_bytes)),
    ) else {
        return Decision::Unmeasured;
    };
    let foreign = gpu.used.saturating_sub(ours);
    let need = ours + foreign + candidate + policy.context_bytes;
    let budget = (gpu.total as f64 * (1.0 - policy.margin)) as u64;
    if need <= budget {
        Decision::Fits { need, budget }
    } else {
        Decision::NoRoom { need, budget }
    }
}

/// The figure for a trial of `shape` from the peaks measured so far: the
/// largest of its own shape's, else the largest of any, scaled up by
/// rows and (squared) sequence length where `shape` is bigger. None
/// before any measurement.
pub fn estimate(shape: Shape, measured: &[(Shape, u64)]) -> Option<u64> {
    let same = measured
        .iter()
        .filter(|(s, _)| *s == shape)
        .map(|&(_, p)| p)
        .max();
    same.or_else(|| {
        measured
            .iter()
            .map(|&(s, p)| {
                let rows = (shape.rows as f64 / s.rows.max(1) as f64).max(1.0);
                let len = (shape.seq_len as f64 / s.seq_len.max(1) as f64).max(1.0);
                (p as f64 * rows * len * len).ceil() as u64
            })
            .max()
    })
}

/// A trial running under the packing.
#[derive(Debug, Clone)]
struct Running {
    gpu: String,
    shape: Shape,
    /// The most other trials that shared its GPU while it ran.
    neighbours: usize,
}

/// The packing's state over a sweep run: what was measured, what runs
/// where, and the GPUs' ceilings after an out of memory.
#[derive(Debug, Default)]
pub struct Packer {
    policy: Policy,
    /// Each trial's largest reported peak, with its shape.
    measured: HashMap<i64, (Shape, u64)>,
    running: HashMap<i64, Running>,
    /// GPUs whose ceiling an out of memory lowered.
    ceiling: HashMap<String, u32>,
}

impl Packer {
    pub fn new(policy: Policy) -> Self {
        Packer {
            policy,
            ..Packer::default()
        }
    }

    /// A trial's peak, as its `memory` event reported it (the largest
    /// one counts).
    pub fn measured(&mut self, trial: i64, shape: Shape, peak: u64) {
        let e = self.measured.entry(trial).or_insert((shape, 0));
        e.1 = e.1.max(peak);
    }

    /// The bytes a trial is planned at: its own peak, else the estimate
    /// for its shape.
    pub fn need(&self, trial: Option<i64>, shape: Shape) -> Option<u64> {
        if let Some(&(_, p)) = trial.and_then(|t| self.measured.get(&t)) {
            return Some(p);
        }
        let all: Vec<(Shape, u64)> = self.measured.values().copied().collect();
        estimate(shape, &all)
    }

    /// Trials running on `gpu`.
    pub fn on(&self, gpu: &str) -> usize {
        self.running.values().filter(|r| r.gpu == gpu).count()
    }

    /// At most this many trials on `gpu`.
    pub fn ceiling(&self, gpu: &str) -> u32 {
        self.ceiling
            .get(gpu)
            .copied()
            .unwrap_or(self.policy.max_per_gpu)
    }

    /// Whether `gpu` (with `memory`) takes trial `trial` of `shape` now.
    pub fn decide(
        &self,
        gpu: &str,
        memory: Option<GpuMemory>,
        trial: Option<i64>,
        shape: Shape,
    ) -> Decision {
        let running: Vec<Option<u64>> = self
            .running
            .iter()
            .filter(|(_, r)| r.gpu == gpu)
            .map(|(&id, r)| self.need(Some(id), r.shape))
            .collect();
        admit(
            &self.policy,
            memory,
            &running,
            self.need(trial, shape),
            self.ceiling(gpu),
        )
    }

    /// Trial `trial` of `shape` started on `gpu`.
    pub fn started(&mut self, trial: i64, gpu: &str, shape: Shape) {
        let neighbours = self.on(gpu);
        for r in self.running.values_mut().filter(|r| r.gpu == gpu) {
            r.neighbours = r.neighbours.max(neighbours);
        }
        self.running.insert(
            trial,
            Running {
                gpu: gpu.to_string(),
                shape,
                neighbours,
            },
        );
    }

    /// Trial `trial` left its GPU; the most neighbours it had there.
    pub fn finished(&mut self, trial: i64) -> usize {
        self.running.remove(&trial).map_or(0, |r| r.neighbours)
    }

    /// An out of memory on `gpu` while `together` trials ran there: at
    /// most one fewer from now on. Returns the new ceiling.
    pub fn out_of_memory(&mut self, gpu: &str, together: usize) -> u32 {
        let lower = (together.saturating_sub(1) as u32).max(1);
        let c = self.ceiling(gpu).min(lower);
        self.ceiling.insert(gpu.to_string(), c);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn h100(used: u64) -> Option<GpuMemory> {
        Some(GpuMemory {
            total: 80 * GIB,
            used,
        })
    }

    fn policy() -> Policy {
        Policy::default()
    }

    #[test]
    fn an_empty_gpu_takes_a_trial_measured_or_not() {
        let p = policy();
        assert_eq!(admit(&p, None, &[], None, 8), Decision::Alone);
        assert_eq!(admit(&p, h100(0), &[], Some(200 * GIB), 8), Decision::Alone);
    }

    #[test]
    fn no_second_trial_before_a_measurement() {
        let p = policy();
        assert_eq!(
            admit(&p, h100(GIB), &[None], Some(GIB), 8),
            Decision::Unmeasured
        );
        assert_eq!(
            admit(&p, h100(GIB), &[Some(GIB)], None, 8),
            Decision::Unmeasured
        );
        assert_eq!(
            admit(&p, None, &[Some(GIB)], Some(GIB), 8),
            Decision::NoMemoryInfo
        );
    }

    /// 80 GiB less 10 % is 72 GiB; 15 GiB trials with 0.5 GiB of context
    /// each: four need 62 GiB, a fifth 77.5 GiB.
    #[test]
    fn trials_are_admitted_while_they_fit() {
        let p = policy();
        let t = Some(15 * GIB);
        let budget = (80.0 * GIB as f64 * 0.9) as u64;
        for n in 1..4 {
            let running = vec![t; n];
            let d = admit(&p, h100(0), &running, t, 8);
            assert_eq!(
                d,
                Decision::Fits {
                    need: (n as u64 + 1) * (15 * GIB + CONTEXT_BYTES),
                    budget
                },
                "{n} running"
            );
        }
        let d = admit(&p, h100(0), &[t; 4], t, 8);
        assert!(matches!(d, Decision::NoRoom { .. }), "{d:?}");
    }

    /// What nvidia-smi counts beyond our figures (another user's process)
    /// is planned around; used memory within our figures is not counted
    /// twice.
    #[test]
    fn foreign_memory_takes_room_ours_does_not_count_twice() {
        let p = policy();
        let t = Some(15 * GIB);
        // Ours hold 2 x 15.5 GiB; used 31 GiB is ours alone.
        assert!(admit(&p, h100(31 * GIB), &[t, t], t, 8).admits());
        // 30 GiB more than ours is someone else's: 46.5 + 30 > 72.
        let d = admit(&p, h100(61 * GIB), &[t, t], t, 8);
        assert!(matches!(d, Decision::NoRoom { .. }), "{d:?}");
    }

    #[test]
    fn the_cap_and_an_oom_ceiling_bound_the_count() {
        let p = Policy {
            max_per_gpu: 3,
            ..policy()
        };
        let tiny = Some(GIB / 4);
        assert!(admit(&p, h100(0), &[tiny; 2], tiny, 8).admits());
        assert_eq!(
            admit(&p, h100(0), &[tiny; 3], tiny, 8),
            Decision::Full { limit: 3 }
        );
        assert_eq!(
            admit(&p, h100(0), &[tiny; 2], tiny, 2),
            Decision::Full { limit: 2 }
        );
        // A ceiling never stops the first trial.
        assert_eq!(admit(&p, h100(0), &[], tiny, 0), Decision::Alone);
    }

    #[test]
    fn an_unmeasured_shape_is_scaled_up_from_the_others_never_down() {
        let s8 = Shape {
            rows: 8,
            seq_len: 2048,
        };
        let s16 = Shape {
            rows: 16,
            seq_len: 2048,
        };
        let s4 = Shape {
            rows: 4,
            seq_len: 2048,
        };
        let long = Shape {
            rows: 8,
            seq_len: 4096,
        };
        assert_eq!(estimate(s8, &[]), None);
        let m = [(s8, 10 * GIB), (s8, 12 * GIB)];
        assert_eq!(estimate(s8, &m), Some(12 * GIB), "the largest of the shape");
        assert_eq!(estimate(s16, &m), Some(24 * GIB), "twice the rows");
        assert_eq!(estimate(s4, &m), Some(12 * GIB), "never scaled down");
        assert_eq!(estimate(long, &m), Some(48 * GIB), "length squared");
        // Its own shape's figure wins over a larger scaled one.
        assert_eq!(estimate(s8, &[(s8, GIB), (s4, 10 * GIB)]), Some(GIB));
    }

    #[test]
    fn a_shape_is_read_with_the_schemas_defaults() {
        let t: toml::Table = "batch_size = 16\n".parse().expect("toml");
        let of = |t: &toml::Table| Shape::of(|k| t.get(k));
        // micro_batch_size "auto": up to the batch; max_seq_len's default.
        assert_eq!(
            of(&t),
            Shape {
                rows: 16,
                seq_len: 4096
            }
        );
        let t: toml::Table = "batch_size = 16\nmicro_batch_size = 4\nmax_seq_len = 2048\n"
            .parse()
            .expect("toml");
        assert_eq!(
            of(&t),
            Shape {
                rows: 4,
                seq_len: 2048
            }
        );
        // DPO: pairs count twice, and its own max_seq_len default.
        let t: toml::Table = "stage = \"dpo\"\nbatch_size = 8\nmicro_batch_size = 2\n"
            .parse()
            .expect("toml");
        assert_eq!(
            of(&t),
            Shape {
                rows: 4,
                seq_len: 2048
            }
        );
        let t: toml::Table = "stage = \"rm\"\nbatch_size = 7\n".parse().expect("toml");
        assert_eq!(of(&t).rows, 8, "auto: 4 pairs of 2");
    }

    /// The state: the second trial waits for the first's figure, then
    /// trials join while they fit; an out of memory lowers the ceiling.
    #[test]
    fn the_packer_follows_measurements_and_ooms() {
        let s = Shape {
            rows: 8,
            seq_len: 2048,
        };
        let mut k = Packer::new(policy());
        let mem = h100(0);
        assert_eq!(k.decide("0", mem, Some(1), s), Decision::Alone);
        k.started(1, "0", s);
        assert_eq!(k.decide("0", mem, Some(2), s), Decision::Unmeasured);
        // Another GPU is free meanwhile.
        assert_eq!(k.decide("1", mem, Some(2), s), Decision::Alone);
        k.measured(1, s, 20 * GIB);
        k.measured(1, s, 18 * GIB);
        assert_eq!(k.need(Some(1), s), Some(20 * GIB), "the largest counts");
        assert!(k.decide("0", mem, Some(2), s).admits());
        k.started(2, "0", s);
        k.started(3, "0", s);
        // 4 x 20.5 GiB > 72 GiB.
        let d = k.decide("0", mem, Some(4), s);
        assert!(matches!(d, Decision::NoRoom { .. }), "{d:?}");
        assert_eq!(k.on("0"), 3);
        // Trial 3 ran out of memory beside two others.
        assert_eq!(k.finished(3), 2);
        assert_eq!(k.out_of_memory("0", 3), 2);
        assert_eq!(k.decide("0", mem, Some(3), s), Decision::Full { limit: 2 });
        assert_eq!(k.finished(1), 2, "it saw two neighbours at most");
        assert!(k.decide("0", mem, Some(3), s).admits());
        // The ceiling only goes down, and never below one.
        assert_eq!(k.out_of_memory("0", 5), 2);
        assert_eq!(k.out_of_memory("0", 1), 1);
    }
}
