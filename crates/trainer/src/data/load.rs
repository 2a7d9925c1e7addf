//! A trial's data: the cache file when a valid one is there, else built
//! once, streaming (rows read a chunk at a time, tokenised in parallel,
//! written as they come, so memory does not grow with the dataset), under
//! an exclusive lock beside the cache so trials started together tokenise
//! once: the first builds, the others wait and then map what it wrote.
//!
//! Every phase polls the stop flag (hashing the data for the key, waiting
//! for the lock, reading, tokenising, checking the map): a SIGTERM ends
//! loading within about a second with [`TrainError::Stopped`], and the
//! writer removes its temporary files, so no partial cache is left.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};
use sha2::{Digest, Sha256};
use smolsweep_datasets::{RecordChunks, StreamSource};
use smolsweep_model::{ChatTemplate, TextTokenizer};

use super::cache::{self, CacheMap, CacheWriter, Invalid, OpenError};
use super::encode::{encode_chunk, Encoder, SampleSink, Tally};
use super::{DataStats, Samples, TokenizedData};
use crate::error::{Result, TrainError};

/// Rows tokenised per chunk: enough to keep every core busy, few enough
/// that a chunk of long conversations stays a few tens of MB.
const CHUNK_ROWS: usize = 1024;
/// Salt of the cache key. It is the first format's magic, kept so a cache
/// written by an older build has the name a newer build looks for, and is
/// recognised (and rebuilt) instead of left behind.
const KEY_SALT: &[u8; 8] = b"SSTOK001";
/// How often a trial waiting for another's build checks the lock and the
/// stop flag.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// What the data of a trial is and where its cache lives.
pub struct DataSpec<'a> {
    pub data: &'a [PathBuf],
    pub tokenizer: &'a TextTokenizer,
    pub template: &'a ChatTemplate,
    /// The template's Jinja source (part of the key).
    pub template_source: &'a str,
    pub max_len: usize,
    pub cache_dir: PathBuf,
}

/// How a mapped cache came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// It was there.
    Cache,
    /// Another process built it while this one waited for the lock.
    Waited,
    /// This process built it.
    Built,
}

/// A trial's tokenised data.
#[derive(Debug)]
pub enum Loaded {
    Mapped(CacheMap, Origin),
    /// The cache could not be written; tokenised into memory instead.
    Memory(TokenizedData),
}

fn stopped(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        Err(TrainError::Stopped)
    } else {
        Ok(())
    }
}

/// The cache key: content of every data file, the tokenizer, the template
/// and the length limit.
pub fn cache_key(
    data_paths: &[PathBuf],
    tokenizer: &TextTokenizer,
    template_source: &str,
    max_len: usize,
    stop: &AtomicBool,
) -> Result<String> {
    let mut h = Sha256::new();
    h.update(KEY_SALT);
    let mut buf = vec![0u8; 1 << 20];
    for p in data_paths {
        for f in smolsweep_datasets::training_files(p)? {
            let mut file = File::open(&f).map_err(|e| TrainError::io(&f, e))?;
            loop {
                stopped(stop)?;
                let n = file.read(&mut buf).map_err(|e| TrainError::io(&f, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            h.update([0xff]);
        }
    }
    let tj = tokenizer.path();
    h.update(std::fs::read(tj).map_err(|e| TrainError::io(tj, e))?);
    h.update(template_source.as_bytes());
    h.update(tokenizer.bos_token.as_deref().unwrap_or("").as_bytes());
    h.update([0]);
    h.update(tokenizer.eos_token.as_deref().unwrap_or("").as_bytes());
    h.update((max_len as u64).to_le_bytes());
    Ok(hex::encode(&h.finalize()[..12]))
}

/// The files to read for each data path (see
/// `smolsweep_datasets::training_files`).
pub(crate) fn sources(paths: &[PathBuf]) -> Result<Vec<StreamSource>> {
    paths
        .iter()
        .map(|p| {
            let files = smolsweep_datasets::training_files(p)?;
            Ok(StreamSource {
                path: p.clone(),
                files,
            })
        })
        .collect()
}

/// Reads and tokenises the data `chunk_rows` rows at a time into `sink`.
fn tokenize_streaming(
    spec: &DataSpec<'_>,
    sink: &mut dyn SampleSink,
    stop: &AtomicBool,
    chunk_rows: usize,
) -> Result<DataStats> {
    let enc = Encoder::new(spec.tokenizer, spec.template, spec.max_len);
    let mut tally = Tally::default();
    for chunk in RecordChunks::new(sources(spec.data)?, chunk_rows) {
        stopped(stop)?;
        let chunk = chunk?;
        let encoded = encode_chunk(&enc, &chunk, stop)?;
        tally.absorb(&chunk, encoded, sink)?;
    }
    tally.finish()
}

/// An exclusive `flock` on the lock file beside a cache, released when
/// dropped (or by the kernel when the process dies, however it dies).
pub(crate) struct BuildLock {
    _file: File,
}

impl BuildLock {
    /// Takes the lock, waiting (and polling `stop`) while another process
    /// holds it.
    pub(crate) fn acquire(path: &Path, stop: &AtomicBool) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        let mut logged = false;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(BuildLock { _file: file }),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {}
                Err(e) => return Err(TrainError::io(path, e.into())),
            }
            if !logged {
                tracing::info!(lock = %path.display(), "waiting for another trial tokenising the same data");
                logged = true;
            }
            stopped(stop)?;
            std::thread::sleep(LOCK_POLL);
        }
    }
}

fn open(path: &Path, stop: &AtomicBool) -> Result<std::result::Result<CacheMap, Invalid>> {
    match CacheMap::open(path, stop) {
        Ok(m) => Ok(Ok(m)),
        Err(OpenError::Stopped) => Err(TrainError::Stopped),
        Err(OpenError::Invalid(i)) => Ok(Err(i)),
    }
}

/// Removes temporary files of builds that died (only the lock holder
/// writes, so while it is held every such file is a leftover).
pub(crate) fn remove_leftovers(path: &Path) {
    let (Some(dir), prefix) = (path.parent(), cache::temp_prefix(path)) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn log_stats(s: &DataStats, secs: f64) {
    tracing::info!(
        rows = s.rows,
        samples = s.samples,
        skipped_no_assistant = s.skipped_no_assistant,
        skipped_truncated_away = s.skipped_truncated_away,
        truncated = s.truncated,
        tokens = s.tokens,
        label_tokens = s.label_tokens,
        secs = format!("{secs:.1}"),
        "tokenised"
    );
}

/// The trial's data: the mapped cache (built first when it is absent or
/// invalid, once across processes), or in memory when the cache directory
/// cannot be written.
pub fn load_or_build(spec: &DataSpec<'_>, stop: &AtomicBool) -> Result<Loaded> {
    let key = cache_key(
        spec.data,
        spec.tokenizer,
        spec.template_source,
        spec.max_len,
        stop,
    )?;
    let path = spec.cache_dir.join(format!("tokenized-{key}.bin"));
    let mut reason = match open(&path, stop)? {
        Ok(m) => {
            tracing::info!(cache = %path.display(), samples = m.len(), "tokenised data from cache");
            return Ok(Loaded::Mapped(m, Origin::Cache));
        }
        Err(r) => r,
    };
    let lock = std::fs::create_dir_all(&spec.cache_dir)
        .map_err(|e| TrainError::io(&spec.cache_dir, e))
        .and_then(|()| BuildLock::acquire(&path.with_extension("lock"), stop));
    let _lock = match lock {
        Ok(l) => l,
        Err(TrainError::Stopped) => return Err(TrainError::Stopped),
        Err(e) => {
            tracing::warn!(
                "tokenising into memory: the cache cannot be written: {}",
                crate::error::chain_text(&e)
            );
            let mut d = TokenizedData {
                offsets: vec![0],
                ..Default::default()
            };
            let t = Instant::now();
            d.stats = tokenize_streaming(spec, &mut d, stop, CHUNK_ROWS)?;
            log_stats(&d.stats, t.elapsed().as_secs_f64());
            return Ok(Loaded::Memory(d));
        }
    };
    // Another trial may have built it while this one waited.
    match open(&path, stop)? {
        Ok(m) => {
            tracing::info!(cache = %path.display(), samples = m.len(), "tokenised data from cache (built by another trial)");
            return Ok(Loaded::Mapped(m, Origin::Waited));
        }
        Err(r) if reason == Invalid::Missing => reason = r,
        Err(_) => {}
    }
    if reason != Invalid::Missing {
        tracing::warn!(cache = %path.display(), %reason, "rebuilding the tokenisation cache");
    }
    remove_leftovers(&path);
    tracing::info!(cache = %path.display(), "tokenising");
    let t = Instant::now();
    let mut w = CacheWriter::create(&path)?;
    let stats = tokenize_streaming(spec, &mut w, stop, CHUNK_ROWS)?;
    w.finish(&stats)?;
    log_stats(&stats, t.elapsed().as_secs_f64());
    match open(&path, stop)? {
        Ok(m) => Ok(Loaded::Mapped(m, Origin::Built)),
        Err(r) => Err(TrainError::Other(format!(
            "{}: the cache just written does not read back: {r}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// A JSONL file of `n` two-turn conversations (every 10th without an
    /// assistant turn) with `len`-character answers.
    pub(crate) fn write_conversations(path: &Path, n: usize, len: usize) {
        let mut text = String::new();
        for i in 0..n {
            let answer = format!("answer {i} {}", "because ".repeat(len / 8 + 1));
            let row = if i % 10 == 9 {
                serde_json::json!({"messages": [{"role": "user", "content": format!("q{i}")}]})
            } else {
                serde_json::json!({"messages": [
                    {"role": "user", "content": format!("q{i}")},
                    {"role": "assistant", "content": answer}
                ]})
            };
            text.push_str(&row.to_string());
            text.push('\n');
        }
        std::fs::write(path, text).expect("write data");
    }

    struct Fixture {
        dir: tempfile::TempDir,
        tok: TextTokenizer,
        template: ChatTemplate,
        data: Vec<PathBuf>,
    }

    impl Fixture {
        fn new(n: usize, len: usize) -> Self {
            let dir = crate::data::encode::tests::tokenizer_dir();
            let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
            let data = dir.path().join("d.jsonl");
            write_conversations(&data, n, len);
            Fixture {
                tok,
                template: ChatTemplate::builtin("chatml").expect("chatml"),
                data: vec![data],
                dir,
            }
        }
        fn spec(&self) -> DataSpec<'_> {
            DataSpec {
                data: &self.data,
                tokenizer: &self.tok,
                template: &self.template,
                template_source: "chatml",
                max_len: 48,
                cache_dir: self.dir.path().join("cache"),
            }
        }
        fn cache_files(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(self.dir.path().join("cache"))
                .map(|r| {
                    r.flatten()
                        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                        .filter(|n| !n.ends_with(".lock"))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        }
    }

    fn mapped(l: Loaded) -> (CacheMap, Origin) {
        match l {
            Loaded::Mapped(m, o) => (m, o),
            Loaded::Memory(_) => panic!("expected a mapped cache"),
        }
    }

    #[test]
    fn mapped_cache_gives_the_samples_of_in_memory_tokenisation() {
        let f = Fixture::new(60, 40);
        let never = AtomicBool::new(false);
        let recs = crate::data::read_records(&f.data).expect("read");
        let mem = crate::data::tokenize(&recs, &f.tok, &f.template, 48).expect("tok");
        let (m, origin) = mapped(load_or_build(&f.spec(), &never).expect("load"));
        assert_eq!(origin, Origin::Built);
        assert_eq!(m.len(), mem.len());
        assert_eq!(m.stats(), mem.stats());
        assert!(mem.stats.skipped_no_assistant > 0 && mem.stats.truncated > 0);
        for i in 0..mem.len() {
            assert_eq!(m.sample(i), mem.sample(i), "sample {i}");
        }
        // The second load maps what the first wrote.
        let (again, origin) = mapped(load_or_build(&f.spec(), &never).expect("load"));
        assert_eq!((origin, again.path()), (Origin::Cache, m.path()));
    }

    #[test]
    fn streaming_writes_the_bytes_of_the_in_memory_path() {
        let f = Fixture::new(50, 30);
        // The same rows as Parquet too: both formats stream.
        let rows: Vec<smolsweep_datasets::Row> =
            smolsweep_datasets::read_file(&f.data[0]).expect("rows");
        let pq = f.dir.path().join("d.parquet");
        smolsweep_datasets::write_parquet(&pq, &rows).expect("parquet");
        let never = AtomicBool::new(false);
        for data in [
            f.data.clone(),
            vec![pq.clone()],
            vec![f.data[0].clone(), pq],
        ] {
            let recs = crate::data::read_records(&data).expect("read");
            let mem = crate::data::tokenize(&recs, &f.tok, &f.template, 48).expect("tok");
            let a = f.dir.path().join("a.bin");
            crate::data::save_cache(&a, &mem).expect("save");
            let spec = DataSpec {
                data: &data,
                ..f.spec()
            };
            for chunk in [1, 7, 1000] {
                let b = f.dir.path().join("b.bin");
                let mut w = CacheWriter::create(&b).expect("writer");
                let stats = tokenize_streaming(&spec, &mut w, &never, chunk).expect("stream");
                w.finish(&stats).expect("finish");
                assert!(
                    std::fs::read(&a).expect("a") == std::fs::read(&b).expect("b"),
                    "{data:?}, chunks of {chunk}: streaming wrote other bytes"
                );
            }
        }
    }

    #[test]
    fn two_loaders_started_together_tokenise_once() {
        let f = Arc::new(Fixture::new(3000, 200));
        let start = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (f, start) = (Arc::clone(&f), Arc::clone(&start));
                std::thread::spawn(move || {
                    let never = AtomicBool::new(false);
                    start.wait();
                    let (m, origin) = mapped(load_or_build(&f.spec(), &never).expect("load"));
                    (origin, m.len(), m.sample(m.len() - 1).0.to_vec())
                })
            })
            .collect();
        let mut got: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        got.sort_by_key(|g| g.0 as u8);
        let origins: Vec<Origin> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            origins.iter().filter(|&&o| o == Origin::Built).count(),
            1,
            "{origins:?}"
        );
        assert_eq!((got[0].1, &got[0].2), (got[1].1, &got[1].2));
    }

    #[test]
    fn a_stop_during_tokenisation_leaves_no_cache_file() {
        let f = Fixture::new(8000, 400);
        let stop = Arc::new(AtomicBool::new(false));
        let cache = f.dir.path().join("cache");
        // Stops as soon as the build's temporary file appears.
        let setter = {
            let (stop, cache) = (Arc::clone(&stop), cache.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    let writing = std::fs::read_dir(&cache).is_ok_and(|r| {
                        r.flatten()
                            .any(|e| e.file_name().to_string_lossy().contains(".tmp"))
                    });
                    if writing {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                stop.store(true, Ordering::SeqCst);
            })
        };
        let t = Instant::now();
        let r = load_or_build(&f.spec(), &stop);
        setter.join().expect("setter");
        assert!(matches!(r, Err(TrainError::Stopped)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(30));
        assert_eq!(f.cache_files(), Vec::<String>::new());
        // Then a run completes.
        let never = AtomicBool::new(false);
        let (_, origin) = mapped(load_or_build(&f.spec(), &never).expect("load"));
        assert_eq!(origin, Origin::Built);
        assert_eq!(f.cache_files().len(), 1, "{:?}", f.cache_files());
    }

    #[test]
    fn leftovers_of_a_killed_build_are_removed() {
        let f = Fixture::new(20, 10);
        let never = AtomicBool::new(false);
        let key = cache_key(&f.data, &f.tok, "chatml", 48, &never).expect("key");
        let cache = f.dir.path().join("cache");
        std::fs::create_dir_all(&cache).expect("mkdir");
        std::fs::write(cache.join(format!("tokenized-{key}.tmp999999")), "x").expect("w");
        std::fs::write(cache.join(format!("tokenized-{key}.tmp999999.mask")), "x").expect("w");
        mapped(load_or_build(&f.spec(), &never).expect("load"));
        assert_eq!(f.cache_files(), vec![format!("tokenized-{key}.bin")]);
    }

    #[test]
    fn an_unwritable_cache_directory_tokenises_into_memory() {
        let f = Fixture::new(20, 10);
        let never = AtomicBool::new(false);
        // A file where the directory should be.
        let blocker = f.dir.path().join("blocker");
        std::fs::write(&blocker, "").expect("w");
        let spec = DataSpec {
            cache_dir: blocker.join("cache"),
            ..f.spec()
        };
        match load_or_build(&spec, &never).expect("load") {
            Loaded::Memory(d) => assert_eq!(d.len(), d.stats.samples),
            Loaded::Mapped(..) => panic!("mapped a cache it could not write"),
        }
    }
}
