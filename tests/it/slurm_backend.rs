//! The Slurm backend against a real single-node Slurm
//! (`scripts/slurm-cluster.sh`: munge, slurmctld and slurmd from Debian's
//! packages, two fake GPUs, partitions `debug` and `high`), started once
//! per test process and stopped when it exits, whatever happens. Where
//! the packages cannot be installed the tests that need the cluster say
//! so and pass; the key checks run everywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::orchestrator_helpers::*;

/// One test at a time on the cluster: a preemption test takes the whole
/// node (and requeues whatever else runs there), and the timing of the
/// time-limit and Ctrl-C tests must not include waiting in the queue
/// behind another test's jobs.
static TURN: Mutex<()> = Mutex::new(());

/// `SLURM_CONF` of the test cluster and this test's turn on it, or None
/// (the reason printed).
fn cluster() -> Option<(PathBuf, MutexGuard<'static, ()>)> {
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
        Ok(p) => Some((p.clone(), TURN.lock().unwrap_or_else(|e| e.into_inner()))),
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
    let Some((conf, _turn)) = cluster() else {
        return;
    };
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
    let Some((conf, _turn)) = cluster() else {
        return;
    };
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
    let Some((conf, _turn)) = cluster() else {
        return;
    };
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
    let Some((conf, _turn)) = cluster() else {
        return;
    };
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
    let Some((conf, _turn)) = cluster() else {
        return;
    };
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

/// `smolsweep run SWEEP ARGS...` in the background, in its own process
/// group, its stderr appended to `orchestrator.log`.
fn spawn_run(s: &Sweep, args: &[&str]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let toml = s.toml();
    let mut all = vec!["run", toml.to_str().expect("utf-8"), "--no-progress"];
    all.extend_from_slice(args);
    s.command(&all)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(s.dir.path().join("orchestrator.log"))
                .expect("orchestrator.log"),
        ))
        .process_group(0)
        .spawn()
        .expect("spawn smolsweep run")
}

fn orchestrator_log(s: &Sweep) -> String {
    std::fs::read_to_string(s.dir.path().join("orchestrator.log")).unwrap_or_default()
}

/// The sweep's jobs squeue lists now: (name, state).
fn queued(s: &Sweep, conf: &std::path::Path) -> Vec<(String, String)> {
    let o = Command::new("squeue")
        .args(["--me", "--noheader", "--states=all", "--format=%j|%T"])
        .env("SLURM_CONF", conf)
        .output()
        .expect("squeue");
    assert!(o.status.success(), "squeue: {}", stderr(&o));
    let names: Vec<String> = s
        .sql("SELECT job_name FROM slurm_jobs")
        .into_iter()
        .map(|r| r[0].as_str().expect("name").to_string())
        .collect();
    stdout(&o)
        .lines()
        .filter_map(|l| l.trim().split_once('|'))
        .filter(|(n, _)| names.iter().any(|m| m == n))
        .map(|(n, st)| (n.to_string(), st.to_string()))
        .collect()
}

/// Waits for `child` up to `timeout`; kills it (and fails) past that.
fn wait_child(child: &mut std::process::Child, timeout: Duration, s: &Sweep) -> i32 {
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st.code().unwrap_or(-1);
        }
        if t.elapsed() > timeout {
            kill(child.id() as i32, "KILL");
            let _ = child.wait();
            panic!(
                "run did not end within {timeout:?}:\n{}",
                orchestrator_log(s)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_detach_returns_while_jobs_run_and_a_later_run_finishes_the_sweep() {
    let Some((conf, _turn)) = cluster() else {
        return;
    };
    let grid = "lr = [1e-5, 2e-5]\nbatch_size = [4, 8]";
    // 3 jobs at most (two run at once on the node's two GPUs), 4 s each.
    let s = on_slurm(
        Sweep::new(20, grid, &slurm_resources("max_concurrent = 3\n")),
        &conf,
    )
    .env("STANDIN_STEP_SECONDS", "0.2");
    let toml = s.toml();
    let toml = toml.to_str().expect("utf-8");
    let t = std::time::Instant::now();
    let o = s
        .command(&["run", toml, "--no-progress", "--detach"])
        .output()
        .expect("run --detach");
    assert_ok(&o);
    let took = t.elapsed();
    assert!(
        stderr(&o).contains("detached: 3 Slurm jobs submitted, 0 adopted from an earlier run, 3 queued or running in all"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_secs(4), "run --detach took {took:?}");
    // The jobs run without an orchestrator; status shows them.
    let jobs = queued(&s, &conf);
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert!(
        jobs.iter()
            .all(|(_, st)| st == "PENDING" || st == "RUNNING" || st == "CONFIGURING"),
        "{jobs:?}"
    );
    let mut st = states(&s);
    st.sort();
    assert_eq!(st, ["pending", "running", "running", "running"]);
    let o = s.command(&["status", toml]).output().expect("status");
    assert!(o.status.success(), "status: {}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("slurm job") && text.contains("(no orchestrator running)"),
        "{text}"
    );
    assert!(!text.contains("interrupted"), "{text}");
    // A second --detach once the first two are done: it records them,
    // adopts the third, submits the fourth.
    assert!(
        wait_for(Duration::from_secs(60), || queued(&s, &conf)
            .iter()
            .filter(|(_, st)| st == "COMPLETED")
            .count()
            >= 2),
        "the first jobs did not complete: {:?}",
        queued(&s, &conf)
    );
    let o = s
        .command(&["run", toml, "--no-progress", "--detach"])
        .output()
        .expect("run --detach");
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("detached: 1 Slurm jobs submitted, ") && err.contains(" completed, "),
        "{err}"
    );
    assert!(
        states(&s).iter().filter(|t| *t == "completed").count() >= 2,
        "{:?}",
        states(&s)
    );
    // `report` works meanwhile.
    let report = s.dir.path().join("report");
    let o = s
        .command(&["report", toml, "--out", report.to_str().expect("utf-8")])
        .output()
        .expect("report");
    assert!(o.status.success(), "report: {}", stderr(&o));
    // A plain run follows what is out to the end.
    assert_ok(&s.run());
    assert_eq!(states(&s), ["completed"; 4]);
    let by_name = slurm_jobs_by_name(&s, &conf);
    assert_eq!(by_name.len(), 4, "{by_name:?}");
    assert!(by_name.values().all(|&n| n == 1), "{by_name:?}");
    assert_eq!(s.sql("SELECT count(*) FROM slurm_jobs")[0][0], 4);
    let local = Sweep::new(20, grid, "[resources]\ngpus = []\nslots_per_gpu = 2\n");
    assert_ok(&local.run());
    assert_eq!(scores(&local), scores(&s));
    assert_eq!(final_losses(&local), final_losses(&s));
}

#[test]
fn run_detach_is_refused_on_the_local_backend() {
    let s = Sweep::new(5, "lr = [1e-5]", "[resources]\ngpus = []\n");
    for flag in ["--detach", "--cancel"] {
        let o = s
            .command(&["run", s.toml().to_str().expect("utf-8"), flag])
            .output()
            .expect("run");
        assert!(!o.status.success(), "{flag} was accepted");
        assert!(
            stderr(&o).contains(&format!(
                "sweep.toml: resources.backend is \"local\": {flag} needs backend = \"slurm\""
            )),
            "{flag}: {}",
            stderr(&o)
        );
        assert!(!s.db().exists(), "{flag}: the sweep was recorded");
    }
}

/// Trials whose latest step is at least `n`, from their event files.
fn trials_past(s: &Sweep, n: u64) -> usize {
    let Ok(dirs) = std::fs::read_dir(s.out().join("trials")) else {
        return 0;
    };
    dirs.flatten()
        .filter(|d| {
            std::fs::read_to_string(d.path().join("train.events.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|e| e["step"].as_u64())
                .max()
                .is_some_and(|m| m >= n)
        })
        .count()
}

#[test]
fn ctrl_c_under_cancel_scancels_the_jobs_and_a_later_run_submits_them_again() {
    let Some((conf, _turn)) = cluster() else {
        return;
    };
    let grid = "lr = [1e-5, 2e-5]";
    let s = on_slurm(Sweep::new(40, grid, &slurm_resources("")), &conf)
        .env("STANDIN_STEP_SECONDS", "0.2");
    let mut run = spawn_run(&s, &["--cancel"]);
    assert!(
        wait_for(Duration::from_secs(60), || trials_past(&s, 3) == 2),
        "the trials did not start training: {}",
        orchestrator_log(&s)
    );
    kill(run.id() as i32, "INT");
    let code = wait_child(&mut run, Duration::from_secs(30), &s);
    assert_eq!(code, 130, "{}", orchestrator_log(&s));
    assert!(
        orchestrator_log(&s).contains("the sweep's Slurm jobs were cancelled"),
        "{}",
        orchestrator_log(&s)
    );
    // Slurm's records: both jobs cancelled, none left running.
    let jobs = queued(&s, &conf);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|(_, st)| st == "CANCELLED"), "{jobs:?}");
    // The record: cancelled by the sweep, trials pending, no failed attempt.
    let rows =
        s.sql("SELECT state, cancelled_at IS NOT NULL, ended_at IS NOT NULL FROM slurm_jobs");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r[0], "CANCELLED", "{rows:?}");
        assert_eq!(r[1], 1, "{rows:?}");
        assert_eq!(r[2], 1, "{rows:?}");
    }
    assert_eq!(states(&s), ["pending"; 2]);
    assert_eq!(s.sql("SELECT count(*) FROM attempts")[0][0], 0);
    let cancels = s.sql("SELECT count(*) FROM events WHERE kind = 'slurm.cancel'");
    assert_eq!(cancels[0][0], 2);
    let o = s
        .command(&["status", s.toml().to_str().expect("utf-8")])
        .output()
        .expect("status");
    assert!(stdout(&o).contains(" CANCELLED on "), "{}", stdout(&o));
    // The next run submits each attempt again and completes the sweep,
    // resuming from the checkpoints; max_retries = 0 is not in the way.
    assert_ok(&s.run());
    assert_eq!(states(&s), ["completed"; 2]);
    let jobs =
        s.sql("SELECT attempt, submission, state FROM slurm_jobs ORDER BY trial_id, submission");
    let cancelled = serde_json::json!([1, 1, "CANCELLED"]);
    let completed = serde_json::json!([1, 2, "COMPLETED"]);
    assert_eq!(
        serde_json::json!(jobs),
        serde_json::json!([cancelled, completed, cancelled, completed])
    );
    let attempts = s.sql("SELECT attempt, outcome FROM attempts");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts.iter().all(|a| a[0] == 1 && a[1] == "completed"),
        "{attempts:?}"
    );
    let by_name = slurm_jobs_by_name(&s, &conf);
    assert_eq!(by_name.len(), 4, "{by_name:?}");
    assert!(by_name.values().all(|&n| n == 1), "{by_name:?}");
    let local = Sweep::new(40, grid, "[resources]\ngpus = []\n");
    assert_ok(&local.run());
    assert_eq!(final_losses(&local), final_losses(&s));
    assert_eq!(scores(&local), scores(&s));
}

#[test]
fn ctrl_c_without_cancel_leaves_the_jobs_running_for_the_next_run() {
    let Some((conf, _turn)) = cluster() else {
        return;
    };
    let grid = "lr = [1e-5, 2e-5]";
    let s = on_slurm(Sweep::new(50, grid, &slurm_resources("")), &conf)
        .env("STANDIN_STEP_SECONDS", "0.2");
    // stdin is not a terminal: no question, the jobs stay.
    let mut run = spawn_run(&s, &[]);
    assert!(
        wait_for(Duration::from_secs(60), || trials_past(&s, 3) == 2),
        "the trials did not start training: {}",
        orchestrator_log(&s)
    );
    kill(run.id() as i32, "INT");
    let code = wait_child(&mut run, Duration::from_secs(20), &s);
    assert_eq!(code, 130, "{}", orchestrator_log(&s));
    assert!(
        orchestrator_log(&s).contains("2 Slurm jobs left queued or running"),
        "{}",
        orchestrator_log(&s)
    );
    let jobs = queued(&s, &conf);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|(_, st)| st == "RUNNING"), "{jobs:?}");
    assert_eq!(states(&s), ["running"; 2]);
    assert_eq!(
        s.sql("SELECT count(*) FROM slurm_jobs WHERE cancelled_at IS NOT NULL")[0][0],
        0
    );
    // The next run adopts them: no job is submitted again.
    assert_ok(&s.run());
    assert_eq!(
        s.sql("SELECT count(*) FROM events WHERE kind = 'adopted'")[0][0],
        2
    );
    assert_eq!(states(&s), ["completed"; 2]);
    let by_name = slurm_jobs_by_name(&s, &conf);
    assert_eq!(by_name.len(), 2, "{by_name:?}");
    assert!(by_name.values().all(|&n| n == 1), "{by_name:?}");
    // Each trial trained once, in its one job.
    assert_eq!(preempted_and_first_steps(&s), (0, 2));
    let local = Sweep::new(50, grid, "[resources]\ngpus = []\n");
    assert_ok(&local.run());
    assert_eq!(final_losses(&local), final_losses(&s));
}

/// Every `preempted` event and every `step 1` of the sweep's trials.
fn preempted_and_first_steps(s: &Sweep) -> (usize, usize) {
    let events = std::fs::read_dir(s.out().join("trials"))
        .expect("trials")
        .flatten()
        .map(|d| std::fs::read_to_string(d.path().join("train.events.jsonl")).unwrap_or_default())
        .collect::<String>();
    let parsed: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        parsed.iter().filter(|e| e["event"] == "preempted").count(),
        parsed
            .iter()
            .filter(|e| e["event"] == "step" && e["step"] == 1)
            .count(),
    )
}

/// The trials' train logs and Slurm outputs, for a failure's message.
fn trial_logs(s: &Sweep) -> String {
    let mut text = String::new();
    for d in std::fs::read_dir(s.out().join("trials"))
        .expect("trials")
        .flatten()
    {
        let mut files = vec![d.path().join("train.log"), d.path().join("eval.log")];
        if let Ok(slurm) = std::fs::read_dir(d.path().join("slurm")) {
            files.extend(slurm.flatten().map(|e| e.path()).filter(|p| {
                p.extension().is_some_and(|x| {
                    ["out", "exit", "requeued", "restarts"]
                        .iter()
                        .any(|e| x == *e)
                })
            }));
        }
        for f in files {
            if let Ok(t) = std::fs::read_to_string(&f) {
                text.push_str(&format!("--- {}\n{t}\n", f.display()));
            }
        }
    }
    text
}

/// The end of the test cluster's daemon logs, for a failure's message.
fn cluster_logs(conf: &std::path::Path) -> String {
    let dir = conf.parent().and_then(|p| p.parent()).expect("cluster dir");
    ["slurmctld.log", "slurmd.log"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join("log").join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!(
                "--- {f}\n{}\n",
                lines[lines.len().saturating_sub(40)..].join("\n")
            )
        })
        .collect()
}

/// Slurm's time limits are whole minutes, enforced by slurmctld's
/// 30-second timer, and `--signal` may come up to that timer's period
/// early: with `time = "1"` and a 10 s grace, USR2 reaches a run between
/// 20 and 50 s after it started, and the limit kills it 60 to 90 s after.
/// 300 steps of 0.2 s (60 s) therefore never fit one run: every run is
/// signalled, checkpoints after at least one step of its own, and the job
/// requeues itself; no run can be killed by the limit first (the step
/// boundary is 0.2 s away), and each run makes progress, so the trial
/// ends within a few requeues.
#[test]
fn a_trial_past_its_time_limit_checkpoints_requeues_and_finishes() {
    let Some((conf, _turn)) = cluster() else {
        return;
    };
    let s = on_slurm(
        Sweep::new(
            300,
            "lr = [1e-5]",
            &slurm_resources("gpus_per_trial = 0\ntime = \"1\"\nsignal_grace_s = 10\n"),
        ),
        &conf,
    )
    .env("STANDIN_STEP_SECONDS", "0.2");
    let t = std::time::Instant::now();
    let mut run = spawn_run(&s, &[]);
    let code = wait_child(&mut run, Duration::from_secs(170), &s);
    let took = t.elapsed();
    assert_eq!(
        code,
        0,
        "{}\n{:?}\n{:?}\n{}",
        orchestrator_log(&s),
        s.sql("SELECT attempt, outcome, reason FROM attempts"),
        s.sql(
            "SELECT at, kind, data_json FROM events WHERE kind LIKE 'slurm.%' OR kind = 'finished'"
        ),
        trial_logs(&s) + &cluster_logs(&conf)
    );
    assert_eq!(states(&s), ["completed"]);
    let job = s.sql("SELECT restarts, state, submission FROM slurm_jobs");
    assert_eq!(job.len(), 1, "one job for the attempt: {job:?}");
    let restarts = job[0][0].as_i64().expect("restarts");
    assert!(restarts >= 1, "the job was not requeued: {job:?}");
    assert_eq!(job[0][1], "COMPLETED", "{job:?}");
    // Not a failed attempt (max_retries = 0 would have ended it).
    assert_eq!(
        s.sql("SELECT attempt, outcome FROM attempts"),
        vec![vec![serde_json::json!(1), serde_json::json!("completed")]]
    );
    // The requeues came from the signal: a `preempted` event at a
    // checkpoint for each, but perhaps the last (a signal after the last
    // step requeues the job before its eval, with nothing to checkpoint);
    // and the trial never trained from scratch again.
    let (preempted, first_steps) = preempted_and_first_steps(&s);
    assert!(
        preempted >= 1 && preempted as i64 >= restarts - 1,
        "{preempted} preempted events, {job:?}"
    );
    assert_eq!(first_steps, 1, "a requeued run trained from scratch");
    // What each run of the job did, for whoever reads the test's output:
    // when it started, and the step it was signalled at.
    let log = std::fs::read_dir(s.out().join("trials"))
        .expect("trials")
        .flatten()
        .map(|d| std::fs::read_to_string(d.path().join("train.log")).unwrap_or_default())
        .collect::<String>();
    let runs: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("=== smolsweep slurm job") || l.contains("requeueing"))
        .collect();
    let steps: Vec<u64> = std::fs::read_dir(s.out().join("trials"))
        .expect("trials")
        .flatten()
        .flat_map(|d| {
            std::fs::read_to_string(d.path().join("train.events.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|e| e["event"] == "preempted")
                .filter_map(|e| e["step"].as_u64())
                .collect::<Vec<_>>()
        })
        .collect();
    eprintln!(
        "time-limit test: {restarts} requeues (preempted at steps {steps:?}), {took:?} in all\n  {}",
        runs.join("\n  ")
    );
    // The final loss and scores are an unlimited run's.
    let local = Sweep::new(300, "lr = [1e-5]", "[resources]\ngpus = []\n")
        .env("STANDIN_STEP_SECONDS", "0.001");
    assert_ok(&local.run());
    assert_eq!(final_losses(&local), final_losses(&s));
    assert_eq!(scores(&local), scores(&s));
}

/// Cancels the sweep's recorded jobs.
fn scancel_all(s: &Sweep, conf: &std::path::Path) {
    let ids: Vec<String> = s
        .sql("SELECT job_id FROM slurm_jobs WHERE job_id IS NOT NULL")
        .into_iter()
        .filter_map(|r| r[0].as_str().map(str::to_string))
        .collect();
    let o = Command::new("scancel")
        .args(&ids)
        .env("SLURM_CONF", conf)
        .output()
        .expect("scancel");
    assert!(o.status.success(), "scancel: {}", stderr(&o));
}

/// `smolsweep run` at a terminal: Ctrl-C asks; `answer` is typed.
/// Returns (exit code, whether it asked, what the terminal showed).
fn ctrl_c_at_a_terminal(s: &Sweep, answer: &str) -> (i64, bool, String) {
    let go = s.dir.path().join("go");
    let helper = fixtures().join("standin/on-a-terminal.py");
    let toml = s.toml();
    let mut cmd = s.command(&[]);
    let mut args: Vec<std::ffi::OsString> = vec![
        helper.into(),
        go.clone().into(),
        "cancel them (scancel)? [y/N]".into(),
        answer.into(),
        "60".into(),
        cmd.get_program().into(),
    ];
    args.extend(
        ["run", toml.to_str().expect("utf-8"), "--no-progress"]
            .iter()
            .map(Into::into),
    );
    // The same environment, with python in front.
    let envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    cmd = Command::new("python3");
    cmd.args(args);
    for (k, v) in envs {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    assert!(
        wait_for(Duration::from_secs(60), || trials_past(s, 3) == 2),
        "the trials did not start training"
    );
    std::fs::write(&go, "").expect("go");
    let o = child.wait_with_output().expect("helper");
    assert!(o.status.success(), "helper: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("helper json");
    (
        v["code"].as_i64().expect("code"),
        v["asked"].as_bool().expect("asked"),
        v["shown"].as_str().expect("shown").to_string(),
    )
}

#[test]
fn ctrl_c_at_a_terminal_asks_and_leaves_or_cancels_the_jobs_as_answered() {
    let Some((conf, _turn)) = cluster() else {
        return;
    };
    let grid = "lr = [1e-5, 2e-5]";
    // Enter: the default, leave them.
    let s = on_slurm(Sweep::new(50, grid, &slurm_resources("")), &conf)
        .env("STANDIN_STEP_SECONDS", "0.2");
    let (code, asked, shown) = ctrl_c_at_a_terminal(&s, "");
    assert!(asked, "no question at Ctrl-C: {shown}");
    assert_eq!(code, 130, "{shown}");
    assert!(
        shown.contains("2 Slurm jobs left queued or running"),
        "{shown}"
    );
    let jobs = queued(&s, &conf);
    assert!(jobs.iter().all(|(_, st)| st == "RUNNING"), "{jobs:?}");
    assert_eq!(states(&s), ["running"; 2]);
    // They would hold the node's GPUs for the rest of the test.
    scancel_all(&s, &conf);
    // `y`: cancel them.
    let s = on_slurm(Sweep::new(50, grid, &slurm_resources("")), &conf)
        .env("STANDIN_STEP_SECONDS", "0.2");
    let (code, asked, shown) = ctrl_c_at_a_terminal(&s, "y");
    assert!(asked, "no question at Ctrl-C: {shown}");
    assert_eq!(code, 130, "{shown}");
    assert!(
        shown.contains("the sweep's Slurm jobs were cancelled"),
        "{shown}"
    );
    let jobs = queued(&s, &conf);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|(_, st)| st == "CANCELLED"), "{jobs:?}");
    assert_eq!(states(&s), ["pending"; 2]);
}
