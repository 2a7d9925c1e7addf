//! IFEval-shaped prompts: "Write a short sentence about the sun." plus
//! real IFEval instructions that are easy to follow (all lowercase, all
//! capitals, no commas, wrap in quotes, end with a fixed phrase, a P.S., a
//! <<title>>), with the real instruction ids and kwargs, and a response
//! that follows them.

use serde_json::{json, Value};

use crate::rng::Rng;
use crate::world::TOPICS;

const END_PHRASE: &str = "Is there anything else I can help with?";

/// The IFEval instructions the demo uses: (id, prompt text, kwargs).
/// Prompt texts are the reference's own wording (instructions.py).
fn instruction(id: &str) -> (&'static str, Value) {
    match id {
        "change_case:english_lowercase" => (
            "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
            json!({}),
        ),
        "change_case:english_capital" => (
            "Your entire response should be in English, and in all capital letters.",
            json!({}),
        ),
        "punctuation:no_comma" => (
            "In your entire response, refrain from the use of any commas.",
            json!({}),
        ),
        "startend:quotation" => (
            "Wrap your entire response with double quotation marks.",
            json!({}),
        ),
        "startend:end_checker" => (
            "Finish your response with this exact phrase Is there anything else I can help with?. No other words should follow this phrase.",
            json!({"end_phrase": END_PHRASE}),
        ),
        "detectable_content:postscript" => (
            "At the end of your response, please explicitly add a postscript starting with P.S.",
            json!({"postscript_marker": "P.S."}),
        ),
        _ => (
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
            json!({}),
        ),
    }
}

const IFEVAL_IDS: [&str; 7] = [
    "change_case:english_lowercase",
    "change_case:english_capital",
    "punctuation:no_comma",
    "startend:quotation",
    "startend:end_checker",
    "detectable_content:postscript",
    "detectable_format:title",
];

/// An IFEval prompt, its instruction ids, and a response following them.
pub(crate) struct IfEval {
    pub(crate) prompt: String,
    pub(crate) ids: Vec<&'static str>,
    pub(crate) response: String,
}

/// Applies instructions to the topic's sentence, in an order that keeps
/// them all satisfied (the phrase and P.S. last, quotes around it all).
fn follow(sentence: &str, ids: &[&str]) -> String {
    let has = |id: &str| ids.contains(&id);
    let mut body = sentence.to_owned();
    if has("punctuation:no_comma") {
        body = body.replace(',', "");
    }
    if has("detectable_format:title") {
        let title = sentence
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
            .replace(',', "")
            .to_lowercase();
        body = format!("<<{title}>>\n{body}");
    }
    if has("startend:end_checker") {
        body = format!("{body} {END_PHRASE}");
    }
    if has("detectable_content:postscript") {
        body = format!("{body}\nP.S. I hope this helps.");
    }
    if has("change_case:english_lowercase") {
        body = body.to_lowercase();
    }
    if has("change_case:english_capital") {
        body = body.to_uppercase();
    }
    if has("startend:quotation") {
        body = format!("\"{body}\"");
    }
    body
}

/// Whether two instructions can hold together (a fixed capitalised end
/// phrase or "P.S." contradicts a case rule; quotes must be the last and
/// first characters, which a phrase or P.S. at the end would break).
fn compatible(a: &str, b: &str) -> bool {
    let case = |x: &str| x.starts_with("change_case:");
    let tail = |x: &str| x == "startend:end_checker" || x == "detectable_content:postscript";
    let quote = |x: &str| x == "startend:quotation";
    a != b
        && !(case(a) && case(b))
        && !((case(a) || quote(a)) && tail(b))
        && !((case(b) || quote(b)) && tail(a))
        && !(tail(a) && tail(b))
}

/// A topic with one instruction, or two that can hold together.
pub(crate) fn ifeval_item(rng: &mut Rng) -> (String, IfEval) {
    let t = rng.below(TOPICS.len());
    let (topic, sentence) = TOPICS[t];
    let first = *rng.pick(&IFEVAL_IDS);
    let mut ids = vec![first];
    if rng.below(3) == 0 {
        let second = *rng.pick(&IFEVAL_IDS);
        if compatible(first, second) {
            ids.push(second);
        }
    }
    let mut prompt = format!("Write a short sentence about {topic}.");
    for id in &ids {
        prompt.push(' ');
        prompt.push_str(instruction(id).0);
    }
    let response = follow(sentence, &ids);
    let key = format!("ifeval|{t}|{}", ids.join("+"));
    (
        key,
        IfEval {
            prompt,
            ids,
            response,
        },
    )
}

/// A row of `google/IFEval`.
pub(crate) fn ifeval_row(i: usize, f: &IfEval) -> Value {
    json!({
        "key": 1000 + i,
        "prompt": f.prompt,
        "instruction_id_list": f.ids,
        "kwargs": f.ids.iter().map(|id| instruction(id).1).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SFT responses (what the model is taught) pass the reference
    /// checkers.
    #[test]
    fn responses_follow_their_instructions() {
        let mut rng = Rng(1);
        for _ in 0..300 {
            let (_, item) = ifeval_item(&mut rng);
            let sample = smolsweep_evals::ifeval::IfEvalSample {
                key: 0,
                prompt: item.prompt.clone(),
                instruction_id_list: item.ids.iter().map(|s| (*s).to_owned()).collect(),
                kwargs: item.ids.iter().map(|id| instruction(id).1).collect(),
            };
            let v = smolsweep_evals::ifeval::evaluate_sample(&sample, &item.response)
                .expect("checkable");
            assert!(
                v.follow_all_strict(),
                "{:?} not followed by {:?}",
                item.ids,
                item.response
            );
        }
    }
}
