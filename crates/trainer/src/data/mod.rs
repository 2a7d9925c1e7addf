//! SFT data: chat conversations (`messages: [{role, content}]`) from
//! Parquet/JSONL files or dataset directories, tokenised with labels only
//! on assistant content ([`encode`]), written once to an on-disk cache
//! ([`cache`]) that every trial of a sweep maps read-only and reads in
//! place ([`load`]): N trials on a node share one copy of the token arrays
//! in the page cache, and none copies them.
//!
//! The training side reads samples through [`Samples`], whether they come
//! from a mapped cache or (when the cache cannot be written) from memory.
//! DPO's preference pairs ([`preference`]) are two such sample sets, the
//! chosen and the rejected side, tokenised by the same encoder.

pub mod cache;
pub mod encode;
pub mod load;
pub mod preference;

use serde::{Deserialize, Serialize};

pub use cache::{save_cache, CacheMap, Invalid};
pub use encode::{parse_messages, read_records, tokenize, tokenize_reference};
pub use load::{cache_key, load_or_build, DataSpec, Loaded, Origin};

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

/// Read access to tokenised samples: sample `i` is its token ids and a
/// mask, 1 where the token is a label (assistant content).
pub trait Samples {
    fn len(&self) -> usize;
    fn sample(&self, i: usize) -> (&[u32], &[u8]);
    fn stats(&self) -> &DataStats;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Label tokens that contribute to the loss (a label at position 0 has
    /// no preceding token to predict it from).
    fn label_count(&self, i: usize) -> u64 {
        label_count(self.sample(i).1)
    }
}

pub(crate) fn label_count(mask: &[u8]) -> u64 {
    mask.iter().skip(1).filter(|&&x| x != 0).count() as u64
}

/// Tokenised samples in memory, flat: sample `i` is
/// `ids[offsets[i]..offsets[i+1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizedData {
    pub offsets: Vec<u64>,
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
    pub stats: DataStats,
}

impl Samples for TokenizedData {
    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    fn sample(&self, i: usize) -> (&[u32], &[u8]) {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        (&self.ids[a..b], &self.mask[a..b])
    }
    fn stats(&self) -> &DataStats {
        &self.stats
    }
}

impl Samples for Loaded {
    fn len(&self) -> usize {
        match self {
            Loaded::Mapped(m, _) => m.len(),
            Loaded::Memory(d) => d.len(),
        }
    }
    fn sample(&self, i: usize) -> (&[u32], &[u8]) {
        match self {
            Loaded::Mapped(m, _) => m.sample(i),
            Loaded::Memory(d) => d.sample(i),
        }
    }
    fn stats(&self) -> &DataStats {
        match self {
            Loaded::Mapped(m, _) => m.stats(),
            Loaded::Memory(d) => d.stats(),
        }
    }
}
