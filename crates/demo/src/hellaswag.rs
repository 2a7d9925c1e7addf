//! HellaSwag-shaped items: a person doing one step of an everyday
//! routine; the right ending is the routine's next step, the wrong ones
//! steps of other routines.

use serde_json::{json, Value};
use smolsweep_evals::text::py_capitalize;

use crate::choices::four;
use crate::rng::Rng;
use crate::world::{PEOPLE, ROUTINES};

/// A HellaSwag item in `Rowan/hellaswag`'s fields.
pub(crate) struct Hs {
    pub(crate) activity: String,
    pub(crate) ctx_a: String,
    pub(crate) ctx_b: String,
    pub(crate) endings: Vec<String>,
    pub(crate) gold: usize,
}

/// A person at one step of a routine, four candidate next steps.
pub(crate) fn hellaswag_item(rng: &mut Rng) -> (String, Hs) {
    let r = rng.below(ROUTINES.len());
    let (activity, steps) = ROUTINES[r];
    let step = rng.below(steps.len() - 1);
    let (person, pronoun) = *rng.pick(&PEOPLE);
    let wrong = ROUTINES
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != r)
        .map(|(_, (_, s))| (*rng.pick(s)).to_owned())
        .collect();
    let (endings, gold) = four(rng, steps[step + 1].to_owned(), wrong);
    let key = format!("hs|{r}|{step}|{person}");
    (
        key,
        Hs {
            activity: activity.to_owned(),
            ctx_a: format!("{person} {}", steps[step]),
            ctx_b: format!("then {pronoun}"),
            endings,
            gold,
        },
    )
}

/// A row of `Rowan/hellaswag` (its label a string, as HF stores it).
pub(crate) fn hs_row(i: usize, h: &Hs) -> Value {
    json!({
        "ind": i,
        "activity_label": h.activity,
        "ctx_a": h.ctx_a,
        "ctx_b": h.ctx_b,
        "ctx": format!("{} {}", h.ctx_a, py_capitalize(&h.ctx_b)),
        "endings": h.endings,
        "source_id": format!("demo~{i}"),
        "split": "val",
        "split_type": "indomain",
        "label": h.gold.to_string(),
    })
}
