//! GSM8K-shaped word problems: one- and two-step additions and
//! subtractions of numbers below 10, answers ending `#### N`.

use serde_json::{json, Value};

use crate::rng::Rng;
use crate::world::{NAMES, THINGS};

/// A GSM8K problem and its worked answer.
pub(crate) struct Gsm {
    pub(crate) question: String,
    pub(crate) answer: String,
}

/// An addition, a subtraction, or one of each.
pub(crate) fn gsm8k_item(rng: &mut Rng) -> (String, Gsm) {
    let (name, pron) = *rng.pick(&NAMES);
    let thing = *rng.pick(&THINGS);
    let kind = rng.below(3);
    let (question, answer, key) = match kind {
        0 => {
            let a = rng.range(1, 9);
            let b = rng.range(1, 9);
            let s = a + b;
            (
                format!("{name} has {a} {thing}. {pron} gets {b} more. How many {thing} does {name} have now?"),
                format!("{name} has {a} + {b} = {s} {thing}.\n#### {s}"),
                format!("add|{name}|{thing}|{a}|{b}"),
            )
        }
        1 => {
            let a = rng.range(2, 9);
            let b = rng.range(1, a - 1);
            let d = a - b;
            (
                format!("{name} has {a} {thing}. {pron} gives away {b}. How many {thing} does {name} have left?"),
                format!("{name} has {a} - {b} = {d} {thing} left.\n#### {d}"),
                format!("sub|{name}|{thing}|{a}|{b}"),
            )
        }
        _ => {
            let a = rng.range(1, 9);
            let b = rng.range(1, 9);
            let s = a + b;
            let c = rng.range(1, s - 1);
            let r = s - c;
            (
                format!("{name} has {a} {thing}. {pron} gets {b} more, then gives away {c}. How many {thing} does {name} have now?"),
                format!("{name} has {a} + {b} = {s} {thing}. Then {s} - {c} = {r}.\n#### {r}"),
                format!("two|{name}|{thing}|{a}|{b}|{c}"),
            )
        }
    };
    (key, Gsm { question, answer })
}

/// A row of `openai/gsm8k`.
pub(crate) fn gsm8k_row(g: &Gsm) -> Value {
    json!({"question": g.question, "answer": g.answer})
}
