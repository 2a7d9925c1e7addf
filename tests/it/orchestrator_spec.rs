//! Bad sweep files are refused before any trial starts, naming the key.
//!
//! Every file in `tests/fixtures/sweeps/bad/` starts with `# expect: KEY`;
//! `smolsweep run` on it must fail with KEY in its message, create no
//! database and no trial directory, and never start the trial program.

use crate::orchestrator_helpers::*;

/// Copies the fixtures into a scratch directory so that a file wrongly
/// accepted could not write into the repository.
fn scratch() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(fixtures().join("bad"))
        .arg(fixtures().join("tiny"))
        .arg(d.path())
        .status()
        .expect("cp");
    assert!(copy.success());
    d
}

#[test]
fn bad_sweep_files_are_refused_naming_the_key() {
    let d = scratch();
    let ledger = d.path().join("ledger.jsonl");
    let mut files: Vec<_> = std::fs::read_dir(d.path().join("bad"))
        .expect("bad/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: first line must be `# expect: KEY`", f.display()))
            .trim()
            .to_string();
        let o = crate::common::bin()
            .args(["run", f.to_str().expect("utf-8"), "--no-progress"])
            .env("SMOLSWEEP_TRIAL_PROGRAM", trial_program())
            .env("STANDIN_LEDGER", &ledger)
            // One simulated GPU, so `gpus = [0, 5]` is judged the same
            // on every machine.
            .env("SMOLSWEEP_SIMULATE_GPUS", "1")
            .output()
            .expect("spawn");
        let err = stderr(&o);
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        if o.status.success() {
            failures.push(format!("{name}: accepted"));
        } else if !err.contains(&expect) {
            failures.push(format!("{name}: message does not name {expect:?}: {err}"));
        } else if !err.contains(&name) {
            failures.push(format!("{name}: message does not name the file: {err}"));
        }
        let out = d.path().join("bad/out");
        if out.join("sweep.db").exists() || out.join("trials").exists() {
            failures.push(format!("{name}: something was recorded or started"));
            let _ = std::fs::remove_dir_all(&out);
        }
        eprintln!("{name}: {}", err.trim());
    }
    assert!(
        !ledger.exists(),
        "a trial process was started: {}",
        std::fs::read_to_string(&ledger).unwrap_or_default()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn example_sweeps_are_valid() {
    // The shipped examples must parse and name only real keys. Their model
    // and data paths exist only after set-up, so they are validated with
    // those lines pointed at the tiny fixtures.
    let d = tempfile::tempdir().expect("tempdir");
    for (name, min_points) in [
        ("smoltulu-fig1.toml", 25),
        ("smoltulu-dpo.toml", 16),
        ("smoltulu-rm.toml", 20),
        ("example.toml", 2),
    ] {
        let text = std::fs::read_to_string(root().join("sweeps").join(name)).expect("read example");
        let text: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("model =") {
                    format!("model = {:?}", tiny_model().display().to_string())
                } else if l.starts_with("data =") {
                    format!(
                        "data = [{:?}]",
                        fixtures()
                            .join("tiny/data/train.jsonl")
                            .display()
                            .to_string()
                    )
                } else if l.starts_with("data_dir =") {
                    String::new()
                } else {
                    l.to_string()
                }
            })
            .collect();
        let p = d.path().join(name);
        let spec = smolsweep_orchestrator::SweepSpec::parse(&p, &text.join("\n"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            spec.trial_count() >= min_points,
            "{name}: {} points",
            spec.trial_count()
        );
    }
}
