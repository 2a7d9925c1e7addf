//! The Slurm backend (`[resources] backend = "slurm"`): every trial
//! attempt is one Slurm job running the attempt's batch script
//! (`script`), submitted with `sbatch --parsable` and followed with one
//! `squeue` per round for the whole sweep (`queue`). The orchestrator may
//! die or leave at any moment; jobs carry on, and the next `run` picks
//! them up from the record:
//!
//! - the intent to submit (the job's name) is recorded before sbatch
//!   runs and the job id after, so a crash in between is repaired by
//!   finding the job by name (squeue, sacct, or the `started.NAME` file
//!   its script writes), never by submitting again;
//! - PENDING, RUNNING, REQUEUED and PREEMPTED jobs are not finished; a
//!   requeue (preemption, time limit) continues the same attempt;
//! - what a job achieved is read from the trial's own files (event file,
//!   results.json, `slurm/JOB.STAGE.exit`), as for local trials; Slurm's
//!   state only says why a job without an exit status ended.

mod queue;
mod script;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use smolsweep_config::sweep::SlurmConfig;

use super::child::Exit;
use super::tail::EventTail;
use super::{io_err, Ctx, RunError, TAIL_EVERY};
use crate::store::{JobKey, SlurmJob, Trial};
use queue::{Queue, Status};
pub(super) use script::EXPORT;

/// Test hook: the orchestrator dies right after sbatch answered, before
/// the job id is recorded (the crash the intent record is for).
const DIE_AFTER_SBATCH_ENV: &str = "SMOLSWEEP_TEST_DIE_AFTER_SBATCH";

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{file}: resources.backend: \"slurm\" needs `{program}`, which is not on PATH")]
    Missing { file: PathBuf, program: String },
    #[error("{file}: resources.slurm.partition: Slurm has no partition {partition:?} (sinfo lists {known})")]
    UnknownPartition {
        file: PathBuf,
        partition: String,
        known: String,
    },
    #[error("{command}: {message}")]
    Command { command: String, message: String },
}

/// Runs a Slurm command; its stdout, or an error with its stderr.
pub(super) async fn output(program: &str, args: &[&str]) -> Result<String, SlurmError> {
    let command = format!("{program} {}", args.join(" "));
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| SlurmError::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(SlurmError::Command {
            command,
            message: format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(program);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

/// Checks, before anything is recorded, that Slurm's commands are here
/// and that it knows the partition asked for.
pub fn preflight(file: &Path, cfg: &SlurmConfig) -> Result<(), SlurmError> {
    for program in ["sbatch", "squeue", "sinfo"] {
        if !on_path(program) {
            return Err(SlurmError::Missing {
                file: file.to_path_buf(),
                program: program.into(),
            });
        }
    }
    let Some(partition) = &cfg.partition else {
        return Ok(());
    };
    let out = std::process::Command::new("sinfo")
        .args(["--noheader", "--format=%P"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SlurmError::Command {
            command: "sinfo".into(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(SlurmError::Command {
            command: "sinfo --noheader --format=%P".into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let known: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches('*').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if known.iter().any(|k| k == partition) {
        Ok(())
    } else {
        Err(SlurmError::UnknownPartition {
            file: file.to_path_buf(),
            partition: partition.clone(),
            known: known.join(", "),
        })
    }
}

/// The backend of one `run`: the sweep's job-name prefix, the options
/// every job gets, and the shared queue poller.
pub(super) struct Slurm {
    cfg: SlurmConfig,
    prefix: String,
    queue: Arc<Queue>,
    /// Jobs sbatch accepted in this run (`run --detach` says how many).
    submitted: AtomicUsize,
}

/// The job-name prefix of a sweep: its name (made safe) and a hash of its
/// database path, so two sweeps of the same name never take each other's
/// jobs for their own.
pub fn job_prefix(name: &str, db: &Path) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let db = db.canonicalize().unwrap_or_else(|_| db.to_path_buf());
    let hash = hex8(&Sha256::digest(db.display().to_string().as_bytes()));
    format!("ss.{safe}.{hash}.")
}

fn hex8(bytes: &[u8]) -> String {
    bytes[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// What one attempt's job runs.
pub(super) struct Plan {
    pub train_args: Vec<String>,
    pub eval_args: Option<Vec<String>>,
}

/// How long a requeued job stays held before the orchestrator starts it
/// again. slurmd refuses to launch a job whose credential was made in the
/// same second as it killed the job's previous run ("Killing non-startable
/// batch JobId=N: Job credential revoked": the comparison is in whole
/// seconds), and the job then ends FAILED; that is why Slurm holds a
/// requeued job for CredExpire + 1 s. Seen here when the release came 0.7 s
/// after the requeue; 2 s after the hold was first seen (itself after the
/// kill) is always a later second.
const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// How following a job ended.
enum Followed {
    /// It left the queue in this state.
    Ended(String),
    /// The sweep cancelled it (Ctrl-C with `--cancel`) and it has left the
    /// queue.
    Cancelled,
    /// The sweep stops, or detaches, and leaves it running.
    Left,
}

impl Slurm {
    pub(super) fn new(cfg: SlurmConfig, name: &str, db: &Path) -> Self {
        let prefix = job_prefix(name, db);
        Slurm {
            cfg,
            queue: Arc::new(Queue::new(prefix.clone())),
            prefix,
            submitted: AtomicUsize::new(0),
        }
    }

    /// The poller, to spawn for the length of the run.
    pub(super) fn poller(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let q = Arc::clone(&self.queue);
        async move { q.poll().await }
    }

    /// squeue calls made so far.
    pub(super) fn squeue_calls(&self) -> u64 {
        self.queue.calls()
    }

    /// Jobs sbatch accepted in this run.
    pub(super) fn submitted(&self) -> usize {
        self.submitted.load(Ordering::Relaxed)
    }

    /// `t1.a2` for the first job of an attempt (the name jobs had before
    /// resubmission existed), `t1.a2.s3` for its third.
    fn job_name(&self, key: JobKey) -> String {
        let mut name = format!("{}t{}.a{}", self.prefix, key.trial, key.attempt);
        if key.submission > 1 {
            name.push_str(&format!(".s{}", key.submission));
        }
        name
    }

    /// Runs `stage` of the trial's current attempt: its job is found (or
    /// submitted, once per attempt and submission) and followed until it
    /// leaves the queue; the stage's exit status is the one the job's
    /// script recorded. [`Exit::Left`] when the sweep stops (or detaches)
    /// first: the job carries on. [`Exit::Cancelled`] when the sweep
    /// cancelled it.
    pub(super) async fn run_stage(
        &self,
        ctx: &Ctx,
        trial: &Trial,
        stage: &str,
        plan: &Plan,
        dir: &Path,
        mut events: Option<&mut EventTail<'_>>,
    ) -> Result<Exit, RunError> {
        let Some((key, job_id)) = self.job_of_attempt(ctx, trial, plan, dir).await? else {
            // Stopping before the attempt's (next) job was submitted:
            // nothing of it runs when the sweep cancels its jobs.
            return Ok(if ctx.cancel_jobs() {
                Exit::Cancelled
            } else {
                Exit::Left
            });
        };
        let followed = self
            .follow(ctx, key, &job_id, dir, &mut events, false)
            .await?;
        if let Some(events) = events {
            events.read(&ctx.store).await?;
        }
        let exit_file = dir.join("slurm").join(format!("{job_id}.{stage}.exit"));
        let status = std::fs::read_to_string(&exit_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        let state = match followed {
            Followed::Left => return Ok(Exit::Left),
            // A stage that finished before the cancel reached it counts.
            Followed::Cancelled if status == Some(0) => "COMPLETED".to_string(),
            Followed::Cancelled => return Ok(Exit::Cancelled),
            Followed::Ended(state) => state,
        };
        match status {
            Some(c) if c > 128 => Ok(Exit::Signal(c - 128)),
            Some(c) => Ok(Exit::Code(c)),
            None => {
                // The job ended without the stage's status (cancelled,
                // killed at its time limit, node failure): the log says so,
                // for the attempt's recorded reason.
                let log = dir.join(if stage == "eval" {
                    "eval.log"
                } else {
                    "train.log"
                });
                let mut f = super::child::append(&log)?;
                let _ = std::io::Write::write_all(
                    &mut f,
                    format!("error: Slurm job {job_id} ended {state} before {stage} finished\n")
                        .as_bytes(),
                );
                Ok(Exit::Code(1))
            }
        }
    }

    /// The job of the trial's current attempt, submitting it when the
    /// attempt has none (and none can be found by its name), or when the
    /// sweep cancelled the attempt's latest job: then that job is made
    /// sure of (cancelled again, gone from the queue) and the attempt is
    /// submitted anew. None when the sweep stops meanwhile.
    async fn job_of_attempt(
        &self,
        ctx: &Ctx,
        trial: &Trial,
        plan: &Plan,
        dir: &Path,
    ) -> Result<Option<(JobKey, String)>, RunError> {
        let first = JobKey {
            trial: trial.id,
            attempt: trial.attempt,
            submission: 1,
        };
        let row = ctx.store.slurm_job(trial.id, trial.attempt).await?;
        if let Some(row) = &row {
            if let (Some(id), None) = (&row.job_id, row.cancelled_at) {
                return Ok(Some((row.key(), id.clone())));
            }
        }
        // Nothing is submitted once the sweep stops.
        if ctx.shutdown_level() > 0 {
            return Ok(None);
        }
        let key = match row {
            Some(row) if row.cancelled_at.is_some() => {
                if !self.cancelled_and_gone(ctx, &row, dir).await? {
                    return Ok(None);
                }
                let next = JobKey {
                    submission: row.submission + 1,
                    ..row.key()
                };
                ctx.store.slurm_intent(next, &self.job_name(next)).await?;
                next
            }
            Some(row) => {
                // Recorded the intent, then died before hearing the id.
                if let Some(id) = self.find_by_name(&row.job_name, dir).await {
                    ctx.store
                        .slurm_submitted(row.key(), &id, "found by name")
                        .await?;
                    return Ok(Some((row.key(), id)));
                }
                row.key()
            }
            None => {
                ctx.store.slurm_intent(first, &self.job_name(first)).await?;
                first
            }
        };
        let name = self.job_name(key);
        let slurm_dir = dir.join("slurm");
        std::fs::create_dir_all(&slurm_dir).map_err(io_err(&slurm_dir))?;
        let script_path = slurm_dir.join(if key.submission > 1 {
            format!("attempt{}.s{}.sh", key.attempt, key.submission)
        } else {
            format!("attempt{}.sh", key.attempt)
        });
        let mut options = self.cfg.sbatch_options();
        options.extend(self.cfg.extra_args.iter().cloned());
        let comment = format!(
            "smolsweep sweep={} trial={} attempt={} submission={} point={}",
            ctx.spec.name,
            trial.id,
            key.attempt,
            key.submission,
            trial.point_key.replace(['"', '\''], "")
        );
        let text = script::Script {
            job_name: &name,
            comment: &comment,
            dir,
            program: &ctx.program,
            train_args: &plan.train_args,
            eval_args: plan.eval_args.as_deref(),
            options: &options,
            signal_grace_s: self.cfg.signal_grace_s,
        }
        .text();
        std::fs::write(&script_path, text).map_err(io_err(&script_path))?;
        let script_arg = script_path.display().to_string();
        let out = output("sbatch", &["--parsable", &script_arg]).await?;
        // `ID` or `ID;CLUSTER`.
        let id = out.trim().split(';').next().unwrap_or_default().to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SlurmError::Command {
                command: format!("sbatch --parsable {script_arg}"),
                message: format!("unexpected answer {out:?}"),
            }
            .into());
        }
        if std::env::var_os(DIE_AFTER_SBATCH_ENV).is_some() {
            std::process::exit(137);
        }
        self.submitted.fetch_add(1, Ordering::Relaxed);
        ctx.store.slurm_submitted(key, &id, "sbatch").await?;
        Ok(Some((key, id)))
    }

    /// A job the sweep decided to cancel: cancelled (again: an earlier
    /// orchestrator may have died between the record and `scancel`) and
    /// followed until it has left the queue, so that the attempt's next
    /// job never runs beside it. False when the sweep stops first.
    async fn cancelled_and_gone(
        &self,
        ctx: &Ctx,
        row: &SlurmJob,
        dir: &Path,
    ) -> Result<bool, RunError> {
        if row.ended_at.is_some() {
            return Ok(true);
        }
        let id = match &row.job_id {
            Some(id) => Some(id.clone()),
            None => self.find_by_name(&row.job_name, dir).await,
        };
        let Some(id) = id else {
            // Never submitted (or long forgotten by Slurm): nothing runs.
            return Ok(true);
        };
        scancel(&id).await;
        let followed = self
            .follow(ctx, row.key(), &id, dir, &mut None, true)
            .await?;
        Ok(!matches!(followed, Followed::Left))
    }

    /// A job submitted under `name` whose id was never recorded: listed by
    /// squeue, known to sacct, or started (its script left its id).
    async fn find_by_name(&self, name: &str, dir: &Path) -> Option<String> {
        if self.queue.refresh().await.is_ok() {
            if let Some(id) = self.queue.listed_by_name(name) {
                return Some(id);
            }
        }
        if let Ok(text) = output(
            "sacct",
            &[
                "-n",
                "-X",
                "-P",
                "-o",
                "JobID",
                "--name",
                name,
                "-S",
                "now-30days",
            ],
        )
        .await
        {
            if let Some(id) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
                return Some(id.to_string());
            }
        }
        std::fs::read_to_string(dir.join("slurm").join(format!("started.{name}")))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    /// Follows the job until it has left the queue (its final state), the
    /// sweep stops or detaches ([`Followed::Left`]), or the sweep cancels
    /// it on the way out ([`Followed::Cancelled`], once it has left the
    /// queue). Records state, node and restarts as they change, and tails
    /// the event file meanwhile. `cancelled`: the job was cancelled
    /// already; it is only waited for (never released, never left behind
    /// by `--detach`).
    async fn follow(
        &self,
        ctx: &Ctx,
        key: JobKey,
        job_id: &str,
        dir: &Path,
        events: &mut Option<&mut EventTail<'_>>,
        mut cancelled: bool,
    ) -> Result<Followed, RunError> {
        if let Some(row) = ctx.store.slurm_job(key.trial, key.attempt).await? {
            if row.submission == key.submission {
                if let (Some(state), Some(_)) = (&row.state, row.ended_at) {
                    return Ok(if row.cancelled_at.is_some() {
                        Followed::Cancelled
                    } else {
                        Followed::Ended(state.clone())
                    });
                }
            }
        }
        self.queue.watch(job_id);
        let mut rounds = self.queue.rounds();
        let mut shutdown = ctx.shutdown.clone();
        let mut tick = tokio::time::interval(TAIL_EVERY);
        let mut last: Option<(String, Option<String>, i64)> = None;
        let mut released = false;
        let mut held_since: Option<std::time::Instant> = None;
        let slurm_dir = dir.join("slurm");
        let restarts_file = slurm_dir.join(format!("{job_id}.restarts"));
        let requeue_file = slurm_dir.join(format!("{job_id}.requeued"));
        let mut requeues = std::fs::read_to_string(&requeue_file).unwrap_or_default();
        let ended = |state: String, cancelled: bool| {
            if cancelled {
                Followed::Cancelled
            } else {
                Followed::Ended(state)
            }
        };
        let result = loop {
            let level = ctx.shutdown_level();
            if level > 0 {
                // A second Ctrl-C stops waiting for a cancelled job to
                // leave the queue: the decision is recorded, and the next
                // run makes sure of it before submitting the attempt again.
                if !ctx.cancel_jobs() || level > 1 {
                    break Followed::Left;
                }
                if !cancelled {
                    cancelled = true;
                    ctx.store
                        .slurm_cancelling(key, "the sweep was stopped with --cancel")
                        .await?;
                    scancel(job_id).await;
                    self.queue.nudge();
                }
            }
            let restarts = std::fs::read_to_string(&restarts_file)
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(0);
            match self.queue.status(job_id) {
                Status::Unknown => {}
                Status::Listed(seen) => {
                    let now = (seen.state.clone(), seen.node.clone(), restarts);
                    let gone = !queue::is_active(&seen.state);
                    if last.as_ref() != Some(&now) || gone {
                        ctx.store
                            .slurm_seen(
                                key,
                                &seen.state,
                                seen.node.as_deref(),
                                Some(restarts),
                                gone,
                            )
                            .await?;
                        last = Some(now);
                    }
                    if gone {
                        break ended(seen.state, cancelled);
                    }
                    // Requeued (by its own script, or a preemption): Slurm
                    // holds it for CredExpire + 1 s (BeginTime, 121 s by
                    // default) so that its node has forgotten the killed
                    // run's credential; start it again once that cannot
                    // matter any more (see RELEASE_AFTER).
                    if seen.state == "PENDING" && seen.reason == "BeginTime" && !released {
                        let since = *held_since.get_or_insert_with(std::time::Instant::now);
                        if since.elapsed() >= RELEASE_AFTER {
                            released = true;
                            if !cancelled {
                                let _ = output(
                                    "scontrol",
                                    &["update", &format!("jobid={job_id}"), "StartTime=now"],
                                )
                                .await;
                            }
                        }
                    } else if seen.state != "PENDING" {
                        released = false;
                        held_since = None;
                    }
                    // Detached: submitted (or found) and on its way; the
                    // next run follows it.
                    if ctx.detach && !cancelled {
                        break Followed::Left;
                    }
                }
                Status::Gone => {
                    let (state, node) = queue::final_state(job_id)
                        .await
                        .unwrap_or_else(|| ("UNKNOWN".into(), None));
                    ctx.store
                        .slurm_seen(key, &state, node.as_deref(), Some(restarts), true)
                        .await?;
                    break ended(state, cancelled);
                }
            }
            tokio::select! {
                _ = rounds.changed() => {}
                _ = tick.tick() => {
                    if let Some(events) = events.as_deref_mut() {
                        events.read(&ctx.store).await?;
                    }
                    // The script requeued its job (time limit near): ask
                    // squeue soon, not after the backed-off wait, so the
                    // hold is released within seconds.
                    let now = std::fs::read_to_string(&requeue_file).unwrap_or_default();
                    if now != requeues {
                        requeues = now;
                        self.queue.nudge();
                    }
                }
                _ = shutdown.changed() => {}
            }
        };
        self.queue.unwatch(job_id);
        Ok(result)
    }
}

/// `scancel JOB`; a job that already ended makes it complain, which is
/// fine (following the job finds out how it ended).
async fn scancel(job_id: &str) {
    if let Err(e) = output("scancel", &[job_id]).await {
        tracing::debug!("{e}");
    }
}
