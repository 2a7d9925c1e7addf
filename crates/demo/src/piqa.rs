//! PIQA-shaped items: "How do you cut paper?" with the right and a wrong
//! tool as the two solutions.

use serde_json::{json, Value};

use crate::rng::Rng;
use crate::world::TOOLS;

/// A PIQA item: a goal, two solutions, the index of the right one.
pub(crate) struct Piqa {
    pub(crate) goal: String,
    pub(crate) sols: [String; 2],
    pub(crate) label: usize,
}

/// A task with its right tool and one other tool, in random order.
pub(crate) fn piqa_item(rng: &mut Rng) -> (String, Piqa) {
    let t = rng.below(TOOLS.len());
    let (task, tool) = TOOLS[t];
    let mut w = rng.below(TOOLS.len());
    while w == t {
        w = rng.below(TOOLS.len());
    }
    let wrong = TOOLS[w].1;
    let label = rng.below(2);
    let right_sol = format!("Use {tool} to {task}.");
    let wrong_sol = format!("Use {wrong} to {task}.");
    let sols = if label == 0 {
        [right_sol, wrong_sol]
    } else {
        [wrong_sol, right_sol]
    };
    (
        format!("piqa|{t}|{w}"),
        Piqa {
            goal: format!("How do you {task}?"),
            sols,
            label,
        },
    )
}

/// A row of `baber/piqa`.
pub(crate) fn piqa_row(p: &Piqa) -> Value {
    json!({"goal": p.goal, "sol1": p.sols[0], "sol2": p.sols[1], "label": p.label})
}
