//! Preference pairs tokenised as open-instruct's DPO does it
//! (`dpo_tune_cache.py`): the chosen and the rejected conversation each
//! rendered with the chat template and encoded exactly as an SFT sample
//! ([`super::encode`]: labels on assistant content plus EOS, headers and
//! other turns masked, truncated keeping the start). A pair whose chosen
//! or rejected side has no label token left is dropped and counted.
//!
//! The two sides are kept as two sample sets indexed alike (pair `i` is
//! sample `i` of each), written to the tokenisation cache in its usual
//! format, one file per side, under a key of the data, tokenizer,
//! template and length, by one trial at a time (a lock beside them); every
//! trial of a sweep then maps the same files.
//!
//! A build streams as the SFT one does ([`super::load`]): rows are read a
//! chunk at a time (JSONL lines, Parquet row groups, over dataset dirs and
//! hub snapshots alike), tokenised in parallel and written to the two
//! cache files as they come, so memory does not grow with the dataset;
//! the files are byte for byte those of tokenising every row in memory
//! ([`tokenize_pairs`]) and saving the result.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smolsweep_datasets::{parse_pair, Record, RecordChunks, Turn};
use smolsweep_model::Message;

use super::cache::CacheWriter;
use super::encode::{Encoded, Encoder, SampleSink};
use super::load::{remove_leftovers, sources, BuildLock};
use super::TokenizedData;
use super::{cache_key, label_count, CacheMap, DataSpec, DataStats, Loaded, Origin, Samples};
use crate::error::{Result, TrainError};

/// Rows tokenised between two looks at the stop flag's outcome.
const CHUNK_ROWS: usize = 1024;

/// Counts reported after tokenisation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferenceStats {
    pub rows: usize,
    pub pairs: usize,
    /// Pairs dropped because the chosen or the rejected side had no label
    /// token (no assistant turn left after truncation).
    pub dropped_no_labels: usize,
    pub truncated_chosen: usize,
    pub truncated_rejected: usize,
}

/// A trial's preference pairs: `chosen.sample(i)` and `rejected.sample(i)`
/// are the two sides of pair `i`.
#[derive(Debug)]
pub struct PreferenceData {
    pub chosen: Loaded,
    pub rejected: Loaded,
    pub stats: PreferenceStats,
    /// The tokenisation key: part of the reference log-prob cache's key.
    pub key: String,
}

impl PreferenceData {
    pub fn len(&self) -> usize {
        self.chosen.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn messages(turns: &[Turn]) -> Vec<Message> {
    turns
        .iter()
        .map(|t| Message {
            role: t.role.clone(),
            content: t.content.clone(),
        })
        .collect()
}

/// One side's ids, label mask, and whether it was truncated.
type EncodedSide = (Vec<u32>, Vec<u8>, bool);
/// One row as a tokenised pair, or `None` when a side has no label.
type EncodedPair = Option<(EncodedSide, EncodedSide)>;

fn encode_row(enc: &Encoder<'_>, rec: &Record) -> Result<EncodedPair> {
    let pair = parse_pair(rec)?;
    let side = |turns: &[Turn]| -> Result<Option<EncodedSide>> {
        let e = enc.encode(&messages(turns)).map_err(|e| match e {
            TrainError::Model(m) => TrainError::Data {
                location: rec.location(),
                msg: m.to_string(),
            },
            other => other,
        })?;
        Ok(match e {
            Encoded::Sample {
                ids,
                mask,
                truncated,
            } => Some((ids, mask, truncated)),
            Encoded::NoAssistant | Encoded::TruncatedAway => None,
        })
    };
    Ok(match (side(&pair.chosen)?, side(&pair.rejected)?) {
        (Some(c), Some(r)) => Some((c, r)),
        _ => None,
    })
}

/// Counts a build's rows and pairs as they are encoded and hands each
/// kept pair's sides to their sinks, in order: the same for the in-memory
/// and the streaming paths, so both give the same files and statistics.
#[derive(Debug, Default)]
struct PairTally {
    stats: PreferenceStats,
    /// Tokens and label tokens of the kept chosen and rejected sides.
    tokens: [u64; 2],
    labels: [u64; 2],
    /// The first data file, named when no pair is trainable.
    first_file: Option<PathBuf>,
}

impl PairTally {
    /// Encodes one chunk of rows (in parallel, order kept; `stop` is
    /// checked before each row) and hands the kept pairs to the sinks.
    fn absorb(
        &mut self,
        records: &[Record],
        enc: &Encoder<'_>,
        stop: &AtomicBool,
        chosen: &mut dyn SampleSink,
        rejected: &mut dyn SampleSink,
    ) -> Result<()> {
        if self.first_file.is_none() {
            self.first_file = records.first().map(|r| r.file.clone());
        }
        let encoded: Vec<EncodedPair> = records
            .par_iter()
            .map(|r| {
                if stop.load(Ordering::Relaxed) {
                    return Err(TrainError::Stopped);
                }
                encode_row(enc, r)
            })
            .collect::<Result<_>>()?;
        let s = &mut self.stats;
        s.rows += records.len();
        for e in encoded {
            let Some(((ci, cm, ct), (ri, rm, rt))) = e else {
                s.dropped_no_labels += 1;
                continue;
            };
            s.pairs += 1;
            s.truncated_chosen += usize::from(ct);
            s.truncated_rejected += usize::from(rt);
            self.tokens[0] += ci.len() as u64;
            self.tokens[1] += ri.len() as u64;
            self.labels[0] += label_count(&cm);
            self.labels[1] += label_count(&rm);
            chosen.push(&ci, &cm)?;
            rejected.push(&ri, &rm)?;
        }
        Ok(())
    }

    /// Each side's statistics and the pair counts, or the error of data
    /// with no trainable pair.
    fn finish(self) -> Result<(DataStats, DataStats, PreferenceStats)> {
        let stats = self.stats;
        if stats.pairs == 0 {
            return Err(TrainError::Data {
                location: self
                    .first_file
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "data".into()),
                msg: format!(
                    "no trainable preference pair ({} rows, {} with no label token on a side)",
                    stats.rows, stats.dropped_no_labels
                ),
            });
        }
        let side = |k: usize, truncated: usize| DataStats {
            rows: stats.rows,
            samples: stats.pairs,
            skipped_no_assistant: 0,
            skipped_truncated_away: stats.dropped_no_labels,
            truncated,
            tokens: self.tokens[k],
            label_tokens: self.labels[k],
        };
        Ok((
            side(0, stats.truncated_chosen),
            side(1, stats.truncated_rejected),
            stats,
        ))
    }
}

fn empty() -> TokenizedData {
    TokenizedData {
        offsets: vec![0],
        ..Default::default()
    }
}

/// Tokenises the pairs of `records` in memory (in parallel, order kept);
/// `stop` is checked before each row: what a streamed build must equal.
#[cfg(test)]
pub(crate) fn tokenize_pairs(
    records: &[Record],
    enc: &Encoder<'_>,
    stop: &AtomicBool,
) -> Result<(TokenizedData, TokenizedData, PreferenceStats)> {
    let (mut chosen, mut rejected) = (empty(), empty());
    let mut tally = PairTally::default();
    for chunk in records.chunks(CHUNK_ROWS) {
        tally.absorb(chunk, enc, stop, &mut chosen, &mut rejected)?;
    }
    let (cs, rs, stats) = tally.finish()?;
    (chosen.stats, rejected.stats) = (cs, rs);
    Ok((chosen, rejected, stats))
}

/// Reads the data `chunk_rows` rows at a time and tokenises each chunk
/// into the two sinks as it comes: a bad row is the same error, naming its
/// file and row, as when every row is read first.
fn tokenize_pairs_streaming(
    spec: &DataSpec<'_>,
    chosen: &mut dyn SampleSink,
    rejected: &mut dyn SampleSink,
    stop: &AtomicBool,
    chunk_rows: usize,
) -> Result<(DataStats, DataStats, PreferenceStats)> {
    let enc = Encoder::new(spec.tokenizer, spec.template, spec.max_len);
    let mut tally = PairTally::default();
    for chunk in RecordChunks::new(sources(spec.data)?, chunk_rows) {
        if stop.load(Ordering::Relaxed) {
            return Err(TrainError::Stopped);
        }
        tally.absorb(&chunk?, &enc, stop, chosen, rejected)?;
    }
    tally.finish()
}

/// Streams the pairs into the two cache files (each written to a
/// temporary file and renamed into place when complete, so a stop or an
/// error leaves neither half-written).
fn build_cache(
    spec: &DataSpec<'_>,
    (cp, rp): (&Path, &Path),
    stop: &AtomicBool,
    chunk_rows: usize,
) -> Result<PreferenceStats> {
    let mut cw = CacheWriter::create(cp)?;
    let mut rw = CacheWriter::create(rp)?;
    let (cs, rs, stats) = tokenize_pairs_streaming(spec, &mut cw, &mut rw, stop, chunk_rows)?;
    rw.finish(&rs)?;
    cw.finish(&cs)?;
    Ok(stats)
}

fn log_stats(stats: &PreferenceStats, t: Instant) {
    tracing::info!(
        rows = stats.rows,
        pairs = stats.pairs,
        dropped_no_labels = stats.dropped_no_labels,
        truncated_chosen = stats.truncated_chosen,
        truncated_rejected = stats.truncated_rejected,
        secs = format!("{:.1}", t.elapsed().as_secs_f64()),
        "tokenised preference pairs"
    );
}

fn stats_of(chosen: &dyn Samples, rejected: &dyn Samples) -> PreferenceStats {
    let (c, r) = (chosen.stats(), rejected.stats());
    PreferenceStats {
        rows: c.rows,
        pairs: c.samples,
        dropped_no_labels: c.skipped_truncated_away,
        truncated_chosen: c.truncated,
        truncated_rejected: r.truncated,
    }
}

fn side_paths(dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("preference-{key}.chosen.bin")),
        dir.join(format!("preference-{key}.rejected.bin")),
    )
}

/// The pairs of `spec.data` tokenised into memory as they stream, without
/// the cache (an evaluation's held-out set, read once).
pub fn pairs_in_memory(spec: &DataSpec<'_>, stop: &AtomicBool) -> Result<PreferenceData> {
    let (mut chosen, mut rejected) = (empty(), empty());
    let (cs, rs, stats) =
        tokenize_pairs_streaming(spec, &mut chosen, &mut rejected, stop, CHUNK_ROWS)?;
    (chosen.stats, rejected.stats) = (cs, rs);
    Ok(PreferenceData {
        chosen: Loaded::Memory(chosen),
        rejected: Loaded::Memory(rejected),
        stats,
        key: String::new(),
    })
}

/// The pairs of a trial: the cached pair of files when both are valid,
/// else tokenised now and cached (in memory when the cache cannot be
/// written).
pub fn load_or_build_pairs(spec: &DataSpec<'_>, stop: &AtomicBool) -> Result<PreferenceData> {
    let data_key = cache_key(
        spec.data,
        spec.tokenizer,
        spec.template_source,
        spec.max_len,
        stop,
    )?;
    // Another name space than the SFT cache of the same files.
    let key = hex::encode(&Sha256::digest(format!("SSPREF01{data_key}"))[..12]);
    let (cp, rp) = side_paths(&spec.cache_dir, &key);
    let open = |p: &Path| match CacheMap::open(p, stop) {
        Ok(m) => Ok(Some(m)),
        Err(super::cache::OpenError::Stopped) => Err(TrainError::Stopped),
        Err(super::cache::OpenError::Invalid(_)) => Ok(None),
    };
    let cached = |origin: Origin| -> Result<Option<PreferenceData>> {
        if let (Some(c), Some(r)) = (open(&cp)?, open(&rp)?) {
            if c.len() == r.len() {
                let stats = stats_of(&c, &r);
                tracing::info!(cache = %cp.display(), pairs = c.len(), "preference pairs from cache");
                return Ok(Some(PreferenceData {
                    chosen: Loaded::Mapped(c, origin),
                    rejected: Loaded::Mapped(r, origin),
                    stats,
                    key: key.clone(),
                }));
            }
        }
        Ok(None)
    };
    if let Some(d) = cached(Origin::Cache)? {
        return Ok(d);
    }
    // Trials started together tokenise once: the first builds under the
    // lock, the others wait for it and map what it wrote.
    let lock = std::fs::create_dir_all(&spec.cache_dir)
        .map_err(|e| TrainError::io(&spec.cache_dir, e))
        .and_then(|()| BuildLock::acquire(&cp.with_extension("lock"), stop));
    let _lock = match lock {
        Ok(l) => l,
        Err(TrainError::Stopped) => return Err(TrainError::Stopped),
        Err(e) => {
            tracing::warn!(
                "keeping the preference pairs in memory: the cache cannot be written: {}",
                crate::error::chain_text(&e)
            );
            let t = Instant::now();
            let (mut chosen, mut rejected) = (empty(), empty());
            let (cs, rs, stats) =
                tokenize_pairs_streaming(spec, &mut chosen, &mut rejected, stop, CHUNK_ROWS)?;
            (chosen.stats, rejected.stats) = (cs, rs);
            log_stats(&stats, t);
            return Ok(PreferenceData {
                chosen: Loaded::Memory(chosen),
                rejected: Loaded::Memory(rejected),
                stats,
                key,
            });
        }
    };
    if let Some(d) = cached(Origin::Waited)? {
        return Ok(d);
    }
    remove_leftovers(&cp);
    remove_leftovers(&rp);
    let t = Instant::now();
    let stats = build_cache(spec, (&cp, &rp), stop, CHUNK_ROWS)?;
    log_stats(&stats, t);
    match (open(&cp)?, open(&rp)?) {
        (Some(c), Some(r)) => Ok(PreferenceData {
            chosen: Loaded::Mapped(c, Origin::Built),
            rejected: Loaded::Mapped(r, Origin::Built),
            stats,
            key,
        }),
        _ => Err(TrainError::Other(format!(
            "{}: the preference cache just written does not read back",
            cp.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::save_cache;
    use serde_json::json;
    use smolsweep_model::{ChatTemplate, TextTokenizer};

    fn rec(v: serde_json::Value, i: usize) -> Record {
        Record {
            file: "p.jsonl".into(),
            index: i,
            row: v.as_object().expect("obj").clone(),
        }
    }

    fn labelled(tok: &TextTokenizer, d: &TokenizedData, i: usize) -> String {
        let (ids, mask) = d.sample(i);
        let l: Vec<u32> = ids
            .iter()
            .zip(mask)
            .filter(|(_, &m)| m == 1)
            .map(|(&t, _)| t)
            .collect();
        tok.decode(&l, false).expect("decode")
    }

    #[test]
    fn both_sides_are_encoded_as_sft_samples_and_empty_sides_dropped() {
        let dir = crate::data::encode::tests::tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
        let t = ChatTemplate::builtin("tulu").expect("tulu");
        let enc = Encoder::new(&tok, &t, 40);
        let never = AtomicBool::new(false);
        let rows = [
            rec(
                json!({"prompt": "hi", "chosen": "good", "rejected": "bad"}),
                0,
            ),
            // The prompt alone fills max_seq_len: no label on either side.
            rec(
                json!({"prompt": "x".repeat(60), "chosen": "good", "rejected": "bad"}),
                1,
            ),
            rec(
                json!({
                    "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "yes"}],
                    "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "no"}],
                }),
                2,
            ),
        ];
        let (c, r, stats) = tokenize_pairs(&rows, &enc, &never).expect("tokenise");
        assert_eq!(
            stats,
            PreferenceStats {
                rows: 3,
                pairs: 2,
                // Only kept pairs count as truncated.
                dropped_no_labels: 1,
                truncated_chosen: 0,
                truncated_rejected: 0,
            }
        );
        assert_eq!(
            tok.decode(c.sample(0).0, false).expect("decode"),
            "<|user|>\nhi\n<|assistant|>\ngood<|im_end|>"
        );
        // Labels: the answer and the EOS, nothing of the header.
        assert_eq!(labelled(&tok, &c, 0), "good<|im_end|>");
        assert_eq!(labelled(&tok, &r, 0), "bad<|im_end|>");
        assert_eq!(labelled(&tok, &c, 1), "yes<|im_end|>");
        assert_eq!(labelled(&tok, &r, 1), "no<|im_end|>");
        // Truncation keeps the start, so a long answer keeps its head.
        let long = rec(
            json!({"prompt": "q", "chosen": "a".repeat(100), "rejected": "b"}),
            0,
        );
        let (c, _, s) = tokenize_pairs(&[long], &enc, &never).expect("tokenise");
        assert_eq!((s.truncated_chosen, s.truncated_rejected), (1, 0));
        assert_eq!(c.sample(0).0.len(), 40);
    }

    #[test]
    fn bad_pairs_and_nothing_trainable_are_errors_naming_the_row() {
        let dir = crate::data::encode::tests::tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
        let t = ChatTemplate::builtin("chatml").expect("chatml");
        let enc = Encoder::new(&tok, &t, 20);
        let never = AtomicBool::new(false);
        let good = rec(json!({"prompt": "q", "chosen": "a", "rejected": "b"}), 0);
        let e = tokenize_pairs(
            &[good, rec(json!({"prompt": "q", "chosen": "a"}), 4)],
            &enc,
            &never,
        )
        .expect_err("no rejected")
        .to_string();
        assert!(e.starts_with("p.jsonl, row 5: no `rejected` field"), "{e}");
        let long = rec(
            json!({"prompt": "x".repeat(40), "chosen": "a", "rejected": "b"}),
            0,
        );
        let e = tokenize_pairs(&[long], &enc, &never)
            .expect_err("nothing")
            .to_string();
        assert!(
            e.contains("p.jsonl") && e.contains("no trainable preference pair (1 rows, 1 with"),
            "{e}"
        );
    }

    #[test]
    fn the_cache_maps_what_was_tokenised() {
        let dir = crate::data::encode::tests::tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
        let t = ChatTemplate::builtin("chatml").expect("chatml");
        let data = dir.path().join("p.jsonl");
        let text: String = (0..30)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"prompt": format!("q{i}"), "chosen": format!("good {i}"), "rejected": "bad"})
                )
            })
            .collect();
        std::fs::write(&data, text).expect("write");
        let paths = vec![data];
        let spec = DataSpec {
            data: &paths,
            tokenizer: &tok,
            template: &t,
            template_source: "chatml",
            max_len: 64,
            cache_dir: dir.path().join("cache"),
        };
        let never = AtomicBool::new(false);
        let built = load_or_build_pairs(&spec, &never).expect("build");
        assert!(matches!(built.chosen, Loaded::Mapped(_, Origin::Built)));
        let again = load_or_build_pairs(&spec, &never).expect("cached");
        assert!(matches!(again.chosen, Loaded::Mapped(_, Origin::Cache)));
        assert_eq!((again.len(), &again.stats), (30, &built.stats));
        assert_eq!(again.key, built.key);
        for i in 0..30 {
            assert_eq!(again.chosen.sample(i), built.chosen.sample(i));
            assert_eq!(again.rejected.sample(i), built.rejected.sample(i));
        }
    }

    /// The fixture's pairs plus rows that are dropped (no label left) or
    /// truncated, so every count of the statistics is exercised.
    fn fixture_rows() -> Vec<smolsweep_datasets::Row> {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/trainer/dpo_pairs.jsonl");
        let mut rows = smolsweep_datasets::read_file(&fixture).expect("fixture");
        for i in 0..12 {
            let row = match i % 3 {
                0 => json!({"prompt": "x".repeat(80), "chosen": "a", "rejected": "b"}),
                1 => {
                    json!({"prompt": format!("q{i}"), "chosen": "long ".repeat(30), "rejected": "b"})
                }
                _ => json!({"prompt": format!("q{i}"), "chosen": "c", "rejected": "r"}),
            };
            rows.insert(i * 4, row.as_object().expect("obj").clone());
        }
        rows
    }

    fn string_rows(rows: &[smolsweep_datasets::Row]) -> Vec<smolsweep_datasets::Row> {
        rows.iter()
            .filter(|r| r.get("chosen").is_some_and(serde_json::Value::is_string))
            .cloned()
            .collect()
    }

    /// A streamed build writes the very bytes of tokenising every row in
    /// memory and saving both sides, whatever the chunk size, from JSONL,
    /// Parquet, a dataset directory, or several paths.
    #[test]
    fn streaming_writes_the_bytes_of_the_in_memory_path() {
        let dir = crate::data::encode::tests::tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
        let t = ChatTemplate::builtin("chatml").expect("chatml");
        let rows = fixture_rows();
        let jsonl = dir.path().join("p.jsonl");
        let text: String = rows
            .iter()
            .map(|r| format!("{}\n", serde_json::Value::Object(r.clone())))
            .collect();
        std::fs::write(&jsonl, text).expect("jsonl");
        // One Parquet file has one schema: the prompt + strings rows.
        let strings = string_rows(&rows);
        let pq = dir.path().join("p.parquet");
        smolsweep_datasets::write_parquet(&pq, &strings).expect("parquet");
        let ds = dir.path().join("ds");
        std::fs::create_dir_all(ds.join("data")).expect("mkdir");
        smolsweep_datasets::write_parquet(&ds.join("data/train-00000-of-00001.parquet"), &strings)
            .expect("dataset dir");
        let never = AtomicBool::new(false);
        for data in [
            vec![jsonl.clone()],
            vec![pq.clone()],
            vec![ds],
            vec![jsonl, pq],
        ] {
            let spec = DataSpec {
                data: &data,
                tokenizer: &tok,
                template: &t,
                template_source: "chatml",
                max_len: 40,
                cache_dir: dir.path().join("cache"),
            };
            let recs = smolsweep_datasets::read_preference_records(&data).expect("read");
            let enc = Encoder::new(&tok, &t, 40);
            let (c, r, stats) = tokenize_pairs(&recs, &enc, &never).expect("in memory");
            assert!(
                stats.dropped_no_labels > 0 && stats.truncated_chosen > 0,
                "{stats:?}"
            );
            let (ca, ra) = (
                dir.path().join("a-chosen.bin"),
                dir.path().join("a-rejected.bin"),
            );
            save_cache(&ca, &c).expect("save");
            save_cache(&ra, &r).expect("save");
            for chunk in [1, 7, 1000] {
                let (cb, rb) = (
                    dir.path().join("b-chosen.bin"),
                    dir.path().join("b-rejected.bin"),
                );
                let streamed = build_cache(&spec, (&cb, &rb), &never, chunk).expect("stream");
                assert_eq!(streamed, stats, "{data:?}, chunks of {chunk}");
                for (a, b) in [(&ca, &cb), (&ra, &rb)] {
                    assert!(
                        std::fs::read(a).expect("a") == std::fs::read(b).expect("b"),
                        "{data:?}, chunks of {chunk}: {} differs",
                        b.display()
                    );
                }
            }
        }
    }

    /// A bad row met while streaming is the error of reading it whole: its
    /// file and row, and no cache file is left behind.
    #[test]
    fn a_bad_row_while_streaming_names_the_file_and_row() {
        let dir = crate::data::encode::tests::tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
        let t = ChatTemplate::builtin("chatml").expect("chatml");
        // One schema, so that Parquet holds the same rows.
        let mut rows = string_rows(&fixture_rows());
        // Row 31 (1-based) lacks `rejected`: in the second chunk of 30 rows.
        rows[30].remove("rejected");
        let jsonl = dir.path().join("bad.jsonl");
        let text: String = rows
            .iter()
            .map(|r| format!("{}\n", serde_json::Value::Object(r.clone())))
            .collect();
        std::fs::write(&jsonl, text).expect("jsonl");
        let pq = dir.path().join("bad.parquet");
        smolsweep_datasets::write_parquet(&pq, &rows).expect("parquet");
        let never = AtomicBool::new(false);
        for file in [jsonl, pq] {
            let data = vec![file.clone()];
            let spec = DataSpec {
                data: &data,
                tokenizer: &tok,
                template: &t,
                template_source: "chatml",
                max_len: 40,
                cache_dir: dir.path().join("cache"),
            };
            let (cb, rb) = (
                dir.path().join("b-chosen.bin"),
                dir.path().join("b-rejected.bin"),
            );
            let e = build_cache(&spec, (&cb, &rb), &never, 30)
                .expect_err("bad row")
                .to_string();
            let want = format!("{}, row 31: no `rejected` field", file.display());
            assert!(e.starts_with(&want), "{e}");
            let e = load_or_build_pairs(&spec, &never)
                .expect_err("bad row")
                .to_string();
            assert!(e.starts_with(&want), "{e}");
            let left: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
                .expect("cache dir")
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| !n.to_string_lossy().ends_with(".lock"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
            assert!(!cb.exists() && !rb.exists());
        }
    }
}
