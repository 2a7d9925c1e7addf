//! The batch script of one trial attempt, written into the trial
//! directory and handed to `sbatch`: train (`--resume`, skipped when the
//! event file already says done), then eval of the export, as the local
//! backend runs them, with the same files (`train.events.jsonl`,
//! `train.log`, `eval.log`, `results.json`).
//!
//! The script is the job's batch shell, so it is what Slurm signals:
//! `--signal=B:USR2@grace` before the time limit, SIGTERM on preemption.
//! It passes either on to the running stage (the trainer checkpoints at
//! its next step and exits 4) and, after USR2, requeues its own job, so
//! the attempt continues from the checkpoint in the same job (an eval not
//! yet begun when the signal came waits for the requeued run, which has
//! the whole time limit for it). Each stage's
//! exit status goes to `slurm/JOBID.STAGE.exit`, the job's restart count to
//! `slurm/JOBID.restarts`, and `slurm/started.NAME` holds the job id, so a
//! job whose id the orchestrator never heard can be found by its name.

use std::path::Path;

/// Stands for the export in `eval_args`: the script reads the path from
/// the event file's last `done` (or standing `stopped_early`) line, where
/// the trainer said it wrote it.
pub(in crate::sched) const EXPORT: &str = "/@SMOLSWEEP_EXPORT@";

/// What one job runs and how it is submitted.
pub(super) struct Script<'a> {
    pub job_name: &'a str,
    pub comment: &'a str,
    pub dir: &'a Path,
    pub program: &'a Path,
    pub train_args: &'a [String],
    pub eval_args: Option<&'a [String]>,
    /// `--partition=...` and the rest, `extra_args` last.
    pub options: &'a [String],
    pub signal_grace_s: u32,
}

/// A word for the shell: single-quoted unless it is plainly safe.
pub(super) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn command(program: &Path, args: &[String]) -> String {
    let mut words = vec![quote(&program.display().to_string())];
    words.extend(args.iter().map(|a| quote(a)));
    words.join(" ")
}

impl Script<'_> {
    pub(super) fn text(&self) -> String {
        let dir = quote(&self.dir.display().to_string());
        let mut s = String::from("#!/bin/bash\n");
        let mut directive = |line: String| {
            s.push_str("#SBATCH ");
            s.push_str(&line);
            s.push('\n');
        };
        directive(format!("--job-name={}", self.job_name));
        directive(format!("--comment={}", quote(self.comment)));
        directive(format!("--chdir={dir}"));
        directive(format!("--output={dir}/slurm/%j.out"));
        directive("--open-mode=append".into());
        directive("--requeue".into());
        directive(format!("--signal=B:USR2@{}", self.signal_grace_s));
        directive("--nodes=1".into());
        directive("--ntasks=1".into());
        for o in self.options {
            directive(quote(o));
        }
        let train = command(self.program, self.train_args);
        let eval = match self.eval_args {
            Some(args) => format!(
                "if [ ! -s results.json ]; then\n    \
                 if [ \"$signalled\" = USR2 ]; then requeue; fi\n    \
                 export_dir=$(last_export)\n    \
                 case \"$export_dir\" in /*) ;; *) export_dir=\"out/$export_dir\" ;; esac\n    \
                 stage eval eval.log {}\n    finish eval $?\nfi\n",
                command(self.program, args).replace(EXPORT, "\"$export_dir\"")
            ),
            None => String::new(),
        };
        s.push_str(&format!(
            r#"# Written by smolsweep: one job per trial attempt ({comment}).
set -u
cd {dir} || exit 1
mkdir -p slurm
job=${{SLURM_JOB_ID:?not run by Slurm}}
echo "$job" > slurm/started.{name}
echo "${{SLURM_RESTART_COUNT:-0}}" > "slurm/$job.restarts"
child=0
signalled=""
forward() {{
    signalled=$1
    if [ "$child" -ne 0 ]; then kill -s "$1" "$child" 2>/dev/null; fi
}}
trap 'forward USR2' USR2
trap 'forward TERM' TERM
# last_export: the export named by the event file's last `done` line, or
# by its last `stopped_early` line while the stop request is still there
# (a trial reopened to train on has it moved away); empty when training
# has not ended.
last_export() {{
    local line
    line=$(grep -E '"event": *"(done|stopped_early)"' train.events.jsonl 2>/dev/null | tail -n 1)
    case "$line" in
        *'"stopped_early"'*) [ -e out/{request} ] || return 0 ;;
    esac
    printf '%s' "$line" | sed -n 's/.*"export": *"\([^"]*\)".*/\1/p'
}}
# stage NAME LOG COMMAND...: runs one stage (stdout to the event file for
# train, to the log for eval), waits through forwarded signals, and keeps
# its exit status in slurm/JOB.NAME.exit.
stage() {{
    local name=$1 log=$2 out=$2
    shift 2
    if [ "$name" = train ]; then out=train.events.jsonl; fi
    echo "=== smolsweep slurm job $job (restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname): $name at $(date +%s)" >> "$log"
    "$@" >> "$out" 2>> "$log" < /dev/null &
    child=$!
    local rc
    while true; do
        wait "$child"
        rc=$?
        if [ "$rc" -gt 128 ] && kill -0 "$child" 2>/dev/null; then continue; fi
        break
    done
    child=0
    echo "$rc" > "slurm/$job.$name.exit.tmp" && mv "slurm/$job.$name.exit.tmp" "slurm/$job.$name.exit"
    return "$rc"
}}
# requeue: puts the job back in the queue (it resumes from the checkpoint)
# and says so in slurm/JOB.requeued, which the orchestrator watches so that
# it releases the requeue's hold within seconds.
requeue() {{
    echo "=== smolsweep: time limit near, requeueing job $job" >> train.log
    scontrol requeue "$job"
    echo "${{SLURM_RESTART_COUNT:-0}}" > "slurm/$job.requeued"
    exit 0
}}
# finish NAME STATUS: a stage stopped by the time-limit signal requeues the
# job; any other failure ends the job.
finish() {{
    if [ "$2" -ne 0 ] && [ "$signalled" = USR2 ]; then requeue; fi
    if [ "$2" -ne 0 ]; then exit "$2"; fi
}}
if [ -n "$(last_export)" ]; then
    echo 0 > "slurm/$job.train.exit"
else
    stage train train.log {train}
    finish train $?
fi
{eval}exit 0
"#,
            comment = self.comment.replace('\n', " "),
            name = self.job_name,
            request = smolsweep_config::STOP_REQUEST_FILE,
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("--partition=gpu"), "--partition=gpu");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn the_script_asks_for_requeue_append_and_the_signal() {
        let args = vec![
            "train".to_string(),
            "--config".into(),
            "/t/trial.toml".into(),
        ];
        let s = Script {
            job_name: "ss.x.t1.a1",
            comment: "smolsweep sweep=x trial=1",
            dir: Path::new("/t dir"),
            program: Path::new("/bin/smolsweep"),
            train_args: &args,
            eval_args: None,
            options: &["--partition=debug".into()],
            signal_grace_s: 30,
        }
        .text();
        for line in [
            "#SBATCH --job-name=ss.x.t1.a1\n",
            "#SBATCH --requeue\n",
            "#SBATCH --open-mode=append\n",
            "#SBATCH --signal=B:USR2@30\n",
            "#SBATCH --partition=debug\n",
            "#SBATCH --chdir='/t dir'\n",
            "stage train train.log /bin/smolsweep train --config /t/trial.toml\n",
        ] {
            assert!(s.contains(line), "{line:?} missing from:\n{s}");
        }
        assert!(!s.contains("stage eval"), "no [eval]: no eval stage");
    }
}
