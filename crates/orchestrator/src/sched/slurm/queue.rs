//! What Slurm says of the sweep's jobs: one `squeue` call per polling
//! round for all of them (the controller's load does not grow with the
//! number of trials), every 2 s while something changes and backing off to
//! 60 s while nothing does. Trial tasks wait on the rounds and read their
//! job's line; a job that left the queue is looked up once (`sacct`, then
//! the job completion log, then `scontrol`) by the task that waits for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::{output, SlurmError};

/// The first and longest wait between two `squeue` rounds.
const POLL_MIN: Duration = Duration::from_secs(2);
const POLL_MAX: Duration = Duration::from_secs(60);

/// One job's line in `squeue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub state: String,
    pub node: Option<String>,
    pub reason: String,
}

/// A watched job, as of the latest round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    /// Not polled since it was registered.
    Unknown,
    Listed(Seen),
    /// Not in a round that began after it was registered.
    Gone,
}

/// States in which a job is not finished: it runs, will run, or is on its
/// way back into the queue.
pub(super) fn is_active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "PREEMPTED"
            | "CONFIGURING"
            | "COMPLETING"
            | "RESIZING"
            | "SUSPENDED"
            | "STOPPED"
            | "SIGNALING"
            | "STAGE_OUT"
            | "RESV_DEL_HOLD"
    )
}

#[derive(Default)]
struct Inner {
    /// Watched job id -> the rounds begun before it was registered.
    watched: HashMap<String, u64>,
    /// Every job of the sweep squeue listed in the latest round, by id.
    listed: HashMap<String, (String, Seen)>,
    /// Rounds (squeue calls) begun.
    started: u64,
    /// The number of the round `listed` is from: only a round begun after
    /// a job was registered can say it is gone.
    round: u64,
}

/// The sweep's jobs as squeue lists them, refreshed by [`Queue::poll`].
pub(super) struct Queue {
    /// Job names of this sweep start with it.
    prefix: String,
    inner: Mutex<Inner>,
    /// A job was registered: poll soon.
    wake: Notify,
    rounds: watch::Sender<u64>,
}

impl Queue {
    pub(super) fn new(prefix: String) -> Self {
        Queue {
            prefix,
            inner: Mutex::default(),
            wake: Notify::new(),
            rounds: watch::channel(0).0,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows `job_id` from the next round on.
    pub(super) fn watch(&self, job_id: &str) {
        let mut i = self.inner();
        let begun = i.started;
        i.watched.entry(job_id.to_string()).or_insert(begun);
        drop(i);
        self.wake.notify_one();
    }

    /// Polls soon: something says the queue changed (a cancel, a job's
    /// own requeue).
    pub(super) fn nudge(&self) {
        self.wake.notify_one();
    }

    pub(super) fn unwatch(&self, job_id: &str) {
        self.inner().watched.remove(job_id);
    }

    pub(super) fn rounds(&self) -> watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    pub(super) fn calls(&self) -> u64 {
        self.inner().started
    }

    pub(super) fn status(&self, job_id: &str) -> Status {
        let i = self.inner();
        let Some(&since) = i.watched.get(job_id) else {
            return Status::Unknown;
        };
        match i.listed.get(job_id) {
            Some((_, seen)) => Status::Listed(seen.clone()),
            None if i.round > since => Status::Gone,
            None => Status::Unknown,
        }
    }

    /// The id of a listed job of this sweep called `name`.
    pub(super) fn listed_by_name(&self, name: &str) -> Option<String> {
        self.inner()
            .listed
            .iter()
            .find(|(_, (n, _))| n == name)
            .map(|(id, _)| id.clone())
    }

    /// One `squeue` round now (also used to look a job up by name).
    pub(super) async fn refresh(&self) -> Result<bool, SlurmError> {
        let round = {
            let mut i = self.inner();
            i.started += 1;
            i.started
        };
        let text = output(
            "squeue",
            &[
                "--me",
                "--noheader",
                "--states=all",
                "--format=%i|%j|%T|%N|%r",
            ],
        )
        .await?;
        let mut listed = HashMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.trim().splitn(5, '|').collect();
            let [id, name, state, node, reason] = f[..] else {
                continue;
            };
            if !name.starts_with(&self.prefix) {
                continue;
            }
            let node = Some(node.trim()).filter(|n| !n.is_empty() && *n != "(null)");
            listed.insert(
                id.trim().to_string(),
                (
                    name.to_string(),
                    Seen {
                        state: state.trim().to_string(),
                        node: node.map(str::to_string),
                        reason: reason.trim().to_string(),
                    },
                ),
            );
        }
        let mut i = self.inner();
        if round < i.round {
            // A later round (a look-up by name) answered first.
            return Ok(false);
        }
        let changed = i.listed != listed;
        i.listed = listed;
        i.round = round;
        drop(i);
        self.rounds.send_replace(round);
        Ok(changed)
    }

    /// Polls while the queue is used: 2 s after a change or a new job,
    /// doubling up to 60 s while the listing stays the same.
    pub(super) async fn poll(&self) {
        let mut wait = POLL_MIN;
        loop {
            let idle = self.inner().watched.is_empty();
            if !idle {
                match self.refresh().await {
                    Ok(true) => wait = POLL_MIN,
                    Ok(false) => wait = (wait * 2).min(POLL_MAX),
                    Err(e) => {
                        tracing::warn!("{e}; trying again in {}s", wait.as_secs());
                        wait = (wait * 2).min(POLL_MAX);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {
                    wait = POLL_MIN;
                    // Let the others registering at the same moment join
                    // this round.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// A job that left the queue: its final state by `sacct` (accounting),
/// `sacct -c` (the job completion log), or `scontrol show job`, in that
/// order; None when none of them knows it any more.
pub(super) async fn final_state(job_id: &str) -> Option<(String, Option<String>)> {
    for args in [
        vec!["-j", job_id, "-X", "-n", "-P", "-o", "State,NodeList"],
        vec!["-c", "-j", job_id, "-n", "-P", "-o", "State,NodeList"],
    ] {
        if let Ok(text) = output("sacct", &args).await {
            if let Some(line) = text.lines().find(|l| !l.trim().is_empty()) {
                let mut f = line.split('|');
                let state = f
                    .next()
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or_default();
                if !state.is_empty() {
                    let node = f.next().map(str::trim).filter(|n| !n.is_empty());
                    return Some((state.to_string(), node.map(str::to_string)));
                }
            }
        }
    }
    let text = output("scontrol", &["show", "job", job_id]).await.ok()?;
    let field = |k: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
    };
    Some((field("JobState=")?, field("NodeList=")))
}
