//! Parquet <-> JSON rows through Arrow: the reader turns record batches
//! into JSON objects with `arrow-json` (every Arrow type HF datasets use:
//! strings, integers, floats, booleans, lists and structs, as in
//! `messages: [{role, content}]`); the writer infers a schema from the rows.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use arrow::json::writer::{JsonArray, WriterBuilder};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use serde_json::Value;

use crate::{DatasetError, Result, Row};

pub(crate) fn fmt_err(path: &Path, e: impl std::fmt::Display) -> DatasetError {
    DatasetError::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Every row of `path`, or its first `limit` (only the row groups that
/// hold them are decoded).
pub(crate) fn read(path: &Path, limit: Option<usize>) -> Result<Vec<Row>> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fmt_err(path, format!("not a readable Parquet file: {e}")))?;
    if let Some(n) = limit {
        builder = builder.with_limit(n).with_batch_size(n.max(1));
    }
    let reader = builder.build().map_err(|e| fmt_err(path, e))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fmt_err(path, e))?;
        rows.extend(batch_rows(path, &batch)?);
    }
    Ok(rows)
}

/// The rows of one record batch as JSON objects.
pub(crate) fn batch_rows(path: &Path, batch: &RecordBatch) -> Result<Vec<Row>> {
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(&mut buf);
        w.write(batch).map_err(|e| fmt_err(path, e))?;
        w.finish().map_err(|e| fmt_err(path, e))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_slice::<Value>(&buf).map_err(|e| fmt_err(path, e))? {
        Value::Array(items) => Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(o) => Some(o),
                _ => None,
            })
            .collect()),
        _ => Err(fmt_err(path, "unexpected JSON from Arrow")),
    }
}

/// Writes `rows` to a Parquet file (schema inferred from the rows).
pub fn write(path: &Path, rows: &[Row]) -> Result<()> {
    let values: Vec<Value> = rows.iter().cloned().map(Value::Object).collect();
    let schema = infer_json_schema_from_iterator(values.iter().map(|v| Ok(v.clone())))
        .map_err(|e| fmt_err(path, e))?;
    let schema = Arc::new(schema);
    let mut decoder = ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(|e| fmt_err(path, e))?;
    decoder.serialize(&values).map_err(|e| fmt_err(path, e))?;
    let file = std::fs::File::create(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut w = ArrowWriter::try_new(file, schema, None).map_err(|e| fmt_err(path, e))?;
    while let Some(batch) = decoder.flush().map_err(|e| fmt_err(path, e))? {
        w.write(&batch).map_err(|e| fmt_err(path, e))?;
    }
    w.close().map_err(|e| fmt_err(path, e))?;
    Ok(())
}
