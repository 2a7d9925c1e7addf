//! The tokenisation cache file: written once, sequentially, by
//! [`CacheWriter`] (so a build streams and never holds the token arrays in
//! memory), then mapped read-only by every trial ([`CacheMap`]) and read
//! in place: no trial copies the arrays, so the trials of a node share one
//! copy of them in the page cache.
//!
//! Layout (all integers little-endian; sections 8-byte aligned, so the
//! page-aligned map can be viewed as `u32`/`u64` slices in place):
//!
//! ```text
//! 0   header (64 bytes)
//!       magic "SSTOKENS", version u32, header crc32 u32,
//!       samples u64, tokens u64, stats_len u64, file_len u64,
//!       body crc32 u32, 12 zero bytes
//! 64  ids      tokens x u32
//!     (zero padding to 8)
//!     offsets  (samples + 1) x u64   sample i = ids[offsets[i]..offsets[i+1]]
//!     mask     tokens x u8           1 = label
//!     stats    stats_len bytes of JSON (DataStats)
//! ```
//!
//! A file is trusted only when its magic, version, header checksum, length
//! and body checksum all hold and its offsets are monotone; anything else
//! is an [`Invalid`] reason, logged, and the cache is rebuilt. Files are
//! written under a temporary name and renamed, so a reader never sees half
//! a file, and a map stays valid when a rebuild replaces the file.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::encode::SampleSink;
use super::{DataStats, Samples, TokenizedData};
use crate::error::{Result, TrainError};

// The arrays are viewed in place as little-endian integers.
#[cfg(target_endian = "big")]
compile_error!("the tokenisation cache is read in place as little-endian integers");

pub const MAGIC: &[u8; 8] = b"SSTOKENS";
/// Bumped whenever the layout changes; another version is rebuilt.
pub const VERSION: u32 = 2;
/// The magic of the first format (no version field, no checksums).
const MAGIC_V1: &[u8; 8] = b"SSTOK001";
const HEADER_LEN: usize = 64;
/// Checksums are computed this many bytes at a time, checking the stop
/// flag in between.
const CHECK_BLOCK: usize = 64 << 20;

/// Why a cache file is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("absent")]
    Missing,
    #[error("unreadable: {0}")]
    Unreadable(String),
    #[error("written in an older format (version 1); this build reads version {VERSION}")]
    OldFormat,
    #[error("format version {found}; this build reads version {VERSION}")]
    Version { found: u32 },
    #[error("not a tokenisation cache (bad magic)")]
    Magic,
    #[error("truncated or overlong: {found} bytes where the header says {expected}")]
    Length { found: u64, expected: u64 },
    #[error("header checksum mismatch (corrupt)")]
    HeaderChecksum,
    #[error("data checksum mismatch (corrupt)")]
    BodyChecksum,
    #[error("inconsistent contents: {0}")]
    Inconsistent(String),
}

/// Where each section lies, from the header's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    samples: u64,
    tokens: u64,
    stats_len: u64,
    ids_at: u64,
    offsets_at: u64,
    mask_at: u64,
    stats_at: u64,
    file_len: u64,
}

fn pad8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

impl Layout {
    fn new(samples: u64, tokens: u64, stats_len: u64) -> Option<Self> {
        let ids_at = HEADER_LEN as u64;
        let offsets_at = pad8(ids_at.checked_add(tokens.checked_mul(4)?)?);
        let mask_at = offsets_at.checked_add(samples.checked_add(1)?.checked_mul(8)?)?;
        let stats_at = mask_at.checked_add(tokens)?;
        let file_len = stats_at.checked_add(stats_len)?;
        Some(Layout {
            samples,
            tokens,
            stats_len,
            ids_at,
            offsets_at,
            mask_at,
            stats_at,
            file_len,
        })
    }
}

fn header_bytes(l: &Layout, body_crc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&l.samples.to_le_bytes());
    h[24..32].copy_from_slice(&l.tokens.to_le_bytes());
    h[32..40].copy_from_slice(&l.stats_len.to_le_bytes());
    h[40..48].copy_from_slice(&l.file_len.to_le_bytes());
    h[48..52].copy_from_slice(&body_crc.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Checks a header and returns its layout and body checksum.
fn parse_header(h: &[u8]) -> std::result::Result<(Layout, u32), Invalid> {
    if h.len() >= 8 && &h[..8] == MAGIC_V1 {
        return Err(Invalid::OldFormat);
    }
    if h.len() < HEADER_LEN {
        return Err(if h.len() >= 8 && &h[..8] != MAGIC {
            Invalid::Magic
        } else {
            Invalid::Length {
                found: h.len() as u64,
                expected: HEADER_LEN as u64,
            }
        });
    }
    if &h[..8] != MAGIC {
        return Err(Invalid::Magic);
    }
    let version = le_u32(h, 8);
    if version != VERSION {
        return Err(Invalid::Version { found: version });
    }
    let mut zeroed = [0u8; HEADER_LEN];
    zeroed.copy_from_slice(&h[..HEADER_LEN]);
    zeroed[12..16].fill(0);
    if crc32fast::hash(&zeroed) != le_u32(h, 12) {
        return Err(Invalid::HeaderChecksum);
    }
    let layout = Layout::new(le_u64(h, 16), le_u64(h, 24), le_u64(h, 32))
        .filter(|l| l.file_len == le_u64(h, 40))
        .ok_or_else(|| Invalid::Inconsistent("header sizes do not add up".into()))?;
    Ok((layout, le_u32(h, 48)))
}

/// A cache file mapped read-only; samples are slices of the map.
#[derive(Debug)]
pub struct CacheMap {
    map: smolsweep_model::mmap::Mmap,
    layout: Layout,
    stats: DataStats,
    path: PathBuf,
}

impl CacheMap {
    /// Maps and checks `path`; `stop` is polled while the checksum runs.
    pub fn open(path: &Path, stop: &AtomicBool) -> std::result::Result<Self, OpenError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpenError::Invalid(Invalid::Missing))
            }
            Err(e) => return Err(OpenError::Invalid(Invalid::Unreadable(e.to_string()))),
        };
        let map = smolsweep_model::mmap::map_read_only(&file)
            .map_err(|e| OpenError::Invalid(Invalid::Unreadable(e.to_string())))?;
        let (layout, body_crc) = parse_header(&map)?;
        if map.len() as u64 != layout.file_len {
            return Err(Invalid::Length {
                found: map.len() as u64,
                expected: layout.file_len,
            }
            .into());
        }
        let mut crc = crc32fast::Hasher::new();
        for block in map[HEADER_LEN..].chunks(CHECK_BLOCK) {
            if stop.load(Ordering::Relaxed) {
                return Err(OpenError::Stopped);
            }
            crc.update(block);
        }
        if crc.finalize() != body_crc {
            return Err(Invalid::BodyChecksum.into());
        }
        let bad = |m: &str| OpenError::Invalid(Invalid::Inconsistent(m.into()));
        let stats: DataStats = serde_json::from_slice(&map[layout.stats_at as usize..])
            .map_err(|e| bad(&format!("statistics: {e}")))?;
        let m = CacheMap {
            map,
            layout,
            stats,
            path: path.to_path_buf(),
        };
        // Checked once here, so `sample` may index without checks failing.
        let (ids, offsets, mask) = (m.ids()?, m.offsets()?, m.mask());
        if offsets.first() != Some(&0)
            || offsets.last() != Some(&layout.tokens)
            || offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad("sample offsets are not monotone over the tokens"));
        }
        if ids.len() != mask.len() || m.stats.samples as u64 != layout.samples {
            return Err(bad("counts disagree with the statistics"));
        }
        Ok(m)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn section(&self, at: u64, len: u64) -> &[u8] {
        &self.map[at as usize..(at + len) as usize]
    }

    fn ids(&self) -> std::result::Result<&[u32], OpenError> {
        let l = &self.layout;
        bytemuck::try_cast_slice(self.section(l.ids_at, l.tokens * 4))
            .map_err(|e| OpenError::Invalid(Invalid::Inconsistent(format!("ids: {e}"))))
    }

    fn offsets(&self) -> std::result::Result<&[u64], OpenError> {
        let l = &self.layout;
        bytemuck::try_cast_slice(self.section(l.offsets_at, (l.samples + 1) * 8))
            .map_err(|e| OpenError::Invalid(Invalid::Inconsistent(format!("offsets: {e}"))))
    }

    fn mask(&self) -> &[u8] {
        let l = &self.layout;
        self.section(l.mask_at, l.tokens)
    }
}

impl Samples for CacheMap {
    fn len(&self) -> usize {
        self.layout.samples as usize
    }
    fn sample(&self, i: usize) -> (&[u32], &[u8]) {
        // The casts were checked when the map was opened.
        let l = &self.layout;
        let ids: &[u32] = bytemuck::cast_slice(self.section(l.ids_at, l.tokens * 4));
        let offsets: &[u64] = bytemuck::cast_slice(self.section(l.offsets_at, (l.samples + 1) * 8));
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        (&ids[a..b], &self.mask()[a..b])
    }
    fn stats(&self) -> &DataStats {
        &self.stats
    }
}

/// Opening a cache either stops (signal) or finds it unusable.
#[derive(Debug)]
pub enum OpenError {
    Stopped,
    Invalid(Invalid),
}

impl From<Invalid> for OpenError {
    fn from(i: Invalid) -> Self {
        OpenError::Invalid(i)
    }
}

/// The temporary name a writer in this process uses for `path`; every
/// name with the prefix [`temp_prefix`] is a writer's leftover.
fn temp_path(path: &Path, suffix: &str) -> PathBuf {
    let mut name = temp_prefix(path);
    name.push_str(&format!("{}{suffix}", std::process::id()));
    path.with_file_name(name)
}

/// `NAME.tmp` for a cache file `NAME.bin`.
pub(crate) fn temp_prefix(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("cache");
    format!("{stem}.tmp")
}

/// Writes a cache file sequentially as samples arrive: ids go to the file
/// at once, masks to a spool file beside it (the mask section follows all
/// ids), offsets stay in memory (8 bytes a sample). Dropped before
/// [`CacheWriter::finish`], it removes both temporary files, so a stop or
/// an error leaves no partial cache.
pub struct CacheWriter {
    path: PathBuf,
    tmp: PathBuf,
    spool_path: PathBuf,
    out: BufWriter<File>,
    spool: BufWriter<File>,
    offsets: Vec<u64>,
    tokens: u64,
    crc: crc32fast::Hasher,
    done: bool,
}

impl CacheWriter {
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        }
        let tmp = temp_path(path, "");
        let spool_path = temp_path(path, ".mask");
        let open = |p: &Path| {
            File::create(p)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .map_err(|e| TrainError::io(p, e))
        };
        let mut out = open(&tmp)?;
        // Placeholder header, written for real by `finish`.
        let spool = out
            .write_all(&[0u8; HEADER_LEN])
            .map_err(|e| TrainError::io(&tmp, e))
            .and_then(|()| open(&spool_path));
        let spool = match spool {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                let _ = std::fs::remove_file(&spool_path);
                return Err(e);
            }
        };
        Ok(CacheWriter {
            path: path.to_path_buf(),
            tmp,
            spool_path,
            out,
            spool,
            offsets: vec![0],
            tokens: 0,
            crc: crc32fast::Hasher::new(),
            done: false,
        })
    }

    fn body(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|e| TrainError::io(&self.tmp, e))
    }

    /// Completes the file: offsets, masks and statistics after the ids, the
    /// header last; synced, then renamed into place.
    pub fn finish(mut self, stats: &DataStats) -> Result<()> {
        let stats_json = serde_json::to_vec(stats).map_err(|e| TrainError::Other(e.to_string()))?;
        let samples = (self.offsets.len() - 1) as u64;
        let layout = Layout::new(samples, self.tokens, stats_json.len() as u64)
            .ok_or_else(|| TrainError::Other("tokenised data too large".into()))?;
        let written = HEADER_LEN as u64 + self.tokens * 4;
        self.body(&vec![0u8; (layout.offsets_at - written) as usize])?;
        let offsets = std::mem::take(&mut self.offsets);
        self.body(bytemuck::cast_slice(&offsets))?;
        self.spool
            .flush()
            .map_err(|e| TrainError::io(&self.spool_path, e))?;
        let mut spool =
            File::open(&self.spool_path).map_err(|e| TrainError::io(&self.spool_path, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = spool
                .read(&mut buf)
                .map_err(|e| TrainError::io(&self.spool_path, e))?;
            if n == 0 {
                break;
            }
            self.body(&buf[..n])?;
        }
        self.body(&stats_json)?;
        let header = header_bytes(&layout, self.crc.clone().finalize());
        let tmp = self.tmp.clone();
        let io = |e| TrainError::io(&tmp, e);
        self.out.flush().map_err(io)?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| TrainError::io(&self.path, e))?;
        self.done = true;
        let _ = std::fs::remove_file(&self.spool_path);
        Ok(())
    }
}

impl SampleSink for CacheWriter {
    fn push(&mut self, ids: &[u32], mask: &[u8]) -> Result<()> {
        // The host is little-endian (checked at compile time above).
        self.body(bytemuck::cast_slice(ids))?;
        self.spool
            .write_all(mask)
            .map_err(|e| TrainError::io(&self.spool_path, e))?;
        self.tokens += ids.len() as u64;
        self.offsets.push(self.tokens);
        Ok(())
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
        let _ = std::fs::remove_file(&self.spool_path);
    }
}

/// Writes in-memory data as a cache file (the same bytes a streaming build
/// of the same samples writes).
pub fn save_cache(path: &Path, d: &TokenizedData) -> Result<()> {
    let mut w = CacheWriter::create(path)?;
    for i in 0..d.len() {
        let (ids, mask) = d.sample(i);
        w.push(ids, mask)?;
    }
    w.finish(&d.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TokenizedData {
        let mut d = TokenizedData::default();
        // Odd lengths, so the ids section needs padding before the offsets.
        for (k, n) in [3usize, 1, 4].into_iter().enumerate() {
            let ids: Vec<u32> = (0..n as u32).map(|j| 70_000 * k as u32 + j).collect();
            let mask: Vec<u8> = (0..n).map(|j| u8::from(j > 0)).collect();
            d.push(&ids, &mask).expect("push");
        }
        d.stats = DataStats {
            rows: 4,
            samples: 3,
            tokens: 8,
            label_tokens: 5,
            ..Default::default()
        };
        d
    }

    fn open(p: &Path) -> std::result::Result<CacheMap, Invalid> {
        CacheMap::open(p, &AtomicBool::new(false)).map_err(|e| match e {
            OpenError::Invalid(i) => i,
            OpenError::Stopped => panic!("stopped"),
        })
    }

    fn edited(p: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> std::result::Result<CacheMap, Invalid> {
        let d = data();
        save_cache(p, &d).expect("save");
        let mut b = std::fs::read(p).expect("read");
        edit(&mut b);
        std::fs::write(p, b).expect("write");
        open(p)
    }

    #[test]
    fn round_trip_in_place() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.bin");
        let d = data();
        save_cache(&p, &d).expect("save");
        let m = open(&p).expect("valid");
        assert_eq!((m.len(), m.stats()), (3, &d.stats));
        for i in 0..3 {
            assert_eq!(m.sample(i), d.sample(i));
        }
        let b = std::fs::read(&p).expect("read");
        assert_eq!(b.len() as u64, m.layout.file_len);
        assert_eq!(m.layout.offsets_at % 8, 0);
        // Nothing but the cache is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn truncated_corrupt_and_foreign_files_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.bin");
        let r = edited(&p, |b| b.truncate(b.len() - 3)).expect_err("truncated");
        assert!(matches!(r, Invalid::Length { .. }), "{r}");
        assert!(r.to_string().contains("truncated"), "{r}");
        let r = edited(&p, |b| b.truncate(40)).expect_err("cut header");
        assert!(matches!(r, Invalid::Length { .. }), "{r}");
        let r = edited(&p, |b| b[70] ^= 1).expect_err("body");
        assert_eq!(r, Invalid::BodyChecksum);
        let r = edited(&p, |b| b[17] ^= 1).expect_err("header");
        assert_eq!(r, Invalid::HeaderChecksum);
        let r = edited(&p, |b| b[8] = 3).expect_err("version");
        assert_eq!(r, Invalid::Version { found: 3 });
        let r = edited(&p, |b| b[..8].copy_from_slice(b"PK\x03\x04zip!")).expect_err("magic");
        assert_eq!(r, Invalid::Magic);
        assert_eq!(
            open(&dir.path().join("none.bin")).expect_err("none"),
            Invalid::Missing
        );
    }

    #[test]
    fn the_first_format_is_recognised_as_old() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.bin");
        // As the first format began: magic, samples, stats length, stats.
        let mut b = b"SSTOK001".to_vec();
        b.extend(1u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(b"{}");
        std::fs::write(&p, b).expect("write");
        let r = open(&p).expect_err("old");
        assert_eq!(r, Invalid::OldFormat);
        assert!(r.to_string().contains("older format"), "{r}");
    }

    #[test]
    fn a_dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.bin");
        let mut w = CacheWriter::create(&p).expect("create");
        w.push(&[1, 2], &[0, 1]).expect("push");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
