//! `slots_per_gpu = "auto"` end to end on a fake GPU: a stand-in
//! `nvidia-smi` on PATH (tests/fixtures/sweeps/standin/nvidia-smi) whose
//! used memory is what the stand-in trials hold, and stand-in trials that
//! hold a peak from their first step and report it in a `memory` event as
//! the trainer does. The number of trials at once rises from one (before a
//! measurement) to what fits, and drops after an out of memory, which is
//! retried without counting as an attempt.

use crate::orchestrator_helpers::*;

/// A sweep of six trials on one fake 10000 MiB GPU, each holding 1500 MiB
/// (+ 512 MiB of context): 90 % of the GPU plans for four of them.
fn packed(env: &[(&str, &str)]) -> Sweep {
    let s = Sweep::new(
        24,
        "lr = [1e-5, 2e-5, 3e-5]\nseed = [1, 2]",
        "[resources]\nslots_per_gpu = \"auto\"\nmax_retries = 0\n",
    );
    let memory = s.dir.path().join("gpu-memory");
    let path = format!(
        "{}:{}",
        fixtures().join("standin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut s = s
        .env("PATH", &path)
        .env("STANDIN_GPU_MEMORY_DIR", memory.to_str().expect("utf-8"))
        .env("STANDIN_GPU_TOTAL_MIB", "10000")
        .env("STANDIN_PEAK_MIB", "1500")
        .env("STANDIN_STEP_SECONDS", "0.1")
        // The packing's decisions are info lines.
        .env("SMOLSWEEP_LOG", "info");
    for (k, v) in env {
        s = s.env(k, v);
    }
    s
}

/// Train processes as (start, end) from the stand-in's ledger.
fn trains(s: &Sweep) -> Vec<(f64, f64)> {
    s.ledger_entries()
        .into_iter()
        .filter(|e| e["stage"] == "train")
        .map(|e| {
            (
                e["start"].as_f64().expect("start"),
                e["end"].as_f64().expect("end"),
            )
        })
        .collect()
}

/// The most processes running at once at any moment after `after`.
fn most_at_once(spans: &[(f64, f64)], after: f64) -> usize {
    let mut edges: Vec<(f64, i32)> = spans.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
    // An end before a start at the same instant.
    edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (t, d) in edges {
        now += d;
        if t > after {
            most = most.max(now);
        }
    }
    most as usize
}

fn attempts_and_states(s: &Sweep) -> Vec<(String, i64)> {
    s.trials()
        .iter()
        .map(|t| {
            (
                t["state"].as_str().expect("state").to_string(),
                t["attempt"].as_i64().expect("attempt"),
            )
        })
        .collect()
}

#[test]
fn auto_slots_start_with_one_trial_then_pack_as_many_as_fit() {
    let s = packed(&[]);
    let o = s.run();
    assert_ok(&o);
    assert_eq!(
        attempts_and_states(&s),
        vec![("completed".to_string(), 1); 6]
    );
    let spans = trains(&s);
    assert_eq!(spans.len(), 6, "{spans:?}");
    assert!(
        s.ledger_entries().iter().all(|e| e["cvd"] == "0"),
        "all on the one GPU"
    );
    // Four fit in 90 % of 10000 MiB at 2012 MiB each; five do not.
    assert_eq!(most_at_once(&spans, 0.0), 4, "{spans:?}\n{}", stderr(&o));
    // The second trial was claimed only after the first one's memory
    // event was recorded: one trial per GPU until a measurement exists.
    let order: Vec<String> = s
        .sql("SELECT kind FROM events WHERE kind IN ('claimed', 'train.memory') ORDER BY id")
        .into_iter()
        .map(|r| r[0].as_str().expect("kind").to_string())
        .collect();
    let second_claim = order
        .iter()
        .enumerate()
        .filter(|(_, k)| *k == "claimed")
        .nth(1)
        .map(|(i, _)| i)
        .expect("a second claim");
    let first_memory = order
        .iter()
        .position(|k| k == "train.memory")
        .expect("a memory event");
    assert!(first_memory < second_claim, "{order:?}");
    assert!(
        stderr(&o).contains("packing: trial"),
        "the joins are logged: {}",
        stderr(&o)
    );
}

#[test]
fn an_out_of_memory_beside_others_is_retried_uncounted_with_fewer_neighbours() {
    // At step 18 (late enough for the others to have joined) every trial
    // needs 2500 MiB more: four at once no longer fit, and one that finds
    // the GPU full dies as libtorch does.
    let s = packed(&[("STANDIN_GROW_AT_STEP", "18"), ("STANDIN_GROW_MIB", "2500")]);
    let o = s.run();
    assert_ok(&o);
    // max_retries = 0: a counted failure would have failed the trial.
    assert_eq!(
        attempts_and_states(&s),
        vec![("completed".to_string(), 1); 6],
        "{}",
        stderr(&o)
    );
    let requeued =
        s.sql("SELECT at, data_json FROM events WHERE kind = 'requeued_out_of_memory' ORDER BY id");
    assert!(!requeued.is_empty(), "no out of memory: {}", stderr(&o));
    let last = requeued.last().expect("one");
    let at = last[0].as_f64().expect("at");
    let why: serde_json::Value =
        serde_json::from_str(last[1].as_str().expect("json")).expect("why");
    assert!(
        why["reason"]
            .as_str()
            .is_some_and(|r| r.contains("CUDA out of memory")),
        "{why}"
    );
    assert!(why["neighbours"].as_u64().is_some_and(|n| n >= 1), "{why}");
    let ceiling = why["ceiling"].as_u64().expect("ceiling") as usize;
    let spans = trains(&s);
    assert_eq!(most_at_once(&spans, 0.0), 4, "{spans:?}");
    assert!(ceiling < 4, "{why}");
    assert!(
        most_at_once(&spans, at) <= ceiling,
        "after the last out of memory at most {ceiling} at once: {spans:?}"
    );
    assert!(
        stderr(&o).contains("not counted as an attempt"),
        "{}",
        stderr(&o)
    );
}

/// Without GPUs "auto" is the CPU behaviour: one slot, said once.
#[test]
fn auto_slots_without_a_gpu_are_one_cpu_slot() {
    let s = Sweep::new(
        5,
        "lr = [1e-5, 2e-5]",
        "[resources]\ngpus = []\nslots_per_gpu = \"auto\"\n",
    )
    .env("SMOLSWEEP_LOG", "info");
    let o = s.run();
    assert_ok(&o);
    assert_eq!(most_at_once(&trains(&s), 0.0), 1);
    assert_eq!(
        stderr(&o).matches("without a GPU: one CPU slot").count(),
        1,
        "{}",
        stderr(&o)
    );
}
