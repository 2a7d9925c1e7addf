//! Reading Hugging Face datasets as users have them on disk: Parquet files,
//! JSONL (or a JSON array), a dataset directory with one or more files per
//! split (`data/train-00000-of-00001.parquet`, `test.jsonl`, ...), or the
//! hub cache layout (`datasets--ORG--NAME/snapshots/REV/`, or `ORG/NAME`
//! in the local hub cache, found by `smolsweep_hub`).
//!
//! Rows come back as JSON objects whatever the file format, each tagged
//! with its file and index, so every consumer can name the exact file and
//! row (or line) when a row is bad.

mod parquet_rows;
pub mod preference;
mod stream;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// One row: column name -> value.
pub type Row = Map<String, Value>;

/// A dataset that could not be read. Messages name the file (and line);
/// an I/O cause is the next link of the chain, never repeated in the
/// message.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: invalid JSON: {msg}")]
    JsonLine {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error(
        "{path}: no data files{}{}",
        split.as_ref().map(|s| format!(" for split `{s}`")).unwrap_or_default(),
        found_text(found)
    )]
    NoFiles {
        path: PathBuf,
        split: Option<String>,
        /// Data files of other splits that are there.
        found: Vec<String>,
    },
    /// The reference led nowhere (its own message names it and the
    /// folders searched).
    #[error(transparent)]
    Hub(#[from] smolsweep_hub::HubError),
    #[error("{path}: the dataset is empty")]
    Empty { path: PathBuf },
    /// A row that does not hold what its consumer reads; `location` is
    /// [`Record::location`].
    #[error("{location}: {msg}")]
    Row { location: String, msg: String },
}

fn found_text(found: &[String]) -> String {
    const SHOWN: usize = 6;
    match found.len() {
        0 => String::new(),
        n if n <= SHOWN => format!(" (found {})", found.join(", ")),
        n => format!(
            " (found {}, and {} more)",
            found[..SHOWN].join(", "),
            n - SHOWN
        ),
    }
}

pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// A row with where it came from.
#[derive(Debug, Clone)]
pub struct Record {
    pub file: PathBuf,
    /// 0-based row index in its file (for JSONL, the line number is
    /// `index + 1` counting only non-blank lines).
    pub index: usize,
    pub row: Row,
}

impl Record {
    /// "FILE, row N" (1-based), for error messages.
    pub fn location(&self) -> String {
        format!("{}, row {}", self.file.display(), self.index + 1)
    }
}

const EXTENSIONS: &[&str] = &["parquet", "jsonl", "json"];

fn is_data_file(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        // dataset_info.json and friends describe, they are not data.
        && !p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("dataset_") || n.starts_with('.') || n == "state.json")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            if !p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                walk(&p, out)?;
            }
        } else if is_data_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Does `file` (under `root`) belong to `split`? HF names files
/// `SPLIT-00000-of-00001.parquet`, `SPLIT.jsonl`, or puts them in a
/// `SPLIT/` folder.
fn in_split(root: &Path, file: &Path, split: &str) -> bool {
    let name = file.file_stem().and_then(|n| n.to_str()).unwrap_or("");
    let by_name = name == split
        || name.strip_prefix(split).is_some_and(|rest| {
            rest.starts_with('-') || rest.starts_with('_') || rest.starts_with('.')
        });
    let by_dir = file
        .strip_prefix(root)
        .ok()
        .and_then(Path::parent)
        .is_some_and(|p| p.components().any(|c| c.as_os_str() == split));
    by_name || by_dir
}

/// The folders (or file) a dataset reference is read from, best first:
/// see `smolsweep_hub::locate` (a hub cache repository read at
/// `refs/main` also offers its Parquet conversion).
pub fn dataset_roots(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(smolsweep_hub::locate(path, smolsweep_hub::RepoType::Dataset)?.roots)
}

/// Every data file under `root` (itself, when it is a file), restricted
/// to `split` when given; may be empty.
pub fn data_files(root: &Path, split: Option<&str>) -> Result<Vec<PathBuf>> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut files = Vec::new();
    walk(root, &mut files)?;
    if let Some(split) = split {
        files.retain(|f| in_split(root, f, split));
    }
    Ok(files)
}

/// The data files of a dataset reference: the file itself, or every data
/// file under the first of its [`dataset_roots`] that has any, restricted
/// to `split` when given.
pub fn resolve_files(path: &Path, split: Option<&str>) -> Result<Vec<PathBuf>> {
    let roots = dataset_roots(path)?;
    let mut others = Vec::new();
    for root in &roots {
        let files = data_files(root, split)?;
        if !files.is_empty() {
            return Ok(files);
        }
        if split.is_some() {
            others.extend(data_files(root, None)?);
        }
    }
    Err(DatasetError::NoFiles {
        path: roots[0].clone(),
        split: split.map(str::to_owned),
        found: others.iter().map(|f| relative_name(&roots, f)).collect(),
    })
}

/// The files a training run reads from a data reference: a file itself;
/// for a directory, hub cache folder or `ORG/NAME`, its `train` split
/// when it has one, else all its data files.
pub fn training_files(path: &Path) -> Result<Vec<PathBuf>> {
    match resolve_files(path, Some("train")) {
        Ok(files) => Ok(files),
        Err(DatasetError::NoFiles { .. }) => resolve_files(path, None),
        Err(e) => Err(e),
    }
}

/// `f` relative to whichever root holds it, for messages.
pub fn relative_name(roots: &[PathBuf], f: &Path) -> String {
    roots
        .iter()
        .find_map(|r| f.strip_prefix(r).ok())
        .unwrap_or(f)
        .display()
        .to_string()
}

/// Reads every row of one file.
pub fn read_file(path: &Path) -> Result<Vec<Row>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => parquet_rows::read(path, None),
        Some("json") => read_json(path),
        _ => read_jsonl(path, None),
    }
}

/// Reads the first `n` rows of one file, decoding no more of it than
/// those need (a JSON array is read whole): for checking a large dataset's
/// schema before anything starts.
pub fn read_head(path: &Path, n: usize) -> Result<Vec<Row>> {
    let mut rows = match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => parquet_rows::read(path, Some(n))?,
        Some("json") => read_json(path)?,
        _ => read_jsonl(path, Some(n))?,
    };
    rows.truncate(n);
    Ok(rows)
}

fn read_jsonl(path: &Path, limit: Option<usize>) -> Result<Vec<Row>> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        if limit.is_some_and(|n| rows.len() >= n) {
            break;
        }
        let line = line.map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| DatasetError::JsonLine {
            path: path.to_path_buf(),
            line: i + 1,
            msg,
        };
        match serde_json::from_str::<Value>(&line).map_err(|e| bad(e.to_string()))? {
            Value::Object(o) => rows.push(o),
            _ => return Err(bad("expected a JSON object".into())),
        }
    }
    Ok(rows)
}

fn read_json(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // A .json file may hold JSON lines too.
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return read_jsonl(path, None);
    };
    let fmt = |msg: &str| DatasetError::Format {
        path: path.to_path_buf(),
        msg: msg.to_owned(),
    };
    let items = match v {
        Value::Array(a) => a,
        // {"data": [...]} as some exports write it.
        Value::Object(mut o) => match o.remove("data") {
            Some(Value::Array(a)) => a,
            _ => return Ok(vec![o]),
        },
        _ => return Err(fmt("expected an array of objects")),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(o) => Ok(o),
            _ => Err(fmt(&format!("item {} is not an object", i + 1))),
        })
        .collect()
}

/// Reads a dataset (see [`resolve_files`]); an empty result is an error.
pub fn read_dataset(path: &Path, split: Option<&str>) -> Result<Vec<Record>> {
    read_records(&resolve_files(path, split)?, path)
}

/// Reads every row of `files`, tagged with file and index; no rows at all
/// is an error naming `what` (the dataset they make up).
pub fn read_records(files: &[PathBuf], what: &Path) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for file in files {
        for (index, row) in read_file(file)?.into_iter().enumerate() {
            out.push(Record {
                file: file.clone(),
                index,
                row,
            });
        }
    }
    if out.is_empty() {
        return Err(DatasetError::Empty {
            path: what.to_path_buf(),
        });
    }
    Ok(out)
}

/// Preference pairs (DPO and reward-model data).
pub use preference::{parse_pair, read_preference_records, PreferencePair, Turn};

/// Reading a dataset in chunks of rows, in bounded memory.
pub use stream::{RecordChunks, StreamSource};

/// Writes rows as a Parquet file (strings, numbers, booleans, lists and
/// structs), for tests and for data the project generates.
pub use parquet_rows::write as write_parquet;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Row {
        match v {
            Value::Object(o) => o,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("x.jsonl");
        std::fs::write(&p, "{\"a\": 1}\n\n{\"a\": oops}\n").expect("write");
        let e = read_file(&p).expect_err("bad").to_string();
        assert!(e.contains("x.jsonl, line 3"), "{e}");
    }

    #[test]
    fn parquet_round_trip_with_nested_messages() {
        let d = tempfile::tempdir().expect("tmp");
        let rows = vec![
            obj(
                json!({"id": "a", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "n": 3, "x": 0.5, "ok": true}),
            ),
            obj(
                json!({"id": "b", "messages": [{"role": "user", "content": "2+2"}], "n": -1, "x": 1.5, "ok": false}),
            ),
        ];
        let p = d.path().join("train-00000-of-00001.parquet");
        write_parquet(&p, &rows).expect("write");
        let back = read_file(&p).expect("read");
        assert_eq!(back, rows);
    }

    #[test]
    fn directory_splits_and_hub_layout() {
        let d = tempfile::tempdir().expect("tmp");
        let repo = d.path().join("datasets--openai--gsm8k");
        let snap = repo.join("snapshots/rev1/main");
        std::fs::create_dir_all(&snap).expect("mkdir");
        std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
        std::fs::write(repo.join("refs/main"), "rev1").expect("ref");
        std::fs::write(
            snap.join("train-00000-of-00001.jsonl"),
            "{\"q\": 1}\n{\"q\": 2}\n",
        )
        .expect("w");
        std::fs::write(snap.join("test-00000-of-00001.jsonl"), "{\"q\": 3}\n").expect("w");
        let test = read_dataset(&repo, Some("test")).expect("test");
        assert_eq!(test.len(), 1);
        assert_eq!(test[0].row["q"], json!(3));
        assert_eq!(read_dataset(&repo, Some("train")).expect("train").len(), 2);
        let e = read_dataset(&repo, Some("validation"))
            .expect_err("none")
            .to_string();
        assert!(e.contains("validation"), "{e}");
        assert!(read_dataset(&d.path().join("missing"), None).is_err());
    }

    #[test]
    fn empty_dataset_is_an_error() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("e.jsonl");
        std::fs::write(&p, "\n").expect("w");
        assert!(read_dataset(&p, None)
            .expect_err("empty")
            .to_string()
            .contains("empty"));
    }
}
