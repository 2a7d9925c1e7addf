//! NLTK's Punkt sentence tokenizer with its pretrained English model, as
//! `nltk.tokenize.PunktTokenizer("english")` (nltk 3.10) runs it: IFEval's
//! `length_constraints:number_sentences` counts the sentences it finds, and
//! `nltk.word_tokenize` (behind `change_case:capital_word_frequency`) splits
//! sentences with it first.
//!
//! Only the tokenizing half of Punkt is here (no training). The model is
//! nltk's `punkt_tab/english` data (abbreviations, collocations, sentence
//! starters, orthographic contexts), kept beside this file in
//! `punkt_english/` and compiled in. Offsets are byte offsets; the places
//! where Python adds code-point lengths only ever step over ASCII, so the
//! arithmetic is the same.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use fancy_regex::Regex as FancyRegex;
use regex::Regex;

use super::pystr::{is_py_space, py_strip};

const ABBREV_TYPES: &str = include_str!("punkt_english/abbrev_types.txt");
const COLLOCATIONS: &str = include_str!("punkt_english/collocations.tab");
const SENT_STARTERS: &str = include_str!("punkt_english/sent_starters.txt");
const ORTHO_CONTEXT: &str = include_str!("punkt_english/ortho_context.tab");

// Orthographic context flags, as nltk numbers them.
const ORTHO_BEG_LC: u32 = 1 << 4;
const ORTHO_MID_UC: u32 = 1 << 2;
const ORTHO_UC: u32 = (1 << 1) | (1 << 2) | (1 << 3);
const ORTHO_LC: u32 = (1 << 4) | (1 << 5) | (1 << 6);

/// The English model's parameters.
struct Params {
    abbrev_types: HashSet<&'static str>,
    collocations: HashSet<(&'static str, &'static str)>,
    sent_starters: HashSet<&'static str>,
    ortho_context: HashMap<&'static str, u32>,
}

static PARAMS: LazyLock<Params> = LazyLock::new(|| {
    // The files are nltk's own tab format: one entry a line, fields split
    // by tabs, no other escaping (an abbreviation may hold spaces).
    let lines = |s: &'static str| s.split('\n').filter(|l| !l.is_empty());
    Params {
        abbrev_types: lines(ABBREV_TYPES).collect(),
        sent_starters: lines(SENT_STARTERS).collect(),
        collocations: lines(COLLOCATIONS)
            .filter_map(|l| l.split_once('\t'))
            .collect(),
        ortho_context: lines(ORTHO_CONTEXT)
            .filter_map(|l| {
                let (k, v) = l.split_once('\t')?;
                Some((k, v.parse().ok()?))
            })
            .collect(),
    }
});

/// Punkt's `_re_non_word_chars`: characters that cannot appear within words.
const NON_WORD: &str = r#"(?:[)";}\]*:@'(\{\[\x{2018}\x{2019}\x{201C}\x{201D}\x{AB}\x{BB}?!])"#;
/// Punkt's `_re_multi_char_punct`: dashes and ellipses.
const MULTI_CHAR: &str = r"(?:-{2,}|\.{2,}|(?:\.\s){2,}\.)";

/// Punkt's word tokenizer (`PunktLanguageVars._word_tokenize_fmt`).
static WORD_RE: LazyLock<FancyRegex> = LazyLock::new(|| {
    let word_start = r#"[^("`{\[:;&\#*@)}\]\-,]"#;
    let pattern = format!(
        r"{MULTI_CHAR}|(?={word_start})\S+?(?=\s|$|{NON_WORD}|{MULTI_CHAR}|,(?=$|\s|{NON_WORD}|{MULTI_CHAR}))|\S"
    );
    FancyRegex::new(&pattern).expect("punkt word regex compiles")
});

/// `^-?[\.,]?\d[\d,\.-]*\.?$`: a token typed as `##number##`.
static NUMERIC_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^-?[.,]?\d[\d,.\-]*\.?$").expect("punkt numeric regex compiles"));
/// `[^\W\d]\.$` matched at the start: an initial such as `J.`.
static INITIAL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^\W\d]\.$").expect("punkt initial regex compiles"));
/// `re_boundary_realignment`: closing punctuation that belongs to the
/// sentence before a break.
static REALIGN_RE: LazyLock<FancyRegex> = LazyLock::new(|| {
    FancyRegex::new(
        r#"^["')\]}\x{2018}\x{2019}\x{201C}\x{201D}\x{AB}\x{BB}]+?(?:\s+|(?=--)|(?m:$))"#,
    )
    .expect("punkt realignment regex compiles")
});

/// One word token with Punkt's annotations.
struct Token<'a> {
    tok: &'a str,
    typ: String,
    period_final: bool,
    sentbreak: bool,
    abbr: bool,
    ellipsis: bool,
}

impl<'a> Token<'a> {
    fn new(tok: &'a str) -> Self {
        let lower = tok.to_lowercase();
        let typ = if NUMERIC_RE.is_match(&lower) {
            "##number##".to_string()
        } else {
            lower
        };
        Token {
            tok,
            typ,
            period_final: tok.ends_with('.'),
            sentbreak: false,
            abbr: false,
            ellipsis: false,
        }
    }

    fn type_no_period(&self) -> &str {
        if self.typ.chars().count() > 1 && self.typ.ends_with('.') {
            &self.typ[..self.typ.len() - 1]
        } else {
            &self.typ
        }
    }

    fn type_no_sentperiod(&self) -> &str {
        if self.sentbreak {
            self.type_no_period()
        } else {
            &self.typ
        }
    }

    fn first_char(&self) -> Option<char> {
        self.tok.chars().next()
    }

    /// Python's `tok[0].isupper()`.
    fn first_upper(&self) -> bool {
        self.first_char()
            .is_some_and(|c| super::pystr::py_isupper(c.encode_utf8(&mut [0; 4])))
    }

    /// Python's `tok[0].islower()`.
    fn first_lower(&self) -> bool {
        self.first_char()
            .is_some_and(|c| super::pystr::py_islower(c.encode_utf8(&mut [0; 4])))
    }

    /// `\.\.+$`: the whole token is two or more periods.
    fn is_ellipsis(&self) -> bool {
        self.tok.len() >= 2 && self.tok.bytes().all(|b| b == b'.')
    }

    fn is_initial(&self) -> bool {
        INITIAL_RE.is_match(self.tok)
    }
}

/// `_tokenize_words`: Punkt's word tokens, line by line.
fn tokenize_words(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        if py_strip(line).is_empty() {
            continue;
        }
        for m in WORD_RE.find_iter(line).flatten() {
            out.push(Token::new(m.as_str()));
        }
    }
    out
}

/// `_first_pass_annotation`: decisions from the token's own type.
fn first_pass(tok: &mut Token<'_>, params: &Params) {
    let t = tok.tok;
    if t == "." || t == "?" || t == "!" {
        tok.sentbreak = true;
    } else if tok.is_ellipsis() {
        tok.ellipsis = true;
    } else if tok.period_final && !t.ends_with("..") {
        let stem = t[..t.len() - 1].to_lowercase();
        let last = stem.rsplit('-').next().unwrap_or(&stem);
        if params.abbrev_types.contains(stem.as_str()) || params.abbrev_types.contains(last) {
            tok.abbr = true;
        } else {
            tok.sentbreak = true;
        }
    }
}

/// The orthographic heuristic: `Some(true)` sentence starter,
/// `Some(false)` not, `None` unknown.
fn ortho_heuristic(tok: &Token<'_>, params: &Params) -> Option<bool> {
    if matches!(tok.tok, ";" | ":" | "," | "." | "!" | "?") {
        return Some(false);
    }
    let ctx = params
        .ortho_context
        .get(tok.type_no_sentperiod())
        .copied()
        .unwrap_or(0);
    if tok.first_upper() && ctx & ORTHO_LC != 0 && ctx & ORTHO_MID_UC == 0 {
        return Some(true);
    }
    if tok.first_lower() && (ctx & ORTHO_UC != 0 || ctx & ORTHO_BEG_LC == 0) {
        return Some(false);
    }
    None
}

/// `_second_pass_annotation`: decisions from the token and the next one.
fn second_pass(tok1: &mut Token<'_>, tok2: &Token<'_>, params: &Params) {
    if !tok1.period_final {
        return;
    }
    let typ = tok1.type_no_period().to_string();
    let next_typ = tok2.type_no_sentperiod();
    let is_initial = tok1.is_initial();

    if params.collocations.contains(&(typ.as_str(), next_typ)) {
        tok1.sentbreak = false;
        tok1.abbr = true;
        return;
    }
    if (tok1.abbr || tok1.ellipsis) && !is_initial {
        if ortho_heuristic(tok2, params) == Some(true) {
            tok1.sentbreak = true;
            return;
        }
        if tok2.first_upper() && params.sent_starters.contains(next_typ) {
            tok1.sentbreak = true;
            return;
        }
    }
    if is_initial || typ == "##number##" {
        let starter = ortho_heuristic(tok2, params);
        if starter == Some(false) {
            tok1.sentbreak = false;
            tok1.abbr = true;
            return;
        }
        let next_ctx = params.ortho_context.get(next_typ).copied().unwrap_or(0);
        if starter.is_none() && is_initial && tok2.first_upper() && next_ctx & ORTHO_LC == 0 {
            tok1.sentbreak = false;
            tok1.abbr = true;
        }
    }
}

/// `text_contains_sentbreak`: a sentence break before the context's last
/// token.
fn text_contains_sentbreak(text: &str, params: &Params) -> bool {
    let mut toks = tokenize_words(text);
    for t in &mut toks {
        first_pass(t, params);
    }
    // The second pass looks at each token with its successor, in order;
    // the successor still carries only its first-pass annotation.
    for i in 0..toks.len().saturating_sub(1) {
        let (head, tail) = toks.split_at_mut(i + 1);
        second_pass(&mut head[i], &tail[0], params);
        if head[i].sentbreak {
            return true;
        }
    }
    false
}

/// One match of Punkt's period-context regex: a `.`, `?` or `!` followed
/// by punctuation or by whitespace and a token.
struct EndContext {
    start: usize,
    after_tok: (usize, usize),
    next_tok_start: Option<usize>,
}

/// `period_context_re().finditer`, written out by hand: the regex is one
/// character plus a lookahead, so every candidate character is tried.
fn period_contexts(text: &str) -> Vec<EndContext> {
    static NON_WORD_RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(&format!("^{NON_WORD}")).expect("non-word regex compiles"));
    static WS_TOKEN_RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\s+(\S+)").expect("whitespace-token regex compiles"));
    let mut out = Vec::new();
    for (i, c) in text.char_indices() {
        if !matches!(c, '.' | '?' | '!') {
            continue;
        }
        let rest = &text[i + 1..];
        if let Some(m) = NON_WORD_RE.find(rest) {
            out.push(EndContext {
                start: i,
                after_tok: (i + 1, i + 1 + m.end()),
                next_tok_start: None,
            });
        } else if let Some(caps) = WS_TOKEN_RE.captures(rest) {
            let (Some(all), Some(tok)) = (caps.get(0), caps.get(1)) else {
                continue;
            };
            out.push(EndContext {
                start: i,
                after_tok: (i + 1, i + 1 + all.end()),
                next_tok_start: Some(i + 1 + tok.start()),
            });
        }
    }
    out
}

/// `_get_last_whitespace_index`: the last of `string.whitespace`, or 0.
fn last_whitespace_index(text: &str) -> usize {
    text.bytes()
        .rposition(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(0)
}

/// `_match_potential_end_contexts`: each candidate with the text from the
/// word before it to the token after it; candidates whose words overlap
/// (as in `!!!`) keep only the last.
fn potential_end_contexts(text: &str) -> Vec<(EndContext, String)> {
    let mut out = Vec::new();
    let mut prev_slice = (0usize, 0usize);
    let mut prev: Option<EndContext> = None;
    let context = |slice: (usize, usize), m: &EndContext| {
        let word = text.get(slice.0..slice.1).unwrap_or("");
        format!(
            "{word}{}{}",
            &text[m.start..m.start + 1],
            &text[m.after_tok.0..m.after_tok.1]
        )
    };
    for m in period_contexts(text) {
        let before = text.get(prev_slice.1..m.start).unwrap_or("");
        let mut idx = last_whitespace_index(before);
        if idx != 0 {
            idx += prev_slice.1 + 1;
        } else {
            idx = prev_slice.0;
        }
        let word_slice = (idx, m.start);
        if let Some(p) = prev.take() {
            if prev_slice.1 <= word_slice.0 {
                let ctx = context(prev_slice, &p);
                out.push((p, ctx));
            }
        }
        prev = Some(m);
        prev_slice = word_slice;
    }
    if let Some(p) = prev {
        let ctx = context(prev_slice, &p);
        out.push((p, ctx));
    }
    out
}

/// `span_tokenize` with boundary realignment: the sentence spans.
fn sentence_spans(text: &str) -> Vec<(usize, usize)> {
    let params = &*PARAMS;
    let mut slices = Vec::new();
    let mut last_break = 0;
    for (m, ctx) in potential_end_contexts(text) {
        if text_contains_sentbreak(&ctx, params) {
            slices.push((last_break, m.start + 1));
            last_break = m.next_tok_start.unwrap_or(m.start + 1);
        }
    }
    let end = text.trim_end_matches(is_py_space).len();
    slices.push((last_break, end));

    let mut out = Vec::new();
    let mut realign = 0;
    for (i, &(s1_start, s1_stop)) in slices.iter().enumerate() {
        let s1 = (s1_start + realign, s1_stop);
        let Some(&(s2_start, s2_stop)) = slices.get(i + 1) else {
            if s1.0 < s1.1 {
                out.push(s1);
            }
            continue;
        };
        let s2_text = text.get(s2_start..s2_stop.max(s2_start)).unwrap_or("");
        match REALIGN_RE.find(s2_text).ok().flatten() {
            Some(m) => {
                let kept = m.as_str().trim_end_matches(is_py_space).len();
                out.push((s1.0, s2_start + kept));
                realign = m.end();
            }
            None => {
                realign = 0;
                if s1.0 < s1.1 {
                    out.push(s1);
                }
            }
        }
    }
    out
}

/// `PunktTokenizer("english").tokenize(text)`.
pub(crate) fn sent_tokenize(text: &str) -> Vec<&str> {
    sentence_spans(text)
        .into_iter()
        .filter_map(|(s, e)| text.get(s..e))
        .collect()
}

/// `instructions_util.count_sentences`.
pub(crate) fn count_sentences(text: &str) -> usize {
    sentence_spans(text).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_loads() {
        let p = &*PARAMS;
        assert_eq!(p.abbrev_types.len(), 156);
        assert!(p.abbrev_types.contains("dr"));
        assert_eq!(p.sent_starters.len(), 39);
        assert_eq!(p.collocations.len(), 37);
        assert_eq!(p.ortho_context.len(), 20366);
    }

    #[test]
    fn nltk_doc_examples() {
        assert_eq!(
            sent_tokenize("Hello! How are you?"),
            ["Hello!", "How are you?"]
        );
        assert_eq!(
            sent_tokenize("Very bad acting!!! I promise."),
            ["Very bad acting!!!", "I promise."]
        );
        assert_eq!(sent_tokenize("(Sent1.) Sent2."), ["(Sent1.)", "Sent2."]);
        assert_eq!(
            sent_tokenize("Mr. Smith went to Washington. He arrived at 5 p.m. on Monday."),
            [
                "Mr. Smith went to Washington.",
                "He arrived at 5 p.m. on Monday."
            ]
        );
    }
}
