//! Models and datasets as the hub gives them to users — symlinked blobs,
//! `refs/`, partial downloads, a script dataset's Parquet branch — found
//! the same way by `--model`/`--task`, a trial TOML and a sweep TOML; a
//! sweep whose eval data is wrong fails before anything is recorded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use smolsweep_hub::layout::CacheRepo;
use smolsweep_hub::RepoType;

use crate::common::*;
use crate::orchestrator_helpers::{fixtures, real_tiny_model};

/// A home directory with a hub cache at `~/hub` holding the tiny model,
/// an SFT set (whose test split would fail the trainer, so reading it
/// shows), ai2_arc with only ARC-Easy downloaded, IFEval's root file, and
/// hellaswag with a script-only `main` and its Parquet conversion.
struct Hub {
    home: tempfile::TempDir,
}

const IFEVAL_ROW: &str = "{\"key\": 1, \"prompt\": \"Write a word.\", \"instruction_id_list\": [\"punctuation:no_comma\"], \"kwargs\": [{}]}\n";

impl Hub {
    fn new() -> Hub {
        let home = tempfile::tempdir().expect("tmp");
        let cache = home.path().join("hub");
        let model = CacheRepo::new(&cache, RepoType::Model, "Org/Tiny").expect("repo");
        for entry in std::fs::read_dir(real_tiny_model()).expect("tiny model") {
            let p = entry.expect("entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            model
                .file("c0ffee", &name, &std::fs::read(&p).expect("read"))
                .expect("blob");
        }
        model.set_ref("main", "c0ffee").expect("ref");

        let sft = CacheRepo::new(&cache, RepoType::Dataset, "Org/sft").expect("repo");
        let train = std::fs::read(fixtures().join("tiny/data/train.jsonl")).expect("train");
        sft.file("s1", "data/train-00000-of-00001.jsonl", &train)
            .expect("f");
        sft.file(
            "s1",
            "data/test-00000-of-00001.jsonl",
            b"{\"text\": \"not a chat\"}\n",
        )
        .expect("f");
        sft.set_ref("main", "s1").expect("ref");

        let arc = CacheRepo::new(&cache, RepoType::Dataset, "allenai/ai2_arc").expect("repo");
        let rows = std::fs::read(fixtures().join("tiny/data/arc_easy.jsonl")).expect("arc");
        arc.file("a1", "ARC-Easy/test-00000-of-00001.jsonl", &rows)
            .expect("f");
        arc.file("a1", "README.md", b"# ai2_arc").expect("f");
        arc.set_ref("main", "a1").expect("ref");

        let ife = CacheRepo::new(&cache, RepoType::Dataset, "google/IFEval").expect("repo");
        ife.file("i1", "ifeval_input_data.jsonl", IFEVAL_ROW.as_bytes())
            .expect("f");
        ife.set_ref("main", "i1").expect("ref");

        let hs = CacheRepo::new(&cache, RepoType::Dataset, "Rowan/hellaswag").expect("repo");
        hs.file("h-main", "hellaswag.py", b"# a loading script")
            .expect("f");
        hs.set_ref("main", "h-main").expect("ref");
        let jsonl = fixtures().join("tiny/data/hellaswag.jsonl");
        let rows = smolsweep_datasets::read_file(&jsonl).expect("hellaswag rows");
        let pq = home.path().join("hellaswag.parquet");
        smolsweep_datasets::write_parquet(&pq, &rows).expect("parquet");
        hs.file(
            "h-pq",
            "default/validation/0000.parquet",
            &std::fs::read(&pq).expect("read"),
        )
        .expect("f");
        hs.set_ref("convert/parquet", "h-pq").expect("ref");
        std::fs::remove_file(&pq).expect("rm");
        Hub { home }
    }

    fn cache(&self) -> PathBuf {
        self.home.path().join("hub")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args)
            .env("HOME", self.home.path())
            .env("HF_HUB_CACHE", self.cache())
            .env_remove("HF_HOME");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn smolsweep")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.home.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed: {}\n{}",
        stderr(o),
        stdout(o)
    );
}

fn once(err: &str, needle: &str) {
    assert_eq!(err.matches(needle).count(), 1, "once: `{needle}` in\n{err}");
}

fn trial_text(model: &str, data: &str, out: &Path) -> String {
    format!(
        "model = \"{model}\"\ndata = [\"{data}\"]\nlr = 1e-3\nmax_steps = 2\nbatch_size = 2\n\
         max_seq_len = 64\nchat_template = \"chatml\"\ndevice = \"cpu\"\noutput_dir = \"{}\"\n",
        out.display()
    )
}

#[test]
fn ids_folders_snapshots_and_home_work_in_trial_files_and_flags() {
    let hub = Hub::new();
    let out = hub.home.path().join("out");
    let forms = [
        ("Org/Tiny", "Org/sft"),
        ("Org/Tiny@c0ffee", "Org/sft@main"),
        ("~/hub/models--Org--Tiny", "~/hub/datasets--Org--sft"),
        (
            "~/hub/models--Org--Tiny/snapshots/c0ffee",
            "~/hub/datasets--Org--sft/snapshots/s1",
        ),
    ];
    for (model, data) in forms {
        let cfg = hub.write("trial.toml", &trial_text(model, data, &out));
        let o = hub.run(&["train", "--config", cfg.to_str().expect("utf-8"), "--check"]);
        ok(&o, &format!("train --check with {model}, {data}"));
    }
    // The real run reads the train split only (the test split's rows are
    // not conversations).
    let cfg = hub.write("trial.toml", &trial_text("Org/Tiny", "Org/sft", &out));
    let o = hub.run(&[
        "train",
        "--config",
        cfg.to_str().expect("utf-8"),
        "--no-progress",
    ]);
    ok(&o, "train with ORG/NAME");
    assert!(out.join("final/config.json").is_file(), "no final model");

    // Every benchmark finds its own config and split in the hub cache.
    let o = hub.run(&[
        "eval",
        "--model",
        "Org/Tiny",
        "--device",
        "cpu",
        "--limit",
        "1",
        "--task",
        "arc_easy=allenai/ai2_arc",
        "--task",
        "hellaswag",
    ]);
    ok(&o, "eval from the hub cache");
    let results: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("results json");
    let files = |t: &str| results["tasks"][t]["data_files"].to_string();
    assert!(
        files("arc_easy").contains("a1/ARC-Easy/test-00000-of-00001.jsonl"),
        "{results}"
    );
    assert!(
        files("hellaswag").contains("h-pq/default/validation/0000.parquet"),
        "{results}"
    );
}

#[test]
fn missing_configs_models_and_snapshots_are_named_once() {
    let hub = Hub::new();
    let snap = hub.cache().join("datasets--allenai--ai2_arc/snapshots/a1");
    let o = hub.run(&[
        "eval",
        "--model",
        "Org/Tiny",
        "--device",
        "cpu",
        "--task",
        "arc_challenge=allenai/ai2_arc",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    let want = format!(
        "task arc_challenge: {}: no ARC-Challenge/ config folder (found ARC-Easy/); download that config or give its path",
        snap.display()
    );
    once(&err, &want);

    let o = hub.run(&[
        "eval",
        "--model",
        "Org/Missing",
        "--device",
        "cpu",
        "--task",
        "ifeval",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    let home = hub.home.path().display();
    let want = format!(
        "Org/Missing: no such file or directory, and not in the local hub cache (searched \
         {home}/hub/models--Org--Missing, {home}/.cache/huggingface/hub/models--Org--Missing)"
    );
    once(&err, &want);

    // A ref naming a snapshot that is not there is an error, not the
    // other snapshot.
    let model = hub.cache().join("models--Org--Tiny");
    std::fs::write(model.join("refs/main"), "deadbeef").expect("ref");
    let cfg = hub.write(
        "trial.toml",
        &trial_text("Org/Tiny", "Org/sft", &hub.home.path().join("out")),
    );
    let o = hub.run(&["train", "--config", cfg.to_str().expect("utf-8"), "--check"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    once(
        &err,
        &format!(
            "model: {}: refs/main names snapshot deadbeef, which is not in snapshots/",
            model.display()
        ),
    );
}

fn sweep_text(model: &str, data: &str, tasks: &str) -> String {
    format!(
        "[sweep]\nname = \"hub\"\n\n[train]\nmodel = \"{model}\"\ndata = [\"{data}\"]\nmax_steps = 2\n\
         batch_size = 2\ndevice = \"cpu\"\nmax_seq_len = 64\nchat_template = \"chatml\"\n\n\
         [grid]\nlr = [1e-3]\n\n[eval]\ntasks = [{tasks}]\nlimit = 2\n"
    )
}

#[test]
fn a_sweep_resolves_hub_ids_and_checks_eval_data_before_it_starts() {
    let hub = Hub::new();
    // The cache folder beside the sweep file, as a relative path.
    let sweep = hub.write(
        "rel.toml",
        &sweep_text(
            "hub/models--Org--Tiny",
            "hub/datasets--Org--sft",
            "\"arc_easy\"",
        ),
    );
    let o = hub.run(&["run", sweep.to_str().expect("utf-8"), "--check"]);
    ok(&o, "run --check with a relative cache folder");
    // IFEval's root file and hellaswag's Parquet branch, found in the hub
    // cache and read by the check (generating 1280 tokens is left to the
    // IFEval tests).
    let sweep = hub.write(
        "all.toml",
        &sweep_text(
            "Org/Tiny",
            "Org/sft",
            "\"ifeval\", \"hellaswag\", \"arc_easy\"",
        ),
    );
    let o = hub.run(&["run", sweep.to_str().expect("utf-8"), "--check"]);
    ok(&o, "run --check with every task from the hub cache");

    // An IFEval folder without its data file: the sweep fails at the
    // start, naming the key, and nothing is recorded.
    let bad = hub.home.path().join("ifeval-dir");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("README.md"), "# IFEval").expect("readme");
    let sweep = hub.write(
        "bad.toml",
        &sweep_text(
            "Org/Tiny",
            "Org/sft",
            &format!("\"arc_easy\", \"ifeval={}\"", bad.display()),
        ),
    );
    let o = hub
        .cmd(&["run", sweep.to_str().expect("utf-8"), "--no-progress"])
        .env("SMOLSWEEP_TRIAL_PROGRAM", "/nonexistent/never-started")
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = stderr(&o);
    once(
        &err,
        &format!(
            "{}: eval.tasks[1]: task ifeval: {}: no data files for split `train`",
            sweep.display(),
            bad.display()
        ),
    );
    assert!(
        !hub.home.path().join("bad").exists(),
        "the sweep recorded something"
    );

    // ORG/NAME everywhere: the sweep trains and evaluates.
    let sweep = hub.write(
        "hub.toml",
        &sweep_text("Org/Tiny", "Org/sft", "\"arc_easy=allenai/ai2_arc\""),
    );
    let o = hub
        .cmd(&["run", sweep.to_str().expect("utf-8"), "--no-progress"])
        .env("SMOLSWEEP_TRIAL_PROGRAM", env!("CARGO_BIN_EXE_smolsweep"))
        .output()
        .expect("run");
    ok(&o, "run with ORG/NAME");
    let o = hub.run(&["status", sweep.to_str().expect("utf-8"), "--json"]);
    ok(&o, "status");
    let status = stdout(&o);
    assert!(
        status.contains("completed") && status.contains("arc_easy"),
        "{status}"
    );
}
