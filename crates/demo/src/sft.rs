//! The SFT conversations: each item as the chat the demo evaluates it with
//! (`chat_template = true`, lm-eval's `--apply_chat_template`).
//!
//! The user turn is built by the evals' own prompt functions and the
//! assistant turn is the choice or answer the eval scores, so what the
//! model is trained on and what it is asked cannot drift apart. A tiny
//! model trained from scratch sees nothing else, so scoring plain-text
//! continuations instead (text at position 0, never seen in training)
//! leaves it worse than uniform; and the end-of-turn token it learns ends
//! GSM8K and IFEval generation early.

use serde_json::{json, Value};
use smolsweep_evals::tasks::{
    arc_query, gsm8k_query, hellaswag_ending, hellaswag_query, piqa_query,
};

use crate::arc::Mc;
use crate::gsm8k::Gsm;
use crate::hellaswag::Hs;
use crate::ifeval::IfEval;
use crate::piqa::Piqa;

/// A conversation of (user, assistant) turns.
fn conversation<S: AsRef<str>>(turns: &[(S, S)]) -> Value {
    let messages: Vec<Value> = turns
        .iter()
        .flat_map(|(u, a)| {
            [
                json!({"role": "user", "content": u.as_ref()}),
                json!({"role": "assistant", "content": a.as_ref()}),
            ]
        })
        .collect();
    json!({ "messages": messages })
}

/// An ARC question answered by its right choice.
pub(crate) fn arc(q: &Mc) -> Value {
    conversation(&[(arc_query(&q.question), q.choices[q.gold].clone())])
}

/// A HellaSwag context continued by its right ending.
pub(crate) fn hellaswag(h: &Hs) -> Value {
    conversation(&[(
        hellaswag_query(&h.activity, &h.ctx_a, &h.ctx_b),
        hellaswag_ending(&h.endings[h.gold]),
    )])
}

/// A PIQA goal answered by its right solution.
pub(crate) fn piqa(p: &Piqa) -> Value {
    conversation(&[(piqa_query(&p.goal), p.sols[p.label].clone())])
}

/// A GSM8K problem and its solution, after solved `shots` as earlier
/// turns: the layout of the eval's few-shot chat (`fewshot_as_multiturn`).
pub(crate) fn gsm8k(shots: &[&Gsm], g: &Gsm) -> Value {
    let turns: Vec<(String, String)> = shots
        .iter()
        .chain([&g])
        .map(|s| (gsm8k_query(&s.question), s.answer.clone()))
        .collect();
    conversation(&turns)
}

/// An IFEval prompt (the eval sends it as-is) and a response that follows
/// its instructions.
pub(crate) fn ifeval(f: &IfEval) -> Value {
    conversation(&[(f.prompt.as_str(), f.response.as_str())])
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use smolsweep_datasets::Record;
    use smolsweep_evals::tasks::{gsm8k_doc, mc_doc, McDoc, TaskKind};

    use super::*;
    use crate::rng::Rng;

    fn record(row: Value) -> Record {
        Record {
            file: PathBuf::from("demo.jsonl"),
            index: 0,
            row: row.as_object().expect("a row is an object").clone(),
        }
    }

    /// (user, assistant) of a one-exchange conversation.
    fn exchange(c: &Value) -> (String, String) {
        let m = c["messages"].as_array().expect("messages");
        let text = |i: usize| m[i]["content"].as_str().expect("content").to_owned();
        (text(m.len() - 2), text(m.len() - 1))
    }

    fn right(d: &McDoc) -> (String, String) {
        (d.query.clone(), d.choices[d.gold].clone())
    }

    /// Written as an eval row and read back by the evals, an item is asked
    /// exactly what its SFT conversation teaches, and the right choice is
    /// the taught answer.
    #[test]
    fn sft_turns_are_what_the_eval_asks_and_scores() {
        let mut rng = Rng(5);
        for _ in 0..50 {
            let (_, q) = crate::arc::arc_easy_item(&mut rng);
            let row = record(crate::arc::arc_row("x", 0, &q));
            let doc = mc_doc(TaskKind::ArcEasy, 0, &row).expect("arc row");
            assert_eq!(exchange(&arc(&q)), right(&doc));

            let (_, h) = crate::hellaswag::hellaswag_item(&mut rng);
            let row = record(crate::hellaswag::hs_row(0, &h));
            let doc = mc_doc(TaskKind::Hellaswag, 0, &row).expect("hellaswag row");
            assert_eq!(exchange(&hellaswag(&h)), right(&doc));

            let (_, p) = crate::piqa::piqa_item(&mut rng);
            let row = record(crate::piqa::piqa_row(&p));
            let doc = mc_doc(TaskKind::Piqa, 0, &row).expect("piqa row");
            assert_eq!(exchange(&piqa(&p)), right(&doc));

            let (_, g) = crate::gsm8k::gsm8k_item(&mut rng);
            let doc = gsm8k_doc(0, &record(crate::gsm8k::gsm8k_row(&g))).expect("gsm8k row");
            let c = gsm8k(&[&g], &g);
            assert_eq!(exchange(&c), (doc.text(), doc.answer.clone()));
            assert_eq!(c["messages"][0]["content"], doc.text());
        }
    }
}
