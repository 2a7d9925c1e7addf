//! Helpers shared by the orchestrator's end-to-end tests (`orchestrator_*`
//! modules): writing a sweep, running `smolsweep run`, reading the record
//! back, and the trial program the sweeps use.
//!
//! The trial program: `smolsweep train` / `smolsweep eval` are the real
//! product, but they train and evaluate for minutes; these tests drive the
//! orchestrator with `tests/fixtures/sweeps/standin/smolsweep-standin.py`,
//! a deterministic stand-in that honours the same process contract
//! (events, exit codes, checkpoints, `--resume`, SIGTERM -> 4). Set
//! `SMOLSWEEP_TEST_REAL_TRIALS=1` to run them against the binary itself
//! (with a real tiny model in `SMOLSWEEP_TEST_TINY_MODEL`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;
pub use crate::common::{root, stderr, stdout};

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures/sweeps")
}

pub fn real_trials() -> bool {
    std::env::var_os("SMOLSWEEP_TEST_REAL_TRIALS").is_some_and(|v| v == "1")
}

/// The program that runs trials: the stand-in, or the binary itself.
///
/// The stand-in runs through a one-line `sh` wrapper that execs the real
/// interpreter: a `python3` found on PATH may be a version-manager shim
/// that forks helpers (slow to start, and extra processes in the chaos
/// test's view); `exec` keeps one process per trial, with the pid the
/// orchestrator started.
pub fn trial_program() -> PathBuf {
    if real_trials() {
        return PathBuf::from(env!("CARGO_BIN_EXE_smolsweep"));
    }
    use std::os::unix::fs::PermissionsExt;
    use std::sync::OnceLock;
    static WRAPPER: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    WRAPPER
        .get_or_init(|| {
            let o = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3 (the stand-in trial program needs it)");
            let python = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert!(!python.is_empty(), "python3 has no sys.executable");
            let d = tempfile::tempdir().expect("tempdir");
            let p = d.path().join("smolsweep-standin");
            // The stand-in knows the trial keys from the one schema.
            let keys: Vec<&str> = smolsweep_config::trial::TRIAL_KEYS
                .iter()
                .map(|k| k.name)
                .collect();
            let keys = keys.join(",");
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\nSTANDIN_TRIAL_KEYS={keys:?} exec {python:?} {:?} \"$@\"\n",
                    fixtures()
                        .join("standin/smolsweep-standin.py")
                        .display()
                        .to_string()
                ),
            )
            .expect("write wrapper");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            (d, p)
        })
        .1
        .clone()
}

/// The model directory trials start from.
pub fn tiny_model() -> PathBuf {
    std::env::var_os("SMOLSWEEP_TEST_TINY_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures().join("tiny/model"))
}

/// A tiny random Llama (1 layer, hidden 32) with a byte-level tokenizer,
/// made once per test process by `smolsweep init-model`, for sweeps that
/// run the real trainer and evaluator.
pub fn real_tiny_model() -> PathBuf {
    use std::sync::OnceLock;
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    if let Some(p) = std::env::var_os("SMOLSWEEP_TEST_TINY_MODEL") {
        return PathBuf::from(p);
    }
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        let out = d.path().join("tiny");
        let o = common::bin()
            .args([
                "init-model",
                "--out",
                out.to_str().expect("utf-8"),
                "--weights",
            ])
            .args([
                "--hidden-size",
                "32",
                "--intermediate-size",
                "64",
                "--layers",
                "1",
            ])
            .args(["--heads", "2", "--kv-heads", "1", "--seed", "7"])
            .output()
            .expect("init-model");
        assert!(o.status.success(), "init-model failed: {}", stderr(&o));
        (d, out)
    })
    .1
    .clone()
}

/// A scratch sweep directory with a `sweep.toml`.
pub struct Sweep {
    pub dir: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
    /// Trials run by the smolsweep binary itself (real train and eval on a
    /// tiny random model) instead of the stand-in.
    pub real: bool,
}

impl Sweep {
    /// `grid` and `extra` are TOML text appended after a `[train]` base of
    /// the tiny model and data, CPU, `max_steps` steps.
    pub fn new(max_steps: u32, grid: &str, extra: &str) -> Self {
        Self::with(real_trials(), max_steps, grid, extra)
    }

    /// A sweep whose trials are the real `smolsweep train` / `eval`.
    pub fn new_real(max_steps: u32, grid: &str, extra: &str) -> Self {
        Self::with(true, max_steps, grid, extra)
    }

    fn with(real: bool, max_steps: u32, grid: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Self {
            dir,
            envs: vec![
                ("STANDIN_STEP_SECONDS".into(), "0.03".into()),
                ("STANDIN_EVAL_SECONDS".into(), "0.1".into()),
            ],
            real,
        };
        s.write(max_steps, grid, extra);
        s
    }

    pub fn write(&self, max_steps: u32, grid: &str, extra: &str) {
        let text = format!(
            "[sweep]\nname = \"test\"\n\n[train]\nmodel = {:?}\ndata = [{:?}]\nmax_steps = {max_steps}\ncheckpoint_every_steps = 5\ndevice = \"cpu\"\nmax_seq_len = 64\nchat_template = \"chatml\"\n\n[grid]\n{grid}\n\n[eval]\ntasks = [\"arc_easy={}\", \"hellaswag={}\"]\nlimit = 10\n\n{extra}\n",
            if self.real { real_tiny_model() } else { tiny_model() }.display().to_string(),
            fixtures().join("tiny/data/train.jsonl").display().to_string(),
            fixtures().join("tiny/data/arc_easy.jsonl").display(),
            fixtures().join("tiny/data/hellaswag.jsonl").display(),
        );
        std::fs::write(self.toml(), text).expect("write sweep");
    }

    pub fn toml(&self) -> PathBuf {
        self.dir.path().join("sweep.toml")
    }

    /// The default output_dir: beside the TOML, named after its stem.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("sweep")
    }

    pub fn violations(&self) -> PathBuf {
        self.dir.path().join("violations.txt")
    }

    pub fn ledger(&self) -> PathBuf {
        self.dir.path().join("ledger.jsonl")
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = common::bin();
        c.args(args)
            .env(
                "SMOLSWEEP_TRIAL_PROGRAM",
                if self.real {
                    PathBuf::from(env!("CARGO_BIN_EXE_smolsweep"))
                } else {
                    trial_program()
                },
            )
            .env("STANDIN_VIOLATIONS", self.violations())
            .env("STANDIN_LEDGER", self.ledger())
            .env_remove("SMOLSWEEP_SIMULATE_GPUS");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// `smolsweep run` to its end.
    pub fn run(&self) -> Output {
        self.command(&["run", self.toml().to_str().expect("utf-8"), "--no-progress"])
            .output()
            .expect("spawn smolsweep run")
    }

    /// `smolsweep run` in the background, in its own process group.
    pub fn spawn(&self) -> Child {
        use std::os::unix::process::CommandExt;
        self.command(&["run", self.toml().to_str().expect("utf-8"), "--no-progress"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("orchestrator.log"))
                    .expect("orchestrator.log"),
            ))
            .process_group(0)
            .spawn()
            .expect("spawn smolsweep run")
    }

    pub fn status_json(&self) -> serde_json::Value {
        let o = self
            .command(&["status", self.toml().to_str().expect("utf-8"), "--json"])
            .output()
            .expect("status");
        assert!(o.status.success(), "status failed: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).expect("status json")
    }

    /// Trials from `status --json`, keyed by their grid point.
    pub fn trials(&self) -> Vec<serde_json::Value> {
        self.status_json()["trials"]
            .as_array()
            .expect("trials")
            .clone()
    }

    pub fn ledger_entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.ledger())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn db(&self) -> PathBuf {
        self.out().join("sweep.db")
    }

    /// Rows of a SQL query on the sweep database (through python's
    /// sqlite3, so the test reads the file as an outsider would).
    pub fn sql(&self, query: &str) -> Vec<Vec<serde_json::Value>> {
        sql(&self.db(), query)
    }
}

/// Fails the test with `smolsweep run`'s stderr unless it succeeded.
pub fn assert_ok(o: &std::process::Output) {
    assert!(
        o.status.success(),
        "smolsweep run failed ({:?}): {}",
        o.status,
        stderr(o)
    );
}

/// Rows of a SQL query on a sweep database, read as an outsider would.
pub fn sql(db: &Path, query: &str) -> Vec<Vec<serde_json::Value>> {
    let script = "import json,sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nprint(json.dumps([list(r) for r in c.execute(sys.argv[2])]))";
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(query)
        .output()
        .expect("python3 sqlite3");
    assert!(o.status.success(), "sql failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("sql json")
}

/// `(point_key, task, metric, value)` of every score, sorted.
pub fn scores(s: &Sweep) -> Vec<(String, String, String, f64)> {
    s.sql(
        "SELECT t.point_key, e.task, e.metric, e.value FROM eval_results e JOIN trials t ON t.id = e.trial_id ORDER BY 1, 2, 3",
    )
    .into_iter()
    .map(|r| {
        (
            r[0].as_str().expect("key").to_string(),
            r[1].as_str().expect("task").to_string(),
            r[2].as_str().expect("metric").to_string(),
            r[3].as_f64().expect("value"),
        )
    })
    .collect()
}

/// Processes whose stdin is a trial lock under `out`: every trial
/// process of the sweep, orphans included.
pub fn trial_processes(out: &Path) -> Vec<i32> {
    let Ok(out) = out.canonicalize() else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(t) = std::fs::read_link(e.path().join("fd/0")) {
            if t.starts_with(&out) && t.file_name().is_some_and(|n| n == "lock") {
                pids.push(pid);
            }
        }
    }
    pids
}

pub fn kill(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

pub fn kill_group(pgid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), "--".into(), format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Waits for `f` to hold, up to `timeout`.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Kills whatever trial processes of `out` are left (test cleanup).
pub fn reap(out: &Path) {
    for pid in trial_processes(out) {
        kill_group(pid, "KILL");
        kill(pid, "KILL");
    }
}
