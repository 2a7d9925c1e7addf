//! The Slurm backend against a real single-node Slurm
//! (`scripts/slurm-cluster.sh`: munge, slurmctld and slurmd from Debian's
//! packages, two fake GPUs, partitions `debug` and `high`), started once
//! per test process and stopped when it exits, whatever happens. Where
//! the packages cannot be installed the tests that need the cluster say
//! so and pass; the key checks run everywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::orchestrator_helpers::*;

/// `SLURM_CONF` of the test cluster, or None (the reason printed).
fn cluster() -> Option<PathBuf> {
    static CONF: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let script = root().join("scripts/slurm-cluster.sh");
        let o = Command::new(&script)
            .arg("install")
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(stderr(&o).trim().to_string());
        }
        let dir = std::env::temp_dir().join(format!("smolsweep-slurm-{}", std::process::id()));
        let o = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .map_err(|e| e.to_string())?;
        assert!(
            o.status.success(),
            "the test cluster did not start: {}",
            stderr(&o)
        );
        Ok(dir.join("etc/slurm.conf"))
    });
    match conf {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            eprintln!("SKIPPED: no Slurm test cluster here: {why}");
            None
        }
    }
}

/// A sweep of the stand-in (or real) trials on the Slurm backend.
fn on_slurm(s: Sweep, conf: &std::path::Path) -> Sweep {
    s.env("SLURM_CONF", conf.to_str().expect("utf-8"))
}

fn slurm_resources(extra: &str) -> String {
    let gpus = if extra.contains("gpus_per_trial") {
        ""
    } else {
        "gpus_per_trial = 1\n"
    };
    format!("[resources]\nbackend = \"slurm\"\nmax_retries = 0\n\n[resources.slurm]\n{gpus}{extra}")
}

fn states(s: &Sweep) -> Vec<String> {
    s.trials()
        .iter()
        .map(|t| t["state"].as_str().expect("state").to_string())
        .collect()
}

/// Every job Slurm knows under this sweep's names: name -> how many.
fn slurm_jobs_by_name(s: &Sweep, conf: &std::path::Path) -> BTreeMap<String, usize> {
    let o = Command::new("squeue")
        .args(["--me", "--noheader", "--states=all", "--format=%j"])
        .env("SLURM_CONF", conf)
        .output()
        .expect("squeue");
    assert!(o.status.success(), "squeue: {}", stderr(&o));
    let names: Vec<String> = s
        .sql("SELECT job_name FROM slurm_jobs")
        .into_iter()
        .map(|r| r[0].as_str().expect("name").to_string())
        .collect();
    let prefix = names
        .first()
        .and_then(|n| n.rfind(".t").map(|i| n[..i].to_string()))
        .expect("a recorded job");
    let mut count = BTreeMap::new();
    for line in stdout(&o).lines().map(str::trim) {
        if line.starts_with(&prefix) {
            *count.entry(line.to_string()).or_default() += 1;
        }
    }
    count
}

fn final_losses(s: &Sweep) -> Vec<(String, f64)> {
    s.sql("SELECT point_key, last_loss FROM trials ORDER BY point_key")
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().expect("key").to_string(),
                r[1].as_f64().expect("loss"),
            )
        })
        .collect()
}

#[test]
fn a_two_by_two_sweep_through_slurm_scores_as_the_local_backend_does() {
    let Some(conf) = cluster() else { return };
    // The real trainer and evaluator on a tiny random model: seconds.
    let grid = "lr = [1e-3, 3e-3]\nbatch_size = [2, 4]";
    let local = Sweep::new_real(6, grid, "[resources]\ngpus = []\nmax_retries = 0\n");
    assert_ok(&local.run());
    let slurm = on_slurm(Sweep::new_real(6, grid, &slurm_resources("")), &conf);
    assert_ok(&slurm.run());
    assert_eq!(states(&slurm), ["completed"; 4]);
    let (a, b) = (scores(&local), scores(&slurm));
    assert!(!a.is_empty(), "no scores");
    assert_eq!(a, b, "Slurm scores differ from the local backend's");
    assert_eq!(final_losses(&local), final_losses(&slurm));
    // One job per trial, each recorded with its id, final state and node.
    let jobs = slurm.sql("SELECT job_id, state, node, attempt FROM slurm_jobs");
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    for j in &jobs {
        assert!(
            j[0].as_str().is_some_and(|id| id.parse::<u64>().is_ok()),
            "{j:?}"
        );
        assert_eq!(j[1], "COMPLETED", "{j:?}");
        assert!(j[2].as_str().is_some_and(|n| !n.is_empty()), "{j:?}");
    }
    // status shows them.
    let o = slurm
        .command(&["status", slurm.toml().to_str().expect("utf-8")])
        .output()
        .expect("status");
    let text = stdout(&o);
    assert!(
        text.contains("slurm job") && text.contains("COMPLETED on "),
        "{text}"
    );
    assert_eq!(slurm_jobs_by_name(&slurm, &conf).values().max(), Some(&1));
}

#[test]
fn the_orchestrator_killed_during_a_slurm_sweep_leaves_every_point_run_once() {
    let Some(conf) = cluster() else { return };
    let grid = "lr = [1e-5, 2e-5]\nbatch_size = [4, 8]";
    // 4 s a trial, two at a time on the test node: the kills land while
    // jobs are queued and running.
    let s = on_slurm(Sweep::new(20, grid, &slurm_resources("")), &conf)
        .env("STANDIN_STEP_SECONDS", "0.2");
    // First a crash right after sbatch answered, before the job id was
    // recorded: the next run must find that job by its name.
    let o = s
        .command(&["run", s.toml().to_str().expect("utf-8"), "--no-progress"])
        .env("SMOLSWEEP_TEST_DIE_AFTER_SBATCH", "1")
        .output()
        .expect("run");
    assert!(!o.status.success(), "the test hook did not fire");
    let unrecorded = s.sql("SELECT count(*) FROM slurm_jobs WHERE job_id IS NULL");
    assert!(
        unrecorded[0][0].as_i64() >= Some(1),
        "no intent without its job id"
    );
    // Then SIGKILLs at moments spread over the sweep.
    for (i, ms) in [300u64, 900, 500, 1500, 700].into_iter().enumerate() {
        let mut child = s.spawn();
        std::thread::sleep(Duration::from_millis(ms + 100 * i as u64));
        kill(child.id() as i32, "KILL");
        let _ = child.wait();
    }
    assert_ok(&s.run());
    assert_eq!(states(&s), ["completed"; 4]);
    let found = s.sql("SELECT count(*) FROM events WHERE kind = 'slurm.submitted' AND data_json LIKE '%found by name%'");
    assert!(
        found[0][0].as_i64() >= Some(1),
        "the unrecorded job was not found by its name: {:?}\n{}",
        s.sql("SELECT kind, data_json FROM events WHERE kind LIKE 'slurm.%'"),
        std::fs::read_to_string(s.dir.path().join("orchestrator.log")).unwrap_or_default()
    );
    // Slurm's own records: one job per trial attempt, never two.
    let by_name = slurm_jobs_by_name(&s, &conf);
    assert_eq!(by_name.len(), 4, "{by_name:?}");
    assert!(
        by_name.values().all(|&n| n == 1),
        "a job was submitted twice: {by_name:?}"
    );
    assert!(
        std::fs::read_to_string(s.violations())
            .unwrap_or_default()
            .is_empty(),
        "two processes ran one trial at once"
    );
    // The scores are those of an uninterrupted local run.
    let local = Sweep::new(20, grid, "[resources]\ngpus = []\nslots_per_gpu = 2\n");
    assert_ok(&local.run());
    assert_eq!(scores(&local), scores(&s));
    assert_eq!(final_losses(&local), final_losses(&s));
}

#[test]
fn a_trial_failing_inside_slurm_is_retried_up_to_max_retries() {
    let Some(conf) = cluster() else { return };
    let resources =
        slurm_resources("gpus_per_trial = 0\n").replace("max_retries = 0", "max_retries = 1");
    // lr 2e-5 fails once in training: its second attempt completes.
    let s = on_slurm(Sweep::new(8, "lr = [1e-5, 2e-5]", &resources), &conf)
        .env("STANDIN_FAIL_LR", "2e-5");
    assert_ok(&s.run());
    assert_eq!(states(&s), ["completed"; 2]);
    let attempts = s.sql("SELECT t.point_key, a.attempt, a.outcome, a.reason FROM attempts a JOIN trials t ON t.id = a.trial_id ORDER BY 1, 2");
    let failed: Vec<_> = attempts.iter().filter(|r| r[2] == "failed").collect();
    assert_eq!(failed.len(), 1, "{attempts:?}");
    assert_eq!(failed[0][0], "{\"lr\":0.00002}", "{attempts:?}");
    assert!(
        failed[0][3]
            .as_str()
            .is_some_and(|r| r.contains("train exited with status 1")),
        "{attempts:?}"
    );
    // One job per attempt: three in all.
    assert_eq!(s.sql("SELECT count(*) FROM slurm_jobs")[0][0], 3);

    // Every evaluation of hellaswag fails: the trial uses both attempts.
    let s = on_slurm(Sweep::new(8, "lr = [1e-5]", &resources), &conf)
        .env("STANDIN_EVAL_FAIL_TASKS", "hellaswag");
    let o = s.run();
    assert!(
        !o.status.success(),
        "a trial failed for good, yet run succeeded"
    );
    assert_eq!(states(&s), ["failed"]);
    let attempts = s.sql("SELECT attempt, outcome, reason FROM attempts ORDER BY attempt");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for a in &attempts {
        assert_eq!(a[1], "failed");
        assert!(
            a[2].as_str()
                .is_some_and(|r| r.contains("eval exited with status 1")),
            "{a:?}"
        );
    }
    assert_eq!(s.sql("SELECT count(*) FROM slurm_jobs")[0][0], 2);
}

#[test]
fn bad_slurm_settings_are_refused_before_anything_is_recorded() {
    let bad = [
        ("time = \"ten minutes\"", "resources.slurm.time"),
        ("mem = \"16 GB\"", "resources.slurm.mem"),
        ("gpus_per_trial = -1", "resources.slurm.gpus_per_trial"),
        ("max_concurrent = 0", "resources.slurm.max_concurrent"),
        ("extra_args = \"--exclusive\"", "resources.slurm.extra_args"),
        ("partitions = \"debug\"", "resources.slurm.partitions"),
    ];
    for (line, key) in bad {
        let s = Sweep::new(5, "lr = [1e-5]", &slurm_resources(&format!("{line}\n")));
        let o = s.run();
        assert!(!o.status.success(), "{line} was accepted");
        assert!(
            stderr(&o).contains(&format!("sweep.toml: {key}")),
            "{line}: {}",
            stderr(&o)
        );
        assert!(!s.db().exists(), "{line}: the sweep was recorded");
    }
    // No sbatch on PATH.
    let s = Sweep::new(5, "lr = [1e-5]", &slurm_resources(""));
    let o = s
        .command(&["run", s.toml().to_str().expect("utf-8"), "--no-progress"])
        .env("PATH", "/nonexistent")
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("resources.backend: \"slurm\" needs `sbatch`, which is not on PATH"),
        "{}",
        stderr(&o)
    );
    assert!(!s.db().exists(), "the sweep was recorded");
    // A partition Slurm does not know (needs the cluster).
    let Some(conf) = cluster() else { return };
    let s = on_slurm(
        Sweep::new(
            5,
            "lr = [1e-5]",
            &slurm_resources("partition = \"gpu-a100\"\n"),
        ),
        &conf,
    );
    for args in [vec!["run", "--check"], vec!["run"]] {
        let mut args = args.clone();
        let toml = s.toml();
        args.push(toml.to_str().expect("utf-8"));
        let o = s.command(&args).output().expect("run");
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("resources.slurm.partition: Slurm has no partition \"gpu-a100\" (sinfo lists debug, high)"),
            "{}",
            stderr(&o)
        );
    }
    assert!(!s.db().exists(), "the sweep was recorded");
}

/// The trial's latest step, from its event file.
fn last_step(s: &Sweep) -> u64 {
    let Ok(dirs) = std::fs::read_dir(s.out().join("trials")) else {
        return 0;
    };
    dirs.flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join("train.events.jsonl")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|e| e["step"].as_u64())
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_preempted_trial_is_requeued_and_resumes_without_using_a_retry() {
    let Some(conf) = cluster() else { return };
    // The trial takes both GPUs of the node; a job in the higher-tier
    // partition that needs them preempts it (PreemptMode=REQUEUE).
    let s = on_slurm(
        Sweep::new(30, "lr = [1e-5]", &slurm_resources("gpus_per_trial = 2\n")),
        &conf,
    )
    .env("STANDIN_STEP_SECONDS", "0.15");
    let mut run = s.spawn();
    assert!(
        wait_for(Duration::from_secs(60), || last_step(&s) >= 8),
        "the trial did not start training"
    );
    let o = Command::new("sbatch")
        .args([
            "--parsable",
            "--partition=high",
            "--gres=gpu:2",
            "--output=/dev/null",
            "--wrap",
            "sleep 1",
        ])
        .env("SLURM_CONF", &conf)
        .output()
        .expect("sbatch");
    assert!(o.status.success(), "sbatch: {}", stderr(&o));
    let st = run.wait().expect("wait");
    assert!(
        st.success(),
        "run failed: {}",
        std::fs::read_to_string(s.dir.path().join("orchestrator.log")).unwrap_or_default()
    );
    assert_eq!(states(&s), ["completed"]);
    let job = s.sql("SELECT restarts, state FROM slurm_jobs");
    assert_eq!(job.len(), 1, "one job for the attempt: {job:?}");
    assert!(
        job[0][0].as_i64() >= Some(1),
        "the job was not requeued: {job:?}"
    );
    // Not a failed attempt.
    let attempts = s.sql("SELECT attempt, outcome FROM attempts");
    assert_eq!(
        attempts,
        vec![vec![serde_json::json!(1), serde_json::json!("completed")]]
    );
    // It resumed from its checkpoint (step 1 was trained once), and the
    // final loss and scores are an unpreempted run's.
    let events = std::fs::read_dir(s.out().join("trials"))
        .expect("trials")
        .flatten()
        .map(|d| std::fs::read_to_string(d.path().join("train.events.jsonl")).expect("events"))
        .collect::<String>();
    let first_steps = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "step" && e["step"] == 1)
        .count();
    assert_eq!(first_steps, 1, "the requeued job trained from scratch");
    let local = Sweep::new(30, "lr = [1e-5]", "[resources]\ngpus = []\n");
    assert_ok(&local.run());
    assert_eq!(final_losses(&local), final_losses(&s));
    assert_eq!(scores(&local), scores(&s));
}
