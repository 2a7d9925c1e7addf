//! How many tokens each prefix of a text has, from one tokenisation of the
//! whole text instead of one per prefix.
//!
//! open-instruct masks a conversation's non-assistant turns by rendering
//! and tokenising every prefix of the conversation; that costs two or three
//! tokenisations of the whole text per conversation. The HF tokenizer
//! splits a text at its added tokens (`<|im_end|>`, ...) before anything
//! else and tokenises the pieces between them independently, so a prefix
//! that agrees with the text up to an added token has exactly the text's
//! tokens up to that token, plus the tokens of what follows it in the
//! prefix, tokenised alone. Only that short tail is tokenised again.
//!
//! That argument holds only where pieces really are tokenised on their own,
//! so it is used only where it does: boundaries are added tokens that are
//! matched before normalisation (or where there is no normaliser), whose
//! span in the text is exactly their content (no `lstrip`/`rstrip`
//! absorbing whitespace), and not with a pre-tokenizer whose output
//! depends on where a piece sits (`Metaspace` with `prepend_scheme:
//! "first"` prepends only at offset 0). Otherwise the tail is the whole
//! prefix, which is today's re-tokenisation.

use std::collections::HashMap;

/// The added tokens at which a text may be cut (see the module doc).
#[derive(Debug, Clone, Default)]
pub(crate) struct Boundaries {
    /// id -> content of each added token that is a clean boundary; empty
    /// where pieces are not tokenised independently.
    tokens: HashMap<u32, String>,
}

/// Whether a serialized pre-tokenizer (or normalizer) contains a
/// `Metaspace` that prepends only to the first piece.
fn position_dependent(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(o) => {
            let first = o.get("type").and_then(|t| t.as_str()) == Some("Metaspace")
                && o.get("prepend_scheme").and_then(|s| s.as_str()) == Some("first");
            first || o.values().any(position_dependent)
        }
        serde_json::Value::Array(a) => a.iter().any(position_dependent),
        _ => false,
    }
}

impl Boundaries {
    pub(crate) fn of(tok: &tokenizers::Tokenizer) -> Self {
        // A configuration that does not serialize counts as
        // position-dependent: the slow path is always exact.
        let (Ok(pre), Ok(norm)) = (
            serde_json::to_value(tok.get_pre_tokenizer()),
            serde_json::to_value(tok.get_normalizer()),
        ) else {
            return Boundaries::default();
        };
        if position_dependent(&pre) || position_dependent(&norm) {
            return Boundaries::default();
        }
        let has_normalizer = tok.get_normalizer().is_some();
        let tokens = tok
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| !(t.lstrip || t.rstrip || (t.normalized && has_normalizer)))
            .map(|(id, t)| (id, t.content))
            .collect();
        Boundaries { tokens }
    }
}

/// A text tokenised once, able to say how many tokens its prefixes have.
#[derive(Debug)]
pub struct PrefixTokens {
    text: String,
    ids: Vec<u32>,
    /// (byte end in `text`, tokens up to and including it) of each clean
    /// boundary token, in order.
    cuts: Vec<(usize, usize)>,
}

impl PrefixTokens {
    pub(crate) fn new(
        text: String,
        ids: Vec<u32>,
        offsets: &[(usize, usize)],
        b: &Boundaries,
    ) -> Self {
        let cuts = ids
            .iter()
            .zip(offsets)
            .enumerate()
            .filter(|(_, (id, &(s, e)))| {
                b.tokens
                    .get(id)
                    .is_some_and(|c| text.get(s..e) == Some(c.as_str()))
            })
            .map(|(i, (_, &(_, e)))| (e, i + 1))
            .collect();
        PrefixTokens { text, ids, cuts }
    }

    /// The token ids of the whole text.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn into_ids(self) -> Vec<u32> {
        self.ids
    }

    /// Where `prefix` is a prefix of the text: the tokens before its last
    /// clean boundary, and the rest of it, which the caller tokenises
    /// alone. `None` where it is not a prefix of the text.
    pub fn split<'p>(&self, prefix: &'p str) -> Option<(usize, &'p str)> {
        if !self.text.starts_with(prefix) {
            return None;
        }
        let b = prefix.len();
        if b == self.text.len() {
            return Some((self.ids.len(), ""));
        }
        let k = self.cuts.partition_point(|&(end, _)| end <= b);
        let (end, n) = if k == 0 { (0, 0) } else { self.cuts[k - 1] };
        Some((n, &prefix[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metaspace_first_is_position_dependent() {
        let v = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}]});
        assert!(position_dependent(&v));
        let always = json!({"type": "Metaspace", "prepend_scheme": "always"});
        assert!(!position_dependent(&always));
        assert!(!position_dependent(&json!({"type": "ByteLevel"})));
    }

    #[test]
    fn split_takes_the_last_boundary_inside_the_prefix() {
        let b = Boundaries {
            tokens: [(7, "<e>".to_owned())].into_iter().collect(),
        };
        // "ab<e>\ncd<e>\n": tokens a b <e> \n c d <e> \n
        let text = "ab<e>\ncd<e>\n".to_owned();
        let offs = [
            (0, 1),
            (1, 2),
            (2, 5),
            (5, 6),
            (6, 7),
            (7, 8),
            (8, 11),
            (11, 12),
        ];
        let ids = vec![1, 2, 7, 3, 4, 5, 7, 3];
        let p = PrefixTokens::new(text, ids, &offs, &b);
        assert_eq!(p.split("ab<e>\ncd<e>\n"), Some((8, "")));
        assert_eq!(p.split("ab<e>\ncd<e>"), Some((7, "")));
        assert_eq!(p.split("ab<e>\nc"), Some((3, "\nc")));
        assert_eq!(p.split("ab<e>"), Some((3, "")));
        assert_eq!(p.split("ab<"), Some((0, "ab<")));
        assert_eq!(p.split("ax"), None);
    }

    #[test]
    fn a_token_whose_span_is_not_its_content_is_no_boundary() {
        let b = Boundaries {
            tokens: [(7, "<e>".to_owned())].into_iter().collect(),
        };
        // As if rstrip had absorbed the space into the token's span.
        let p = PrefixTokens::new(
            "a<e> b".into(),
            vec![1, 7, 2],
            &[(0, 1), (1, 5), (5, 6)],
            &b,
        );
        assert_eq!(p.split("a<e> "), Some((0, "a<e> ")));
    }
}
