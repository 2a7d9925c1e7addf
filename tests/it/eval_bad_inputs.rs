//! `smolsweep eval` on bad input: each mistake fails with a message that
//! names the task, the file, the row and the field. Data is read before
//! the model is loaded, so these take no model time.

use std::path::Path;

use crate::common::{real_model, run, stderr};

const ARC_ROW: &str = r#"{"id": "a", "question": "Q?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "A"}"#;

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// Runs eval with `extra` arguments; it must fail. Returns stderr.
fn fails(extra: &[&str]) -> String {
    let model = real_model();
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("r.json");
    let mut args = vec![
        "eval",
        "--model",
        model.to_str().expect("utf-8"),
        "--device",
        "cpu",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(!o.status.success(), "expected failure for {extra:?}");
    assert!(!out.exists(), "no results on failure");
    stderr(&o)
}

#[test]
fn unknown_task() {
    let e = fails(&["--task", "mmlu"]);
    assert!(
        e.contains("unknown task `mmlu`") && e.contains("arc_easy"),
        "{e}"
    );
}

#[test]
fn missing_file() {
    let e = fails(&["--task", "piqa=/nonexistent/piqa.jsonl"]);
    assert!(
        e.contains("task piqa") && e.contains("/nonexistent/piqa.jsonl"),
        "{e}"
    );
}

#[test]
fn no_data_for_a_task() {
    let d = tempfile::tempdir().expect("tmp");
    let e = fails(&[
        "--task",
        "hellaswag",
        "--data-dir",
        d.path().to_str().expect("utf-8"),
    ]);
    assert!(
        e.contains("task hellaswag: no data") && e.contains("datasets--Rowan--hellaswag"),
        "{e}"
    );
}

#[test]
fn missing_field_names_file_row_and_field() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("arc.jsonl");
    write(&f, &format!("{ARC_ROW}\n{{\"id\": \"b\", \"choices\": {{\"text\": [\"x\", \"y\"], \"label\": [\"A\", \"B\"]}}, \"answerKey\": \"A\"}}\n"));
    let e = fails(&["--task", &format!("arc_easy={}", f.display())]);
    assert!(
        e.contains("task arc_easy")
            && e.contains("arc.jsonl, row 2")
            && e.contains("field `question`: missing"),
        "{e}"
    );
}

#[test]
fn missing_split() {
    let d = tempfile::tempdir().expect("tmp");
    write(&d.path().join("hellaswag/train.jsonl"), "{\"x\": 1}\n");
    let e = fails(&[
        "--task",
        &format!("hellaswag={}", d.path().join("hellaswag").display()),
    ]);
    assert!(
        e.contains("task hellaswag") && e.contains("split `validation`"),
        "{e}"
    );
}

#[test]
fn empty_dataset() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("piqa.jsonl");
    write(&f, "");
    let e = fails(&["--task", &format!("piqa={}", f.display())]);
    assert!(
        e.contains("task piqa") && e.contains("piqa.jsonl") && e.contains("empty"),
        "{e}"
    );
}

#[test]
fn a_choice_list_with_one_entry() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("test.jsonl");
    write(&f, "{\"question\": \"Q?\", \"choices\": {\"text\": [\"x\"], \"label\": [\"A\"]}, \"answerKey\": \"A\"}\n");
    let e = fails(&["--task", &format!("arc_challenge={}", f.display())]);
    assert!(
        e.contains("task arc_challenge")
            && e.contains("test.jsonl, row 1")
            && e.contains("choices.text")
            && e.contains("at least 2 choices, found 1"),
        "{e}"
    );
}

#[test]
fn bad_label_and_gsm8k_without_train_split() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("piqa.jsonl");
    write(
        &f,
        "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 2}\n",
    );
    let e = fails(&["--task", &format!("piqa={}", f.display())]);
    assert!(
        e.contains("field `label`") && e.contains("out of range"),
        "{e}"
    );
    let g = d.path().join("gsm8k.jsonl");
    write(&g, "{\"question\": \"q\", \"answer\": \"#### 1\"}\n");
    let e = fails(&["--task", &format!("gsm8k={}", g.display())]);
    assert!(
        e.contains("task gsm8k") && e.contains("--fewshot-from"),
        "{e}"
    );
    let e = fails(&["--task", "arc_easy", "--batch-size", "0"]);
    assert!(e.contains("--batch-size"), "{e}");
}
