//! GGUF files (llama.cpp's format, v2 and v3): a bounds-checked reader of
//! the header, metadata and tensor table ([`GgufFile`]), dequantisation of
//! the tensor types we support ([`dequant`]), and the import into a HF model
//! directory ([`import`]).
//!
//! Layout (all little-endian): magic `GGUF`, u32 version, u64 tensor count,
//! u64 metadata count, the metadata key/values, the tensor infos (name,
//! dims with the fastest-varying first, type, offset), then the tensor data
//! aligned to `general.alignment` (32 by default).

pub mod dequant;
pub mod import;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

pub use import::{import_gguf, ImportSummary};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// GGML tensor types (the subset with names we report; ids from ggml.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType(pub u32);

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q4_0: GgmlType = GgmlType(2);
    pub const Q4_1: GgmlType = GgmlType(3);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const BF16: GgmlType = GgmlType(30);

    pub fn name(self) -> String {
        let known = [
            "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
            "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
            "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
            "BF16",
        ];
        known
            .get(self.0 as usize)
            .map_or_else(|| format!("#{}", self.0), |s| (*s).to_owned())
    }

    /// (elements per block, bytes per block) for the types we can read.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q4_1 => Some((32, 20)),
            GgmlType::Q8_0 => Some((32, 34)),
            _ => None,
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// GGML order: `dims[0]` varies fastest (the row length).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }
    /// The PyTorch shape (slowest-varying first).
    pub fn torch_shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }
}

/// An open GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    data_start: usize,
    map: memmap2::Mmap,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> ModelError {
        ModelError::Gguf {
            path: self.path.to_path_buf(),
            msg: format!(
                "file ends at byte {} while reading {what} (truncated?)",
                self.buf.len()
            ),
        }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err(what))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.err(what))?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn len(&mut self, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        // Every element takes at least a byte, so a count beyond the bytes
        // left means the file was cut short (or is corrupt); refuse before
        // allocating.
        let left = self.buf.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| self.err(&format!("{what} ({n} elements, {left} bytes left)")))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.len(what)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ModelError::Gguf {
            path: self.path.to_path_buf(),
            msg: format!("{what}: not valid UTF-8"),
        })
    }
    fn value(&mut self, ty: u32, what: &str) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(what)?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => MetaValue::Bool(self.array::<1>(what)?[0] != 0),
            8 => MetaValue::Str(self.string(what)?),
            9 => {
                let inner = self.u32(what)?;
                let n = self.len(what)?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(inner, what)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => {
                return Err(ModelError::Gguf {
                    path: self.path.to_path_buf(),
                    msg: format!("{what}: unknown metadata value type {other}"),
                })
            }
        })
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file, checking that every tensor's data lies
    /// inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
        // SAFETY: the file is opened read-only and we only read from the
        // map; a concurrent truncation by another process is the usual
        // mmap caveat, accepted for multi-GB weight files.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        let mut c = Cursor {
            buf: &map,
            pos: 0,
            path,
        };
        if c.take(4, "the magic number")? != b"GGUF" {
            return Err(ModelError::Gguf {
                path: path.to_path_buf(),
                msg: "does not start with the GGUF magic number".into(),
            });
        }
        let version = c.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(ModelError::Gguf {
                path: path.to_path_buf(),
                msg: format!("GGUF version {version} is not supported (2 or 3)"),
            });
        }
        let n_tensors = c.len("the tensor count")?;
        let n_kv = c.len("the metadata count")?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key #{i}"))?;
            let ty = c.u32(&format!("the type of metadata `{key}`"))?;
            let v = c.value(ty, &format!("metadata `{key}`"))?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16));
        for i in 0..n_tensors {
            let name = c.string(&format!("the name of tensor #{i}"))?;
            let what = format!("the info of tensor `{name}`");
            let n_dims = c.u32(&what)?;
            if n_dims > 4 {
                return Err(ModelError::Gguf {
                    path: path.to_path_buf(),
                    msg: format!("tensor `{name}` has {n_dims} dimensions (at most 4)"),
                });
            }
            let dims = (0..n_dims)
                .map(|_| c.u64(&what))
                .collect::<Result<Vec<_>>>()?;
            let ty = GgmlType(c.u32(&what)?);
            let offset = c.u64(&what)?;
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
            });
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(MetaValue::as_u64)
            .unwrap_or(32)
            .max(1) as usize;
        let data_start = c.pos.div_ceil(alignment) * alignment;
        let gguf = GgufFile {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            data_start,
            map,
        };
        for t in &gguf.tensors {
            if let Some(n) = gguf.tensor_nbytes(t) {
                let end = (gguf.data_start as u64)
                    .saturating_add(t.offset)
                    .saturating_add(n);
                if end > gguf.map.len() as u64 {
                    return Err(ModelError::Gguf {
                        path: path.to_path_buf(),
                        msg: format!(
                            "tensor `{}` ends at byte {end} but the file has {} bytes (truncated?)",
                            t.name,
                            gguf.map.len()
                        ),
                    });
                }
            }
        }
        Ok(gguf)
    }

    fn tensor_nbytes(&self, t: &TensorInfo) -> Option<u64> {
        let (per_block, bytes) = t.ty.block()?;
        Some(t.numel().div_ceil(per_block as u64) * bytes as u64)
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// The tensor's values as f32, in PyTorch (row-major) order.
    pub fn dequantize(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let unsupported = || ModelError::UnsupportedGgufType {
            path: self.path.clone(),
            tensor: t.name.clone(),
            ty: t.ty.name(),
        };
        let (per_block, _) = t.ty.block().ok_or_else(unsupported)?;
        let numel = t.numel() as usize;
        if per_block > 1 && t.dims.first().is_some_and(|&d| d as usize % per_block != 0) {
            return Err(ModelError::Gguf {
                path: self.path.clone(),
                msg: format!(
                    "tensor `{}`: row length {:?} is not a multiple of the {}-element block",
                    t.name,
                    t.dims.first(),
                    per_block
                ),
            });
        }
        let n = self.tensor_nbytes(t).ok_or_else(unsupported)? as usize;
        let start = self.data_start + t.offset as usize;
        let bytes = &self.map[start..start + n];
        dequant::dequantize(t.ty, bytes, numel).ok_or_else(unsupported)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a minimal GGUF v3 file: `meta` key/values (strings and u32s)
    /// and `tensors` (name, GGML dims, type, raw bytes).
    pub(crate) fn write_gguf(
        path: &Path,
        meta: &[(&str, MetaValue)],
        tensors: &[(&str, Vec<u64>, GgmlType, Vec<u8>)],
    ) {
        fn put_str(b: &mut Vec<u8>, s: &str) {
            b.extend((s.len() as u64).to_le_bytes());
            b.extend(s.as_bytes());
        }
        fn put_val(b: &mut Vec<u8>, v: &MetaValue) {
            match v {
                MetaValue::U32(x) => {
                    b.extend(4u32.to_le_bytes());
                    b.extend(x.to_le_bytes());
                }
                MetaValue::F32(x) => {
                    b.extend(6u32.to_le_bytes());
                    b.extend(x.to_le_bytes());
                }
                MetaValue::Str(s) => {
                    b.extend(8u32.to_le_bytes());
                    put_str(b, s);
                }
                MetaValue::Array(items) => {
                    b.extend(9u32.to_le_bytes());
                    let inner = match items.first() {
                        Some(MetaValue::I32(_)) => 5u32,
                        _ => 8u32,
                    };
                    b.extend(inner.to_le_bytes());
                    b.extend((items.len() as u64).to_le_bytes());
                    for it in items {
                        match it {
                            MetaValue::I32(x) => b.extend(x.to_le_bytes()),
                            MetaValue::Str(s) => put_str(b, s),
                            _ => unreachable!("test writer supports i32 and string arrays"),
                        }
                    }
                }
                _ => unreachable!("test writer supports u32, f32, str and arrays"),
            }
        }
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend((tensors.len() as u64).to_le_bytes());
        b.extend((meta.len() as u64).to_le_bytes());
        for (k, v) in meta {
            put_str(&mut b, k);
            put_val(&mut b, v);
        }
        let mut offset = 0u64;
        let mut data = Vec::new();
        for (name, dims, ty, raw) in tensors {
            put_str(&mut b, name);
            b.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(ty.0.to_le_bytes());
            b.extend(offset.to_le_bytes());
            data.extend(raw);
            while data.len() % 32 != 0 {
                data.push(0);
            }
            offset = data.len() as u64;
        }
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend(data);
        std::fs::write(path, b).expect("write gguf");
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("t.gguf");
        let vals: Vec<u8> = [1.0f32, -2.0, 3.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_gguf(
            &p,
            &[("general.architecture", MetaValue::Str("llama".into()))],
            &[("x", vec![3], GgmlType::F32, vals)],
        );
        let g = GgufFile::open(&p).expect("open");
        assert_eq!(
            g.get("general.architecture").and_then(MetaValue::as_str),
            Some("llama")
        );
        assert_eq!(
            g.dequantize(&g.tensors[0]).expect("deq"),
            vec![1.0, -2.0, 3.5]
        );
    }

    #[test]
    fn truncated_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("t.gguf");
        let vals: Vec<u8> = (0..64).flat_map(|v| (v as f32).to_le_bytes()).collect();
        write_gguf(
            &p,
            &[],
            &[("blk.0.attn_q.weight", vec![64], GgmlType::F32, vals)],
        );
        let full = std::fs::read(&p).expect("read");
        std::fs::write(&p, &full[..full.len() - 100]).expect("truncate");
        let err = GgufFile::open(&p).expect_err("must fail").to_string();
        assert!(
            err.contains("blk.0.attn_q.weight") && err.contains("truncated"),
            "{err}"
        );
        std::fs::write(&p, &full[..20]).expect("truncate");
        let err = GgufFile::open(&p).expect_err("must fail").to_string();
        assert!(err.contains("truncated") && err.contains("t.gguf"), "{err}");
    }

    #[test]
    fn unsupported_type_names_tensor_and_type() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("t.gguf");
        // Q6_K = 14; its data size is unknown to us, so the table check skips it.
        write_gguf(
            &p,
            &[],
            &[("blk.3.ffn_up.weight", vec![256], GgmlType(14), vec![0; 210])],
        );
        let g = GgufFile::open(&p).expect("open");
        let err = g
            .dequantize(&g.tensors[0])
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("blk.3.ffn_up.weight") && err.contains("Q6_K"),
            "{err}"
        );
    }
}
