//! Finding and reading a task's data: an explicit `NAME=PATH` (a Parquet
//! or JSONL file, or an HF dataset directory), or a `--data-dir` that
//! holds datasets as `NAME/` folders or in the HF hub cache layout
//! (`datasets--allenai--ai2_arc/snapshots/REV/ARC-Easy/test-*.parquet`).
//!
//! Within a directory the evaluated split is chosen by file or folder name
//! (`test-00000-of-00001.parquet`, `validation.jsonl`, `test/`), inside the
//! task's HF config folder when the dataset has several (`ARC-Easy`,
//! `ARC-Challenge`, gsm8k's `main`). A single file is used whole.

use std::path::{Path, PathBuf};

use smolsweep_datasets::{read_dataset, resolve_files, Record};

use crate::error::{EvalError, Result};
use crate::tasks::{gsm8k_doc, ifeval_doc, mc_doc, Docs, TaskData, TaskKind};

/// Where tasks without an explicit path look, and where GSM8K's few-shot
/// examples come from.
#[derive(Debug, Clone, Default)]
pub struct DataSources {
    pub data_dir: Option<PathBuf>,
    /// GSM8K's few-shot pool (a file, or a dataset directory whose train
    /// split is used); by default the train split beside the test split.
    pub fewshot_from: Option<PathBuf>,
}

/// A task to run, as `--task NAME[=PATH]` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    pub kind: TaskKind,
    pub path: Option<PathBuf>,
}

impl std::str::FromStr for TaskSpec {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self> {
        let (name, path) = match s.split_once('=') {
            Some((n, p)) => (n, Some(PathBuf::from(p))),
            None => (s, None),
        };
        Ok(TaskSpec {
            kind: name
                .trim()
                .parse::<TaskKind>()
                .map_err(|_| EvalError::UnknownTask(name.trim().to_owned()))?,
            path,
        })
    }
}

/// The snapshot directory of a hub cache folder (`refs/main`, else the
/// newest-named snapshot); other paths unchanged.
fn hub_snapshot(path: &Path) -> PathBuf {
    let snaps = path.join("snapshots");
    if !snaps.is_dir() {
        return path.to_path_buf();
    }
    if let Ok(rev) = std::fs::read_to_string(path.join("refs").join("main")) {
        let d = snaps.join(rev.trim());
        if d.is_dir() {
            return d;
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&snaps)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop().unwrap_or_else(|| path.to_path_buf())
}

/// A dataset directory narrowed to the task's config folder, if present.
fn dataset_root(kind: TaskKind, path: &Path) -> PathBuf {
    let root = hub_snapshot(path);
    match kind.config_dir() {
        Some(c) if root.join(c).is_dir() => root.join(c),
        _ => root,
    }
}

/// Where a task's data is: its explicit path, else the first candidate
/// that exists under `--data-dir`.
fn locate(spec: &TaskSpec, sources: &DataSources) -> Result<PathBuf> {
    if let Some(p) = &spec.path {
        if !p.exists() {
            return Err(EvalError::Dataset {
                task: spec.kind.name().to_owned(),
                source: smolsweep_datasets::DatasetError::Io {
                    path: p.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such file or directory",
                    ),
                },
            });
        }
        return Ok(p.clone());
    }
    let mut expected = vec![format!("{}/", spec.kind.name())];
    expected.extend(
        spec.kind
            .hub_repos()
            .iter()
            .filter(|r| r.contains("--"))
            .map(|r| format!("datasets--{r}/")),
    );
    if let Some(dir) = &sources.data_dir {
        let mut candidates = vec![dir.join(spec.kind.name())];
        for r in spec.kind.hub_repos() {
            candidates.push(dir.join(format!("datasets--{r}")));
            if let Some((_, name)) = r.split_once("--") {
                candidates.push(dir.join(name));
            } else {
                candidates.push(dir.join(r));
            }
        }
        if let Some(found) = candidates.into_iter().find(|c| c.exists()) {
            return Ok(found);
        }
        return Err(EvalError::NoData {
            task: spec.kind.name().to_owned(),
            expected: format!("{} (looked in {})", expected.join(" or "), dir.display()),
        });
    }
    Err(EvalError::NoData {
        task: spec.kind.name().to_owned(),
        expected: expected.join(" or "),
    })
}

fn read(kind: TaskKind, path: &Path, split: &str) -> Result<(Vec<Record>, Vec<PathBuf>)> {
    let wrap = |source| EvalError::Dataset {
        task: kind.name().to_owned(),
        source,
    };
    let (root, split) = if path.is_file() {
        (path.to_path_buf(), None)
    } else {
        (dataset_root(kind, path), Some(split))
    };
    let files = resolve_files(&root, split).map_err(wrap)?;
    let records = read_dataset(&root, split).map_err(wrap)?;
    Ok((records, files))
}

/// Reads and validates a task's documents (the first `limit` of the
/// evaluated split; all of GSM8K's few-shot pool).
pub fn load_task(spec: &TaskSpec, sources: &DataSources, limit: Option<usize>) -> Result<TaskData> {
    let kind = spec.kind;
    let path = locate(spec, sources)?;
    let (records, files) = read(kind, &path, kind.eval_split())?;
    let n = limit.map_or(records.len(), |l| l.min(records.len()));
    let records = &records[..n];
    let mut fewshot_files = Vec::new();
    let docs = match kind {
        TaskKind::ArcEasy | TaskKind::ArcChallenge | TaskKind::Hellaswag | TaskKind::Piqa => {
            Docs::MultipleChoice(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| mc_doc(kind, i, r))
                    .collect::<Result<_>>()?,
            )
        }
        TaskKind::Gsm8k => {
            let docs = records
                .iter()
                .enumerate()
                .map(|(i, r)| gsm8k_doc(i, r))
                .collect::<Result<_>>()?;
            let pool_path = match (&sources.fewshot_from, path.is_dir()) {
                (Some(p), _) => p.clone(),
                (None, true) => path.clone(),
                (None, false) => {
                    return Err(EvalError::Task {
                        task: kind.name().to_owned(),
                        msg: format!(
                            "{} is a single file; the 5-shot examples come from the train split: \
                             give a dataset directory holding both splits, or --fewshot-from PATH",
                            path.display()
                        ),
                    })
                }
            };
            if !pool_path.exists() {
                return Err(EvalError::Path {
                    path: pool_path,
                    msg: "no such file or directory (gsm8k few-shot pool)".into(),
                });
            }
            let (pool, pf) = read(kind, &pool_path, "train")?;
            fewshot_files = pf;
            let fewshot = pool
                .iter()
                .enumerate()
                .map(|(i, r)| gsm8k_doc(i, r))
                .collect::<Result<_>>()?;
            Docs::Gsm8k { docs, fewshot }
        }
        TaskKind::Ifeval => Docs::IfEval(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| ifeval_doc(i, r))
                .collect::<Result<_>>()?,
        ),
    };
    Ok(TaskData {
        kind,
        files,
        fewshot_files,
        docs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    const ARC: &str = "{\"question\": \"Q?\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"B\"}\n";

    #[test]
    fn hub_layout_picks_the_config_and_split() {
        let d = tempfile::tempdir().expect("tmp");
        let repo = d.path().join("datasets--allenai--ai2_arc");
        write(&repo.join("refs/main"), "abc");
        let snap = repo.join("snapshots/abc");
        write(&snap.join("ARC-Easy/test-00000-of-00001.jsonl"), ARC);
        write(
            &snap.join("ARC-Easy/train-00000-of-00001.jsonl"),
            &ARC.repeat(3),
        );
        write(
            &snap.join("ARC-Challenge/test-00000-of-00001.jsonl"),
            &ARC.repeat(2),
        );
        let sources = DataSources {
            data_dir: Some(d.path().to_path_buf()),
            fewshot_from: None,
        };
        let easy = load_task(&"arc_easy".parse().expect("spec"), &sources, None).expect("easy");
        assert_eq!(easy.len(), 1);
        let ch =
            load_task(&"arc_challenge".parse().expect("spec"), &sources, None).expect("challenge");
        assert_eq!(ch.len(), 2);
    }

    #[test]
    fn errors_name_task_and_path() {
        let d = tempfile::tempdir().expect("tmp");
        let e = "nope".parse::<TaskSpec>().expect_err("unknown").to_string();
        assert!(e.contains("unknown task `nope`"), "{e}");
        let sources = DataSources {
            data_dir: Some(d.path().to_path_buf()),
            fewshot_from: None,
        };
        let e = load_task(&"piqa".parse().expect("spec"), &sources, None)
            .expect_err("no data")
            .to_string();
        assert!(
            e.contains("task piqa: no data") && e.contains("datasets--baber--piqa/"),
            "{e}"
        );
        write(&d.path().join("piqa/train.jsonl"), "{\"goal\": \"g\"}\n");
        let e = crate::error::chain_text(
            &load_task(&"piqa".parse().expect("spec"), &sources, None).expect_err("no split"),
        );
        assert!(e.contains("task piqa") && e.contains("validation"), "{e}");
        let file = d.path().join("gsm.jsonl");
        write(&file, "{\"question\": \"q\", \"answer\": \"#### 1\"}\n");
        let spec: TaskSpec = format!("gsm8k={}", file.display()).parse().expect("spec");
        let e = load_task(&spec, &DataSources::default(), None)
            .expect_err("no train")
            .to_string();
        assert!(e.contains("--fewshot-from"), "{e}");
    }
}
