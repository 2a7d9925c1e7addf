//! Evaluation that grows after training: a finished sweep given another
//! task (or a fixed path for a task whose evaluation failed) is evaluated
//! on it by `run` without training again; changes that would alter
//! finished scores stay refused and name `eval-sweep`, which evaluates the
//! completed trials into a new results set beside the recorded scores.
//!
//! "Not trained again" is checked twice: every trial's event file is byte
//! for byte what it was, and the stand-in's ledger (one line per process)
//! has no new `train` line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::orchestrator_helpers::*;

/// Two trials with a batch size each (the report needs one), 10 steps.
fn sweep() -> Sweep {
    Sweep::new(10, "lr = [1e-5, 2e-5]\nbatch_size = [4]", "")
}

fn assert_ok(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}",
        o.status,
        stderr(o)
    );
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A one-row benchmark file in the test's directory.
fn data(s: &Sweep, name: &str, row: &str) -> PathBuf {
    let p = s.dir.path().join(name);
    std::fs::write(&p, format!("{row}\n")).expect("write data");
    p
}

fn piqa(s: &Sweep) -> PathBuf {
    data(
        s,
        "piqa.jsonl",
        r#"{"goal": "Open a jar.", "sol1": "Twist the lid.", "sol2": "Freeze it.", "label": 0}"#,
    )
}

fn ifeval(s: &Sweep) -> PathBuf {
    data(
        s,
        "ifeval.jsonl",
        r#"{"key": 1, "prompt": "Write one word.", "instruction_id_list": [], "kwargs": []}"#,
    )
}

/// Rewrites the sweep file's `[eval]` lines: `tasks` (quoted entries
/// given whole) and the other option lines after it.
fn set_eval(s: &Sweep, tasks: &[String], options: &str) {
    let text = std::fs::read_to_string(s.toml()).expect("sweep");
    let start = text.find("[eval]").expect("[eval]");
    let list: Vec<String> = tasks.iter().map(|t| format!("{t:?}")).collect();
    let eval = format!("[eval]\ntasks = [{}]\n{options}\n", list.join(", "));
    std::fs::write(s.toml(), format!("{}{eval}", &text[..start])).expect("write sweep");
}

fn default_tasks() -> Vec<String> {
    vec![
        format!(
            "arc_easy={}",
            fixtures().join("tiny/data/arc_easy.jsonl").display()
        ),
        format!(
            "hellaswag={}",
            fixtures().join("tiny/data/hellaswag.jsonl").display()
        ),
    ]
}

/// Every trial directory's event file, by directory.
fn event_files(s: &Sweep) -> BTreeMap<String, Vec<u8>> {
    s.trials()
        .iter()
        .map(|t| {
            let dir = t["dir"].as_str().expect("dir").to_string();
            let bytes =
                std::fs::read(s.out().join(&dir).join("train.events.jsonl")).expect("event file");
            (dir, bytes)
        })
        .collect()
}

fn stage_count(s: &Sweep, stage: &str) -> usize {
    s.ledger_entries()
        .iter()
        .filter(|e| e["stage"] == stage)
        .count()
}

/// `(trial, task, metric, value)` of one results set.
fn set_scores(s: &Sweep, set: &str) -> Vec<(i64, String, String, f64)> {
    s.sql(&format!(
        "SELECT trial_id, task, metric, value FROM eval_results WHERE results_set = '{set}' ORDER BY 1, 2, 3"
    ))
    .into_iter()
    .map(|r| {
        (
            r[0].as_i64().expect("id"),
            r[1].as_str().expect("task").into(),
            r[2].as_str().expect("metric").into(),
            r[3].as_f64().expect("value"),
        )
    })
    .collect()
}

fn tasks_of(scores: &[(i64, String, String, f64)], trial: i64) -> Vec<String> {
    let mut t: Vec<String> = scores
        .iter()
        .filter(|s| s.0 == trial)
        .map(|s| s.1.clone())
        .collect();
    t.dedup();
    t
}

/// Deletes a task's scores from the record, as if they were never written.
fn forget_scores(s: &Sweep, task: &str) {
    let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\n\
                  c.execute('DELETE FROM eval_results WHERE task = ?', (sys.argv[2],))\n\
                  c.execute('DELETE FROM eval_tasks WHERE task = ?', (sys.argv[2],))\nc.commit()";
    let o = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(s.db())
        .arg(task)
        .output()
        .expect("python3 sqlite3");
    assert_ok(&o, "deleting scores");
}

fn status_table(s: &Sweep, extra: &[&str]) -> String {
    let toml = s.toml();
    let mut args = vec!["status", arg(&toml)];
    args.extend(extra);
    let o = s.command(&args).output().expect("status");
    assert_ok(&o, "status");
    stdout(&o)
}

fn states(s: &Sweep) -> Vec<String> {
    s.trials()
        .iter()
        .map(|t| t["state"].as_str().expect("state").to_string())
        .collect()
}

#[test]
fn a_task_added_to_a_finished_sweep_is_evaluated_without_training() {
    let s = sweep();
    assert_ok(&s.run(), "first run");
    let events = event_files(&s);
    let trains = stage_count(&s, "train");
    let evals = stage_count(&s, "eval");
    assert_eq!((trains, evals), (2, 2));
    let before = set_scores(&s, "default");

    let mut tasks = default_tasks();
    tasks.push(format!("piqa={}", piqa(&s).display()));
    set_eval(&s, &tasks, "limit = 10");
    let o = s.run();
    assert_ok(&o, "run with piqa added");
    assert!(
        stderr(&o).contains("2 completed trials evaluated on tasks added"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        event_files(&s),
        events,
        "an event file changed: trained again"
    );
    assert_eq!(stage_count(&s, "train"), trains, "the trainer ran again");
    assert_eq!(
        stage_count(&s, "eval"),
        evals + 2,
        "one evaluation per trial"
    );
    let after = set_scores(&s, "default");
    for t in s.trials() {
        let id = t["id"].as_i64().expect("id");
        assert_eq!(tasks_of(&after, id), ["arc_easy", "hellaswag", "piqa"]);
        assert!(
            t["scores"]["piqa"]["acc"].is_f64(),
            "status lacks piqa: {t}"
        );
        assert_eq!(t["state"], "completed");
    }
    // The scores the sweep had are the scores it has.
    let kept: Vec<_> = after.iter().filter(|r| r.1 != "piqa").cloned().collect();
    assert_eq!(kept, before);
    // Only the new task was evaluated, into its own file.
    for dir in events.keys() {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(s.out().join(dir).join("results+piqa.json")).expect("results+piqa"),
        )
        .expect("json");
        let keys: Vec<&String> = doc["tasks"].as_object().expect("tasks").keys().collect();
        assert_eq!(keys, ["piqa"]);
    }

    let table = status_table(&s, &[]);
    let header = table.lines().nth(1).expect("header");
    assert!(header.contains("piqa"), "{table}");
    let o = s
        .command(&["report", arg(&s.toml())])
        .output()
        .expect("report");
    assert_ok(&o, "report");
    let csv = std::fs::read_to_string(s.out().join("report/results.csv")).expect("results.csv");
    assert!(
        csv.lines().next().expect("header").contains("piqa/acc"),
        "{csv}"
    );

    // Nothing left to do: a third run starts no process.
    let runs = s.ledger_entries().len();
    assert_ok(&s.run(), "third run");
    assert_eq!(s.ledger_entries().len(), runs);

    // An orchestrator that died between an evaluation's results file and
    // its record: the next run records the file, evaluating nothing.
    forget_scores(&s, "piqa");
    assert_eq!(
        tasks_of(&set_scores(&s, "default"), 1),
        ["arc_easy", "hellaswag"]
    );
    assert_ok(&s.run(), "run after a lost record");
    assert_eq!(s.ledger_entries().len(), runs, "evaluated again");
    assert_eq!(set_scores(&s, "default"), after);

    // A removed task is hidden, its scores kept; adding it back with the
    // same data shows them again without evaluating.
    set_eval(&s, &[tasks[0].clone(), tasks[2].clone()], "limit = 10");
    assert_ok(&s.run(), "run without hellaswag");
    let header = status_table(&s, &[])
        .lines()
        .nth(1)
        .expect("header")
        .to_string();
    assert!(
        !header.contains("hellaswag") && header.contains("piqa"),
        "{header}"
    );
    set_eval(&s, &tasks, "limit = 10");
    assert_ok(&s.run(), "run with hellaswag again");
    assert!(status_table(&s, &[]).contains("hellaswag"));
    assert_eq!(s.ledger_entries().len(), runs, "a process ran");
    assert_eq!(set_scores(&s, "default"), after);
}

#[test]
fn changes_that_would_alter_finished_scores_are_refused_naming_eval_sweep() {
    let s = sweep();
    assert_ok(&s.run(), "first run");
    let runs = s.ledger_entries().len();
    let tasks = default_tasks();

    for (options, key, hint) in [
        ("limit = 20", "eval.limit", "--set limit=20"),
        (
            "limit = 10\ngsm8k_fewshot = 3",
            "eval.gsm8k_fewshot",
            "--set gsm8k_fewshot=3",
        ),
    ] {
        set_eval(&s, &tasks, options);
        let o = s.run();
        let err = stderr(&o);
        assert!(!o.status.success(), "{options}: accepted");
        assert!(err.contains(key), "{options}: {err}");
        assert!(err.contains("smolsweep eval-sweep"), "{options}: {err}");
        assert!(err.contains(hint), "{options}: {err}");
    }

    // A scored task moved to other data is refused; to the same data
    // under another name it is accepted, and nothing is evaluated again.
    let other = data(
        &s,
        "arc_other.jsonl",
        r#"{"id": "q2", "question": "Which is smaller?", "choices": {"text": ["1", "2"], "label": ["A", "B"]}, "answerKey": "A"}"#,
    );
    set_eval(
        &s,
        &[format!("arc_easy={}", other.display()), tasks[1].clone()],
        "limit = 10",
    );
    let o = s.run();
    let err = stderr(&o);
    assert!(!o.status.success(), "other data accepted");
    assert!(
        err.contains("eval.tasks (arc_easy") && err.contains("differs in content"),
        "{err}"
    );
    assert!(err.contains("smolsweep eval-sweep"), "{err}");
    assert_eq!(
        s.ledger_entries().len(),
        runs,
        "a refused run started a process"
    );

    let copy = s.dir.path().join("copy-of-arc.jsonl");
    std::fs::copy(fixtures().join("tiny/data/arc_easy.jsonl"), &copy).expect("copy");
    set_eval(
        &s,
        &[format!("arc_easy={}", copy.display()), tasks[1].clone()],
        "limit = 10",
    );
    assert_ok(&s.run(), "same data, new path");
    assert_eq!(s.ledger_entries().len(), runs, "same data evaluated again");
}

#[test]
fn eval_sweep_writes_a_new_results_set_and_leaves_the_scores() {
    let s = sweep();
    assert_ok(&s.run(), "first run");
    let before = set_scores(&s, "default");
    let trains = stage_count(&s, "train");
    let evals = stage_count(&s, "eval");
    let events = event_files(&s);
    let piqa = piqa(&s);
    let tasks = format!(
        "arc_easy={},piqa={}",
        fixtures().join("tiny/data/arc_easy.jsonl").display(),
        piqa.display()
    );
    let toml = s.toml();
    let eval_sweep = |extra: &[&str]| {
        let mut args = vec!["eval-sweep", arg(&toml), "--tasks", &tasks, "--no-progress"];
        args.extend(extra);
        s.command(&args).output().expect("eval-sweep")
    };
    let o = eval_sweep(&["--set", "limit=5", "--name", "small"]);
    assert_ok(&o, "eval-sweep");
    assert!(stderr(&o).contains("results set small: 2 completed trials, 2 evaluated now"));
    assert_eq!(stage_count(&s, "train"), trains, "eval-sweep trained");
    assert_eq!(stage_count(&s, "eval"), evals + 2);
    assert_eq!(event_files(&s), events);
    assert_eq!(
        set_scores(&s, "default"),
        before,
        "the sweep's own scores changed"
    );
    let small = set_scores(&s, "small");
    for t in s.trials() {
        let id = t["id"].as_i64().expect("id");
        assert_eq!(tasks_of(&small, id), ["arc_easy", "piqa"]);
        let doc: Value = serde_json::from_slice(
            &std::fs::read(
                s.out()
                    .join(t["dir"].as_str().expect("dir"))
                    .join("results.small.json"),
            )
            .expect("results.small.json"),
        )
        .expect("json");
        assert_eq!(doc["tasks"]["piqa"]["n"], 5, "--set limit=5 not passed on");
    }
    let recorded = s.sql("SELECT eval_json FROM results_sets WHERE name = 'small'");
    let eval: Value =
        serde_json::from_str(recorded[0][0].as_str().expect("eval_json")).expect("json");
    assert_eq!(eval["limit"], 5);

    // status: the default set unless asked, and the sets listed.
    let status = s.status_json();
    assert_eq!(status["results_set"], "default");
    assert_eq!(
        status["results_sets"],
        serde_json::json!(["default", "small"])
    );
    assert!(status["trials"][0]["scores"]["piqa"].is_null());
    let o = s
        .command(&["status", arg(&s.toml()), "--json", "--results", "small"])
        .output()
        .expect("status");
    assert_ok(&o, "status --results small");
    let small_status: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(small_status["results_set"], "small");
    let shown: Vec<&String> = small_status["trials"][0]["scores"]
        .as_object()
        .expect("scores")
        .keys()
        .collect();
    assert_eq!(shown, ["arc_easy", "piqa"]);
    assert!(status_table(&s, &["--results", "small"]).contains("results set small"));
    let o = s
        .command(&["report", arg(&s.toml()), "--results", "small"])
        .output()
        .expect("report");
    assert_ok(&o, "report --results small");
    let csv = std::fs::read_to_string(s.out().join("report.small/results.csv")).expect("csv");
    assert!(
        csv.lines().next().expect("header").contains("piqa/acc"),
        "{csv}"
    );
    let o = s
        .command(&["status", arg(&s.toml()), "--results", "nope"])
        .output()
        .expect("status");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("\"nope\" is not recorded"),
        "{}",
        stderr(&o)
    );

    // The same command again resumes: nothing left to evaluate.
    let runs = s.ledger_entries().len();
    assert_ok(
        &eval_sweep(&["--set", "limit=5", "--name", "small"]),
        "again",
    );
    assert_eq!(s.ledger_entries().len(), runs);
    // The same name with other options is refused.
    let o = eval_sweep(&["--set", "limit=6", "--name", "small"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("pick another --name"), "{}", stderr(&o));
    // `run` still has nothing to do.
    assert_ok(&s.run(), "run after eval-sweep");
    assert_eq!(s.ledger_entries().len(), runs);
}

#[test]
fn a_task_whose_evaluation_failed_is_fixed_and_evaluated_without_training() {
    let s = sweep();
    // IFEval pointed at an ARC file: refused before anything is recorded
    // (the data of every task is read first).
    let arc = fixtures().join("tiny/data/arc_easy.jsonl");
    let bad = vec![
        default_tasks()[0].clone(),
        format!("ifeval={}", arc.display()),
    ];
    set_eval(&s, &bad, "limit = 10\n\n[resources]\nmax_retries = 0");
    let o = s.run();
    assert!(!o.status.success(), "a bad task path passed");
    assert!(
        stderr(&o).contains("eval.tasks[1]: task ifeval"),
        "{}",
        stderr(&o)
    );
    assert!(!s.db().exists(), "a sweep with bad eval data was recorded");

    // An evaluation that dies for another reason: every trial trains,
    // then fails at eval.
    let good = vec![bad[0].clone(), format!("ifeval={}", ifeval(&s).display())];
    set_eval(&s, &good, "limit = 10\n\n[resources]\nmax_retries = 0");
    let o = s
        .command(&["run", s.toml().to_str().expect("utf-8"), "--no-progress"])
        .env("STANDIN_EVAL_FAIL_TASKS", "ifeval")
        .output()
        .expect("run");
    assert!(!o.status.success(), "a failed evaluation passed");
    assert_eq!(states(&s), ["failed"; 2]);
    assert!(s.trials().iter().all(|t| t["stage"] == "eval"));
    let events = event_files(&s);
    let trains = stage_count(&s, "train");
    assert_eq!(trains, 2);

    // The fix: the task moved to a copy of the same data. Only the
    // evaluation runs.
    let copy = s.dir.path().join("ifeval-copy.jsonl");
    std::fs::copy(ifeval(&s), &copy).expect("copy");
    let fixed = vec![bad[0].clone(), format!("ifeval={}", copy.display())];
    set_eval(&s, &fixed, "limit = 10\n\n[resources]\nmax_retries = 0");
    assert_ok(&s.run(), "run with the fixed path");
    assert_eq!(states(&s), ["completed"; 2]);
    assert_eq!(stage_count(&s, "train"), trains, "the trainer ran again");
    assert_eq!(event_files(&s), events);
    let scores = set_scores(&s, "default");
    for t in s.trials() {
        assert_eq!(
            tasks_of(&scores, t["id"].as_i64().expect("id")),
            ["arc_easy", "ifeval"]
        );
    }

    // Growth can fail too: piqa's evaluation dies on every completed
    // trial (they keep their scores), and the next run evaluates it.
    let grown = [fixed, vec![format!("piqa={}", piqa(&s).display())]].concat();
    set_eval(&s, &grown, "limit = 10\n\n[resources]\nmax_retries = 0");
    let o = s
        .command(&["run", s.toml().to_str().expect("utf-8"), "--no-progress"])
        .env("STANDIN_EVAL_FAIL_TASKS", "piqa")
        .output()
        .expect("run");
    assert!(!o.status.success(), "a failed evaluation passed");
    assert!(
        stderr(&o).contains("2 evaluations of completed trials failed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(states(&s), ["completed"; 2]);
    assert_eq!(set_scores(&s, "default"), scores);
    assert_ok(&s.run(), "run again");
    assert_eq!(stage_count(&s, "train"), trains);
    assert_eq!(event_files(&s), events);
    let status = s.status_json();
    for t in status["trials"].as_array().expect("trials") {
        assert!(t["scores"]["piqa"]["acc"].is_f64(), "{t}");
        assert!(t["scores"]["ifeval"]["acc"].is_f64(), "{t}");
    }
}

/// The same with the real `smolsweep train` and `eval`: the data files
/// results.json lists hash as the files `run` finds for a moved task (so a
/// path with the same data passes), and an added task is evaluated on the
/// export without the trainer writing another event.
#[test]
fn with_the_real_trainer_a_moved_task_passes_and_an_added_one_is_evaluated() {
    let s = Sweep::new_real(4, "lr = [1e-4]\nbatch_size = [4]", "");
    assert_ok(&s.run(), "first run");
    let events = event_files(&s);
    let before = set_scores(&s, "default");
    assert_eq!(tasks_of(&before, 1), ["arc_easy", "hellaswag"]);

    let copy = s.dir.path().join("hellaswag-copy.jsonl");
    std::fs::copy(fixtures().join("tiny/data/hellaswag.jsonl"), &copy).expect("copy");
    let tasks = vec![
        default_tasks()[0].clone(),
        format!("hellaswag={}", copy.display()),
        format!("piqa={}", piqa(&s).display()),
    ];
    set_eval(&s, &tasks, "limit = 10");
    let o = s.run();
    assert_ok(&o, "run with hellaswag moved and piqa added");
    assert!(
        stderr(&o).contains("1 completed trials evaluated on tasks added"),
        "{}",
        stderr(&o)
    );
    assert_eq!(event_files(&s), events, "the trainer ran again");
    let after = set_scores(&s, "default");
    assert_eq!(tasks_of(&after, 1), ["arc_easy", "hellaswag", "piqa"]);
    let kept: Vec<_> = after.iter().filter(|r| r.1 != "piqa").cloned().collect();
    assert_eq!(kept, before);
    let files = s.sql("SELECT task, data_sha256 IS NOT NULL FROM eval_tasks ORDER BY task");
    assert_eq!(
        files,
        [
            vec![Value::from("arc_easy"), Value::from(1)],
            vec![Value::from("hellaswag"), Value::from(1)],
            vec![Value::from("piqa"), Value::from(1)],
        ]
    );
}
