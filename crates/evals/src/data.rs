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

use smolsweep_datasets::{
    data_files, dataset_roots, read_records, relative_name, DatasetError, Record,
};

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

/// Where a task's data is, as the roots to read (best first): its
/// explicit reference (a path or `ORG/NAME[@REV]`), else the first of its
/// folders under `--data-dir`, else its hub repositories in the local hub
/// cache.
fn locate(spec: &TaskSpec, sources: &DataSources) -> Result<Vec<PathBuf>> {
    let kind = spec.kind;
    let wrap = |source| EvalError::Dataset {
        task: kind.name().to_owned(),
        source,
    };
    if let Some(p) = &spec.path {
        return dataset_roots(p).map_err(wrap);
    }
    if let Some(dir) = &sources.data_dir {
        let mut candidates: Vec<PathBuf> =
            kind.folder_names().iter().map(|n| dir.join(n)).collect();
        for r in kind.hub_repos() {
            if let Some(id) = smolsweep_hub::RepoId::parse(r) {
                candidates.push(dir.join(id.folder(smolsweep_hub::RepoType::Dataset)));
            }
        }
        return match candidates.iter().find(|c| c.exists()) {
            Some(found) => dataset_roots(found).map_err(wrap),
            None => Err(EvalError::NoData {
                task: kind.name().to_owned(),
                searched: candidates,
            }),
        };
    }
    let mut searched = Vec::new();
    for r in kind.hub_repos() {
        match smolsweep_hub::locate(Path::new(r), smolsweep_hub::RepoType::Dataset) {
            Ok(found) => return Ok(found.roots),
            Err(smolsweep_hub::HubError::NotFound { searched: s, .. }) => searched.extend(s),
            Err(e) => return Err(wrap(e.into())),
        }
    }
    Err(EvalError::NoData {
        task: kind.name().to_owned(),
        searched,
    })
}

/// The files of `split` for `kind` among `roots`: a file root is used
/// whole; IFEval's root file when it is there; within the task's config
/// folder when the dataset has several configs. A download holding only
/// other configs is an error naming them, never read as this task.
fn task_files(kind: TaskKind, roots: &[PathBuf], split: &str) -> Result<Vec<PathBuf>> {
    let wrap = |source| EvalError::Dataset {
        task: kind.name().to_owned(),
        source,
    };
    let mut other_configs: Vec<String> = Vec::new();
    let mut other_files = Vec::new();
    for root in roots {
        if root.is_file() {
            return Ok(vec![root.clone()]);
        }
        if let Some(name) = kind.data_file() {
            if root.join(name).is_file() {
                return Ok(vec![root.join(name)]);
            }
        }
        let dir = match kind.config_dir() {
            Some(c) if root.join(c).is_dir() => root.join(c),
            Some(_) => {
                let present: Vec<String> = kind
                    .dataset_configs()
                    .iter()
                    .filter(|c| root.join(c).is_dir())
                    .map(|c| format!("{c}/"))
                    .collect();
                if !present.is_empty() {
                    other_configs.extend(present);
                    continue;
                }
                root.clone()
            }
            None => root.clone(),
        };
        let files = data_files(&dir, Some(split)).map_err(wrap)?;
        if !files.is_empty() {
            return Ok(files);
        }
        other_files.extend(data_files(&dir, None).map_err(wrap)?);
    }
    if let Some(config) = kind.config_dir().filter(|_| !other_configs.is_empty()) {
        return Err(EvalError::Task {
            task: kind.name().to_owned(),
            msg: format!(
                "{}: no {config}/ config folder (found {}); download that config or give its path",
                roots[0].display(),
                other_configs.join(", ")
            ),
        });
    }
    Err(wrap(DatasetError::NoFiles {
        path: roots[0].clone(),
        split: Some(split.to_owned()),
        found: other_files
            .iter()
            .map(|f| relative_name(roots, f))
            .collect(),
    }))
}

fn read(kind: TaskKind, roots: &[PathBuf], split: &str) -> Result<(Vec<Record>, Vec<PathBuf>)> {
    let files = task_files(kind, roots, split)?;
    let records = read_records(&files, &roots[0]).map_err(|source| EvalError::Dataset {
        task: kind.name().to_owned(),
        source,
    })?;
    Ok((records, files))
}

/// Reads and validates a task's documents (the first `limit` of the
/// evaluated split; all of GSM8K's few-shot pool).
pub fn load_task(spec: &TaskSpec, sources: &DataSources, limit: Option<usize>) -> Result<TaskData> {
    let kind = spec.kind;
    let roots = locate(spec, sources)?;
    if kind == TaskKind::Bbh {
        let (subtasks, files) = crate::bbh::load(
            &roots,
            kind.eval_split(),
            kind.alt_split().unwrap_or(kind.eval_split()),
            limit,
        )?;
        return Ok(TaskData {
            kind,
            files,
            fewshot_files: Vec::new(),
            docs: Docs::Bbh(subtasks),
        });
    }
    let (records, files) = read(kind, &roots, kind.eval_split())?;
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
            let pool_roots = match &sources.fewshot_from {
                Some(p) => dataset_roots(p).map_err(|source| EvalError::Dataset {
                    task: kind.name().to_owned(),
                    source,
                })?,
                None if roots[0].is_dir() => roots.clone(),
                None => {
                    return Err(EvalError::Task {
                        task: kind.name().to_owned(),
                        msg: format!(
                            "{} is a single file; the 5-shot examples come from the train split: \
                             give a dataset directory holding both splits, or --fewshot-from PATH",
                            roots[0].display()
                        ),
                    })
                }
            };
            let (pool, pf) = read(kind, &pool_roots, "train")?;
            fewshot_files = pf;
            let fewshot = pool
                .iter()
                .enumerate()
                .map(|(i, r)| gsm8k_doc(i, r))
                .collect::<Result<_>>()?;
            Docs::Gsm8k { docs, fewshot }
        }
        TaskKind::Rewardbench | TaskKind::PreferenceAccuracy | TaskKind::DpoRewardAccuracy => {
            Docs::Preference(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| crate::reward::preference_doc(kind, i, r))
                    .collect::<Result<_>>()?,
            )
        }
        TaskKind::MmluPro => {
            let docs = records
                .iter()
                .enumerate()
                .map(|(i, r)| crate::mmlu_pro::mmlu_pro_doc(i, r))
                .collect::<Result<_>>()?;
            // lm-eval's exemplars: the validation split beside the test
            // split (or --fewshot-from); absent is fine for smollm2 (0-shot).
            let pool_roots = match &sources.fewshot_from {
                Some(p) => Some(dataset_roots(p).map_err(|source| EvalError::Dataset {
                    task: kind.name().to_owned(),
                    source,
                })?),
                None if roots[0].is_dir() => Some(roots.clone()),
                None => None,
            };
            let mut fewshot = Vec::new();
            if let Some(pr) = pool_roots {
                match read(kind, &pr, "validation") {
                    Ok((pool, pf)) => {
                        fewshot_files = pf;
                        fewshot = pool
                            .iter()
                            .enumerate()
                            .map(|(i, r)| crate::mmlu_pro::mmlu_pro_doc(i, r))
                            .collect::<Result<_>>()?;
                    }
                    Err(EvalError::Dataset {
                        source: DatasetError::NoFiles { .. },
                        ..
                    }) if sources.fewshot_from.is_none() => {}
                    Err(e) => return Err(e),
                }
            }
            Docs::MmluPro { docs, fewshot }
        }
        TaskKind::Bbh => unreachable!("read above"),
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
        let dir = d.path().display();
        assert_eq!(
            e,
            format!(
                "task piqa: no data: give `--task piqa=PATH` (a path or ORG/NAME), or a \
                 `--data-dir` holding it (searched {dir}/piqa, {dir}/datasets--baber--piqa, \
                 {dir}/datasets--ybisk--piqa)"
            )
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

    use smolsweep_hub::layout::CacheRepo;
    use smolsweep_hub::RepoType;

    const GSM: &str = "{\"question\": \"q\", \"answer\": \"#### 1\"}\n";
    const MC: &str = "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n";

    fn in_dir(dir: &Path) -> DataSources {
        DataSources {
            data_dir: Some(dir.to_path_buf()),
            fewshot_from: None,
        }
    }

    fn task(name: &str) -> TaskSpec {
        name.parse().expect("spec")
    }

    #[test]
    fn a_missing_config_is_named_never_replaced_by_another() {
        let d = tempfile::tempdir().expect("tmp");
        let arc = CacheRepo::new(d.path(), RepoType::Dataset, "allenai/ai2_arc").expect("repo");
        arc.file(
            "r1",
            "ARC-Challenge/test-00000-of-00001.parquet",
            ARC.as_bytes(),
        )
        .expect("f");
        arc.set_ref("main", "r1").expect("ref");
        let e = load_task(&task("arc_easy"), &in_dir(d.path()), None)
            .expect_err("only challenge")
            .to_string();
        assert_eq!(
            e,
            format!(
                "task arc_easy: {}: no ARC-Easy/ config folder (found ARC-Challenge/); \
                 download that config or give its path",
                arc.snapshot("r1").display()
            )
        );
        let gsm = CacheRepo::new(d.path(), RepoType::Dataset, "openai/gsm8k").expect("repo");
        gsm.file("g", "socratic/test-00000-of-00001.jsonl", GSM.as_bytes())
            .expect("f");
        gsm.file("g", "socratic/train-00000-of-00001.jsonl", GSM.as_bytes())
            .expect("f");
        gsm.set_ref("main", "g").expect("ref");
        let e = load_task(&task("gsm8k"), &in_dir(d.path()), None)
            .expect_err("only socratic")
            .to_string();
        assert!(
            e.contains("no main/ config folder (found socratic/)"),
            "{e}"
        );
        gsm.file(
            "g",
            "main/test-00000-of-00001.jsonl",
            &GSM.repeat(2).into_bytes(),
        )
        .expect("f");
        gsm.file(
            "g",
            "main/train-00000-of-00001.jsonl",
            &GSM.repeat(7).into_bytes(),
        )
        .expect("f");
        let data = load_task(&task("gsm8k"), &in_dir(d.path()), None).expect("main");
        assert_eq!(data.len(), 2);
        assert!(data
            .files
            .iter()
            .all(|f| f.starts_with(gsm.snapshot("g").join("main"))));
        assert!(data
            .fewshot_files
            .iter()
            .all(|f| f.ends_with("main/train-00000-of-00001.jsonl")));
    }

    #[test]
    fn ifeval_root_file_and_hellaswag_parquet_branch() {
        let d = tempfile::tempdir().expect("tmp");
        let ife = CacheRepo::new(d.path(), RepoType::Dataset, "google/IFEval").expect("repo");
        let row =
            "{\"key\": 1, \"prompt\": \"Write.\", \"instruction_id_list\": [], \"kwargs\": []}\n";
        ife.file("i", "ifeval_input_data.jsonl", row.repeat(3).as_bytes())
            .expect("f");
        ife.file("i", "README.md", b"# IFEval").expect("f");
        ife.set_ref("main", "i").expect("ref");
        let data = load_task(&task("ifeval"), &in_dir(d.path()), None).expect("ifeval");
        assert_eq!(data.len(), 3);
        // refs/main is the script-only snapshot; the data is on the
        // Parquet conversion branch.
        let hs = CacheRepo::new(d.path(), RepoType::Dataset, "Rowan/hellaswag").expect("repo");
        hs.file("script", "hellaswag.py", b"# loader").expect("f");
        hs.set_ref("main", "script").expect("ref");
        let hrow = serde_json::json!({"ctx": "A man", "activity_label": "Run", "ctx_a": "A man", "ctx_b": "runs",
            "endings": ["a", "b", "c", "d"], "label": "1"});
        let rows = vec![hrow.as_object().expect("obj").clone(); 4];
        let pq = d.path().join("v.parquet");
        smolsweep_datasets::write_parquet(&pq, &rows).expect("pq");
        hs.file(
            "pq",
            "default/validation/0000.parquet",
            &std::fs::read(&pq).expect("read"),
        )
        .expect("f");
        hs.file(
            "pq",
            "default/train/0000.parquet",
            &std::fs::read(&pq).expect("read"),
        )
        .expect("f");
        let e = crate::error::chain_text(
            &load_task(&task("hellaswag"), &in_dir(d.path()), None).expect_err("script only"),
        );
        assert!(e.contains("no data files for split `validation`"), "{e}");
        hs.set_ref("convert/parquet", "pq").expect("ref");
        let data = load_task(&task("hellaswag"), &in_dir(d.path()), None).expect("hellaswag");
        assert_eq!(data.len(), 4);
        assert!(data.files[0].ends_with("pq/default/validation/0000.parquet"));
    }

    #[test]
    fn the_hub_cache_is_searched_without_a_data_dir() {
        static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().expect("tmp");
        let piqa = CacheRepo::new(d.path(), RepoType::Dataset, "ybisk/piqa").expect("repo");
        piqa.file(
            "p",
            "plain_text/validation/0000.jsonl",
            MC.repeat(5).as_bytes(),
        )
        .expect("f");
        piqa.set_ref("convert/parquet", "p").expect("ref");
        std::env::set_var("HF_HUB_CACHE", d.path());
        let found = load_task(&task("piqa"), &DataSources::default(), None).map(|t| t.len());
        let by_id =
            load_task(&task("piqa=ybisk/piqa"), &DataSources::default(), None).map(|t| t.len());
        let absent = load_task(&task("arc_easy"), &DataSources::default(), None)
            .expect_err("absent")
            .to_string();
        std::env::remove_var("HF_HUB_CACHE");
        assert_eq!(found.expect("piqa"), 5);
        assert_eq!(by_id.expect("by id"), 5);
        assert!(
            absent.contains(&format!(
                "searched {}",
                d.path().join("datasets--allenai--ai2_arc").display()
            )),
            "{absent}"
        );
    }
}
