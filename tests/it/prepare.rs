//! `smolsweep prepare`: the sweep's training data tokenised once before
//! any trial starts; the trials of `run` then map that cache instead of
//! building it.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::orchestrator_helpers::{stderr, stdout, Sweep};

fn caches(s: &Sweep) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(s.out().join("cache"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tokenized-") && n.ends_with(".bin"))
    });
    v
}

#[test]
fn prepare_tokenises_once_and_the_trials_map_it() {
    let s = Sweep::new_real(2, "lr = [1e-3, 1e-4]", "");
    let toml = s.toml();
    let toml = toml.to_str().expect("utf-8");
    let o = s.command(&["prepare", toml]).output().expect("prepare");
    assert!(o.status.success(), "prepare: {}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one training set: {out}");
    assert!(out.contains(" samples, tokenised, in "), "{out}");
    let built = caches(&s);
    assert_eq!(built.len(), 1, "{built:?}");
    let before = std::fs::metadata(&built[0]).expect("meta");

    let o = s.command(&["prepare", toml]).output().expect("prepare");
    assert!(stdout(&o).contains("already tokenised"), "{}", stdout(&o));
    // status says so before any trial exists.
    let o = s.command(&["status", toml]).output().expect("status");
    let first = stdout(&o);
    let first = first.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("data: ") && first.ends_with("(max_seq_len 64): ready, 40 samples"),
        "{first}\n{}",
        stderr(&o)
    );

    let o = s.run();
    assert!(o.status.success(), "run: {}", stderr(&o));
    let after = caches(&s);
    assert_eq!(after, built, "the trials built another cache");
    let status = s.status_json();
    assert_eq!(status["data"][0]["state"], "ready", "{status}");
    let meta = std::fs::metadata(&after[0]).expect("meta");
    assert_eq!(
        (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec()),
        "the cache was rebuilt"
    );
}
