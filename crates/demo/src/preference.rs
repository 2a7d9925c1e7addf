//! Preference pairs for the demo's DPO and reward-model sweeps: the demo
//! world's multiple-choice questions (ARC-, HellaSwag- and PIQA-shaped),
//! each as the chat the SFT data teaches, answered by its right choice
//! (chosen) and by one wrong choice (rejected), in the message-list schema
//! of allenai/ultrafeedback_binarized_cleaned (`chosen`/`rejected` hold the
//! whole conversation). The test pairs come from the held-out split, so a
//! preference accuracy on them measures more than memory.

use serde_json::{json, Value};
use smolsweep_evals::tasks::{arc_query, hellaswag_ending, hellaswag_query, piqa_query};

use crate::arc::{after_question, color_question, compare_question};
use crate::hellaswag::hellaswag_item;
use crate::piqa::piqa_item;
use crate::rng::Rng;
use crate::split::draw;

/// One question with its right and wrong answers.
struct Question {
    prompt: String,
    good: String,
    bad: String,
}

fn pair(q: &Question) -> Value {
    let chat = |answer: &str| {
        json!([
            {"role": "user", "content": q.prompt},
            {"role": "assistant", "content": answer},
        ])
    };
    json!({ "prompt": q.prompt, "chosen": chat(&q.good), "rejected": chat(&q.bad) })
}

/// A wrong choice: any but the gold one.
fn wrong(rng: &mut Rng, choices: &[String], gold: usize) -> String {
    let k = (gold + 1 + rng.below(choices.len() - 1)) % choices.len();
    choices[k].clone()
}

/// One question of a kind drawn by `kind` (0..4), as a pair.
fn question(rng: &mut Rng, kind: usize) -> (String, Question) {
    match kind {
        0..=2 => {
            let (key, q) = match kind {
                0 => color_question(rng),
                1 => {
                    let bigger = rng.below(2) == 0;
                    compare_question(rng, bigger)
                }
                _ => after_question(rng),
            };
            let bad = wrong(rng, &q.choices, q.gold);
            (
                key,
                Question {
                    prompt: arc_query(&q.question),
                    good: q.choices[q.gold].clone(),
                    bad,
                },
            )
        }
        3 => {
            let (key, h) = hellaswag_item(rng);
            let bad = wrong(rng, &h.endings, h.gold);
            (
                key,
                Question {
                    prompt: hellaswag_query(&h.activity, &h.ctx_a, &h.ctx_b),
                    good: hellaswag_ending(&h.endings[h.gold]),
                    bad: hellaswag_ending(&bad),
                },
            )
        }
        _ => {
            let (key, p) = piqa_item(rng);
            (
                key,
                Question {
                    prompt: piqa_query(&p.goal),
                    good: p.sols[p.label].clone(),
                    bad: p.sols[1 - p.label].clone(),
                },
            )
        }
    }
}

/// `n` pairs from the training (or, with `test`, the held-out) split.
pub(crate) fn pairs(rng: &mut Rng, n: usize, test: bool) -> Vec<Value> {
    let mut k = 0;
    draw(rng, n, test, |r| {
        k += 1;
        question(r, k % 5)
    })
    .iter()
    .map(pair)
    .collect()
}
