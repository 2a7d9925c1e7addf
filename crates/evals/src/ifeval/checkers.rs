//! The 25 instruction checkers of Google's IFEval (`instructions.py`,
//! registered in `instructions_registry.py`), each built once from its
//! kwargs and then applied to any number of response variants.
//!
//! kwargs follow lm-eval's `utils.py`: entries that are falsy in Python
//! (null, 0, "", [], {}, false) are dropped before the checker sees them.
//! Where the reference would then draw a random value (a missing threshold,
//! relation, keyword, letter or language, a negative threshold, an
//! `nth_paragraph` outside `1..=num_paragraphs`) this refuses instead, with
//! an error naming the instruction and the kwarg: a score must not depend
//! on chance. A truthy kwarg the checker does not take is refused too (the
//! reference raises `TypeError`).
//!
//! The keyword, forbidden-word, section-splitter and postscript-marker
//! kwargs are regular expressions in the reference (`re.search(keyword,
//! ...)`), and are here too; a pattern the `regex` crate cannot compile is
//! refused. Known divergence: `keywords:forbidden_words` wraps the word in
//! `\b`, which here is Unicode's word boundary and in Python's `re` is the
//! `isalnum()` one; they differ only beside combining marks or digits such
//! as `²`.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::pystr::{py_islower, py_isupper, py_len, py_lower, py_split_whitespace, py_strip, RE_S};
use super::{langid, punkt, pyjson, treebank, IfEvalError};

/// The 25 instruction ids of the reference registry.
pub const INSTRUCTION_IDS: [&str; 25] = [
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
    "startend:quotation",
];

/// `instructions_util.LANGUAGE_CODES`: the languages the reference accepts.
const LANGUAGE_CODES: [&str; 30] = [
    "en", "es", "pt", "ar", "hi", "fr", "ru", "de", "ja", "it", "bn", "uk", "th", "ur", "ta", "te",
    "bg", "ko", "pl", "he", "fa", "vi", "ne", "sw", "kn", "mr", "gu", "pa", "ml", "fi",
];

/// `_CONSTRAINED_RESPONSE_OPTIONS`.
const CONSTRAINED_RESPONSES: [&str; 3] = [
    "My answer is yes.",
    "My answer is no.",
    "My answer is maybe.",
];

/// `_COMPARISON_RELATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    LessThan,
    AtLeast,
}

impl Relation {
    fn holds(self, count: usize, threshold: i64) -> bool {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        match self {
            Relation::LessThan => count < threshold,
            Relation::AtLeast => count >= threshold,
        }
    }
}

/// One instruction with its arguments resolved.
#[derive(Debug)]
pub(crate) enum Instruction {
    KeywordExistence {
        keywords: Vec<Regex>,
    },
    KeywordFrequency {
        keyword: Regex,
        frequency: i64,
        relation: Relation,
    },
    ForbiddenWords {
        words: Vec<Regex>,
    },
    LetterFrequency {
        letter: char,
        frequency: i64,
        relation: Relation,
    },
    ResponseLanguage {
        language: String,
    },
    NumberSentences {
        num: i64,
        relation: Relation,
    },
    NumberParagraphs {
        num: i64,
    },
    NumberWords {
        num: i64,
        relation: Relation,
    },
    NthParagraphFirstWord {
        num_paragraphs: i64,
        nth: i64,
        first_word: String,
    },
    NumberPlaceholders {
        num: i64,
    },
    Postscript {
        pattern: Regex,
    },
    NumberBulletLists {
        num: i64,
    },
    ConstrainedResponse,
    NumberHighlightedSections {
        num: i64,
    },
    MultipleSections {
        splitter: Regex,
        num: i64,
    },
    JsonFormat,
    Title,
    TwoResponses,
    RepeatPrompt {
        prompt_to_repeat: String,
    },
    EndChecker {
        end_phrase: String,
    },
    CapitalWordFrequency {
        frequency: i64,
        relation: Relation,
    },
    EnglishCapital,
    EnglishLowercase,
    NoComma,
    Quotation,
}

/// The kwargs an instruction was given, with Python-falsy entries dropped.
struct Kwargs<'a> {
    id: &'a str,
    map: Map<String, Value>,
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

impl<'a> Kwargs<'a> {
    fn new(id: &'a str, kwargs: &Value, accepted: &[&str]) -> Result<Self, IfEvalError> {
        let map: Map<String, Value> = match kwargs {
            Value::Null => Map::new(),
            Value::Object(o) => o
                .iter()
                .filter(|(_, v)| truthy(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            other => {
                return Err(IfEvalError::KwargsNotObject {
                    id: id.to_string(),
                    got: other.to_string(),
                })
            }
        };
        if let Some(k) = map.keys().find(|k| !accepted.contains(&k.as_str())) {
            return Err(IfEvalError::UnexpectedKwarg {
                id: id.to_string(),
                kwarg: k.clone(),
            });
        }
        Ok(Kwargs { id, map })
    }

    fn bad(&self, kwarg: &str, problem: impl Into<String>) -> IfEvalError {
        IfEvalError::BadKwarg {
            id: self.id.to_string(),
            kwarg: kwarg.to_string(),
            problem: problem.into(),
        }
    }

    fn get(&self, kwarg: &str) -> Result<&Value, IfEvalError> {
        self.map
            .get(kwarg)
            .ok_or_else(|| IfEvalError::MissingKwarg {
                id: self.id.to_string(),
                kwarg: kwarg.to_string(),
            })
    }

    /// An integer (an integral float is accepted, as Python compares it the same).
    fn int(&self, kwarg: &str) -> Result<i64, IfEvalError> {
        let v = self.get(kwarg)?;
        let n = match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        n.ok_or_else(|| self.bad(kwarg, format!("must be an integer, got {v}")))
    }

    /// A threshold the reference replaces with a random one when negative.
    fn count(&self, kwarg: &str) -> Result<i64, IfEvalError> {
        let n = self.int(kwarg)?;
        if n < 0 {
            return Err(self.bad(
                kwarg,
                format!("is {n}; the reference would draw a random value for a negative one"),
            ));
        }
        Ok(n)
    }

    fn string(&self, kwarg: &str) -> Result<&str, IfEvalError> {
        let v = self.get(kwarg)?;
        v.as_str()
            .ok_or_else(|| self.bad(kwarg, format!("must be a string, got {v}")))
    }

    fn strings(&self, kwarg: &str) -> Result<Vec<&str>, IfEvalError> {
        let v = self.get(kwarg)?;
        let list = v
            .as_array()
            .ok_or_else(|| self.bad(kwarg, format!("must be a list of strings, got {v}")))?;
        list.iter()
            .map(|s| {
                s.as_str()
                    .ok_or_else(|| self.bad(kwarg, format!("must hold strings, got {s}")))
            })
            .collect()
    }

    fn relation(&self, kwarg: &str) -> Result<Relation, IfEvalError> {
        match self.string(kwarg)? {
            "less than" => Ok(Relation::LessThan),
            "at least" => Ok(Relation::AtLeast),
            other => Err(self.bad(
                kwarg,
                format!("must be \"less than\" or \"at least\", got {other:?}"),
            )),
        }
    }

    fn regex(&self, kwarg: &str, pattern: &str) -> Result<Regex, IfEvalError> {
        Regex::new(pattern).map_err(|e| self.bad(kwarg, format!("is not a valid regex: {e}")))
    }
}

impl Instruction {
    /// Builds the checker for `id` from its kwargs (an object or null).
    pub(crate) fn new(id: &str, kwargs: &Value) -> Result<Self, IfEvalError> {
        use Instruction as I;
        let k = |accepted: &[&str]| Kwargs::new(id, kwargs, accepted);
        Ok(match id {
            "keywords:existence" => {
                let k = k(&["keywords"])?;
                let keywords = k
                    .strings("keywords")?
                    .into_iter()
                    .map(|w| k.regex("keywords", &format!("(?i){w}")))
                    .collect::<Result<_, _>>()?;
                I::KeywordExistence { keywords }
            }
            "keywords:frequency" => {
                let k = k(&["keyword", "frequency", "relation"])?;
                let word = py_strip(k.string("keyword")?);
                I::KeywordFrequency {
                    keyword: k.regex("keyword", &format!("(?i){word}"))?,
                    frequency: k.count("frequency")?,
                    relation: k.relation("relation")?,
                }
            }
            "keywords:forbidden_words" => {
                let k = k(&["forbidden_words"])?;
                let words = k
                    .strings("forbidden_words")?
                    .into_iter()
                    .map(|w| k.regex("forbidden_words", &format!(r"(?i)\b{w}\b")))
                    .collect::<Result<_, _>>()?;
                I::ForbiddenWords { words }
            }
            "keywords:letter_frequency" => {
                let k = k(&["letter", "let_frequency", "let_relation"])?;
                let letter = k.string("letter")?;
                let lower = py_lower(letter);
                let mut chars = lower.chars();
                let c = match (chars.next(), chars.next(), py_len(letter)) {
                    (Some(c @ 'a'..='z'), None, 1) => c,
                    _ => {
                        return Err(k.bad(
                            "letter",
                            format!("is {letter:?}; the reference would draw a random letter for anything but one ASCII letter"),
                        ))
                    }
                };
                I::LetterFrequency {
                    letter: c,
                    frequency: k.count("let_frequency")?,
                    relation: k.relation("let_relation")?,
                }
            }
            "language:response_language" => {
                let k = k(&["language"])?;
                let language = k.string("language")?;
                if !LANGUAGE_CODES.contains(&language) {
                    return Err(k.bad(
                        "language",
                        format!("is {language:?}, not one of the reference's LANGUAGE_CODES"),
                    ));
                }
                I::ResponseLanguage {
                    language: language.to_string(),
                }
            }
            "length_constraints:number_sentences" => {
                let k = k(&["num_sentences", "relation"])?;
                I::NumberSentences {
                    num: k.count("num_sentences")?,
                    relation: k.relation("relation")?,
                }
            }
            "length_constraints:number_paragraphs" => {
                let k = k(&["num_paragraphs"])?;
                I::NumberParagraphs {
                    num: k.count("num_paragraphs")?,
                }
            }
            "length_constraints:number_words" => {
                let k = k(&["num_words", "relation"])?;
                I::NumberWords {
                    num: k.count("num_words")?,
                    relation: k.relation("relation")?,
                }
            }
            "length_constraints:nth_paragraph_first_word" => {
                let k = k(&["num_paragraphs", "nth_paragraph", "first_word"])?;
                let num_paragraphs = k.count("num_paragraphs")?;
                let nth = k.int("nth_paragraph")?;
                if nth <= 0 || nth > num_paragraphs {
                    return Err(k.bad(
                        "nth_paragraph",
                        format!("is {nth}; the reference would draw a random one outside 1..={num_paragraphs}"),
                    ));
                }
                I::NthParagraphFirstWord {
                    num_paragraphs,
                    nth,
                    first_word: py_lower(k.string("first_word")?),
                }
            }
            "detectable_content:number_placeholders" => {
                let k = k(&["num_placeholders"])?;
                I::NumberPlaceholders {
                    num: k.count("num_placeholders")?,
                }
            }
            "detectable_content:postscript" => {
                let k = k(&["postscript_marker"])?;
                let marker = py_strip(k.string("postscript_marker")?);
                let pattern = match marker {
                    "P.P.S" => format!(r"(?m){RE_S}*p\.{RE_S}?p\.{RE_S}?s.*$"),
                    "P.S." => format!(r"(?m){RE_S}*p\.{RE_S}?s\..*$"),
                    other => format!(r"(?m){RE_S}*{}.*$", py_lower(other)),
                };
                I::Postscript {
                    pattern: k.regex("postscript_marker", &pattern)?,
                }
            }
            "detectable_format:number_bullet_lists" => {
                let k = k(&["num_bullets"])?;
                I::NumberBulletLists {
                    num: k.count("num_bullets")?,
                }
            }
            "detectable_format:constrained_response" => {
                k(&[])?;
                I::ConstrainedResponse
            }
            "detectable_format:number_highlighted_sections" => {
                let k = k(&["num_highlights"])?;
                I::NumberHighlightedSections {
                    num: k.count("num_highlights")?,
                }
            }
            "detectable_format:multiple_sections" => {
                let k = k(&["section_spliter", "num_sections"])?;
                let splitter = py_strip(k.string("section_spliter")?);
                I::MultipleSections {
                    splitter: k.regex(
                        "section_spliter",
                        &format!(r"{RE_S}?{splitter}{RE_S}?\d+{RE_S}?"),
                    )?,
                    num: k.count("num_sections")?,
                }
            }
            "detectable_format:json_format" => {
                k(&[])?;
                I::JsonFormat
            }
            "detectable_format:title" => {
                k(&[])?;
                I::Title
            }
            "combination:two_responses" => {
                k(&[])?;
                I::TwoResponses
            }
            "combination:repeat_prompt" => {
                let k = k(&["prompt_to_repeat"])?;
                I::RepeatPrompt {
                    prompt_to_repeat: k.string("prompt_to_repeat")?.to_string(),
                }
            }
            "startend:end_checker" => {
                let k = k(&["end_phrase"])?;
                I::EndChecker {
                    end_phrase: py_lower(py_strip(k.string("end_phrase")?)),
                }
            }
            "change_case:capital_word_frequency" => {
                let k = k(&["capital_frequency", "capital_relation"])?;
                // Unlike the other thresholds the reference keeps a
                // negative capital_frequency as given.
                I::CapitalWordFrequency {
                    frequency: k.int("capital_frequency")?,
                    relation: k.relation("capital_relation")?,
                }
            }
            "change_case:english_capital" => {
                k(&[])?;
                I::EnglishCapital
            }
            "change_case:english_lowercase" => {
                k(&[])?;
                I::EnglishLowercase
            }
            "punctuation:no_comma" => {
                k(&[])?;
                I::NoComma
            }
            "startend:quotation" => {
                k(&[])?;
                I::Quotation
            }
            other => return Err(IfEvalError::UnknownInstruction(other.to_string())),
        })
    }

    /// The reference's `check_following(value)`.
    pub(crate) fn check(&self, value: &str) -> bool {
        use Instruction as I;
        match self {
            I::KeywordExistence { keywords } => keywords.iter().all(|k| k.is_match(value)),
            I::KeywordFrequency {
                keyword,
                frequency,
                relation,
            } => relation.holds(keyword.find_iter(value).count(), *frequency),
            I::ForbiddenWords { words } => !words.iter().any(|w| w.is_match(value)),
            I::LetterFrequency {
                letter,
                frequency,
                relation,
            } => relation.holds(
                py_lower(value).chars().filter(|c| c == letter).count(),
                *frequency,
            ),
            I::ResponseLanguage { language } => langid::detect(value).is_none_or(|l| l == language),
            I::NumberSentences { num, relation } => {
                relation.holds(punkt::count_sentences(value), *num)
            }
            I::NumberParagraphs { num } => check_paragraphs(value, *num),
            I::NumberWords { num, relation } => relation.holds(count_words(value), *num),
            I::NthParagraphFirstWord {
                num_paragraphs,
                nth,
                first_word,
            } => check_nth_paragraph(value, *num_paragraphs, *nth, first_word),
            I::NumberPlaceholders { num } => {
                static RE: LazyLock<Regex> =
                    LazyLock::new(|| Regex::new(r"\[.*?\]").expect("placeholder regex compiles"));
                count_ge(RE.find_iter(value).count(), *num)
            }
            I::Postscript { pattern } => pattern.is_match(&py_lower(value)),
            I::NumberBulletLists { num } => {
                static STAR: LazyLock<Regex> = LazyLock::new(|| {
                    Regex::new(&format!(r"(?m)^{RE_S}*\*[^*].*$")).expect("bullet regex compiles")
                });
                static DASH: LazyLock<Regex> = LazyLock::new(|| {
                    Regex::new(&format!(r"(?m)^{RE_S}*-.*$")).expect("bullet regex compiles")
                });
                let n = STAR.find_iter(value).count() + DASH.find_iter(value).count();
                i64::try_from(n).is_ok_and(|n| n == *num)
            }
            I::ConstrainedResponse => {
                let v = py_strip(value);
                CONSTRAINED_RESPONSES.iter().any(|r| v.contains(r))
            }
            I::NumberHighlightedSections { num } => count_ge(count_highlights(value), *num),
            I::MultipleSections { splitter, num } => {
                count_ge(splitter.find_iter(value).count(), *num)
            }
            I::JsonFormat => {
                let v = py_strip(value);
                let v = ["```json", "```Json", "```JSON", "```"]
                    .iter()
                    .fold(v, |v, p| v.strip_prefix(p).unwrap_or(v));
                let v = v.strip_suffix("```").unwrap_or(v);
                pyjson::python_json_loads_ok(py_strip(v))
            }
            I::Title => {
                static RE: LazyLock<Regex> =
                    LazyLock::new(|| Regex::new(r"<<[^\n]+>>").expect("title regex compiles"));
                RE.find_iter(value).any(|m| {
                    let t = m.as_str().trim_start_matches('<').trim_end_matches('>');
                    !py_strip(t).is_empty()
                })
            }
            I::TwoResponses => check_two_responses(value),
            I::RepeatPrompt { prompt_to_repeat } => {
                py_lower(py_strip(value)).starts_with(&py_lower(py_strip(prompt_to_repeat)))
            }
            I::EndChecker { end_phrase } => {
                py_lower(py_strip(value).trim_matches('"')).ends_with(end_phrase.as_str())
            }
            I::CapitalWordFrequency {
                frequency,
                relation,
            } => relation.holds(treebank::count_capital_words(value), *frequency),
            I::EnglishCapital => {
                py_isupper(value) && langid::detect(value).is_none_or(|l| l == "en")
            }
            I::EnglishLowercase => {
                py_islower(value) && langid::detect(value).is_none_or(|l| l == "en")
            }
            I::NoComma => !value.contains(','),
            I::Quotation => {
                let v = py_strip(value);
                py_len(v) > 1 && v.starts_with('"') && v.ends_with('"')
            }
        }
    }
}

fn count_ge(count: usize, threshold: i64) -> bool {
    Relation::AtLeast.holds(count, threshold)
}

/// `instructions_util.count_words`: nltk's `RegexpTokenizer(r"\w+")`
/// (nltk compiles it with the `regex` module, whose `\w` is Unicode's, as
/// the `regex` crate's).
pub(crate) fn count_words(text: &str) -> usize {
    static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\w+").expect("word regex compiles"));
    RE.find_iter(text).count()
}

/// `ParagraphChecker`: paragraphs split on `***`; an empty one is allowed
/// only first or last.
fn check_paragraphs(value: &str, num: i64) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(r"{RE_S}?\*\*\*{RE_S}?")).expect("paragraph regex compiles")
    });
    let paragraphs: Vec<&str> = RE.split(value).collect();
    let mut count = paragraphs.len();
    for (i, p) in paragraphs.iter().enumerate() {
        if py_strip(p).is_empty() {
            if i == 0 || i == paragraphs.len() - 1 {
                count -= 1;
            } else {
                return false;
            }
        }
    }
    i64::try_from(count).is_ok_and(|c| c == num)
}

/// `ParagraphFirstWordCheck`: paragraphs split on `\n\n`.
fn check_nth_paragraph(value: &str, num_paragraphs: i64, nth: i64, first_word: &str) -> bool {
    let paragraphs: Vec<&str> = value.split("\n\n").collect();
    let count = paragraphs
        .iter()
        .filter(|p| !py_strip(p).is_empty())
        .count();
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    if nth > count {
        return false;
    }
    // nth is at least 1 (checked when built) and at most the number of
    // non-empty paragraphs, so it indexes the raw list.
    let Some(paragraph) = usize::try_from(nth - 1)
        .ok()
        .and_then(|i| paragraphs.get(i))
        .map(|p| py_strip(p))
    else {
        return false;
    };
    if paragraph.is_empty() {
        return false;
    }
    let Some(word) = py_split_whitespace(paragraph).next() else {
        return false;
    };
    let word = py_strip(word)
        .trim_start_matches('\'')
        .trim_start_matches('"');
    let mut got = String::new();
    for c in word.chars() {
        if matches!(c, '.' | ',' | '?' | '!' | '\'' | '"') {
            break;
        }
        got.extend(c.to_lowercase());
    }
    count == num_paragraphs && got == first_word
}

/// `HighlightSectionChecker`: `*x*` spans with text, plus `**x**` spans with
/// text, each found on its own.
fn count_highlights(value: &str) -> usize {
    static SINGLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\*[^\n*]*\*").expect("highlight regex compiles"));
    static DOUBLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\*\*[^\n*]*\*\*").expect("highlight regex compiles"));
    let single = SINGLE
        .find_iter(value)
        .filter(|m| !py_strip(m.as_str().trim_matches('*')).is_empty())
        .count();
    let double = DOUBLE
        .find_iter(value)
        .filter(|m| {
            let s = m.as_str();
            let s = s.strip_prefix("**").unwrap_or(s);
            let s = s.strip_suffix("**").unwrap_or(s);
            !py_strip(s).is_empty()
        })
        .count();
    single + double
}

/// `TwoResponsesChecker`: two different non-empty responses around
/// `******`, empty pieces allowed only at the ends.
fn check_two_responses(value: &str) -> bool {
    let pieces: Vec<&str> = value.split("******").collect();
    let mut valid = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        if py_strip(p).is_empty() {
            if i != 0 && i != pieces.len() - 1 {
                return false;
            }
        } else {
            valid.push(*p);
        }
    }
    valid.len() == 2 && py_strip(valid[0]) != py_strip(valid[1])
}
