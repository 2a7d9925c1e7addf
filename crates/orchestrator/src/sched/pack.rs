//! `slots_per_gpu = "auto"` in the coordinator's loop: which free slot
//! takes the next pending trial (the decision is
//! [`crate::packing`]'s), the measurements a previous run recorded, and
//! what an out of memory beside other trials means (a retry that does not
//! count, and one trial fewer on that GPU).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value as Json;
use smolsweep_config::{SweepSpec, TrainEvent};

use super::{trial, Ctx, RunError};
use crate::gpu::{self, Slot};
use crate::packing::{Decision, GpuMemory, Packer, Policy, Shape, MIB};
use crate::store::{Store, Trial, TrialOutcome};

/// The packing's state and what the loop already said about it.
pub(super) struct Pack {
    pub packer: Arc<Mutex<Packer>>,
    /// The kind of wait last reported per GPU (said once, not per round,
    /// and not again for every change in its numbers).
    said: HashMap<String, std::mem::Discriminant<Decision>>,
}

/// A trial's shape, from the spec's `[train]` and its grid point.
pub(super) fn shape(spec: &SweepSpec, t: &Trial) -> Shape {
    let point = trial::point_of(t);
    Shape::of(|k| spec.value(&point, k))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1024 * MIB) as f64)
}

impl Pack {
    /// The packing for `spec`, with the peaks its trials reported in
    /// earlier runs (the `train.memory` events of the record).
    pub(super) async fn load(spec: &SweepSpec, store: &Store) -> Result<Pack, RunError> {
        let mut packer = Packer::new(Policy::default());
        let trials: HashMap<i64, Trial> = store
            .trials()
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        for e in store.events(&["train.memory"]).await? {
            let (Some(t), Some(data)) = (e.trial_id.and_then(|id| trials.get(&id)), e.data_json)
            else {
                continue;
            };
            if let Some(TrainEvent::Memory {
                peak_reserved_bytes,
                ..
            }) = TrainEvent::parse(&data)
            {
                packer.measured(t.id, shape(spec, t), peak_reserved_bytes);
            }
        }
        Ok(Pack {
            packer: Arc::new(Mutex::new(packer)),
            said: HashMap::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Packer> {
        // A trial task that panicked while holding it left numbers that
        // are still numbers.
        self.packer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An orphan adopted into `slot`: it holds its GPU like any other.
    pub(super) fn adopted(&self, spec: &SweepSpec, t: &Trial, slot: &Slot) {
        self.lock()
            .started(t.id, &slot.cuda_visible_devices, shape(spec, t));
    }

    /// Claims pending trials into free slots while the packing admits
    /// them; each comes back with its slot, to be started.
    pub(super) async fn fill(
        &mut self,
        ctx: &Ctx,
        free: &mut VecDeque<Slot>,
    ) -> Result<Vec<(Trial, Slot)>, RunError> {
        let mut started = Vec::new();
        // nvidia-smi once per round at most, and only when a decision
        // needs it.
        let mut memory: Option<Option<HashMap<String, GpuMemory>>> = None;
        let mut refused: Vec<String> = Vec::new();
        let mut i = 0;
        while i < free.len() {
            let gpu = free[i].cuda_visible_devices.clone();
            if refused.contains(&gpu) {
                i += 1;
                continue;
            }
            let Some(next) = ctx.store.next_pending().await? else {
                break;
            };
            let shape = shape(&ctx.spec, &next);
            let mut d = self.lock().decide(&gpu, None, Some(next.id), shape);
            if d == Decision::NoMemoryInfo {
                if memory.is_none() {
                    memory = Some(gpu::memory().await);
                }
                let m = memory.as_ref().and_then(|m| m.as_ref()?.get(&gpu).copied());
                d = self.lock().decide(&gpu, m, Some(next.id), shape);
            }
            if !d.admits() {
                self.say_wait(&gpu, &d);
                refused.push(gpu);
                i += 1;
                continue;
            }
            let Some(slot) = free.remove(i) else { break };
            let Some(t) = ctx
                .store
                .claim_trial(slot.index, &slot.cuda_visible_devices, Some(next.id))
                .await?
            else {
                free.insert(i, slot);
                break;
            };
            let beside = self.lock().on(&gpu);
            match d {
                Decision::Fits { need, budget } => tracing::info!(
                    trial = t.id,
                    gpu = %gpu,
                    "packing: trial {} joins {beside} on GPU {gpu} ({} planned of {})",
                    t.id,
                    gib(need),
                    gib(budget)
                ),
                _ => tracing::debug!(trial = t.id, gpu = %gpu, "packing: trial alone on its GPU"),
            }
            self.said.remove(&gpu);
            self.lock().started(t.id, &gpu, shape);
            started.push((t, slot));
        }
        Ok(started)
    }

    /// Why a GPU waits, once per change of reason.
    fn say_wait(&mut self, gpu: &str, d: &Decision) {
        let why = match d {
            Decision::Full { limit } => format!("{limit} trial(s) there, its limit"),
            Decision::Unmeasured => {
                "waiting for a trial's peak memory (its first step) before packing more".into()
            }
            Decision::NoMemoryInfo => {
                "nvidia-smi reports no memory for it: one trial at a time".into()
            }
            Decision::NoRoom { need, budget } => format!(
                "another trial would need {} of its {} budget",
                gib(*need),
                gib(*budget)
            ),
            Decision::Alone | Decision::Fits { .. } => return,
        };
        let kind = std::mem::discriminant(d);
        if self.said.get(gpu) != Some(&kind) {
            if *d == Decision::NoMemoryInfo {
                tracing::warn!(gpu, "packing: GPU {gpu}: {why}");
            } else {
                tracing::info!(gpu, "packing: GPU {gpu}: {why}");
            }
            self.said.insert(gpu.to_string(), kind);
        }
    }

    /// Trial `t` left `slot` with `outcome`. An out of memory beside
    /// other trials comes back as `(neighbours, new ceiling, why)`: to be
    /// retried without counting the attempt.
    pub(super) fn finished(
        &self,
        t: &Trial,
        slot: &Slot,
        outcome: &TrialOutcome,
    ) -> Option<(usize, u32, Json)> {
        let mut p = self.lock();
        let neighbours = p.finished(t.id);
        let TrialOutcome::OutOfMemory { stage, reason, .. } = outcome else {
            return None;
        };
        if neighbours == 0 {
            // Alone on its GPU: the trial itself does not fit, a failure.
            return None;
        }
        let gpu = &slot.cuda_visible_devices;
        let ceiling = p.out_of_memory(gpu, neighbours + 1);
        let why = serde_json::json!({
            "gpu": gpu,
            "stage": stage,
            "neighbours": neighbours,
            "ceiling": ceiling,
            "reason": reason,
            "attempt": t.attempt,
        });
        Some((neighbours, ceiling, why))
    }
}
