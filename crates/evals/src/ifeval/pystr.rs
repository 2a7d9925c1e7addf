//! Python `str` semantics the reference checkers rely on (`strip`, `split`,
//! `isupper`, `islower`, `lower`), and the character classes of Python's
//! `re` module, so that the checkers count, strip and compare exactly as
//! CPython does.
//!
//! Why not Rust's own: `str::trim` and `char::is_whitespace` skip the
//! information separators U+001C..U+001F, which Python's `str.isspace` (and
//! the stdlib `re` module's `\s`) treat as whitespace, and Rust has no
//! notion of titlecase letters, which make `str.isupper()` false.

use unicode_categories::UnicodeCategories;

/// Python's `str.isspace` for one character (also the stdlib `re`'s `\s`).
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The stdlib `re` module's `\s` as a regex class (Rust's `\s` lacks
/// U+001C..U+001F).
pub(crate) const RE_S: &str = r"[\s\x1C-\x1F]";

/// Python's `str.strip()` with no argument.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `str.split()` with no argument: runs of whitespace separate,
/// and no empty pieces.
pub(crate) fn py_split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Python's `str.lower()` (full Unicode lowercase mapping with the final
/// sigma rule, as Rust's `to_lowercase`).
pub(crate) fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

fn is_title(c: char) -> bool {
    c.is_letter_titlecase()
}

/// Python's `str.isupper()`: at least one cased character, and every cased
/// character uppercase (a titlecase or lowercase letter makes it false).
pub(crate) fn py_isupper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_title(c) {
            return false;
        }
        if c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

/// Python's `str.islower()`: at least one cased character, and every cased
/// character lowercase.
pub(crate) fn py_islower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() || is_title(c) {
            return false;
        }
        if c.is_lowercase() {
            cased = true;
        }
    }
    cased
}

/// Python's `len(s)` (code points).
pub(crate) fn py_len(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_includes_information_separators() {
        assert_eq!(py_strip("\u{1c} a b \u{a0}\n"), "a b");
    }

    #[test]
    fn isupper_and_islower_follow_python() {
        assert!(py_isupper("HELLO, WORLD 1"));
        assert!(!py_isupper("123 !"));
        assert!(!py_isupper("HELLO \u{1c5}"));
        assert!(py_islower("hello, world 1"));
        assert!(!py_islower("hello World"));
        assert!(!py_islower("..."));
    }

    #[test]
    fn split_whitespace_drops_empties() {
        let v: Vec<&str> = py_split_whitespace("  a\u{1f}b \n c ").collect();
        assert_eq!(v, ["a", "b", "c"]);
    }
}
