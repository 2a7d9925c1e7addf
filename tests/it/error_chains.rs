//! Error chains through the binary: the message of every link is printed
//! once. A variant that both quoted its source in its message and passed
//! it on as the source printed the cause twice (`...: No such file or
//! directory (os error 2): No such file or directory (os error 2)`).

use std::path::Path;

use crate::common::*;

/// Runs the binary expecting failure; its stderr.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "expected failure, got {}", stdout(&o));
    stderr(&o)
}

fn assert_once(err: &str, needle: &str) {
    assert_eq!(
        err.matches(needle).count(),
        1,
        "`{needle}` should appear exactly once in:\n{err}"
    );
}

#[test]
fn a_missing_trial_config_names_the_os_error_once() {
    let err = fails(&["train", "--config", "/nonexistent/trial.toml"]);
    assert!(err.contains("/nonexistent/trial.toml"), "{err}");
    assert_once(&err, "No such file or directory");
}

#[test]
fn a_model_directory_without_config_json_is_reported_once_by_generate() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = fails(&[
        "generate",
        "--model",
        dir.path().to_str().expect("path"),
        "--prompt",
        "x",
    ]);
    assert!(err.contains(dir.path().to_str().expect("path")), "{err}");
    assert_once(&err, "no config.json");
}

/// A hub cache folder with no snapshot is refused by the trial file's
/// check, which wraps the resolver's text without repeating it.
#[test]
fn a_hub_cache_folder_without_a_snapshot_is_reported_once_by_train() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = dir.path().join("models--Org--Tiny");
    std::fs::create_dir_all(model.join("snapshots")).expect("mkdir");
    let data = dir.path().join("sft.jsonl");
    std::fs::write(
        &data,
        r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#,
    )
    .expect("write data");
    let cfg = dir.path().join("trial.toml");
    std::fs::write(&cfg, trial_toml(&model, &data, &dir.path().join("out"))).expect("write");
    let err = fails(&[
        "train",
        "--config",
        cfg.to_str().expect("path"),
        "--no-progress",
    ]);
    assert!(err.contains("models--Org--Tiny"), "{err}");
    assert_once(&err, "a hub cache folder with no snapshot in snapshots/");
}

fn trial_toml(model: &Path, data: &Path, out: &Path) -> String {
    format!(
        "model = \"{}\"\ndata = [\"{}\"]\nlr = 1e-4\noutput_dir = \"{}\"\ndevice = \"cpu\"\n",
        model.display(),
        data.display(),
        out.display()
    )
}
