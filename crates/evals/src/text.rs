//! The few Python string semantics the task prompts depend on
//! (`str.isspace`, `str.strip`, `str.capitalize`) and HellaSwag's
//! `preprocess` from lm-eval's `hellaswag/utils.py` (and SmolLM2's copy
//! of it without the strip).

use std::sync::OnceLock;

use regex::Regex;

/// Python's `str.isspace` for one character: Unicode White_Space plus the
/// information separators \x1c-\x1f, which Python counts and Rust does not.
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// Python's `str.rstrip()`.
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_is_space)
}

/// Python's `str.capitalize()`: the first character upper-cased (Python
/// uses title case, which differs from upper case only for a few digraph
/// letters such as `ǆ`), the rest lower-cased.
pub fn py_capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(&chars.as_str().to_lowercase());
            out
        }
        None => String::new(),
    }
}

fn brackets_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\[.*?\]").expect("static regex"))
}

/// lm-eval's HellaSwag `preprocess`: strip, ` [title]` -> `. `, drop the
/// WikiHow `[...]` artifacts, collapse double spaces (one pass, as
/// Python's `replace`).
pub fn hellaswag_preprocess(text: &str) -> String {
    hellaswag_preprocess_nostrip(py_strip(text))
}

/// SmolLM2's HellaSwag `preprocess` (huggingface/smollm `tasks.py`, its
/// `text.strip()` commented out): lm-eval's without the strip, so the
/// query's trailing space and an ending's leading space stay.
pub fn hellaswag_preprocess_nostrip(text: &str) -> String {
    let t = text.replace(" [title]", ". ");
    let t = brackets_re().replace_all(&t, "");
    t.replace("  ", " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitalize_lowers_the_rest() {
        assert_eq!(py_capitalize("then THE man"), "Then the man");
        assert_eq!(py_capitalize(""), "");
    }

    #[test]
    fn hellaswag_preprocess_as_lm_eval() {
        assert_eq!(
            hellaswag_preprocess(" [header] How to x [title] Do y. [step] Z  now. "),
            // The leading space stays: Python strips before the brackets go.
            " How to x. Do y. Z now."
        );
        assert_eq!(hellaswag_preprocess("a   b"), "a  b");
    }

    #[test]
    fn python_whitespace() {
        assert_eq!(py_rstrip("ab\x1c \n"), "ab");
        assert_eq!(py_strip("\u{3000}x\t"), "x");
    }
}
