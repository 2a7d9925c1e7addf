//! The six benchmarks: their names, where their data lives, how a row of
//! each HF schema becomes a document, and lm-eval's prompts for them.
//!
//! Prompts are those of lm-evaluation-harness's task YAMLs:
//! - `arc_easy`, `arc_challenge` (`allenai/ai2_arc`, test split):
//!   `"Question: {question}\nAnswer:"`, choices `choices.text`, gold the
//!   index of `answerKey` in `choices.label`;
//! - `hellaswag` (`Rowan/hellaswag`, validation split): query
//!   `preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())`,
//!   choices `preprocess(ending)`, gold `int(label)`;
//! - `piqa` (`baber/piqa`, validation split): `"Question: {goal}\nAnswer:"`,
//!   choices `[sol1, sol2]`, gold `label`;
//! - `gsm8k` (`openai/gsm8k` config `main`, test split, few-shot from
//!   train): `"Question: {question}\nAnswer:"`, target `answer`;
//! - `ifeval` (`google/IFEval`, train split): the prompt as-is.
//!
//! A multiple-choice request is `(context, " " + choice)`; with the chat
//! template it is `(chat(context), choice)`, lm-eval's
//! `--apply_chat_template` (which drops the target delimiter).
//!
//! Each multiple-choice document also carries lighteval's view of it
//! ([`McView`]: SmolLM2's prompt functions, choices with their leading
//! space, HellaSwag unstripped), which the `smollm2` convention scores.

use std::path::PathBuf;

use serde_json::Value;
use smolsweep_datasets::Record;
use smolsweep_model::{ChatTemplate, Message, TextTokenizer};

use crate::error::{EvalError, Result};
use crate::ifeval::IfEvalSample;
use crate::text::{hellaswag_preprocess, hellaswag_preprocess_nostrip, py_capitalize};

/// A benchmark: the registry of `smolsweep-config` (names, metrics, splits,
/// repositories), under the name the evals have always used.
pub use smolsweep_config::Task as TaskKind;

/// A multiple-choice question.
#[derive(Debug, Clone, PartialEq)]
pub struct McDoc {
    /// Position in the evaluated split.
    pub index: usize,
    /// "FILE, row N".
    pub location: String,
    /// lm-eval's `doc_to_text`.
    pub query: String,
    /// lm-eval's `doc_to_choice` (no target delimiter).
    pub choices: Vec<String>,
    pub gold: usize,
    /// The question as lighteval's prompt function for the task builds it
    /// (the `smollm2` convention's prompt).
    pub lighteval: McView,
}

/// A question as one convention's prompt function writes it: the query and
/// the choices exactly as scored, leading space included where the
/// convention puts one (lighteval's ARC, HellaSwag and PIQA choices start
/// with a space; its acc_norm divisor then leaves it out).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct McView {
    pub query: String,
    pub choices: Vec<String>,
}

impl McView {
    /// lighteval's usual choices: `" " + choice`.
    fn spaced(query: String, choices: &[String]) -> Self {
        McView {
            query,
            choices: choices.iter().map(|c| format!(" {c}")).collect(),
        }
    }
}

/// A GSM8K problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Gsm8kDoc {
    pub index: usize,
    pub location: String,
    pub question: String,
    pub answer: String,
}

impl Gsm8kDoc {
    /// lm-eval's `doc_to_text`.
    pub fn text(&self) -> String {
        gsm8k_query(&self.question)
    }
}

// The queries below are plain string functions (no model, no tokenizer) so
// that whatever writes training text for these tasks (the demo's generated
// SFT data) builds it with the very prompts the evaluation uses.

/// lm-eval's ARC `doc_to_text`.
pub fn arc_query(question: &str) -> String {
    format!("Question: {question}\nAnswer:")
}

/// lm-eval's PIQA `doc_to_text`.
pub fn piqa_query(goal: &str) -> String {
    format!("Question: {goal}\nAnswer:")
}

/// lm-eval's GSM8K `doc_to_text`.
pub fn gsm8k_query(question: &str) -> String {
    format!("Question: {question}\nAnswer:")
}

/// lm-eval's HellaSwag query:
/// `preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())`.
pub fn hellaswag_query(activity_label: &str, ctx_a: &str, ctx_b: &str) -> String {
    let ctx = format!("{ctx_a} {}", py_capitalize(ctx_b));
    hellaswag_preprocess(&format!("{activity_label}: {ctx}"))
}

/// lm-eval's HellaSwag choice: `preprocess(ending)`.
pub fn hellaswag_ending(ending: &str) -> String {
    hellaswag_preprocess(ending)
}

/// SmolLM2's HellaSwag query (huggingface/smollm `tasks.py`,
/// `prompt_hellaswag`): `preprocess(activity_label + ": " + ctx_a + " " +
/// ctx_b.capitalize() + " ")` with its non-stripping `preprocess`, so the
/// trailing space stays.
pub fn smollm2_hellaswag_query(activity_label: &str, ctx_a: &str, ctx_b: &str) -> String {
    let ctx = format!("{ctx_a} {} ", py_capitalize(ctx_b));
    hellaswag_preprocess_nostrip(&format!("{activity_label}: {ctx}"))
}

/// SmolLM2's HellaSwag choice: `" " + preprocess(ending)`, not stripped.
pub fn smollm2_hellaswag_ending(ending: &str) -> String {
    format!(" {}", hellaswag_preprocess_nostrip(ending))
}

/// An IFEval prompt.
#[derive(Debug, Clone)]
pub struct IfEvalDoc {
    pub index: usize,
    pub location: String,
    pub sample: IfEvalSample,
}

/// A task's documents, validated.
#[derive(Debug, Clone)]
pub enum Docs {
    MultipleChoice(Vec<McDoc>),
    Gsm8k {
        docs: Vec<Gsm8kDoc>,
        /// The train split, the few-shot pool.
        fewshot: Vec<Gsm8kDoc>,
    },
    IfEval(Vec<IfEvalDoc>),
    /// Preference pairs, scored by a reward model ([`crate::reward`]).
    Preference(Vec<crate::reward::PreferenceDoc>),
    MmluPro {
        docs: Vec<crate::mmlu_pro::MmluProDoc>,
        /// The validation split (lm-eval's per-category exemplars); empty
        /// when the download has none.
        fewshot: Vec<crate::mmlu_pro::MmluProDoc>,
    },
    Bbh(Vec<crate::bbh::BbhSubtask>),
}

/// A task ready to run: its documents and the files they came from.
#[derive(Debug, Clone)]
pub struct TaskData {
    pub kind: TaskKind,
    pub files: Vec<PathBuf>,
    pub fewshot_files: Vec<PathBuf>,
    pub docs: Docs,
}

impl TaskData {
    pub fn len(&self) -> usize {
        match &self.docs {
            Docs::MultipleChoice(d) => d.len(),
            Docs::Gsm8k { docs, .. } => docs.len(),
            Docs::IfEval(d) => d.len(),
            Docs::Preference(d) => d.len(),
            Docs::MmluPro { docs, .. } => docs.len(),
            Docs::Bbh(s) => s.iter().map(|s| s.n_eval).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Row<'a> {
    task: TaskKind,
    rec: &'a Record,
}

impl<'a> Row<'a> {
    fn err(&self, field: &str, msg: impl Into<String>) -> EvalError {
        EvalError::Field {
            task: self.task.name().to_owned(),
            location: self.rec.location(),
            field: field.to_owned(),
            msg: msg.into(),
        }
    }

    fn get(&self, field: &str) -> Result<&'a Value> {
        match self.rec.row.get(field) {
            Some(Value::Null) | None => Err(self.err(field, "missing")),
            Some(v) => Ok(v),
        }
    }

    fn str(&self, field: &str) -> Result<String> {
        match self.get(field)? {
            Value::String(s) => Ok(s.clone()),
            v => Err(self.err(field, format!("expected a string, found {}", kind(v)))),
        }
    }

    fn str_list(&self, field: &str, v: &Value) -> Result<Vec<String>> {
        let arr = v
            .as_array()
            .ok_or_else(|| self.err(field, format!("expected a list, found {}", kind(v))))?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str().map(str::to_owned).ok_or_else(|| {
                    self.err(
                        field,
                        format!("item {i}: expected a string, found {}", kind(x)),
                    )
                })
            })
            .collect()
    }

    /// An integer label, given as a number or a string of digits (HF's
    /// hellaswag stores `"2"`), checked against the number of choices.
    fn label(&self, field: &str, n_choices: usize) -> Result<usize> {
        let v = self.get(field)?;
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            self.err(
                field,
                format!("expected an integer label, found {}", short(v)),
            )
        })?;
        usize::try_from(n)
            .ok()
            .filter(|&g| g < n_choices)
            .ok_or_else(|| {
                self.err(
                    field,
                    format!("label {n} is out of range for {n_choices} choices"),
                )
            })
    }

    fn check_choices(&self, field: &str, choices: &[String]) -> Result<()> {
        if choices.len() < 2 {
            return Err(self.err(
                field,
                format!(
                    "a multiple-choice question needs at least 2 choices, found {}",
                    choices.len()
                ),
            ));
        }
        Ok(())
    }
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

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

/// A multiple-choice document from one row of the task's HF schema.
pub fn mc_doc(task: TaskKind, index: usize, rec: &Record) -> Result<McDoc> {
    let r = Row { task, rec };
    let (query, choices, gold, lighteval) = match task {
        TaskKind::ArcEasy | TaskKind::ArcChallenge => {
            let question = r.str("question")?;
            let ch = r.get("choices")?;
            let obj = ch.as_object().ok_or_else(|| {
                r.err("choices", format!("expected an object, found {}", kind(ch)))
            })?;
            let text = obj
                .get("text")
                .ok_or_else(|| r.err("choices.text", "missing"))?;
            let text = r.str_list("choices.text", text)?;
            let labels = obj
                .get("label")
                .ok_or_else(|| r.err("choices.label", "missing"))?;
            let labels = r.str_list("choices.label", labels)?;
            if labels.len() != text.len() {
                return Err(r.err(
                    "choices.label",
                    format!("{} labels for {} choices", labels.len(), text.len()),
                ));
            }
            r.check_choices("choices.text", &text)?;
            let key = r.str("answerKey")?;
            let gold = labels.iter().position(|l| *l == key).ok_or_else(|| {
                r.err(
                    "answerKey",
                    format!("`{key}` is not one of the labels {labels:?}"),
                )
            })?;
            let query = arc_query(&question);
            let view = McView::spaced(query.clone(), &text);
            (query, text, gold, view)
        }
        TaskKind::Hellaswag => {
            let label = r.str("activity_label")?;
            let ctx_a = r.str("ctx_a")?;
            let ctx_b = r.str("ctx_b")?;
            let endings = r.get("endings")?;
            let endings = r.str_list("endings", endings)?;
            r.check_choices("endings", &endings)?;
            let gold = r.label("label", endings.len())?;
            let query = hellaswag_query(&label, &ctx_a, &ctx_b);
            let choices = endings.iter().map(|e| hellaswag_ending(e)).collect();
            let view = McView {
                query: smollm2_hellaswag_query(&label, &ctx_a, &ctx_b),
                choices: endings
                    .iter()
                    .map(|e| smollm2_hellaswag_ending(e))
                    .collect(),
            };
            (query, choices, gold, view)
        }
        TaskKind::Piqa => {
            let goal = r.str("goal")?;
            let choices = vec![r.str("sol1")?, r.str("sol2")?];
            let gold = r.label("label", 2)?;
            let query = piqa_query(&goal);
            let view = McView::spaced(query.clone(), &choices);
            (query, choices, gold, view)
        }
        TaskKind::Gsm8k | TaskKind::Ifeval | TaskKind::MmluPro | TaskKind::Bbh => {
            return Err(EvalError::Task {
                task: task.name().to_owned(),
                msg: "not a multiple-choice task".into(),
            })
        }
        TaskKind::Rewardbench | TaskKind::PreferenceAccuracy | TaskKind::DpoRewardAccuracy => {
            return Err(EvalError::Task {
                task: task.name().to_owned(),
                msg: "not a multiple-choice task".into(),
            })
        }
    };
    Ok(McDoc {
        index,
        location: rec.location(),
        query,
        choices,
        gold,
        lighteval,
    })
}

pub fn gsm8k_doc(index: usize, rec: &Record) -> Result<Gsm8kDoc> {
    let r = Row {
        task: TaskKind::Gsm8k,
        rec,
    };
    Ok(Gsm8kDoc {
        index,
        location: rec.location(),
        question: r.str("question")?,
        answer: r.str("answer")?,
    })
}

pub fn ifeval_doc(index: usize, rec: &Record) -> Result<IfEvalDoc> {
    let r = Row {
        task: TaskKind::Ifeval,
        rec,
    };
    // Field by field first, so a missing one is named as such.
    for f in ["key", "prompt", "instruction_id_list", "kwargs"] {
        r.get(f)?;
    }
    let sample: IfEvalSample = serde_json::from_value(Value::Object(rec.row.clone()))
        .map_err(|e| r.err("*", e.to_string()))?;
    if sample.kwargs.len() != sample.instruction_id_list.len() {
        return Err(r.err(
            "kwargs",
            format!(
                "{} entries for {} instruction ids",
                sample.kwargs.len(),
                sample.instruction_id_list.len()
            ),
        ));
    }
    Ok(IfEvalDoc {
        index,
        location: rec.location(),
        sample,
    })
}

/// How prompts reach the model: plain text (lm-eval's default), or wrapped
/// in the model's chat template.
#[derive(Debug)]
pub enum PromptFormat {
    Plain,
    Chat {
        template: Box<ChatTemplate>,
        bos: String,
        eos: String,
    },
}

impl PromptFormat {
    /// The model's own chat template.
    pub fn chat(tok: &TextTokenizer) -> Result<Self> {
        Ok(PromptFormat::Chat {
            template: Box::new(tok.model_chat_template()?),
            bos: tok.bos_token.clone().unwrap_or_default(),
            eos: tok.eos_token.clone().unwrap_or_default(),
        })
    }

    pub fn is_chat(&self) -> bool {
        matches!(self, PromptFormat::Chat { .. })
    }

    fn render(&self, turns: &[Message]) -> Result<String> {
        match self {
            PromptFormat::Plain => Ok(turns.iter().map(|m| m.content.as_str()).collect()),
            PromptFormat::Chat { template, bos, eos } => {
                Ok(template.render(turns, true, bos, eos)?)
            }
        }
    }

    /// `turns` rendered (the chat template with its generation prompt, or
    /// the turns' texts joined).
    pub fn render_turns(&self, turns: &[Message]) -> Result<String> {
        self.render(turns)
    }

    /// (context, continuation) for each choice of a question.
    pub fn mc_requests(&self, doc: &McDoc) -> Result<Vec<(String, String)>> {
        let (context, delim) = match self {
            PromptFormat::Plain => (doc.query.clone(), " "),
            PromptFormat::Chat { .. } => (self.render(&[Message::new("user", &doc.query)])?, ""),
        };
        Ok(doc
            .choices
            .iter()
            .map(|c| (context.clone(), format!("{delim}{c}")))
            .collect())
    }

    /// The GSM8K prompt with its few-shot examples: plain, lm-eval's
    /// `"{q1} {a1}\n\n...{qk} {ak}\n\n{q}"`; with a chat template, lm-eval's
    /// default `fewshot_as_multiturn`: each example a user turn (its
    /// question text) and an assistant turn (its answer), then the
    /// question as the last user turn and the generation prompt.
    pub fn gsm8k_prompt(&self, doc: &Gsm8kDoc, shots: &[&Gsm8kDoc]) -> Result<String> {
        match self {
            PromptFormat::Plain => {
                let mut s = String::new();
                for ex in shots {
                    s.push_str(&ex.text());
                    s.push(' ');
                    s.push_str(&ex.answer);
                    s.push_str("\n\n");
                }
                s.push_str(&doc.text());
                Ok(s)
            }
            PromptFormat::Chat { .. } => {
                let mut turns = Vec::with_capacity(2 * shots.len() + 1);
                for ex in shots {
                    turns.push(Message::new("user", &ex.text()));
                    turns.push(Message::new("assistant", &ex.answer));
                }
                turns.push(Message::new("user", &doc.text()));
                self.render(&turns)
            }
        }
    }

    /// The IFEval prompt.
    pub fn ifeval_prompt(&self, doc: &IfEvalDoc) -> Result<String> {
        self.render(&[Message::new("user", &doc.sample.prompt)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        Record {
            file: PathBuf::from("d/test.jsonl"),
            index: 4,
            row: v.as_object().expect("object").clone(),
        }
    }

    #[test]
    fn arc_doc_and_its_errors() {
        let ok = rec(
            json!({"id": "x", "question": "Q?", "choices": {"text": ["a", "b", "c"], "label": ["A", "B", "C"]}, "answerKey": "C"}),
        );
        let d = mc_doc(TaskKind::ArcEasy, 0, &ok).expect("doc");
        assert_eq!(d.query, "Question: Q?\nAnswer:");
        assert_eq!(d.gold, 2);
        let one = rec(
            json!({"question": "Q?", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "A"}),
        );
        let e = mc_doc(TaskKind::ArcEasy, 0, &one)
            .expect_err("one choice")
            .to_string();
        assert!(
            e.contains("arc_easy")
                && e.contains("d/test.jsonl, row 5")
                && e.contains("choices.text")
                && e.contains("found 1"),
            "{e}"
        );
        let bad_key = rec(
            json!({"question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"}),
        );
        let e = mc_doc(TaskKind::ArcChallenge, 0, &bad_key)
            .expect_err("key")
            .to_string();
        assert!(e.contains("answerKey") && e.contains("`E`"), "{e}");
        let missing =
            rec(json!({"choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}));
        let e = mc_doc(TaskKind::ArcEasy, 0, &missing)
            .expect_err("missing")
            .to_string();
        assert!(e.contains("field `question`: missing"), "{e}");
    }

    #[test]
    fn hellaswag_query_as_lm_eval() {
        let r = rec(
            json!({"activity_label": "Home and Garden", "ctx_a": "[header] How to x [title] Do y.", "ctx_b": "THEN", "endings": ["[title] a  b", "c"], "label": "1"}),
        );
        let d = mc_doc(TaskKind::Hellaswag, 0, &r).expect("doc");
        assert_eq!(
            d.query,
            "Home and Garden:  How to x. Do y. Then".replace("  ", " ")
        );
        assert_eq!(d.choices, vec![" a b", "c"]);
        assert_eq!(d.gold, 1);
        let r = rec(
            json!({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y"], "label": ""}),
        );
        let e = mc_doc(TaskKind::Hellaswag, 0, &r)
            .expect_err("label")
            .to_string();
        assert!(e.contains("field `label`"), "{e}");
    }

    /// With a chat template the context is the rendered conversation and
    /// the continuation loses its leading space (lm-eval's
    /// `--apply_chat_template`); few-shot examples become turns.
    #[test]
    fn chat_format_requests_and_fewshot_turns() {
        let chat = PromptFormat::Chat {
            template: Box::new(ChatTemplate::builtin("chatml").expect("chatml")),
            bos: String::new(),
            eos: "<|im_end|>".into(),
        };
        let d = McDoc {
            index: 0,
            location: String::new(),
            query: "Question: Q?\nAnswer:".into(),
            choices: vec!["yes".into(), "no".into()],
            gold: 0,
            lighteval: McView::default(),
        };
        let r = chat.mc_requests(&d).expect("requests");
        assert!(
            r[0].0
                .contains("<|im_start|>user\nQuestion: Q?\nAnswer:<|im_end|>"),
            "{}",
            r[0].0
        );
        assert!(r[0].0.ends_with("<|im_start|>assistant\n"), "{}", r[0].0);
        assert_eq!(r[1].1, "no");
        let ex = Gsm8kDoc {
            index: 0,
            location: String::new(),
            question: "1+1?".into(),
            answer: "#### 2".into(),
        };
        let p = chat.gsm8k_prompt(&ex, &[&ex]).expect("prompt");
        assert!(p.contains("<|im_start|>assistant\n#### 2<|im_end|>"), "{p}");
        assert_eq!(p.matches("<|im_start|>user").count(), 2, "{p}");
    }

    #[test]
    fn gsm8k_plain_prompt() {
        let doc = |i: usize, q: &str, a: &str| Gsm8kDoc {
            index: i,
            location: String::new(),
            question: q.into(),
            answer: a.into(),
        };
        let (a, b, c) = (
            doc(0, "1+1?", "2\n#### 2"),
            doc(1, "2+2?", "#### 4"),
            doc(2, "3+3?", "#### 6"),
        );
        let p = PromptFormat::Plain
            .gsm8k_prompt(&c, &[&a, &b])
            .expect("prompt");
        assert_eq!(p, "Question: 1+1?\nAnswer: 2\n#### 2\n\nQuestion: 2+2?\nAnswer: #### 4\n\nQuestion: 3+3?\nAnswer:");
    }
}
