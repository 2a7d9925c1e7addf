//! Preference pairs in the HF schemas people have, read into one shape: a
//! chosen and a rejected conversation, each a full message list ending in
//! the answer being judged.
//!
//! - `chosen` / `rejected` as message lists holding the whole conversation
//!   (allenai/llama-3.1-tulu-3-8b-preference-mixture,
//!   allenai/ultrafeedback_binarized_cleaned, TRL's "implicit prompt"
//!   format); a `prompt` column beside them is then ignored, as
//!   open-instruct ignores it.
//! - `prompt` + `chosen` / `rejected` strings (RewardBench, TRL's standard
//!   format): the prompt becomes a user turn, each answer an assistant turn.
//! - `prompt` as a message list + `chosen` / `rejected` lists of assistant
//!   turns only (TRL's "explicit prompt" format): the prompt is prepended.
//!
//! Files are found as SFT data is ([`crate::training_files`]): Parquet,
//! JSONL, dataset directories, hub cache folders. A bad row is an error
//! naming its file and row and what is wrong with it.

use std::path::PathBuf;

use serde_json::Value;

use crate::{DatasetError, Record, Result, Row};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

impl Turn {
    fn new(role: &str, content: &str) -> Self {
        Turn {
            role: role.to_owned(),
            content: content.to_owned(),
        }
    }
}

/// A chosen and a rejected conversation over the same prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferencePair {
    pub chosen: Vec<Turn>,
    pub rejected: Vec<Turn>,
}

/// The pair a row holds; the error names the row (`rec.location()`).
pub fn parse_pair(rec: &Record) -> Result<PreferencePair> {
    let bad = |msg: String| DatasetError::Row {
        location: rec.location(),
        msg,
    };
    let row = &rec.row;
    let chosen = side(row, "chosen").map_err(&bad)?;
    let rejected = side(row, "rejected").map_err(&bad)?;
    let needs_prompt = |s: &Side| match s {
        Side::Text(_) => true,
        Side::Turns(t) => t.iter().all(|m| m.role == "assistant"),
    };
    let prompt = if needs_prompt(&chosen) || needs_prompt(&rejected) {
        Some(prompt(row).map_err(&bad)?)
    } else {
        None
    };
    let whole = |s: Side, key: &str| -> Result<Vec<Turn>> {
        let answer = match s {
            Side::Text(t) => vec![Turn::new("assistant", &t)],
            Side::Turns(t) if t.iter().any(|m| m.role != "assistant") => return Ok(t),
            Side::Turns(t) => t,
        };
        if answer.is_empty() {
            return Err(bad(format!("`{key}` is an empty list")));
        }
        let mut conv = prompt.clone().unwrap_or_default();
        conv.extend(answer);
        Ok(conv)
    };
    let pair = PreferencePair {
        chosen: whole(chosen, "chosen")?,
        rejected: whole(rejected, "rejected")?,
    };
    for (key, conv) in [("chosen", &pair.chosen), ("rejected", &pair.rejected)] {
        if conv.last().is_none_or(|m| m.role != "assistant") {
            return Err(bad(format!(
                "`{key}` does not end with an assistant message (the answer being judged)"
            )));
        }
    }
    Ok(pair)
}

/// Reads every row of the data paths (see [`crate::training_files`]) with
/// where it came from; pairs are parsed by [`parse_pair`] as they are
/// used, so a consumer can stop early.
pub fn read_preference_records(paths: &[PathBuf]) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for p in paths {
        let files = crate::training_files(p)?;
        out.extend(crate::read_records(&files, p)?);
    }
    Ok(out)
}

enum Side {
    Text(String),
    Turns(Vec<Turn>),
}

const SCHEMAS: &str = "expected `chosen`/`rejected` message lists [{role, content}], \
                       or `prompt` + `chosen`/`rejected` strings";

fn side(row: &Row, key: &str) -> std::result::Result<Side, String> {
    match row.get(key) {
        None | Some(Value::Null) => Err(format!("no `{key}` field ({SCHEMAS})")),
        Some(Value::String(s)) => Ok(Side::Text(s.clone())),
        Some(Value::Array(items)) => turns(items, key).map(Side::Turns),
        Some(other) => Err(format!(
            "`{key}` is {}, not a message list or a string",
            kind(other)
        )),
    }
}

fn prompt(row: &Row) -> std::result::Result<Vec<Turn>, String> {
    match row.get("prompt") {
        None | Some(Value::Null) => {
            Err("`chosen`/`rejected` hold only the answer, and there is no `prompt` field".into())
        }
        Some(Value::String(s)) => Ok(vec![Turn::new("user", s)]),
        Some(Value::Array(items)) => turns(items, "prompt"),
        Some(other) => Err(format!(
            "`prompt` is {}, not a string or a message list",
            kind(other)
        )),
    }
}

fn turns(items: &[Value], key: &str) -> std::result::Result<Vec<Turn>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let Value::Object(o) = m else {
                return Err(format!(
                    "{key}[{i}] is {}, not a {{role, content}} message",
                    kind(m)
                ));
            };
            let field = |k: &str| {
                o.get(k)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{key}[{i}].{k} is missing or not a string"))
            };
            Ok(Turn::new(field("role")?, field("content")?))
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        let Value::Object(row) = v else {
            panic!("not an object")
        };
        Record {
            file: PathBuf::from("/d/prefs.jsonl"),
            index: 6,
            row,
        }
    }

    fn conv(turns: &[(&str, &str)]) -> Vec<Turn> {
        turns.iter().map(|(r, c)| Turn::new(r, c)).collect()
    }

    #[test]
    fn message_lists_are_whole_conversations() {
        let p = parse_pair(&rec(json!({
            "prompt": "ignored",
            "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
            "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}],
        })))
        .expect("pair");
        assert_eq!(p.chosen, conv(&[("user", "q"), ("assistant", "good")]));
        assert_eq!(p.rejected, conv(&[("user", "q"), ("assistant", "bad")]));
    }

    #[test]
    fn prompt_and_strings_become_a_user_and_an_assistant_turn() {
        let p = parse_pair(&rec(json!({
            "prompt": "q", "chosen": "good", "rejected": "bad", "subset": "x",
        })))
        .expect("pair");
        assert_eq!(p.chosen, conv(&[("user", "q"), ("assistant", "good")]));
        assert_eq!(p.rejected, conv(&[("user", "q"), ("assistant", "bad")]));
        // TRL's explicit-prompt format: a prompt list, answers as lists.
        let p = parse_pair(&rec(json!({
            "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
            "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}],
        })))
        .expect("pair");
        assert_eq!(
            p.chosen,
            conv(&[("system", "s"), ("user", "q"), ("assistant", "good")])
        );
    }

    #[test]
    fn bad_rows_name_the_file_the_row_and_the_fault() {
        let msg = |v: &Value| json!([{ "role": "assistant", "content": v }]);
        for (row, want) in [
            (json!({"chosen": "a", "prompt": "q"}), "no `rejected` field"),
            (json!({"rejected": "a", "prompt": "q"}), "no `chosen` field"),
            (
                json!({"chosen": [["user", "q"]], "rejected": "b", "prompt": "q"}),
                "chosen[0] is a list, not a {role, content} message",
            ),
            (
                json!({"chosen": [{"role": "user"}], "rejected": "b", "prompt": "q"}),
                "chosen[0].content is missing or not a string",
            ),
            (
                json!({"chosen": msg(&json!(3)), "rejected": "b", "prompt": "q"}),
                "chosen[0].content is missing or not a string",
            ),
            (
                json!({"chosen": 1, "rejected": "b", "prompt": "q"}),
                "`chosen` is a number, not a message list or a string",
            ),
            (
                json!({"chosen": "a", "rejected": "b"}),
                "there is no `prompt` field",
            ),
            (
                json!({"chosen": "a", "rejected": "b", "prompt": {"q": 1}}),
                "`prompt` is an object",
            ),
            (
                json!({"chosen": [], "rejected": "b", "prompt": "q"}),
                "`chosen` is an empty list",
            ),
            (
                json!({
                    "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}],
                    "rejected": "b", "prompt": "q"
                }),
                "`chosen` does not end with an assistant message",
            ),
        ] {
            let e = parse_pair(&rec(row.clone())).expect_err(&row.to_string());
            let text = e.to_string();
            assert!(
                text.starts_with("/d/prefs.jsonl, row 7: ") && text.contains(want),
                "{row}: {text}"
            );
        }
    }

    #[test]
    fn parquet_and_jsonl_read_the_same_pairs() {
        let d = tempfile::tempdir().expect("tmp");
        let rows: Vec<Row> = (0..3)
            .map(|i| {
                let Value::Object(o) = json!({
                    "chosen": [{"role": "user", "content": format!("q{i}")},
                               {"role": "assistant", "content": "good"}],
                    "rejected": [{"role": "user", "content": format!("q{i}")},
                                 {"role": "assistant", "content": "bad"}],
                }) else {
                    unreachable!()
                };
                o
            })
            .collect();
        let dir = d.path().join("ds/data");
        std::fs::create_dir_all(&dir).expect("mkdir");
        crate::write_parquet(&dir.join("train-00000-of-00001.parquet"), &rows).expect("pq");
        let jsonl = d.path().join("p.jsonl");
        let text: String = rows
            .iter()
            .map(|r| format!("{}\n", Value::Object(r.clone())))
            .collect();
        std::fs::write(&jsonl, text).expect("jsonl");
        let a = read_preference_records(&[d.path().join("ds")]).expect("dir");
        let b = read_preference_records(&[jsonl]).expect("jsonl");
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(parse_pair(x).expect("a"), parse_pair(y).expect("b"));
        }
    }
}
