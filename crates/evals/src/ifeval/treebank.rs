//! `nltk.word_tokenize` (nltk 3.10): Punkt sentences, each split by
//! `NLTKWordTokenizer`, the improved Treebank tokenizer. IFEval's
//! `change_case:capital_word_frequency` counts the tokens that are
//! `isupper()`, so where this splits (contractions such as `DON'T` into
//! `DO` + `N'T`, `CANNOT` into `CAN` + `NOT`, punctuation between capitals)
//! decides the count.
//!
//! The rules are nltk's regexes, applied in nltk's order. Two spellings
//! differ without changing what matches: the possessive `[...]*+` of the
//! final-period rule is an atomic group, and Python's `$` (end, or before a
//! final newline) is written `(?=\n?\z)` where the difference could matter.
//! nltk compiles the contraction rules with the stdlib `re`, whose `\b`
//! counts letters and digits by Python's `isalnum`; here `\b` is Unicode's
//! word boundary, which differs only next to combining marks or non-decimal
//! digits such as `²`.

use std::sync::LazyLock;

use fancy_regex::Regex;

use super::punkt::sent_tokenize;
use super::pystr::{py_isupper, py_split_whitespace};

/// A rule: a pattern and its replacement (`${n}` for Python's `\n`).
type Rule = (Regex, &'static str);

fn rules(specs: &[(&str, &'static str)]) -> Vec<Rule> {
    specs
        .iter()
        .map(|&(p, r)| (Regex::new(p).expect("treebank rule compiles"), r))
        .collect()
}

static STARTING_QUOTES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        (r"([«“‘„]|[`]+)", " ${1} "),
        (r#"^""#, "``"),
        (r"(``)", " ${1} "),
        (r#"([ (\[{<])("|'{2})"#, "${1} `` "),
        (r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", "${1} "),
    ])
});

static PUNCTUATION: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        (r#"([^.])(\.)((?>[\]\)}>"'»”’ ]*))\s*$"#, "${1} ${2} ${3} "),
        (r"([:,])([^\d])", " ${1} ${2}"),
        (r"([:,])(?=\n?\z)", " ${1} "),
        (r"\.{2,}", " ${0} "),
        (r"[;@#$%&]", " ${0} "),
        (r"[\x{2012}-\x{2015}]", " ${0} "),
        (r#"([^.])(\.)([\]\)}>"']*)\s*$"#, "${1} ${2}${3} "),
        (r"[?!]", " ${0} "),
        (r"([^'])' ", "${1} ' "),
        (r"[*]", " ${0} "),
        // PARENS_BRACKETS, then DOUBLE_DASHES.
        (r"[\]\[\(\)\{\}<>]", " ${0} "),
        (r"--", " -- "),
    ])
});

static ENDING_QUOTES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        (r"([»”’])", " ${1} "),
        (r"''", " '' "),
        (r#"""#, " '' "),
        (r"\s+", " "),
        (r"([^' ])('[sS]|'[mM]|'[dD]|') ", "${1} ${2} "),
        (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "${1} ${2} "),
    ])
});

static CONTRACTIONS: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        (r"(?i)\b(can)(not)\b", " ${1} ${2} "),
        (r"(?i)\b(d)('ye)\b", " ${1} ${2} "),
        (r"(?i)\b(gim)(me)\b", " ${1} ${2} "),
        (r"(?i)\b(gon)(na)\b", " ${1} ${2} "),
        (r"(?i)\b(got)(ta)\b", " ${1} ${2} "),
        (r"(?i)\b(lem)(me)\b", " ${1} ${2} "),
        (r"(?i)\b(more)('n)\b", " ${1} ${2} "),
        (r"(?i)\b(wan)(na)(?=\s)", " ${1} ${2} "),
        (r"(?i) ('t)(is)\b", " ${1} ${2} "),
        (r"(?i) ('t)(was)\b", " ${1} ${2} "),
    ])
});

fn apply(text: String, rules: &[Rule]) -> String {
    rules.iter().fold(text, |t, (re, rep)| {
        // A rule that hits the backtracking limit leaves the text as is;
        // nltk's own patterns are simple enough that this never happens.
        re.try_replacen(&t, 0, *rep)
            .map(|c| c.into_owned())
            .unwrap_or(t)
    })
}

/// `NLTKWordTokenizer().tokenize(sentence)`.
fn tokenize_sentence(sentence: &str) -> Vec<String> {
    let mut text = apply(sentence.to_string(), &STARTING_QUOTES);
    text = apply(text, &PUNCTUATION);
    text = format!(" {text} ");
    text = apply(text, &ENDING_QUOTES);
    text = apply(text, &CONTRACTIONS);
    py_split_whitespace(&text).map(str::to_string).collect()
}

/// `nltk.word_tokenize(text)`.
pub(crate) fn word_tokenize(text: &str) -> Vec<String> {
    sent_tokenize(text)
        .into_iter()
        .flat_map(tokenize_sentence)
        .collect()
}

/// The number of `word_tokenize` tokens that are `isupper()`.
pub(crate) fn count_capital_words(text: &str) -> usize {
    word_tokenize(text).iter().filter(|w| py_isupper(w)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nltk_doc_example() {
        let s = "Good muffins cost $3.88 (roughly 3,36 euros)\nin New York.  Please buy me\ntwo of them.\nThanks.";
        assert_eq!(
            tokenize_sentence(s),
            [
                "Good", "muffins", "cost", "$", "3.88", "(", "roughly", "3,36", "euros", ")", "in",
                "New", "York.", "Please", "buy", "me", "two", "of", "them.", "Thanks", "."
            ]
        );
    }

    #[test]
    fn contractions_split_capitals() {
        assert_eq!(
            tokenize_sentence("I DON'T KNOW."),
            ["I", "DO", "N'T", "KNOW", "."]
        );
        assert_eq!(count_capital_words("WE CANNOT GO"), 4);
    }
}
