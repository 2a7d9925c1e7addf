//! Chaos: a 3x3 sweep on CPU with three slots, its orchestrator SIGKILLed
//! at random moments — sometimes with every process of the sweep (as a
//! reboot does), sometimes alone, leaving its trial processes running (as
//! the OOM killer does) — then run to completion. Every grid point must be
//! completed exactly once, no trial may ever have run twice at the same
//! time, and every score must equal an uninterrupted run's.
//!
//! The kill moments come from a seed printed at the start
//! (`SMOLSWEEP_CHAOS_SEED` replays one).

use std::time::{Duration, Instant};

use crate::orchestrator_helpers::*;

const GRID: &str = "lr = [1e-5, 3e-5, 1e-4]\nbatch_size = [4, 8, 16]";
const RESOURCES: &str = "[resources]\nslots_per_gpu = 3\nmax_retries = 0\n";

/// xorshift64*: enough randomness for kill times without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sweep(real: bool) -> Sweep {
    // max_retries = 0: no kill may ever count as a failure of a trial.
    if real {
        Sweep::new_real(60, GRID, RESOURCES)
    } else {
        Sweep::new(60, GRID, RESOURCES)
    }
}

/// With the deterministic stand-in: fast, and it reports any moment two
/// processes worked on one trial.
#[test]
fn chaos_kills_never_lose_or_duplicate_a_result() {
    chaos(false);
}

/// With the real `smolsweep train` and `smolsweep eval` on a tiny random
/// model: the product's own checkpoints, `--resume` and SIGTERM handling.
#[test]
fn chaos_with_the_real_trainer_and_evaluator() {
    chaos(true);
}

fn chaos(real: bool) {
    let seed = std::env::var("SMOLSWEEP_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("chaos seed {seed} (replay with SMOLSWEEP_CHAOS_SEED={seed})");
    let mut rng = Rng(seed);

    let reference = sweep(real);
    let t = Instant::now();
    let o = reference.run();
    assert!(o.status.success(), "reference run: {}", stderr(&o));
    let uninterrupted = t.elapsed();
    let expected = scores(&reference);
    assert_eq!(expected.len(), 9 * 2 * 2, "9 trials x 2 tasks x 2 metrics");

    let s = sweep(real);
    let mut kills = Vec::new();
    let mut alone = 0;
    let mut group = 0;
    // At least five kills, both kinds, at moments spread over a sweep's
    // length (startup, mid-training, evaluation, between trials).
    while kills.len() < 6 {
        assert!(
            kills.len() < 20,
            "the sweep finished before the kills were done"
        );
        let mut child = s.spawn();
        let pid = child.id() as i32;
        // Alone, group, alone, alone, group, alone: the last kill leaves
        // orphans for the final run to adopt.
        let whole = kills.len() % 3 == 1;
        // An alone kill must leave trial processes behind: wait for some.
        let t0 = Instant::now();
        if !whole {
            wait_for(Duration::from_secs(10), || {
                !trial_processes(&s.out()).is_empty()
            });
        }
        // Then a random moment, early enough that six kills fit in one
        // sweep's length (each restart keeps the progress made before).
        let after = Duration::from_secs_f64(0.1 + rng.next() * uninterrupted.as_secs_f64() * 0.12);
        std::thread::sleep(after);
        if let Ok(Some(st)) = child.try_wait() {
            assert!(st.success(), "orchestrator failed: {:?}", st);
            break;
        }
        if whole {
            // A reboot: the orchestrator and every trial process of the
            // sweep, orphans of earlier kills included.
            kill_group(pid, "KILL");
            for p in trial_processes(&s.out()) {
                kill_group(p, "KILL");
            }
            group += 1;
        } else {
            kill(pid, "KILL");
            alone += 1;
        }
        let after = t0.elapsed();
        let _ = child.wait();
        if whole {
            // A process forked in the instant of the kill: a reboot spares none.
            for p in trial_processes(&s.out()) {
                kill_group(p, "KILL");
                kill(p, "KILL");
            }
        }
        let orphans = trial_processes(&s.out()).len();
        kills.push(format!(
            "{} after {:.2}s ({orphans} trial processes left running)",
            if whole { "group" } else { "alone" },
            after.as_secs_f64()
        ));
    }
    eprintln!("kills: {kills:#?}");
    assert!(
        kills.len() >= 5 && alone > 0 && group > 0,
        "the sweep finished after only {} kills ({alone} alone, {group} group)",
        kills.len()
    );

    // Then run to completion (orphans of the last kill are adopted).
    let o = s.run();
    assert!(o.status.success(), "final run: {}", stderr(&o));
    reap(&s.out());

    let violations = std::fs::read_to_string(s.violations()).unwrap_or_default();
    assert!(
        violations.is_empty(),
        "a trial ran twice at once:\n{violations}"
    );
    let trials = s.trials();
    assert_eq!(trials.len(), 9);
    for t in &trials {
        assert_eq!(t["state"], "completed", "{t}");
        assert_eq!(t["attempt"], 1, "a kill counted as a failure: {t}");
    }
    // Each trial's result was recorded exactly once.
    let finished = s.sql(
        "SELECT trial_id, COUNT(*) FROM events WHERE kind = 'finished' GROUP BY trial_id ORDER BY trial_id",
    );
    assert_eq!(finished.len(), 9);
    assert!(finished.iter().all(|r| r[1] == 1), "{finished:?}");
    let rows = s.sql("SELECT COUNT(*) FROM attempts");
    assert_eq!(rows[0][0], 9);
    // The same scores as the uninterrupted sweep, exactly.
    assert_eq!(scores(&s), expected);
    // And the same final losses.
    let loss =
        |s: &Sweep| s.sql("SELECT point_key, last_loss, step FROM trials ORDER BY point_key");
    assert_eq!(loss(&s), loss(&reference));
}
