//! SFT data: chat conversations (`messages: [{role, content}]`) from
//! Parquet/JSONL files or dataset directories, rendered with a chat
//! template and tokenised with labels only on assistant content, the way
//! open-instruct's `encode_sft_example` does it: every non-assistant
//! message (and the assistant header that the generation prompt adds) is
//! masked by rendering the conversation prefix and masking its token span.
//!
//! Tokenisation runs in parallel (rayon) and its result is cached on disk
//! under a key made of the data files' content, the tokenizer, the
//! template and `max_seq_len`, so the trials of a sweep tokenise once.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smolsweep_datasets::Record;
use smolsweep_model::{ChatTemplate, Message, TextTokenizer};

use crate::error::{Result, TrainError};

/// Counts reported after tokenisation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataStats {
    pub rows: usize,
    pub samples: usize,
    /// Conversations with no assistant turn (nothing to learn from).
    pub skipped_no_assistant: usize,
    /// Conversations whose assistant tokens all fell beyond `max_seq_len`.
    pub skipped_truncated_away: usize,
    pub truncated: usize,
    pub tokens: u64,
    pub label_tokens: u64,
}

/// Tokenised samples, flat: sample `i` is `ids[offsets[i]..offsets[i+1]]`
/// with `mask` true where the token is a label (assistant content).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizedData {
    pub offsets: Vec<u64>,
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
    pub stats: DataStats,
}

impl TokenizedData {
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn sample(&self, i: usize) -> (&[u32], &[u8]) {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        (&self.ids[a..b], &self.mask[a..b])
    }
    /// Label tokens that contribute to the loss (a label at position 0 has
    /// no preceding token to predict it from).
    pub fn label_count(&self, i: usize) -> u64 {
        let (_, m) = self.sample(i);
        m.iter().skip(1).filter(|&&x| x != 0).count() as u64
    }
}

/// A row's `messages` as a conversation; errors name the file, row and
/// field. Public so that `smolsweep run` can check a dataset's first rows
/// before it starts anything.
pub fn parse_messages(rec: &Record) -> Result<Vec<Message>> {
    let bad = |msg: String| TrainError::Data {
        location: rec.location(),
        msg,
    };
    let msgs = rec
        .row
        .get("messages")
        .ok_or_else(|| {
            bad("no `messages` field (expected HF chat format: messages: [{role, content}])".into())
        })?
        .as_array()
        .ok_or_else(|| bad("`messages` is not a list".into()))?;
    msgs.iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |k: &str| {
                m.get(k)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("messages[{i}].{k} is missing or not a string")))
            };
            Ok(Message {
                role: field("role")?,
                content: field("content")?,
            })
        })
        .collect()
}

/// What a data row became.
enum Encoded {
    Sample {
        ids: Vec<u32>,
        mask: Vec<u8>,
        truncated: bool,
    },
    NoAssistant,
    TruncatedAway,
}

struct Encoder<'a> {
    tokenizer: &'a TextTokenizer,
    template: &'a ChatTemplate,
    bos: String,
    eos: String,
    max_len: usize,
}

impl Encoder<'_> {
    fn tokens(&self, msgs: &[Message], add_generation_prompt: bool) -> Result<Vec<u32>> {
        let text = self
            .template
            .render(msgs, add_generation_prompt, &self.bos, &self.eos)?;
        // The template already holds every special token it wants.
        Ok(self.tokenizer.encode_with(&text, false)?)
    }

    fn encode(&self, msgs: &[Message]) -> Result<Encoded> {
        if !msgs.iter().any(|m| m.role == "assistant") {
            return Ok(Encoded::NoAssistant);
        }
        let ids = self.tokens(msgs, false)?;
        let mut mask = vec![1u8; ids.len()];
        for (i, m) in msgs.iter().enumerate() {
            if m.role == "assistant" {
                continue;
            }
            let start = if i == 0 {
                0
            } else {
                self.tokens(&msgs[..i], false)?.len()
            };
            let next_is_assistant = msgs.get(i + 1).is_some_and(|n| n.role == "assistant");
            let end = self.tokens(&msgs[..=i], next_is_assistant)?.len();
            let (s, e) = (start.min(ids.len()), end.min(ids.len()));
            mask[s..e].iter_mut().for_each(|x| *x = 0);
        }
        let truncated = ids.len() > self.max_len;
        let (ids, mask) = if truncated {
            (ids[..self.max_len].to_vec(), mask[..self.max_len].to_vec())
        } else {
            (ids, mask)
        };
        if mask.iter().skip(1).all(|&x| x == 0) {
            return Ok(Encoded::TruncatedAway);
        }
        Ok(Encoded::Sample {
            ids,
            mask,
            truncated,
        })
    }
}

/// Reads the data paths (see `smolsweep_datasets::training_files`).
pub fn read_records(paths: &[PathBuf]) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for p in paths {
        let files = smolsweep_datasets::training_files(p)?;
        out.extend(smolsweep_datasets::read_records(&files, p)?);
    }
    Ok(out)
}

/// Tokenises records (in parallel, order kept).
pub fn tokenize(
    records: &[Record],
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
    max_len: usize,
) -> Result<TokenizedData> {
    let enc = Encoder {
        tokenizer,
        template,
        bos: tokenizer.bos_token.clone().unwrap_or_default(),
        eos: tokenizer.eos_token.clone().unwrap_or_default(),
        max_len,
    };
    let encoded: Vec<Encoded> = records
        .par_iter()
        .map(|r| {
            let msgs = parse_messages(r)?;
            enc.encode(&msgs).map_err(|e| match e {
                TrainError::Model(m) => TrainError::Data {
                    location: r.location(),
                    msg: m.to_string(),
                },
                other => other,
            })
        })
        .collect::<Result<_>>()?;
    let mut data = TokenizedData {
        offsets: vec![0],
        ..Default::default()
    };
    data.stats.rows = records.len();
    for e in encoded {
        match e {
            Encoded::NoAssistant => data.stats.skipped_no_assistant += 1,
            Encoded::TruncatedAway => data.stats.skipped_truncated_away += 1,
            Encoded::Sample {
                ids,
                mask,
                truncated,
            } => {
                data.stats.truncated += usize::from(truncated);
                data.ids.extend(ids);
                data.mask.extend(mask);
                data.offsets.push(data.ids.len() as u64);
            }
        }
    }
    data.stats.samples = data.len();
    data.stats.tokens = data.ids.len() as u64;
    data.stats.label_tokens = (0..data.len()).map(|i| data.label_count(i)).sum();
    if data.is_empty() {
        return Err(TrainError::Data {
            location: records
                .first()
                .map(|r| r.file.display().to_string())
                .unwrap_or_else(|| "data".into()),
            msg: format!(
                "no trainable conversation ({} rows: {} without an assistant turn, {} truncated away)",
                data.stats.rows, data.stats.skipped_no_assistant, data.stats.skipped_truncated_away
            ),
        });
    }
    Ok(data)
}

const MAGIC: &[u8; 8] = b"SSTOK001";

/// The cache key: content of every data file, the tokenizer, the template
/// and the length limit.
pub fn cache_key(
    data_paths: &[PathBuf],
    tokenizer: &TextTokenizer,
    template_source: &str,
    max_len: usize,
) -> Result<String> {
    let mut h = Sha256::new();
    h.update(MAGIC);
    for p in data_paths {
        for f in smolsweep_datasets::training_files(p)? {
            let mut file = std::fs::File::open(&f).map_err(|e| TrainError::io(&f, e))?;
            std::io::copy(&mut file, &mut h).map_err(|e| TrainError::io(&f, e))?;
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

fn u64s(b: &[u8]) -> impl Iterator<Item = u64> + '_ {
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
}

/// Writes the cache atomically (temporary file, then rename), so trials
/// racing to fill the same entry never read half a file.
pub fn save_cache(path: &Path, d: &TokenizedData) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let stats = serde_json::to_vec(&d.stats).map_err(|e| TrainError::Other(e.to_string()))?;
    let mut buf = Vec::with_capacity(16 + d.offsets.len() * 8 + d.ids.len() * 5 + stats.len());
    buf.extend_from_slice(MAGIC);
    buf.extend((d.len() as u64).to_le_bytes());
    buf.extend((stats.len() as u64).to_le_bytes());
    buf.extend(&stats);
    d.offsets.iter().for_each(|o| buf.extend(o.to_le_bytes()));
    d.ids.iter().for_each(|t| buf.extend(t.to_le_bytes()));
    buf.extend(&d.mask);
    let mut f = std::fs::File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    f.write_all(&buf).map_err(|e| TrainError::io(&tmp, e))?;
    f.sync_all().map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Reads a cache file; `None` when it is absent or not a valid cache (then
/// the data is simply tokenised again).
pub fn load_cache(path: &Path) -> Option<TokenizedData> {
    let b = std::fs::read(path).ok()?;
    if b.get(..8)? != MAGIC {
        return None;
    }
    let n = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?) as usize;
    let sl = u64::from_le_bytes(b.get(16..24)?.try_into().ok()?) as usize;
    let stats: DataStats = serde_json::from_slice(b.get(24..24 + sl)?).ok()?;
    let mut p = 24 + sl;
    let offsets: Vec<u64> = u64s(b.get(p..p + (n + 1) * 8)?).collect();
    p += (n + 1) * 8;
    let total = *offsets.last()? as usize;
    let ids: Vec<u32> = b
        .get(p..p + total * 4)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    p += total * 4;
    let mask = b.get(p..p + total)?.to_vec();
    (p + total == b.len()).then_some(TokenizedData {
        offsets,
        ids,
        mask,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn tokenizer_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        smolsweep_model::tokenizer::write_byte_level_tokenizer(dir.path()).expect("tokenizer");
        dir
    }

    fn rec(v: serde_json::Value, i: usize) -> Record {
        Record {
            file: "d.jsonl".into(),
            index: i,
            row: v.as_object().expect("obj").clone(),
        }
    }

    #[test]
    fn labels_only_on_assistant_content() {
        let dir = tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
        let t = ChatTemplate::builtin("tulu").expect("tulu");
        let r = rec(
            json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}),
            0,
        );
        let d = tokenize(&[r], &tok, &t, 1000).expect("tok");
        let (ids, mask) = d.sample(0);
        let text = tok.decode(ids, false).expect("decode");
        assert_eq!(text, "<|user|>\nhi\n<|assistant|>\nyo<|im_end|>");
        let labelled: Vec<u32> = ids
            .iter()
            .zip(mask)
            .filter(|(_, &m)| m == 1)
            .map(|(&i, _)| i)
            .collect();
        assert_eq!(
            tok.decode(&labelled, false).expect("decode"),
            "yo<|im_end|>"
        );
    }

    #[test]
    fn skips_and_errors_are_reported() {
        let dir = tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
        let t = ChatTemplate::builtin("chatml").expect("chatml");
        let good = rec(
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}),
            0,
        );
        let no_asst = rec(json!({"messages": [{"role": "user", "content": "a"}]}), 1);
        let long = rec(
            json!({"messages": [{"role": "user", "content": "x".repeat(50)}, {"role": "assistant", "content": "b"}]}),
            2,
        );
        let d = tokenize(&[good.clone(), no_asst, long], &tok, &t, 30).expect("tok");
        assert_eq!(d.stats.samples, 1);
        assert_eq!(d.stats.skipped_no_assistant, 1);
        assert_eq!(d.stats.skipped_truncated_away, 1);
        let bad = rec(json!({"text": "no messages"}), 6);
        let e = tokenize(&[good, bad], &tok, &t, 30)
            .expect_err("bad")
            .to_string();
        assert!(
            e.contains("d.jsonl, row 7") && e.contains("messages"),
            "{e}"
        );
    }

    #[test]
    fn cache_round_trip_and_corruption() {
        let dir = tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("tok");
        let t = ChatTemplate::builtin("chatml").expect("chatml");
        let recs: Vec<Record> = (0..5)
            .map(|i| rec(json!({"messages": [{"role": "user", "content": format!("q{i}")}, {"role": "assistant", "content": "a"}]}), i))
            .collect();
        let d = tokenize(&recs, &tok, &t, 64).expect("tok");
        let p = dir.path().join("c.bin");
        save_cache(&p, &d).expect("save");
        assert_eq!(load_cache(&p), Some(d));
        let mut b = std::fs::read(&p).expect("read");
        b.truncate(b.len() - 3);
        std::fs::write(&p, b).expect("write");
        assert_eq!(load_cache(&p), None);
    }
}
