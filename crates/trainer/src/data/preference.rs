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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smolsweep_datasets::{parse_pair, Record, Turn};
use smolsweep_model::Message;

use super::encode::{Encoded, Encoder, SampleSink};
use super::load::BuildLock;
use super::{cache_key, label_count, CacheMap, DataSpec, DataStats, Loaded, Origin, Samples};
use super::{save_cache, TokenizedData};
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

/// Tokenises the pairs of `records` in memory (in parallel, order kept);
/// `stop` is checked before each row.
pub(crate) fn tokenize_pairs(
    records: &[Record],
    enc: &Encoder<'_>,
    stop: &AtomicBool,
) -> Result<(TokenizedData, TokenizedData, PreferenceStats)> {
    let mut chosen = TokenizedData {
        offsets: vec![0],
        ..Default::default()
    };
    let mut rejected = chosen.clone();
    let mut stats = PreferenceStats::default();
    for chunk in records.chunks(CHUNK_ROWS) {
        let encoded: Vec<EncodedPair> = chunk
            .par_iter()
            .map(|r| {
                if stop.load(Ordering::Relaxed) {
                    return Err(TrainError::Stopped);
                }
                encode_row(enc, r)
            })
            .collect::<Result<_>>()?;
        stats.rows += chunk.len();
        for e in encoded {
            let Some(((ci, cm, ct), (ri, rm, rt))) = e else {
                stats.dropped_no_labels += 1;
                continue;
            };
            stats.pairs += 1;
            stats.truncated_chosen += usize::from(ct);
            stats.truncated_rejected += usize::from(rt);
            chosen.push(&ci, &cm)?;
            rejected.push(&ri, &rm)?;
        }
    }
    if stats.pairs == 0 {
        return Err(TrainError::Data {
            location: records
                .first()
                .map(|r| r.file.display().to_string())
                .unwrap_or_else(|| "data".into()),
            msg: format!(
                "no trainable preference pair ({} rows, {} with no label token on a side)",
                stats.rows, stats.dropped_no_labels
            ),
        });
    }
    for (d, truncated) in [
        (&mut chosen, stats.truncated_chosen),
        (&mut rejected, stats.truncated_rejected),
    ] {
        d.stats = DataStats {
            rows: stats.rows,
            samples: stats.pairs,
            skipped_no_assistant: 0,
            skipped_truncated_away: stats.dropped_no_labels,
            truncated,
            tokens: d.ids.len() as u64,
            label_tokens: (0..d.len()).map(|i| label_count(d.sample(i).1)).sum(),
        };
    }
    Ok((chosen, rejected, stats))
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
    let _lock = match std::fs::create_dir_all(&spec.cache_dir)
        .map_err(|e| TrainError::io(&spec.cache_dir, e))
        .and_then(|()| BuildLock::acquire(&cp.with_extension("lock"), stop))
    {
        Ok(l) => Some(l),
        Err(TrainError::Stopped) => return Err(TrainError::Stopped),
        Err(_) => None,
    };
    if let Some(d) = cached(Origin::Waited)? {
        return Ok(d);
    }
    let t = std::time::Instant::now();
    let records = smolsweep_datasets::read_preference_records(spec.data)?;
    if stop.load(Ordering::Relaxed) {
        return Err(TrainError::Stopped);
    }
    let enc = Encoder::new(spec.tokenizer, spec.template, spec.max_len);
    let (chosen, rejected, stats) = tokenize_pairs(&records, &enc, stop)?;
    tracing::info!(
        rows = stats.rows,
        pairs = stats.pairs,
        dropped_no_labels = stats.dropped_no_labels,
        truncated_chosen = stats.truncated_chosen,
        truncated_rejected = stats.truncated_rejected,
        secs = format!("{:.1}", t.elapsed().as_secs_f64()),
        "tokenised preference pairs"
    );
    let written = save_cache(&cp, &chosen).and_then(|()| save_cache(&rp, &rejected));
    if let Err(e) = written {
        tracing::warn!(
            "keeping the preference pairs in memory: the cache cannot be written: {}",
            crate::error::chain_text(&e)
        );
    } else if let (Some(c), Some(r)) = (open(&cp)?, open(&rp)?) {
        return Ok(PreferenceData {
            chosen: Loaded::Mapped(c, Origin::Built),
            rejected: Loaded::Mapped(r, Origin::Built),
            stats,
            key,
        });
    }
    Ok(PreferenceData {
        chosen: Loaded::Memory(chosen),
        rejected: Loaded::Memory(rejected),
        stats,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
