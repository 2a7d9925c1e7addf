//! Whether Python's `json.loads` accepts a string, for
//! `detectable_format:json_format`.
//!
//! Why not serde_json: Python also accepts `NaN`, `Infinity` and
//! `-Infinity`, and `\u` escapes that leave a lone surrogate; serde_json
//! refuses all of them (and stops at 128 levels of nesting, where Python
//! goes on). This is a validator for exactly Python's grammar: whitespace
//! is ` \t\n\r` only, numbers are JSON numbers with ASCII digits, strings
//! refuse raw control characters (Python's `strict=True`).

/// `json.loads(s)` succeeds.
pub(crate) fn python_json_loads_ok(s: &str) -> bool {
    let mut p = Parser {
        b: s.as_bytes(),
        i: 0,
    };
    p.ws();
    if !p.value() {
        return false;
    }
    p.ws();
    p.i == p.b.len()
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// One value. Containers keep an explicit stack, so depth is unbounded.
    fn value(&mut self) -> bool {
        // Each entry: true for an object, false for an array.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            // Parse a value start.
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        if !self.key() {
                            return false;
                        }
                        stack.push(true);
                        continue;
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(false);
                        continue;
                    }
                }
                Some(b'"') => {
                    if !self.string() {
                        return false;
                    }
                }
                Some(b'n') if self.lit(b"null") => {}
                Some(b't') if self.lit(b"true") => {}
                Some(b'f') if self.lit(b"false") => {}
                Some(b'N') if self.lit(b"NaN") => {}
                Some(b'I') if self.lit(b"Infinity") => {}
                Some(b'-') if self.b[self.i..].starts_with(b"-Infinity") => self.i += 9,
                Some(b'-' | b'0'..=b'9') => {
                    if !self.number() {
                        return false;
                    }
                }
                _ => return false,
            }
            // After a complete value: close containers or move to the next item.
            loop {
                let Some(&is_obj) = stack.last() else {
                    return true;
                };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if is_obj {
                            self.ws();
                            if !self.key() {
                                return false;
                            }
                        }
                        break;
                    }
                    Some(b'}') if is_obj => {
                        self.i += 1;
                        stack.pop();
                    }
                    Some(b']') if !is_obj => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return false,
                }
            }
        }
    }

    /// `"key" :` (leading whitespace already skipped).
    fn key(&mut self) -> bool {
        if self.peek() != Some(b'"') || !self.string() {
            return false;
        }
        self.ws();
        if self.peek() != Some(b':') {
            return false;
        }
        self.i += 1;
        true
    }

    fn string(&mut self) -> bool {
        self.i += 1; // opening quote
        loop {
            let Some(c) = self.peek() else { return false };
            self.i += 1;
            match c {
                b'"' => return true,
                b'\\' => {
                    let Some(e) = self.peek() else { return false };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return false;
                            }
                            self.i += 4;
                        }
                        _ => return false,
                    }
                }
                0..=0x1f => return false,
                _ => {}
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`
    fn number(&mut self) -> bool {
        let digits = |p: &mut Self| {
            let start = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i > start
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return false,
        }
        // A fraction or exponent that does not complete is not consumed:
        // Python's number regex stops before it, and the parse then fails
        // on the leftover `.` or `e` unless a container or the end allows it
        // (it never does).
        if self.peek() == Some(b'.') {
            let save = self.i;
            self.i += 1;
            if !digits(self) {
                self.i = save;
                return true;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.peek(), Some(b'-' | b'+')) {
                self.i += 1;
            }
            if !digits(self) {
                self.i = save;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::python_json_loads_ok as ok;

    #[test]
    fn accepts_what_python_accepts() {
        for s in [
            "{}",
            "[]",
            " {\"a\": [1, 2.5e-3, -0, true, false, null]}\n",
            "NaN",
            "-Infinity",
            "[Infinity]",
            "\"\\ud800\"",
            "\"caf\u{e9}\"",
            "12",
            "{\"a\": {\"b\": [[[]]]}}",
        ] {
            assert!(ok(s), "{s}");
        }
    }

    #[test]
    fn refuses_what_python_refuses() {
        for s in [
            "",
            "{",
            "{'a': 1}",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "1e",
            "-",
            "\"a\nb\"",
            "\"\\x\"",
            "{} {}",
            "nan",
            "[1 2]",
            "\u{a0}{}",
        ] {
            assert!(!ok(s), "{s}");
        }
    }
}
