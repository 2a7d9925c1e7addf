//! Multiple-choice options: the answer among distinct distractors, in a
//! random order (ARC's four choices, HellaSwag's four endings).

use crate::rng::Rng;

/// Four choices: the answer and three distinct distractors, shuffled.
pub(crate) fn four(
    rng: &mut Rng,
    answer: String,
    mut distractors: Vec<String>,
) -> (Vec<String>, usize) {
    rng.shuffle(&mut distractors);
    let mut choices = vec![answer.clone()];
    for d in distractors {
        if choices.len() == 4 {
            break;
        }
        if !choices.contains(&d) {
            choices.push(d);
        }
    }
    rng.shuffle(&mut choices);
    let gold = choices.iter().position(|c| *c == answer).unwrap_or(0);
    (choices, gold)
}
