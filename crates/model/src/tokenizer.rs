//! The text side of a model directory: `tokenizer.json` through the HF
//! `tokenizers` crate (the same Rust code `transformers`' fast tokenizers
//! run), plus the special tokens and chat template that
//! `tokenizer_config.json` declares.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chat::ChatTemplate;
use crate::error::{ModelError, Result};
use crate::files::write_json;
use crate::prefix_tokens::{Boundaries, PrefixTokens};

/// A loaded tokenizer with its special tokens and chat template.
#[derive(Debug)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    /// The model's Jinja chat template, when the directory has one.
    pub chat_template: Option<String>,
    /// Where a text may be cut for counting its prefixes' tokens.
    boundaries: Boundaries,
}

/// `bos_token` and friends are a string or an AddedToken object.
fn token_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (required) and `tokenizer_config.json`
    /// (optional) from a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(ModelError::ModelDir {
                path: dir.to_path_buf(),
                msg: "no tokenizer.json (a model directory needs its tokenizer; \
                      `smolsweep import-gguf` writes one)"
                    .into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| ModelError::Tokenizer {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let boundaries = Boundaries::of(&inner);
        let mut tok = TextTokenizer {
            boundaries,
            inner,
            path,
            bos_token: None,
            eos_token: None,
            pad_token: None,
            chat_template: None,
        };
        let cfg_path = dir.join("tokenizer_config.json");
        if cfg_path.is_file() {
            let text =
                std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
            let cfg: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: cfg_path.clone(),
                source,
            })?;
            tok.bos_token = token_string(cfg.get("bos_token"));
            tok.eos_token = token_string(cfg.get("eos_token"));
            tok.pad_token = token_string(cfg.get("pad_token"));
            tok.chat_template = match cfg.get("chat_template") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                // Newer files: a list of {name, template}; "default" wins.
                Some(Value::Array(list)) => {
                    let pick = list
                        .iter()
                        .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                        .or_else(|| list.first());
                    pick.and_then(|t| t.get("template"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }
                Some(_) => {
                    return Err(ModelError::Config {
                        path: cfg_path,
                        field: "chat_template".into(),
                        msg: "expected a string or a list of {name, template}".into(),
                    })
                }
            };
        }
        // A separate chat_template.jinja (newer transformers) wins.
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            tok.chat_template =
                Some(std::fs::read_to_string(&jinja).map_err(|e| ModelError::io(&jinja, e))?);
        }
        Ok(tok)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying HF tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids for `text`, with the special tokens the tokenizer's own
    /// post-processor adds (none for SmolLM2), as `tokenizer(text)` does.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    pub fn encode_with(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                msg: e.to_string(),
            })
    }

    /// `text`'s token ids (no post-processor tokens), kept with what
    /// [`Self::prefix_len`] needs to count its prefixes' tokens cheaply.
    pub fn encode_prefixable(&self, text: &str) -> Result<PrefixTokens> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                msg: e.to_string(),
            })?;
        Ok(PrefixTokens::new(
            text.to_owned(),
            enc.get_ids().to_vec(),
            enc.get_offsets(),
            &self.boundaries,
        ))
    }

    /// The number of tokens `encode_with(prefix, false)` gives, counted
    /// from `whole` when `prefix` is a prefix of its text (only the part
    /// after the last added token is tokenised; see `prefix_tokens`).
    pub fn prefix_len(&self, whole: &PrefixTokens, prefix: &str) -> Result<usize> {
        Ok(match whole.split(prefix) {
            Some((n, "")) => n,
            Some((n, tail)) => n + self.encode_with(tail, false)?.len(),
            None => self.encode_with(prefix, false)?.len(),
        })
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                msg: e.to_string(),
            })
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// The pad id for batching: the pad token, else eos (its value never
    /// matters, padded positions are masked).
    pub fn pad_id(&self) -> u32 {
        self.pad_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
            .or_else(|| self.eos_id())
            .unwrap_or(0)
    }

    /// The model's own chat template, or an error saying it has none.
    pub fn model_chat_template(&self) -> Result<ChatTemplate> {
        match &self.chat_template {
            Some(src) => ChatTemplate::jinja("model", src),
            None => Err(ModelError::Template {
                name: "model".into(),
                msg: format!(
                    "{} has no chat_template; use a built-in template (tulu or chatml)",
                    self.path.parent().map_or_else(String::new, |p| p
                        .join("tokenizer_config.json")
                        .display()
                        .to_string())
                ),
            }),
        }
    }
}

/// Pre-tokenizers we can write into a `tokenizer.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's byte-level split.
    Gpt2,
    /// SmolLM2 (llama.cpp's `smollm`): every digit on its own, then GPT-2's
    /// byte-level split.
    SmolLm,
    /// Llama 3 (llama.cpp's `llama-bpe`): digits in runs of up to three.
    Llama3,
}

impl PreTokenizer {
    fn to_json(self) -> serde_json::Value {
        let byte_level = |use_regex: bool| serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
        match self {
            PreTokenizer::Gpt2 => byte_level(true),
            PreTokenizer::SmolLm => serde_json::json!({
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Digits", "individual_digits": true},
                    byte_level(true),
                ]
            }),
            PreTokenizer::Llama3 => serde_json::json!({
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
                    byte_level(false),
                ]
            }),
        }
    }
}

/// An added token of a `tokenizer.json`.
#[derive(Debug, Clone)]
pub struct AddedToken {
    pub id: u32,
    pub content: String,
    pub special: bool,
}

/// A byte-level BPE `tokenizer.json` (the GPT-2 / SmolLM2 kind) from a
/// vocabulary (index = id), merges ("a b") and added tokens.
pub fn bpe_tokenizer_json(
    vocab: &[String],
    merges: &[String],
    added: &[AddedToken],
    pre: PreTokenizer,
) -> serde_json::Value {
    let vocab_map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i.into()))
        .collect();
    let added: Vec<serde_json::Value> = added
        .iter()
        .map(|t| {
            serde_json::json!({"id": t.id, "content": t.content, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": t.special})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre.to_json(),
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab_map, "merges": merges,
        }
    })
}

/// GPT-2's reversible byte -> printable character map, as the 256 vocab
/// strings of a byte-level vocabulary (index = byte value).
pub fn byte_level_alphabet() -> Vec<String> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0u32;
    (0u32..256)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                extra += 1;
                255 + extra
            };
            char::from_u32(c).map(String::from).unwrap_or_default()
        })
        .collect()
}

/// Special tokens of the byte-level tokenizer, after the 256 bytes.
pub const BYTE_LEVEL_SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Writes a byte-level tokenizer (the 256 bytes, no merges, plus
/// [`BYTE_LEVEL_SPECIALS`]; vocabulary 259) with the ChatML template into
/// `dir`: the tokenizer of tiny models trained from scratch, which needs no
/// training and covers any text.
pub fn write_byte_level_tokenizer(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut vocab = byte_level_alphabet();
    let added: Vec<AddedToken> = BYTE_LEVEL_SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| AddedToken {
            id: 256 + i as u32,
            content: (*s).to_owned(),
            special: true,
        })
        .collect();
    vocab.extend(BYTE_LEVEL_SPECIALS.iter().map(|s| (*s).to_owned()));
    let json = bpe_tokenizer_json(&vocab, &[], &added, PreTokenizer::SmolLm);
    write_json(&dir.join("tokenizer.json"), &json)?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &serde_json::json!({
            "bos_token": "<|im_start|>",
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "chat_template": crate::chat::CHATML_TEMPLATE,
            "clean_up_tokenization_spaces": false,
            "tokenizer_class": "GPT2Tokenizer",
        }),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A byte-level tokenizer (vocabulary 259).
    pub(crate) fn byte_tokenizer_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        write_byte_level_tokenizer(dir.path()).expect("write");
        dir
    }

    #[test]
    fn alphabet_is_gpt2s() {
        let a = byte_level_alphabet();
        assert_eq!(a[b' ' as usize], "Ġ");
        assert_eq!(a[b'\n' as usize], "Ċ");
        assert_eq!(a[b'A' as usize], "A");
        let unique: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(unique.len(), 256);
    }

    #[test]
    fn byte_level_roundtrip_and_specials() {
        let dir = byte_tokenizer_dir();
        let tok = TextTokenizer::from_dir(dir.path()).expect("load");
        let text = "héllo 42 😀<|im_end|>";
        let ids = tok.encode(text).expect("encode");
        assert_eq!(ids.last(), Some(&258));
        assert_eq!(ids.len(), "héllo 42 😀".len() + 1);
        assert_eq!(tok.decode(&ids, false).expect("decode"), text);
        assert_eq!(tok.eos_id(), Some(258));
        assert!(tok.model_chat_template().is_ok());
    }

    #[test]
    fn directory_without_tokenizer_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = TextTokenizer::from_dir(dir.path())
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }
}
