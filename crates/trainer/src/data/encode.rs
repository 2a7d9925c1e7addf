//! Tokenising conversations the way open-instruct's `encode_sft_example`
//! does it: every non-assistant message (and the assistant header that the
//! generation prompt adds) is masked by rendering the conversation prefix
//! and masking its token span, so labels fall only on assistant content.
//!
//! Rows are encoded in parallel (rayon), a chunk at a time, in order; each
//! row first checks the stop flag, so a SIGTERM ends even a long chunk
//! within a row's time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use smolsweep_datasets::Record;
use smolsweep_model::{ChatTemplate, Message, TextTokenizer};

use super::{label_count, DataStats, Samples, TokenizedData};
use crate::error::{Result, TrainError};

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
pub(crate) enum Encoded {
    Sample {
        ids: Vec<u32>,
        mask: Vec<u8>,
        truncated: bool,
    },
    NoAssistant,
    TruncatedAway,
}

pub(crate) struct Encoder<'a> {
    tokenizer: &'a TextTokenizer,
    template: &'a ChatTemplate,
    bos: String,
    eos: String,
    max_len: usize,
    /// Re-tokenise every prefix (open-instruct's way) instead of counting
    /// prefixes from one tokenisation: the reference for tests and bench.
    reference: bool,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(
        tokenizer: &'a TextTokenizer,
        template: &'a ChatTemplate,
        max_len: usize,
    ) -> Self {
        Encoder {
            tokenizer,
            template,
            bos: tokenizer.bos_token.clone().unwrap_or_default(),
            eos: tokenizer.eos_token.clone().unwrap_or_default(),
            max_len,
            reference: false,
        }
    }

    fn render(&self, msgs: &[Message], add_generation_prompt: bool) -> Result<String> {
        Ok(self
            .template
            .render(msgs, add_generation_prompt, &self.bos, &self.eos)?)
    }

    /// The conversation's ids and label mask. The whole conversation is
    /// tokenised once; each prefix's length comes from that tokenisation
    /// plus its tail after the last added token (`PrefixTokens`), which
    /// equals tokenising the prefix anew, as [`Self::encode_reference`]
    /// does and as open-instruct does.
    pub(crate) fn encode(&self, msgs: &[Message]) -> Result<Encoded> {
        if self.reference {
            return self.encode_reference(msgs);
        }
        if !msgs.iter().any(|m| m.role == "assistant") {
            return Ok(Encoded::NoAssistant);
        }
        // The template already holds every special token it wants.
        let whole = self
            .tokenizer
            .encode_prefixable(&self.render(msgs, false)?)?;
        let mask = self.mask(msgs, whole.ids().len(), |prefix, gen| {
            let text = self.render(prefix, gen)?;
            Ok(self.tokenizer.prefix_len(&whole, &text)?)
        })?;
        Ok(self.finish(whole.into_ids(), mask))
    }

    /// The same by re-tokenising every prefix: open-instruct's way, kept
    /// as the reference the fast path is tested against.
    fn encode_reference(&self, msgs: &[Message]) -> Result<Encoded> {
        if !msgs.iter().any(|m| m.role == "assistant") {
            return Ok(Encoded::NoAssistant);
        }
        let tokens = |prefix: &[Message], gen: bool| -> Result<Vec<u32>> {
            Ok(self
                .tokenizer
                .encode_with(&self.render(prefix, gen)?, false)?)
        };
        let ids = tokens(msgs, false)?;
        let mask = self.mask(
            msgs,
            ids.len(),
            |prefix, gen| Ok(tokens(prefix, gen)?.len()),
        )?;
        Ok(self.finish(ids, mask))
    }

    /// Masks every non-assistant message's span: from the token count of
    /// the conversation before it to that of the conversation through it
    /// (with the generation prompt when an assistant turn follows).
    fn mask(
        &self,
        msgs: &[Message],
        n: usize,
        prefix_len: impl Fn(&[Message], bool) -> Result<usize>,
    ) -> Result<Vec<u8>> {
        let mut mask = vec![1u8; n];
        for (i, m) in msgs.iter().enumerate() {
            if m.role == "assistant" {
                continue;
            }
            let start = if i == 0 {
                0
            } else {
                prefix_len(&msgs[..i], false)?
            };
            let next_is_assistant = msgs.get(i + 1).is_some_and(|n| n.role == "assistant");
            let end = prefix_len(&msgs[..=i], next_is_assistant)?;
            let (s, e) = (start.min(n), end.min(n));
            mask[s..e].iter_mut().for_each(|x| *x = 0);
        }
        Ok(mask)
    }

    /// Truncation keeping the start; a sample left without labels is
    /// dropped.
    fn finish(&self, ids: Vec<u32>, mask: Vec<u8>) -> Encoded {
        let truncated = ids.len() > self.max_len;
        let (ids, mask) = if truncated {
            (ids[..self.max_len].to_vec(), mask[..self.max_len].to_vec())
        } else {
            (ids, mask)
        };
        if mask.iter().skip(1).all(|&x| x == 0) {
            return Encoded::TruncatedAway;
        }
        Encoded::Sample {
            ids,
            mask,
            truncated,
        }
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

/// Encodes one chunk of records in parallel, in order. Each row first
/// checks `stop`, so a signal ends the chunk within one row's time.
pub(crate) fn encode_chunk(
    enc: &Encoder<'_>,
    records: &[Record],
    stop: &AtomicBool,
) -> Result<Vec<Encoded>> {
    records
        .par_iter()
        .map(|r| {
            if stop.load(Ordering::Relaxed) {
                return Err(TrainError::Stopped);
            }
            let msgs = parse_messages(r)?;
            enc.encode(&msgs).map_err(|e| match e {
                TrainError::Model(m) => TrainError::Data {
                    location: r.location(),
                    msg: m.to_string(),
                },
                other => other,
            })
        })
        .collect()
}

/// Where encoded samples go: memory, or the cache file as it is written.
pub(crate) trait SampleSink {
    fn push(&mut self, ids: &[u32], mask: &[u8]) -> Result<()>;
}

impl SampleSink for TokenizedData {
    fn push(&mut self, ids: &[u32], mask: &[u8]) -> Result<()> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.ids.extend_from_slice(ids);
        self.mask.extend_from_slice(mask);
        self.offsets.push(self.ids.len() as u64);
        Ok(())
    }
}

/// Counts rows and samples as they are encoded, and says what to report
/// when none is trainable; the same for the in-memory and streaming paths,
/// so both give the same statistics.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub stats: DataStats,
    /// The first data file, named when no conversation is trainable.
    first_file: Option<PathBuf>,
}

impl Tally {
    /// Counts `encoded` (the rows of `records`) and hands its samples to
    /// `sink`, in order.
    pub(crate) fn absorb(
        &mut self,
        records: &[Record],
        encoded: Vec<Encoded>,
        sink: &mut dyn SampleSink,
    ) -> Result<()> {
        if self.first_file.is_none() {
            self.first_file = records.first().map(|r| r.file.clone());
        }
        let s = &mut self.stats;
        s.rows += records.len();
        for e in encoded {
            match e {
                Encoded::NoAssistant => s.skipped_no_assistant += 1,
                Encoded::TruncatedAway => s.skipped_truncated_away += 1,
                Encoded::Sample {
                    ids,
                    mask,
                    truncated,
                } => {
                    s.truncated += usize::from(truncated);
                    s.samples += 1;
                    s.tokens += ids.len() as u64;
                    s.label_tokens += label_count(&mask);
                    sink.push(&ids, &mask)?;
                }
            }
        }
        Ok(())
    }

    /// The statistics, or the error of a dataset with nothing to train on.
    pub(crate) fn finish(self) -> Result<DataStats> {
        let s = self.stats;
        if s.samples == 0 {
            return Err(TrainError::Data {
                location: self
                    .first_file
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "data".into()),
                msg: format!(
                    "no trainable conversation ({} rows: {} without an assistant turn, {} truncated away)",
                    s.rows, s.skipped_no_assistant, s.skipped_truncated_away
                ),
            });
        }
        Ok(s)
    }
}

/// Tokenises records in memory (in parallel, order kept).
pub fn tokenize(
    records: &[Record],
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
    max_len: usize,
) -> Result<TokenizedData> {
    tokenize_with(Encoder::new(tokenizer, template, max_len), records)
}

/// [`tokenize`] by re-tokenising every conversation prefix, as
/// open-instruct does: the same result, slower; the reference that tests
/// and `smolsweep bench tokenise` compare the fast path with.
pub fn tokenize_reference(
    records: &[Record],
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
    max_len: usize,
) -> Result<TokenizedData> {
    let enc = Encoder {
        reference: true,
        ..Encoder::new(tokenizer, template, max_len)
    };
    tokenize_with(enc, records)
}

fn tokenize_with(enc: Encoder<'_>, records: &[Record]) -> Result<TokenizedData> {
    let never = AtomicBool::new(false);
    let mut data = TokenizedData {
        offsets: vec![0],
        ..Default::default()
    };
    let mut tally = Tally::default();
    tally.absorb(records, encode_chunk(&enc, records, &never)?, &mut data)?;
    data.stats = tally.finish()?;
    debug_assert_eq!(data.stats.samples, data.len());
    Ok(data)
}

#[cfg(test)]
pub(crate) mod tests {
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
}
