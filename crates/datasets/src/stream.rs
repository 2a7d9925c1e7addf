//! Reading a dataset in chunks of rows, for consumers whose memory must not
//! grow with the dataset (tokenising a million conversations): JSONL is
//! read line by line, Parquet record batch by record batch (one row group
//! at a time), and rows come back in file order, `chunk_rows` at a time,
//! tagged exactly as [`crate::read_dataset`] tags them (same file, same
//! index, same error for a bad line). A `.json` array file cannot be read
//! in pieces and is read whole.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::{parquet_rows, DatasetError, Record, Result, Row};

/// The files of one dataset path, with the path itself for the "empty"
/// error.
#[derive(Debug, Clone)]
pub struct StreamSource {
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Chunks of [`Record`]s over several dataset paths, in order. Every path
/// must yield at least one row (as [`crate::read_dataset`] requires).
pub struct RecordChunks {
    sources: VecDeque<StreamSource>,
    chunk_rows: usize,
    /// The path being read, its remaining files and the rows it gave.
    current: Option<(PathBuf, VecDeque<PathBuf>, usize)>,
    file: Option<FileRows>,
    failed: bool,
}

impl RecordChunks {
    pub fn new(sources: Vec<StreamSource>, chunk_rows: usize) -> Self {
        RecordChunks {
            sources: sources.into(),
            chunk_rows: chunk_rows.max(1),
            current: None,
            file: None,
            failed: false,
        }
    }

    /// Fills `out` up to the chunk size; `Ok(false)` when every source is
    /// exhausted.
    fn fill(&mut self, out: &mut Vec<Record>) -> Result<bool> {
        while out.len() < self.chunk_rows {
            if let Some(f) = &mut self.file {
                let want = self.chunk_rows - out.len();
                let before = out.len();
                f.next_rows(want, out)?;
                let got = out.len() - before;
                if let Some(cur) = &mut self.current {
                    cur.2 += got;
                }
                if got > 0 {
                    continue;
                }
                self.file = None;
            }
            match &mut self.current {
                Some((_, files, _)) if !files.is_empty() => {
                    let next = files.pop_front().unwrap_or_default();
                    self.file = Some(FileRows::open(&next)?);
                }
                Some((path, _, rows)) => {
                    if *rows == 0 {
                        return Err(DatasetError::Empty { path: path.clone() });
                    }
                    self.current = None;
                }
                None => match self.sources.pop_front() {
                    Some(s) => self.current = Some((s.path, s.files.into(), 0)),
                    None => return Ok(!out.is_empty()),
                },
            }
        }
        Ok(true)
    }
}

impl Iterator for RecordChunks {
    type Item = Result<Vec<Record>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut out = Vec::with_capacity(self.chunk_rows);
        match self.fill(&mut out) {
            Ok(true) => Some(Ok(out)),
            Ok(false) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Rows of one open file.
enum FileRows {
    Jsonl {
        path: PathBuf,
        lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
        /// Physical line number of the last line read (1-based).
        line: usize,
        /// Rows given so far (the next record's index).
        index: usize,
    },
    Parquet {
        path: PathBuf,
        reader: ParquetRecordBatchReader,
        pending: VecDeque<Row>,
        index: usize,
    },
    /// A file read whole (`.json`).
    Whole {
        path: PathBuf,
        rows: std::vec::IntoIter<Row>,
        index: usize,
    },
}

fn io_err(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FileRows {
    fn open(path: &Path) -> Result<Self> {
        let p = path.to_path_buf();
        Ok(match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => {
                let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| {
                        parquet_rows::fmt_err(path, format!("not a readable Parquet file: {e}"))
                    })?
                    // Small batches: a row of chat data can be tens of kB.
                    .with_batch_size(256)
                    .build()
                    .map_err(|e| parquet_rows::fmt_err(path, e))?;
                FileRows::Parquet {
                    path: p,
                    reader,
                    pending: VecDeque::new(),
                    index: 0,
                }
            }
            Some("json") => FileRows::Whole {
                path: p,
                rows: crate::read_file(path)?.into_iter(),
                index: 0,
            },
            _ => {
                let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
                FileRows::Jsonl {
                    path: p,
                    lines: std::io::BufReader::with_capacity(1 << 20, file).lines(),
                    line: 0,
                    index: 0,
                }
            }
        })
    }

    /// Appends up to `want` rows; none when the file is done.
    fn next_rows(&mut self, want: usize, out: &mut Vec<Record>) -> Result<()> {
        let target = out.len() + want;
        match self {
            FileRows::Jsonl {
                path,
                lines,
                line,
                index,
            } => {
                while out.len() < target {
                    let Some(text) = lines.next() else { break };
                    *line += 1;
                    let text = text.map_err(|e| io_err(path, e))?;
                    if text.trim().is_empty() {
                        continue;
                    }
                    let row = parse_line(path, *line, &text)?;
                    out.push(Record {
                        file: path.clone(),
                        index: *index,
                        row,
                    });
                    *index += 1;
                }
            }
            FileRows::Parquet {
                path,
                reader,
                pending,
                index,
            } => {
                while out.len() < target {
                    if let Some(row) = pending.pop_front() {
                        out.push(Record {
                            file: path.clone(),
                            index: *index,
                            row,
                        });
                        *index += 1;
                        continue;
                    }
                    let Some(batch) = reader.next() else { break };
                    let batch = batch.map_err(|e| parquet_rows::fmt_err(path, e))?;
                    pending.extend(parquet_rows::batch_rows(path, &batch)?);
                }
            }
            FileRows::Whole { path, rows, index } => {
                while out.len() < target {
                    let Some(row) = rows.next() else { break };
                    out.push(Record {
                        file: path.clone(),
                        index: *index,
                        row,
                    });
                    *index += 1;
                }
            }
        }
        Ok(())
    }
}

/// One JSONL line as the whole-file reader parses it (same error).
fn parse_line(path: &Path, line: usize, text: &str) -> Result<Row> {
    let bad = |msg: String| DatasetError::JsonLine {
        path: path.to_path_buf(),
        line,
        msg,
    };
    match serde_json::from_str::<serde_json::Value>(text).map_err(|e| bad(e.to_string()))? {
        serde_json::Value::Object(o) => Ok(o),
        _ => Err(bad("expected a JSON object".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Row {
        v.as_object().cloned().unwrap_or_default()
    }

    fn all(paths: &[PathBuf], chunk: usize) -> Result<Vec<Vec<Record>>> {
        let sources = paths
            .iter()
            .map(|p| {
                Ok(StreamSource {
                    path: p.clone(),
                    files: crate::resolve_files(p, None)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        RecordChunks::new(sources, chunk).collect()
    }

    #[test]
    fn chunks_give_the_rows_read_dataset_gives() {
        let d = tempfile::tempdir().expect("tmp");
        let jl = d.path().join("a.jsonl");
        let mut text = String::new();
        for i in 0..7 {
            text.push_str(&format!("{{\"i\": {i}}}\n"));
            if i == 3 {
                text.push('\n');
            }
        }
        std::fs::write(&jl, text).expect("w");
        let pq = d.path().join("b.parquet");
        let rows: Vec<Row> = (0..600).map(|i| obj(json!({"i": i, "s": "x"}))).collect();
        crate::write_parquet(&pq, &rows).expect("pq");
        let js = d.path().join("c.json");
        std::fs::write(&js, "[{\"i\": 1}, {\"i\": 2}]").expect("w");
        let paths = vec![jl.clone(), pq.clone(), js.clone()];
        let want: Vec<Record> = paths
            .iter()
            .flat_map(|p| crate::read_dataset(p, None).expect("read"))
            .collect();
        for chunk in [1, 5, 300, 10_000] {
            let got = all(&paths, chunk).expect("stream");
            assert!(got.iter().all(|c| !c.is_empty() && c.len() <= chunk));
            let flat: Vec<Record> = got.into_iter().flatten().collect();
            assert_eq!(flat.len(), want.len());
            for (a, b) in flat.iter().zip(&want) {
                assert_eq!((&a.file, a.index, &a.row), (&b.file, b.index, &b.row));
            }
        }
    }

    #[test]
    fn errors_match_read_dataset() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("x.jsonl");
        std::fs::write(&p, "{\"a\": 1}\n\n{\"a\": oops}\n").expect("write");
        let e = all(std::slice::from_ref(&p), 1)
            .expect_err("bad")
            .to_string();
        assert!(e.contains("x.jsonl, line 3"), "{e}");
        std::fs::write(&p, "\n\n").expect("write");
        let e = all(std::slice::from_ref(&p), 4)
            .expect_err("empty")
            .to_string();
        assert!(e.contains("x.jsonl") && e.contains("empty"), "{e}");
    }
}
