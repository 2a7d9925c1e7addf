//! ARC-shaped questions: `arc_easy` asks colour facts and "Which number
//! is bigger, a or b?", `arc_challenge` "Which number is smaller, ...?"
//! and "What number comes after n?", four choices `A`-`D`.

use serde_json::{json, Value};

use crate::choices::four;
use crate::rng::Rng;
use crate::world::{COLORS, COLOR_FACTS};

/// A multiple-choice question in ARC's shape.
pub(crate) struct Mc {
    pub(crate) question: String,
    pub(crate) choices: Vec<String>,
    pub(crate) gold: usize,
}

fn numbers_except(lo: u32, hi: u32, except: &[u32]) -> Vec<String> {
    (lo..=hi)
        .filter(|n| !except.contains(n))
        .map(|n| n.to_string())
        .collect()
}

/// "What color is a banana?" among four colours.
pub(crate) fn color_question(rng: &mut Rng) -> (String, Mc) {
    let (thing, color) = *rng.pick(&COLOR_FACTS);
    let others = COLORS
        .iter()
        .filter(|c| **c != color)
        .map(|c| (*c).to_owned())
        .collect();
    let (choices, gold) = four(rng, color.to_owned(), others);
    let key = format!("color|{thing}|{}", choices.join(","));
    let question = format!("What color is {thing}?");
    (
        key,
        Mc {
            question,
            choices,
            gold,
        },
    )
}

/// "Which number is bigger/smaller, a or b?": both are among the choices.
pub(crate) fn compare_question(rng: &mut Rng, bigger: bool) -> (String, Mc) {
    let a = rng.range(1, 20);
    let mut b = rng.range(1, 20);
    while b == a {
        b = rng.range(1, 20);
    }
    let answer = if bigger { a.max(b) } else { a.min(b) };
    let other = a + b - answer;
    let mut rest = numbers_except(1, 20, &[a, b]);
    rng.shuffle(&mut rest);
    let mut distractors = vec![other.to_string()];
    distractors.extend(rest.into_iter().take(2));
    // `four` shuffles distractors before taking three: all three are kept.
    let (choices, gold) = four(rng, answer.to_string(), distractors);
    let word = if bigger { "bigger" } else { "smaller" };
    let key = format!("{word}|{a}|{b}");
    (
        key,
        Mc {
            question: format!("Which number is {word}, {a} or {b}?"),
            choices,
            gold,
        },
    )
}

/// "What number comes after n?" among n + 1 and its neighbours.
pub(crate) fn after_question(rng: &mut Rng) -> (String, Mc) {
    let n = rng.range(1, 29);
    let distractors = [n.saturating_sub(1).max(1), n + 2, n, n + 3]
        .iter()
        .filter(|d| **d != n + 1)
        .map(|d| d.to_string())
        .collect::<Vec<_>>();
    let (choices, gold) = four(rng, (n + 1).to_string(), distractors);
    let key = format!("after|{n}|{}", choices.join(","));
    (
        key,
        Mc {
            question: format!("What number comes after {n}?"),
            choices,
            gold,
        },
    )
}

/// An `arc_easy` item: a colour fact or "which is bigger".
pub(crate) fn arc_easy_item(rng: &mut Rng) -> (String, Mc) {
    if rng.below(2) == 0 {
        color_question(rng)
    } else {
        compare_question(rng, true)
    }
}

/// An `arc_challenge` item: "which is smaller" or "what comes after".
pub(crate) fn arc_challenge_item(rng: &mut Rng) -> (String, Mc) {
    if rng.below(2) == 0 {
        compare_question(rng, false)
    } else {
        after_question(rng)
    }
}

const LABELS: [&str; 4] = ["A", "B", "C", "D"];

/// A row of `allenai/ai2_arc`, with id `{prefix}_{i:04}`.
pub(crate) fn arc_row(prefix: &str, i: usize, q: &Mc) -> Value {
    json!({
        "id": format!("{prefix}_{i:04}"),
        "question": q.question,
        "choices": {"text": q.choices, "label": &LABELS[..q.choices.len()]},
        "answerKey": LABELS[q.gold],
    })
}
