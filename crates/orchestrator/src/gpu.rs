//! Which GPUs a sweep fans out over, and the slots that follow from them.
//!
//! Detection asks `nvidia-smi` first (it sees every device without creating
//! a CUDA context in the orchestrator), then a fallback the caller supplies
//! (the CLI passes libtorch's device count). `SMOLSWEEP_SIMULATE_GPUS=N`
//! pretends N GPUs exist: trials still run wherever `[train] device` says
//! (the CPU, in tests), but each slot gets its own CUDA_VISIBLE_DEVICES, so
//! fan-out can be exercised on a machine without GPUs.

use std::collections::HashMap;

use smolsweep_config::sweep::{Gpus, Resources, Slots};

use crate::packing::{GpuMemory, MIB};

/// The environment variable that simulates GPUs for fan-out tests.
pub const SIMULATE_ENV: &str = "SMOLSWEEP_SIMULATE_GPUS";

/// Where a trial may run: its slot number and the CUDA_VISIBLE_DEVICES it
/// gets (empty: CPU, no GPU visible).
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub index: usize,
    pub cuda_visible_devices: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: resources.gpus: {message}")]
pub struct GpuError {
    pub file: String,
    pub message: String,
}

/// The GPU indices present on this machine.
pub fn detect(fallback: Option<&dyn Fn() -> usize>) -> Vec<u32> {
    if let Some(n) = std::env::var(SIMULATE_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        return (0..n).collect();
    }
    if let Ok(out) = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index", "--format=csv,noheader"])
        .stderr(std::process::Stdio::null())
        .output()
    {
        if out.status.success() {
            let found: Vec<u32> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
    }
    fallback
        .map(|f| (0..f() as u32).collect())
        .unwrap_or_default()
}

/// Slots for `resources` given the detected GPUs. GPUs are interleaved
/// (slot 0 on GPU a, slot 1 on GPU b, ...) so that a sweep smaller than
/// the slot count still spreads over every GPU. No GPU: `slots_per_gpu`
/// CPU slots. `"auto"` makes its cap of slots per GPU (the packing decides
/// how many are used), and without GPUs one CPU slot.
pub fn slots(resources: &Resources, detected: &[u32], file: &str) -> Result<Vec<Slot>, GpuError> {
    let gpus: Vec<u32> = match &resources.gpus {
        Gpus::Auto => detected.to_vec(),
        Gpus::List(list) => {
            for g in list {
                if !detected.contains(g) {
                    return Err(GpuError {
                        file: file.to_string(),
                        message: format!(
                            "GPU {g} not found (detected: {})",
                            if detected.is_empty() {
                                "none".to_string()
                            } else {
                                detected
                                    .iter()
                                    .map(u32::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    });
                }
            }
            list.clone()
        }
    };
    let per = match resources.slots_per_gpu {
        Slots::Fixed(n) => n as usize,
        Slots::Auto if gpus.is_empty() => 1,
        Slots::Auto => Slots::Auto.max_per_gpu() as usize,
    };
    let mut out = Vec::new();
    if gpus.is_empty() {
        for i in 0..per {
            out.push(Slot {
                index: i,
                cuda_visible_devices: String::new(),
            });
        }
    } else {
        for _ in 0..per {
            for g in &gpus {
                out.push(Slot {
                    index: out.len(),
                    cuda_visible_devices: g.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// The first slot of each GPU (all of them on the CPU): where work that
/// the packing does not measure (evaluations outside a trial) runs under
/// `slots_per_gpu = "auto"`, one per GPU.
pub fn one_per_gpu(slots: &[Slot]) -> Vec<Slot> {
    let mut seen = std::collections::HashSet::new();
    slots
        .iter()
        .filter(|s| {
            s.cuda_visible_devices.is_empty() || seen.insert(s.cuda_visible_devices.clone())
        })
        .cloned()
        .collect()
}

/// Every GPU's total and used memory, by index, from `nvidia-smi` (run
/// without blocking the coordinator). None when it cannot say.
pub async fn memory() -> Option<HashMap<String, GpuMemory>> {
    let out = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,memory.total,memory.used",
            "--format=csv,noheader,nounits",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let found = parse_memory(&String::from_utf8_lossy(&out.stdout));
    (!found.is_empty()).then_some(found)
}

/// `index, total MiB, used MiB` lines; lines that do not parse (a GPU
/// that reports "[N/A]") are left out.
pub fn parse_memory(text: &str) -> HashMap<String, GpuMemory> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let [index, total, used] = f[..] else {
                return None;
            };
            let index: u32 = index.parse().ok()?;
            let total: u64 = total.parse().ok()?;
            let used: u64 = used.parse().ok()?;
            Some((
                index.to_string(),
                GpuMemory {
                    total: total * MIB,
                    used: used * MIB,
                },
            ))
        })
        .collect()
}

/// Intra-op threads for each trial when every slot is a CPU slot: the
/// machine's cores shared out between the slots. Without it every trial
/// would start one thread per core, and N trials on N cores would fight
/// over them: two demo trainers at once on 2 cores took 51 s with 2
/// threads each against 11 s with 1 (150 steps, median of 3). `None` with
/// GPUs (the CPU side of a GPU trial is light), or when
/// the user has set OMP_NUM_THREADS themselves.
pub fn cpu_threads(slots: &[Slot]) -> Option<usize> {
    if slots.is_empty()
        || slots.iter().any(|s| !s.cuda_visible_devices.is_empty())
        || std::env::var_os("OMP_NUM_THREADS").is_some()
    {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((cores / slots.len()).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_gpus() {
        let r = Resources {
            gpus: Gpus::Auto,
            slots_per_gpu: Slots::Fixed(2),
            max_retries: 0,
            ..Resources::default()
        };
        let s = slots(&r, &[0, 1], "f").expect("slots");
        let cvd: Vec<&str> = s.iter().map(|s| s.cuda_visible_devices.as_str()).collect();
        assert_eq!(cvd, ["0", "1", "0", "1"]);
        let cpu = slots(&r, &[], "f").expect("slots");
        assert_eq!(cpu.len(), 2);
        assert_eq!(cpu_threads(&s), None, "GPU slots keep libtorch's default");
        if std::env::var_os("OMP_NUM_THREADS").is_none() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            assert_eq!(cpu_threads(&cpu), Some((cores / 2).max(1)));
        }
        let bad = Resources {
            gpus: Gpus::List(vec![3]),
            ..r.clone()
        };
        assert!(slots(&bad, &[0], "f").is_err());
    }

    /// `gpus = []` is "CPU only, even on a GPU machine": CPU slots whose
    /// CUDA_VISIBLE_DEVICES is empty, so a trial's `device = "auto"` sees
    /// no GPU.
    #[test]
    fn an_empty_gpu_list_means_cpu_only() {
        let r = Resources {
            gpus: Gpus::List(vec![]),
            slots_per_gpu: Slots::Fixed(2),
            max_retries: 0,
            ..Resources::default()
        };
        let s = slots(&r, &[0, 1, 2, 3], "f").expect("slots");
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.cuda_visible_devices.is_empty()));
    }

    /// "auto" makes the cap of slots on each GPU, interleaved, and one
    /// CPU slot without GPUs.
    #[test]
    fn auto_slots_are_the_cap_per_gpu_or_one_cpu_slot() {
        let r = Resources {
            slots_per_gpu: Slots::Auto,
            ..Resources::default()
        };
        let s = slots(&r, &[0, 1], "f").expect("slots");
        assert_eq!(
            s.len(),
            2 * smolsweep_config::sweep::AUTO_SLOTS_MAX as usize
        );
        assert_eq!(s[0].cuda_visible_devices, "0");
        assert_eq!(s[1].cuda_visible_devices, "1");
        let first: Vec<String> = one_per_gpu(&s)
            .into_iter()
            .map(|s| s.cuda_visible_devices)
            .collect();
        assert_eq!(first, ["0", "1"]);
        let cpu = slots(&r, &[], "f").expect("slots");
        assert_eq!(cpu.len(), 1);
        assert!(cpu[0].cuda_visible_devices.is_empty());
        assert_eq!(one_per_gpu(&cpu).len(), 1);
    }

    #[test]
    fn nvidia_smi_memory_lines_parse() {
        let m = parse_memory("0, 81559, 1024\n1, 81559, [N/A]\nnot a gpu\n 2 ,100, 0 \n");
        assert_eq!(m.len(), 2);
        assert_eq!(
            m["0"],
            GpuMemory {
                total: 81559 * MIB,
                used: 1024 * MIB
            }
        );
        assert_eq!(m["2"].total, 100 * MIB);
    }
}
