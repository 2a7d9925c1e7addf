//! One child process of a trial (`train` or `eval`): spawned in its own
//! process group with the trial lock as its stdin, signalled as a group
//! when the sweep stops (SIGTERM once, SIGKILL twice), waited for, and its
//! exit read back as a code or a signal (with the log lines that say why).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Stdio;

use rustix::process::Signal;

use smolsweep_config::ExitCode;

use super::tail::EventTail;
use super::{io_err, Ctx, RunError, TAIL_EVERY};
use crate::locks;
use crate::store::Trial;

/// How a child process ended.
pub(super) enum Exit {
    Code(i32),
    Signal(i32),
    /// Not ended: the sweep stopped and left it running (a Slurm job).
    Left,
    /// The sweep cancelled it on the way out (a Slurm job under
    /// `--cancel`): like a stop, it resumes next run.
    Cancelled,
}

impl Exit {
    /// What the status means in the trial process contract, if anything.
    pub(super) fn contract(&self) -> Option<ExitCode> {
        match self {
            Exit::Code(c) => ExitCode::from_code(*c),
            Exit::Signal(_) | Exit::Left | Exit::Cancelled => None,
        }
    }
}

/// What to start, and where its standard streams go.
pub(super) struct Child<'a> {
    /// `train` or `eval`: recorded as the trial's stage.
    pub stage: &'a str,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// The trial lock, held open as the child's stdin: the lock lives as
    /// long as the process does, even past its orchestrator.
    pub lock: Option<&'a File>,
    pub lock_path: &'a Path,
    pub stdout: File,
    pub stderr: File,
    pub cuda_visible_devices: &'a str,
}

/// The signal for a shutdown level: 1 asks the trial to checkpoint and
/// stop, 2 kills it.
pub(super) fn stop_signal(level: u8) -> Signal {
    if level >= 2 {
        Signal::KILL
    } else {
        Signal::TERM
    }
}

/// Opens a log or event file for appending, creating it.
pub(super) fn append(path: &Path) -> Result<File, RunError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

/// Runs one child to its end, tailing the trainer's events meanwhile (when
/// given `events`) and passing on a shutdown request to its group.
pub(super) async fn run_child(
    ctx: &Ctx,
    trial: &Trial,
    child: Child<'_>,
    mut events: Option<&mut EventTail<'_>>,
) -> Result<Exit, RunError> {
    let Child {
        stage,
        args,
        lock,
        lock_path,
        stdout,
        stderr,
        cuda_visible_devices: cvd,
    } = child;
    let stdin = match lock {
        Some(lock) => Stdio::from(lock.try_clone().map_err(io_err(lock_path))?),
        None => Stdio::null(),
    };
    let mut cmd = tokio::process::Command::new(&ctx.program);
    cmd.args(&args)
        .stdin(stdin)
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .env("CUDA_VISIBLE_DEVICES", cvd)
        // Its own group: the orchestrator decides which signal a trial
        // gets (a terminal's Ctrl-C reaches only the orchestrator), and a
        // signal to the group reaches whatever the trial itself spawned.
        .process_group(0)
        .kill_on_drop(false);
    if let (Some(n), true) = (ctx.cpu_threads, cvd.is_empty()) {
        cmd.env("OMP_NUM_THREADS", n.to_string())
            .env("MKL_NUM_THREADS", n.to_string());
    }
    let mut process = cmd.spawn().map_err(io_err(&ctx.program))?;
    let pid = process.id().unwrap_or(0);
    let mut argv = vec![ctx.program.display().to_string()];
    argv.extend(args.iter().cloned());
    ctx.store.spawned(trial.id, stage, pid, &argv).await?;
    let mut shutdown = ctx.shutdown.clone();
    let mut sent = 0u8;
    let mut tick = tokio::time::interval(TAIL_EVERY);
    let signal_for = |level: u8, sent: &mut u8| {
        if level > *sent {
            locks::signal_group(pid as i32, stop_signal(level));
            *sent = level;
        }
    };
    signal_for(*shutdown.borrow(), &mut sent);
    let status = loop {
        tokio::select! {
            st = process.wait() => break st.map_err(io_err(&ctx.program))?,
            _ = tick.tick() => {
                if let Some(events) = events.as_deref_mut() {
                    events.read(&ctx.store).await?;
                }
            }
            changed = shutdown.changed() => {
                if changed.is_ok() {
                    let level = *shutdown.borrow();
                    signal_for(level, &mut sent);
                }
            }
        }
    };
    if let Some(events) = events {
        events.read(&ctx.store).await?;
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        _ => Exit::Code(-1),
    })
}

/// The last lines of a log, to say why a process failed.
pub(super) fn log_reason(log: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(log).and_then(|mut f| {
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(8192)))?;
        f.read_to_string(&mut text)
    });
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(l) = lines.iter().rev().find(|l| l.starts_with("error")) {
        return l.to_string();
    }
    lines
        .iter()
        .rev()
        .take(3)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(" | ")
}

/// What libtorch, CUDA and its libraries write when the device has no
/// memory left (`c10::OutOfMemoryError`'s "CUDA out of memory. Tried to
/// allocate ...", the runtime's and cuBLAS's allocation failures).
const OUT_OF_MEMORY: &[&str] = &[
    "CUDA out of memory",
    "OutOfMemoryError",
    "CUDA error: out of memory",
    "cudaErrorMemoryAllocation",
    "CUBLAS_STATUS_ALLOC_FAILED",
];

/// The line that says the last process of a stage's log ran out of GPU
/// memory, if one does: only what it wrote after its orchestrator header
/// counts, so an earlier attempt's out of memory is not read again.
pub(super) fn out_of_memory(log: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(log)
        .and_then(|mut f| {
            let len = f.metadata()?.len();
            f.seek(SeekFrom::Start(len.saturating_sub(65_536)))?;
            // A seek into a UTF-8 sequence: the lossy read keeps the rest.
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)?;
            text = String::from_utf8_lossy(&bytes).into_owned();
            Ok(())
        })
        .ok()?;
    let last = text
        .rfind("=== smolsweep orchestrator")
        .map_or(&text[..], |i| &text[i..]);
    last.lines()
        .find(|l| OUT_OF_MEMORY.iter().any(|m| l.contains(m)))
        .map(|l| l.trim().chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_is_read_from_the_last_process_only() {
        let d = tempfile::tempdir().expect("tmp");
        let log = d.path().join("train.log");
        assert_eq!(out_of_memory(&log), None, "no log");
        std::fs::write(
            &log,
            "=== smolsweep orchestrator pid 1: attempt 1\nerror: CUDA out of memory. Tried to allocate 2.00 GiB\n",
        )
        .expect("write");
        assert_eq!(
            out_of_memory(&log).as_deref(),
            Some("error: CUDA out of memory. Tried to allocate 2.00 GiB")
        );
        let mut f = append(&log).expect("append");
        use std::io::Write;
        writeln!(
            f,
            "=== smolsweep orchestrator pid 1: attempt 1\nerror: data.jsonl: row 3: no messages"
        )
        .expect("write");
        assert_eq!(out_of_memory(&log), None, "the earlier process's");
        writeln!(f, "=== smolsweep orchestrator pid 1: attempt 2\nRuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate").expect("write");
        assert!(out_of_memory(&log).is_some_and(|l| l.contains("CUBLAS")));
    }
}
