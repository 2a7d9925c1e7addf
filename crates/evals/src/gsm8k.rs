//! GSM8K scoring as lm-evaluation-harness's `gsm8k.yaml` does it: two
//! answer filters over the greedy response and one exact-match metric.
//!
//! - `strict-match`: the first match of `#### (\-?[0-9\.\,]+)`, its group;
//! - `flexible-extract`: the *last* match of `(-?[$0-9.,]{2,})|(-?[0-9]+)`,
//!   its first non-empty group;
//!
//! each stripped, `[invalid]` when nothing matches (lm-eval's
//! `RegexFilter` + `take_first`). `exact_match` then deletes, from both the
//! extracted answer and the reference answer, `,`, `$`, everything up to
//! the last `#### ` and a final `.`, lower-cases both and compares them
//! (`exact_match_hf_evaluate` with the YAML's `regexes_to_ignore`,
//! `ignore_case: true`). Python's `re` and Rust's `regex` agree on these
//! patterns (leftmost-first alternation, greedy classes); the one place
//! they differ, `$` also matching before a final newline, is handled by
//! hand in [`ignore_regexes`].

use std::sync::OnceLock;

use regex::Regex;

/// lm-eval's fallback when a filter finds nothing.
pub const INVALID: &str = "[invalid]";

/// The stop sequences of `gsm8k.yaml` (`generation_kwargs.until`).
pub const UNTIL: [&str; 3] = ["Question:", "</s>", "<|im_end|>"];

/// `max_gen_toks` (lm-eval's default; the YAML sets none).
pub const MAX_GEN_TOKS: usize = 256;

/// `num_fewshot` of `gsm8k.yaml`.
pub const NUM_FEWSHOT: usize = smolsweep_config::benchmarks::GSM8K_FEWSHOT as usize;

pub(crate) fn strict_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"#### (\-?[0-9\.\,]+)").expect("static regex"))
}

fn flexible_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").expect("static regex"))
}

fn upto_last_hashes_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?s).*#### ").expect("static regex"))
}

/// Python's `str.strip()` (Unicode whitespace, including the separators
/// \x1c-\x1f that Rust's `trim` keeps).
pub fn py_strip(s: &str) -> &str {
    crate::text::py_strip(s)
}

/// The `strict-match` answer.
pub fn extract_strict(response: &str) -> String {
    match strict_re().captures(response) {
        Some(c) => py_strip(c.get(1).map_or("", |m| m.as_str())).to_owned(),
        None => INVALID.to_owned(),
    }
}

/// The `flexible-extract` answer (group_select -1: the last match).
pub fn extract_flexible(response: &str) -> String {
    match flexible_re().captures_iter(response).last() {
        Some(c) => {
            // findall gives a tuple of both groups; lm-eval keeps the
            // first non-empty one.
            let g = c
                .iter()
                .skip(1)
                .flatten()
                .map(|m| m.as_str())
                .find(|s| !s.is_empty());
            match g {
                Some(s) => py_strip(s).to_owned(),
                None => INVALID.to_owned(),
            }
        }
        None => INVALID.to_owned(),
    }
}

/// `regexes_to_ignore` applied in order, then lower-casing.
pub fn normalize(s: &str) -> String {
    let s = s.replace([',', '$'], "");
    let s = upto_last_hashes_re().replace_all(&s, "").into_owned();
    let s = ignore_final_dot(&s);
    // numpy compares fixed-width unicode arrays, which ignores trailing NULs.
    s.to_lowercase().trim_end_matches('\0').to_owned()
}

/// `re.sub(r"\.$", "", s)`: Python's `$` matches at the end and before a
/// final newline, so `"5.\n"` loses its dot too.
fn ignore_final_dot(s: &str) -> String {
    if let Some(head) = s.strip_suffix(".\n") {
        format!("{head}\n")
    } else if let Some(head) = s.strip_suffix('.') {
        head.to_owned()
    } else {
        s.to_owned()
    }
}

/// lm-eval's `exact_match` for one (extracted answer, reference) pair.
pub fn exact_match(extracted: &str, reference: &str) -> bool {
    normalize(extracted) == normalize(reference)
}

/// Cuts a decoded generation at the first stop sequence, as lm-eval's
/// `for term in until: s = s.split(term)[0]`.
pub fn cut_at_stops(text: &str, until: &[&str]) -> String {
    let mut s = text;
    for term in until {
        if term.is_empty() {
            continue;
        }
        if let Some(i) = s.find(term) {
            s = &s[..i];
        }
    }
    s.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_takes_the_first_hashes_answer() {
        assert_eq!(extract_strict("so 5\n#### 1,234.\n#### 9"), "1,234.");
        assert_eq!(extract_strict("#### -7"), "-7");
        assert_eq!(extract_strict("####7"), INVALID);
    }

    #[test]
    fn flexible_takes_the_last_number() {
        assert_eq!(extract_flexible("10 then $1,000."), "$1,000.");
        assert_eq!(extract_flexible("a 7 b"), "7");
        assert_eq!(extract_flexible("none"), INVALID);
    }

    #[test]
    fn exact_match_ignores_commas_dollars_and_a_final_dot() {
        assert!(exact_match("$1,234.", "blah\n#### 1234"));
        assert!(exact_match("-7", "#### -7"));
        assert!(!exact_match("7", "#### -7"));
        assert_eq!(normalize("5.\n"), "5\n");
    }

    #[test]
    fn stops_cut_at_the_earliest() {
        assert_eq!(cut_at_stops("a</s>b Question: c", &UNTIL), "a");
        assert_eq!(cut_at_stops("abc", &UNTIL), "abc");
    }
}
