//! The two kinds of lock that keep one sweep from running twice.
//!
//! - The orchestrator lock (`sweep.db.lock` beside the database): an
//!   exclusive `flock` held for the orchestrator's life, with its pid written
//!   inside so a second `smolsweep run` can say who holds the sweep. The
//!   kernel drops it when the process dies, however it dies.
//! - A trial lock (`<trial dir>/lock`): taken by the orchestrator before it
//!   starts a trial's child process and handed to that child as its stdin.
//!   A `flock` belongs to the open file description, which the child shares,
//!   so the lock stays held as long as the trial process lives — even after
//!   the orchestrator is SIGKILLed alone (as the OOM killer does). A
//!   restarted orchestrator that finds a trial lock held knows an orphan is
//!   still working on that trial, and waits for it (recording its events)
//!   instead of starting a duplicate. Passing the lock as stdin needs no
//!   `pre_exec` and no fd juggling, and trial commands never read stdin.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{db} is in use by another smolsweep orchestrator (pid {pid}); \
         only one may drive a sweep at a time (lock file {lock})"
    )]
    Held {
        db: PathBuf,
        lock: PathBuf,
        pid: String,
    },
}

/// Held for the orchestrator's lifetime; released by the kernel at exit.
#[derive(Debug)]
pub struct OrchestratorLock {
    _file: File,
    pub path: PathBuf,
}

impl OrchestratorLock {
    pub fn acquire(db: &Path) -> Result<Self, LockError> {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim().to_string();
            return Err(LockError::Held {
                db: db.to_path_buf(),
                lock: path,
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid
                },
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file, path })
    }
}

/// Tries to take a trial's lock. `Ok(None)`: a process holds it.
pub fn try_trial_lock(path: &Path) -> Result<Option<File>, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(LockError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// The process that has the trial lock `path` as its stdin: the trial's
/// child (its own process-group leader). Found through /proc so that a
/// stale pid in the database can never aim a signal at a stranger.
pub fn lock_holder(path: &Path) -> Option<i32> {
    let want = path.canonicalize().ok()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if std::fs::read_link(entry.path().join("fd/0"))
            .ok()
            .as_deref()
            == Some(want.as_path())
        {
            return Some(pid);
        }
    }
    None
}

/// Whether process `pid` exists (signal 0).
pub fn alive(pid: i64) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// Sends `sig` to the process group led by `pid`.
pub fn signal_group(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        if rustix::process::kill_process_group(p, sig).is_err() {
            // Not a group leader (should not happen): the process alone.
            let _ = rustix::process::kill_process(p, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_orchestrator_lock_names_pid() {
        let d = tempfile::tempdir().expect("tempdir");
        let db = d.path().join("sweep.db");
        let _a = OrchestratorLock::acquire(&db).expect("first");
        let e = OrchestratorLock::acquire(&db).expect_err("second must fail");
        assert!(
            e.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
    }

    #[test]
    fn trial_lock_is_exclusive_until_dropped() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("lock");
        let a = try_trial_lock(&p).expect("io").expect("free");
        assert!(try_trial_lock(&p).expect("io").is_none());
        drop(a);
        assert!(try_trial_lock(&p).expect("io").is_some());
    }
}
