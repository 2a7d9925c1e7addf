//! MMLU-Pro (`TIGER-Lab/MMLU-Pro`: question, options (up to 10), answer,
//! answer_index, category, cot_content, src), in both conventions:
//!
//! - `smollm2` (lighteval@ea46419a as SmolLM2's `tasks.py` ran it): MCF,
//!   0-shot, the query `The following are multiple choice questions (with
//!   answers) about {category, _ -> space}.\n\n{question}\n` + `"{L}.
//!   {option}\n"` per option + `Answer:`, chat-wrapped as one user turn;
//!   the choices are the bare letters, scored by log-likelihood after
//!   lighteval's `tok_encode_pair` (the template's trailing `\n` moves onto
//!   each letter). Every letter of a question has the same context tokens,
//!   so the log-likelihood engine runs that context once per question.
//!   Metric `loglikelihood_acc_norm_nospace` over single letters is plain
//!   accuracy (`acc`), over all test items.
//! - `lm-eval` (lm-evaluation-harness 0.4.13, `mmlu_pro` v3.1): 5-shot CoT
//!   generation per category (the first 5 validation rows of the same
//!   category, `fewshot_to_text` + " " + `fewshot_to_target` + "\n\n"),
//!   `until: ["Question:"]` plus the eos text, 2048 new tokens, the answer
//!   the first match of `answer is \(?([ABCDEFGHIJ])\)?`, `exact_match`
//!   ignoring case and punctuation against `answer`; the group score is the
//!   mean over all items (`weight_by_size`), per category kept.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{json, Value};
use smolsweep_datasets::Record;
use smolsweep_model::{LoadedModel, Message};

use crate::bbh::GroupRun;
use crate::chat_wrap;
use crate::error::{EvalError, Result};
use crate::generation::generate_all;
use crate::loglik::{self, BatchSize, Encoded};
use crate::runner::mean_and_stderr;
use crate::tasks::PromptFormat;

/// The letters of up to ten options.
pub const LETTERS: [&str; 10] = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"];

/// `num_fewshot` of lm-eval's `mmlu_pro`.
pub const LM_EVAL_FEWSHOT: usize = 5;
/// lm-eval 0.4.13's `generation_kwargs` (0.4.5-0.4.8 had `</s>`, `Q:`,
/// `<|im_end|>` and 256).
pub const LM_EVAL_UNTIL: [&str; 1] = ["Question:"];
pub const LM_EVAL_MAX_GEN_TOKS: usize = 2048;
/// What lm-eval's `RegexFilter` gives when nothing matches.
pub const INVALID: &str = "[invalid]";

/// One MMLU-Pro question.
#[derive(Debug, Clone, PartialEq)]
pub struct MmluProDoc {
    pub index: usize,
    pub location: String,
    pub question: String,
    pub options: Vec<String>,
    /// The gold letter (`answer`).
    pub answer: String,
    pub answer_index: usize,
    pub category: String,
    pub cot_content: String,
}

fn field_err(rec: &Record, field: &str, msg: impl Into<String>) -> EvalError {
    EvalError::Field {
        task: "mmlu_pro".into(),
        location: rec.location(),
        field: field.into(),
        msg: msg.into(),
    }
}

fn str_field(rec: &Record, field: &str) -> Result<String> {
    match rec.row.get(field) {
        None | Some(Value::Null) => Err(field_err(rec, field, "missing")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(field_err(
            rec,
            field,
            format!("expected a string, found {v}"),
        )),
    }
}

/// A document from one row of the `TIGER-Lab/MMLU-Pro` schema; 1 to 10
/// options, `answer_index` in range and `answer` its letter.
pub fn mmlu_pro_doc(index: usize, rec: &Record) -> Result<MmluProDoc> {
    let question = str_field(rec, "question")?;
    let category = str_field(rec, "category")?;
    let options = match rec.row.get("options") {
        None | Some(Value::Null) => return Err(field_err(rec, "options", "missing")),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    field_err(rec, "options", format!("item {i}: expected a string"))
                })
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(field_err(rec, "options", "expected a list")),
    };
    if options.is_empty() || options.len() > LETTERS.len() {
        return Err(field_err(
            rec,
            "options",
            format!("1 to 10 options (A-J), found {}", options.len()),
        ));
    }
    let answer_index = match rec.row.get("answer_index") {
        None | Some(Value::Null) => return Err(field_err(rec, "answer_index", "missing")),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .filter(|&n| n < options.len())
            .ok_or_else(|| {
                field_err(
                    rec,
                    "answer_index",
                    format!("{v} is not an index into {} options", options.len()),
                )
            })?,
    };
    let answer = str_field(rec, "answer")?;
    if answer != LETTERS[answer_index] {
        return Err(field_err(
            rec,
            "answer",
            format!(
                "`{answer}` is not the letter of answer_index {answer_index} ({})",
                LETTERS[answer_index]
            ),
        ));
    }
    let cot_content = match rec.row.get("cot_content") {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    Ok(MmluProDoc {
        index,
        location: rec.location(),
        question,
        options,
        answer,
        answer_index,
        category,
        cot_content,
    })
}

// ---------------------------------------------------------------- smollm2

/// SmolLM2's `mmlu_pro_mc_prompt` query (smollm `text/evaluation/smollm2/tasks.py`).
pub fn smollm2_query(doc: &MmluProDoc) -> String {
    let topic = doc.category.replace('_', " ");
    let mut q = format!(
        "The following are multiple choice questions (with answers) about {topic}.\n\n{}\n",
        doc.question
    );
    for (l, o) in LETTERS.iter().zip(&doc.options) {
        q.push_str(&format!("{l}. {o}\n"));
    }
    q.push_str("Answer:");
    q
}

/// The (context, continuation) requests of one question: the chat-wrapped
/// query, each bare letter.
pub fn smollm2_requests(format: &PromptFormat, doc: &MmluProDoc) -> Result<Vec<(String, String)>> {
    let ctx = chat_wrap::wrap(format, &[], &smollm2_query(doc))?;
    Ok(LETTERS[..doc.options.len()]
        .iter()
        .map(|l| (ctx.clone(), (*l).to_owned()))
        .collect())
}

/// numpy's `argmax`: the first maximum.
fn argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// MCF accuracy: log-likelihood of each letter, the argmax against
/// `answer_index` (length normalisation divides by 1 for a letter).
pub fn run_smollm2(
    m: &LoadedModel,
    docs: &[MmluProDoc],
    format: &PromptFormat,
    batch: BatchSize,
    keep_samples: bool,
) -> Result<GroupRun> {
    let mut encoded: Vec<Encoded> = Vec::new();
    let mut requests = Vec::new();
    for d in docs {
        for (ctx, cont) in smollm2_requests(format, d)? {
            encoded.push(chat_wrap::tok_encode_pair(&m.tokenizer, &ctx, &cont)?);
            requests.push((ctx, cont));
        }
    }
    let max_length = chat_wrap::max_model_length(m);
    let scores = loglik::score(&m.model, max_length, &encoded, batch)?;
    let (mut accs, mut samples) = (Vec::new(), Vec::new());
    let mut per_cat: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut at = 0;
    for d in docs {
        let k = d.options.len();
        let lls: Vec<f64> = scores[at..at + k].iter().map(|s| s.loglik).collect();
        let pred = argmax(&lls);
        let acc = f64::from(u8::from(pred == d.answer_index));
        accs.push(acc);
        per_cat.entry(d.category.clone()).or_default().push(acc);
        if keep_samples {
            samples.push(json!({
                "task": "mmlu_pro",
                "index": d.index,
                "source": d.location,
                "category": d.category,
                "context": requests[at].0,
                "choices": &LETTERS[..k],
                "loglik": lls,
                "pred": pred,
                "gold": d.answer_index,
                "acc": acc,
                "correct": pred == d.answer_index,
            }));
        }
        at += k;
    }
    Ok(group(("acc", &accs), per_cat, 0, samples))
}

/// The mean over all items, and each category's.
fn group(
    (name, all): (&str, &[f64]),
    per_cat: BTreeMap<String, Vec<f64>>,
    num_fewshot: usize,
    samples: Vec<Value>,
) -> GroupRun {
    GroupRun {
        metrics: BTreeMap::from([(name.to_owned(), mean_and_stderr(all))]),
        subtasks: per_cat
            .into_iter()
            .map(|(c, xs)| (c, BTreeMap::from([(name.to_owned(), mean_and_stderr(&xs))])))
            .collect(),
        num_fewshot,
        samples,
    }
}

// ----------------------------------------------------------------- lm-eval

/// lm-eval's `format_cot_example(example, including_answer=False)`:
/// options stripped, at most ten.
pub fn lm_eval_doc_to_text(doc: &MmluProDoc) -> String {
    let mut p = format!("Question:\n{}\nOptions:\n", doc.question);
    for (l, o) in LETTERS.iter().zip(&doc.options) {
        p.push_str(&format!("{l}. {}\n", crate::text::py_strip(o)));
    }
    p.push_str("Answer: Let's think step by step.");
    p
}

/// lm-eval's `format_cot_target`.
pub fn lm_eval_fewshot_target(doc: &MmluProDoc) -> String {
    doc.cot_content.replace("A: Let's think step by step. ", "")
}

/// The `description` of the category's YAML.
pub fn lm_eval_description(category: &str) -> String {
    format!(
        "The following are multiple choice questions (with answers) about {category}. Think step \
         by step and then finish your answer with \"the answer is (X)\" where X is the correct \
         letter choice.\n"
    )
}

/// The 5-shot prompt: description, the first `k` validation rows of the
/// category as solved examples, then the question. With a chat template:
/// the description as a system turn, examples as user/assistant turns
/// (lm-eval's `fewshot_as_multiturn`).
pub fn lm_eval_prompt(
    format: &PromptFormat,
    doc: &MmluProDoc,
    pool: &[MmluProDoc],
    k: usize,
) -> Result<String> {
    let shots: Vec<&MmluProDoc> = pool
        .iter()
        .filter(|p| p.category == doc.category)
        .take(k)
        .collect();
    if shots.len() < k {
        return Err(EvalError::Task {
            task: "mmlu_pro".into(),
            msg: format!(
                "{}: the few-shot pool (validation split) has {} examples of category `{}`, {k} \
                 are needed",
                doc.location,
                shots.len(),
                doc.category
            ),
        });
    }
    let description = lm_eval_description(&doc.category);
    if format.is_chat() {
        let mut turns = vec![Message::new("system", &description)];
        for s in &shots {
            turns.push(Message::new("user", &lm_eval_doc_to_text(s)));
            turns.push(Message::new("assistant", &lm_eval_fewshot_target(s)));
        }
        turns.push(Message::new("user", &lm_eval_doc_to_text(doc)));
        return format.render_turns(&turns);
    }
    let mut p = description;
    for s in &shots {
        p.push_str(&lm_eval_doc_to_text(s));
        p.push(' ');
        p.push_str(&lm_eval_fewshot_target(s));
        p.push_str("\n\n");
    }
    p.push_str(&lm_eval_doc_to_text(doc));
    Ok(p)
}

fn answer_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"answer is \(?([ABCDEFGHIJ])\)?").expect("static regex"))
}

/// The `custom-extract` filter: the first match's group, stripped, else
/// `[invalid]`.
pub fn lm_eval_extract(response: &str) -> String {
    match answer_re().captures(response) {
        Some(c) => crate::text::py_strip(c.get(1).map_or("", |g| g.as_str())).to_owned(),
        None => INVALID.to_owned(),
    }
}

/// `exact_match` with `ignore_case` and `ignore_punctuation`.
pub fn lm_eval_exact_match(pred: &str, gold: &str) -> bool {
    let norm = |s: &str| -> String {
        s.to_lowercase()
            .chars()
            .filter(|c| !c.is_ascii_punctuation())
            .collect::<String>()
            .trim_end_matches('\0')
            .to_owned()
    };
    norm(pred) == norm(gold)
}

/// Generates every question's CoT answer and scores it.
pub fn run_lm_eval(
    m: &LoadedModel,
    docs: &[MmluProDoc],
    pool: &[MmluProDoc],
    format: &PromptFormat,
    batch: BatchSize,
    keep_samples: bool,
) -> Result<GroupRun> {
    let prompts = docs
        .iter()
        .map(|d| lm_eval_prompt(format, d, pool, LM_EVAL_FEWSHOT))
        .collect::<Result<Vec<_>>>()?;
    let ids = prompts
        .iter()
        .map(|p| m.tokenizer.encode_with(p, false))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let outs = generate_all(m, &ids, &LM_EVAL_UNTIL, LM_EVAL_MAX_GEN_TOKS, batch)?;
    let (mut ems, mut samples) = (Vec::new(), Vec::new());
    let mut per_cat: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for ((d, p), o) in docs.iter().zip(&prompts).zip(&outs) {
        let pred = lm_eval_extract(&o.text);
        let em = lm_eval_exact_match(&pred, &d.answer);
        let x = f64::from(u8::from(em));
        ems.push(x);
        per_cat.entry(d.category.clone()).or_default().push(x);
        if keep_samples {
            samples.push(json!({
                "task": "mmlu_pro",
                "index": d.index,
                "source": d.location,
                "category": d.category,
                "prompt": p,
                "response": o.text,
                "extracted": pred,
                "gold": d.answer,
                "exact_match": em,
                "correct": em,
            }));
        }
    }
    Ok(group(
        ("exact_match", &ems),
        per_cat,
        LM_EVAL_FEWSHOT,
        samples,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn rec(v: Value) -> Record {
        Record {
            file: PathBuf::from("d/test.parquet"),
            index: 6,
            row: v.as_object().expect("object").clone(),
        }
    }

    fn row(n: usize, idx: usize, letter: &str) -> Value {
        let options: Vec<String> = (0..n).map(|i| format!("o{i}")).collect();
        json!({"question": "Q?", "options": options, "answer": letter, "answer_index": idx,
               "category": "computer science", "cot_content": "", "src": "x"})
    }

    #[test]
    fn rows_are_validated() {
        let d = mmlu_pro_doc(0, &rec(row(10, 9, "J"))).expect("doc");
        assert_eq!(d.options.len(), 10);
        let e = mmlu_pro_doc(0, &rec(row(11, 0, "A")))
            .expect_err("11 options")
            .to_string();
        assert_eq!(
            e,
            "task mmlu_pro: d/test.parquet, row 7: field `options`: 1 to 10 options (A-J), found 11"
        );
        let e = mmlu_pro_doc(0, &rec(row(4, 4, "E")))
            .expect_err("range")
            .to_string();
        assert!(e.contains("field `answer_index`"), "{e}");
        let e = mmlu_pro_doc(0, &rec(row(4, 1, "C")))
            .expect_err("letter")
            .to_string();
        assert!(e.contains("field `answer`") && e.contains("(B)"), "{e}");
    }

    #[test]
    fn smollm2_query_replaces_underscores() {
        let mut d = mmlu_pro_doc(0, &rec(row(2, 1, "B"))).expect("doc");
        d.category = "computer_science".into();
        assert_eq!(
            smollm2_query(&d),
            "The following are multiple choice questions (with answers) about computer science.\n\n\
             Q?\nA. o0\nB. o1\nAnswer:"
        );
    }

    #[test]
    fn extraction_and_match() {
        assert_eq!(lm_eval_extract("so the answer is (B)."), "B");
        assert_eq!(lm_eval_extract("the answer is C"), "C");
        assert_eq!(lm_eval_extract("The answer is B"), "B");
        assert_eq!(lm_eval_extract("The Answer is B"), INVALID);
        assert!(lm_eval_exact_match("b", "B"));
        assert!(!lm_eval_exact_match(INVALID, "I"));
    }
}
