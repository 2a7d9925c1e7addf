//! IFEval: Google's verifiable-instruction benchmark (`google/IFEval`),
//! scored as lm-evaluation-harness's `ifeval` task scores it.
//!
//! Each sample is a prompt with a list of instruction ids and their kwargs.
//! A response is checked against each instruction twice:
//! - strict: the response as generated (an all-whitespace response fails);
//! - loose: the response, and the response with its first line, its last
//!   line or both removed, each also with every `*` deleted; the
//!   instruction passes if any of those eight passes.
//!
//! [`aggregate`] gives prompt-level accuracy (all of a sample's instructions
//! pass) and instruction-level accuracy (over all instructions of all
//! samples), strict and loose.
//!
//! The checkers reproduce the reference's exact conventions (see
//! `checkers`): words as nltk's `RegexpTokenizer(r"\w+")` counts them,
//! sentences as nltk's Punkt English model splits them (`punkt`), capital
//! words over `nltk.word_tokenize` tokens (`treebank`), Python's string
//! and `json` semantics (`pystr`, `pyjson`). Language identification is the
//! one part that cannot be the same model; `langid` says where it differs.
//! `tests/ifeval_reference.rs` checks every verdict against the Python
//! reference on a corpus made by `scripts/reference/ifeval_corpus.py`.

mod checkers;
mod langid;
mod punkt;
mod pyjson;
mod pystr;
mod treebank;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use checkers::Instruction;
pub use checkers::INSTRUCTION_IDS;
use pystr::py_strip;

/// One row of `google/IFEval` (HF schema). Each kwargs entry is an object
/// holding every kwarg name of the dataset, null where unused.
#[derive(Debug, Clone, Deserialize)]
pub struct IfEvalSample {
    pub key: i64,
    pub prompt: String,
    pub instruction_id_list: Vec<String>,
    pub kwargs: Vec<Value>,
}

/// Why an instruction could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum IfEvalError {
    #[error("unknown IFEval instruction id `{0}`")]
    UnknownInstruction(String),
    #[error(
        "instruction `{id}`: kwarg `{kwarg}` is missing, null or empty \
         (the reference would draw a random value)"
    )]
    MissingKwarg { id: String, kwarg: String },
    #[error("instruction `{id}`: kwarg `{kwarg}` {problem}")]
    BadKwarg {
        id: String,
        kwarg: String,
        problem: String,
    },
    #[error("instruction `{id}`: unexpected kwarg `{kwarg}` (the reference's checker takes no such argument)")]
    UnexpectedKwarg { id: String, kwarg: String },
    #[error("instruction `{id}`: kwargs must be a JSON object or null, got {got}")]
    KwargsNotObject { id: String, got: String },
    #[error("sample {key}: {ids} instruction ids but {kwargs} kwargs entries")]
    KwargsLength { key: i64, ids: usize, kwargs: usize },
}

/// The verdicts on one sample's response, one per instruction, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleVerdict {
    pub key: i64,
    pub instruction_id_list: Vec<String>,
    pub strict: Vec<bool>,
    pub loose: Vec<bool>,
}

impl SampleVerdict {
    /// Every instruction followed, strictly (`prompt_level_strict_acc`).
    pub fn follow_all_strict(&self) -> bool {
        self.strict.iter().all(|&b| b)
    }

    /// Every instruction followed, loosely (`prompt_level_loose_acc`).
    pub fn follow_all_loose(&self) -> bool {
        self.loose.iter().all(|&b| b)
    }
}

/// The four IFEval metrics with their standard errors.
///
/// Standard errors are lm-eval's for a mean, the sample standard deviation
/// (ddof 1) over the square root of n, and `None` where n < 2 (lm-eval
/// writes "N/A"). lm-eval reports no standard error for the two
/// instruction-level metrics (their aggregation is a custom function); the
/// ones here treat each instruction as one item of a mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IfEvalScores {
    pub prompt_level_strict_acc: f64,
    pub prompt_level_strict_acc_stderr: Option<f64>,
    pub inst_level_strict_acc: f64,
    pub inst_level_strict_acc_stderr: Option<f64>,
    pub prompt_level_loose_acc: f64,
    pub prompt_level_loose_acc_stderr: Option<f64>,
    pub inst_level_loose_acc: f64,
    pub inst_level_loose_acc_stderr: Option<f64>,
    /// Samples.
    pub n: usize,
    /// Instructions over all samples.
    pub n_instructions: usize,
}

/// Strict verdict of one instruction on a response (lm-eval's
/// `test_instruction_following_strict` for one instruction). `prompt` is
/// the sample's prompt; none of the 25 registered checkers reads it
/// (`combination:repeat_prompt` takes its text from the `prompt_to_repeat`
/// kwarg, as the reference does).
pub fn check_instruction(
    id: &str,
    kwargs: &Value,
    prompt: &str,
    response: &str,
) -> Result<bool, IfEvalError> {
    let _ = prompt;
    let inst = Instruction::new(id, kwargs)?;
    Ok(strict(&inst, response))
}

/// Loose verdict of one instruction on a response (lm-eval's
/// `test_instruction_following_loose` for one instruction).
pub fn check_instruction_loose(
    id: &str,
    kwargs: &Value,
    prompt: &str,
    response: &str,
) -> Result<bool, IfEvalError> {
    let _ = prompt;
    let inst = Instruction::new(id, kwargs)?;
    Ok(loose(&inst, &loose_variants(response)))
}

/// Strict and loose verdicts on every instruction of a sample.
pub fn evaluate_sample(
    sample: &IfEvalSample,
    response: &str,
) -> Result<SampleVerdict, IfEvalError> {
    if sample.kwargs.len() != sample.instruction_id_list.len() {
        return Err(IfEvalError::KwargsLength {
            key: sample.key,
            ids: sample.instruction_id_list.len(),
            kwargs: sample.kwargs.len(),
        });
    }
    let variants = loose_variants(response);
    let mut strict_v = Vec::with_capacity(sample.instruction_id_list.len());
    let mut loose_v = Vec::with_capacity(sample.instruction_id_list.len());
    for (id, kwargs) in sample.instruction_id_list.iter().zip(&sample.kwargs) {
        let inst = Instruction::new(id, kwargs)?;
        strict_v.push(strict(&inst, response));
        loose_v.push(loose(&inst, &variants));
    }
    Ok(SampleVerdict {
        key: sample.key,
        instruction_id_list: sample.instruction_id_list.clone(),
        strict: strict_v,
        loose: loose_v,
    })
}

/// The four metrics over a set of verdicts, as lm-eval aggregates them.
pub fn aggregate(verdicts: &[SampleVerdict]) -> IfEvalScores {
    let prompt_strict: Vec<bool> = verdicts
        .iter()
        .map(SampleVerdict::follow_all_strict)
        .collect();
    let prompt_loose: Vec<bool> = verdicts
        .iter()
        .map(SampleVerdict::follow_all_loose)
        .collect();
    let inst_strict: Vec<bool> = verdicts
        .iter()
        .flat_map(|v| v.strict.iter().copied())
        .collect();
    let inst_loose: Vec<bool> = verdicts
        .iter()
        .flat_map(|v| v.loose.iter().copied())
        .collect();
    let (ps, ps_se) = mean_and_stderr(&prompt_strict);
    let (is, is_se) = mean_and_stderr(&inst_strict);
    let (pl, pl_se) = mean_and_stderr(&prompt_loose);
    let (il, il_se) = mean_and_stderr(&inst_loose);
    IfEvalScores {
        prompt_level_strict_acc: ps,
        prompt_level_strict_acc_stderr: ps_se,
        inst_level_strict_acc: is,
        inst_level_strict_acc_stderr: is_se,
        prompt_level_loose_acc: pl,
        prompt_level_loose_acc_stderr: pl_se,
        inst_level_loose_acc: il,
        inst_level_loose_acc_stderr: il_se,
        n: verdicts.len(),
        n_instructions: inst_strict.len(),
    }
}

/// The mean (NaN when empty, as Python's 0/0 would raise) and lm-eval's
/// `mean_stderr`: `sample_stddev(arr) / sqrt(len(arr))`, ddof 1.
fn mean_and_stderr(items: &[bool]) -> (f64, Option<f64>) {
    let n = items.len();
    if n == 0 {
        return (f64::NAN, None);
    }
    let nf = n as f64;
    let mean = items.iter().filter(|&&b| b).count() as f64 / nf;
    if n < 2 {
        return (mean, None);
    }
    let ss: f64 = items
        .iter()
        .map(|&b| {
            let d = f64::from(u8::from(b)) - mean;
            d * d
        })
        .sum();
    (mean, Some((ss / (nf - 1.0)).sqrt() / nf.sqrt()))
}

fn strict(inst: &Instruction, response: &str) -> bool {
    !py_strip(response).is_empty() && inst.check(response)
}

fn loose(inst: &Instruction, variants: &[String]) -> bool {
    variants
        .iter()
        .any(|r| !py_strip(r).is_empty() && inst.check(r))
}

/// lm-eval's eight loose variants (order does not matter: any one passing
/// passes).
fn loose_variants(response: &str) -> Vec<String> {
    let lines: Vec<&str> = response.split('\n').collect();
    let n = lines.len();
    let join = |s: &[&str]| py_strip(&s.join("\n")).to_string();
    let remove_first = join(&lines[1.min(n)..]);
    let remove_last = join(&lines[..n.saturating_sub(1)]);
    let remove_both = if n >= 2 {
        join(&lines[1..n - 1])
    } else {
        String::new()
    };
    let no_stars = |s: &str| s.replace('*', "");
    vec![
        response.to_string(),
        no_stars(response),
        no_stars(&remove_first),
        no_stars(&remove_last),
        no_stars(&remove_both),
        remove_first,
        remove_last,
        remove_both,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_instruction_and_kwarg() {
        let e = check_instruction("keywords:nope", &Value::Null, "", "x").expect_err("unknown id");
        assert!(e.to_string().contains("keywords:nope"));
        let e = check_instruction(
            "length_constraints:number_words",
            &json!({"num_words": null, "relation": "at least"}),
            "",
            "x",
        )
        .expect_err("missing kwarg");
        let msg = e.to_string();
        assert!(
            msg.contains("length_constraints:number_words") && msg.contains("num_words"),
            "{msg}"
        );
        let e = check_instruction(
            "length_constraints:number_words",
            &json!({"num_words": "ten", "relation": "at least"}),
            "",
            "x",
        )
        .expect_err("wrong type");
        assert!(e.to_string().contains("num_words"));
        let e = check_instruction(
            "length_constraints:number_words",
            &json!({"num_words": 3, "relation": "exactly"}),
            "",
            "x",
        )
        .expect_err("bad relation");
        assert!(e.to_string().contains("relation"));
        let e = check_instruction("punctuation:no_comma", &json!({"num_words": 3}), "", "x")
            .expect_err("unexpected kwarg");
        assert!(e.to_string().contains("num_words"));
    }

    #[test]
    fn python_falsy_kwargs_count_as_missing() {
        // lm-eval drops falsy kwargs and the reference then draws a random
        // value; a zero threshold or an empty list must not be scored.
        for kwargs in [
            json!({"num_words": 0, "relation": "at least"}),
            json!({"num_words": 5, "relation": ""}),
        ] {
            let e = check_instruction("length_constraints:number_words", &kwargs, "", "x")
                .expect_err("falsy kwarg");
            assert!(matches!(e, IfEvalError::MissingKwarg { .. }), "{e}");
        }
        let e = check_instruction("keywords:existence", &json!({"keywords": []}), "", "x")
            .expect_err("empty list");
        assert!(e.to_string().contains("keywords"));
        let e = check_instruction(
            "length_constraints:nth_paragraph_first_word",
            &json!({"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}),
            "",
            "x",
        )
        .expect_err("nth beyond num");
        assert!(e.to_string().contains("nth_paragraph"));
    }

    #[test]
    fn empty_response_fails_strict_and_loose() {
        let kw = json!({});
        assert!(!check_instruction("punctuation:no_comma", &kw, "", " \n ").expect("checks"));
        assert!(!check_instruction_loose("punctuation:no_comma", &kw, "", "").expect("checks"));
    }

    #[test]
    fn loose_drops_first_line() {
        let kw = json!({});
        let r = "Sure, here it is:\n\"All quoted\"";
        assert!(!check_instruction("startend:quotation", &kw, "", r).expect("checks"));
        assert!(check_instruction_loose("startend:quotation", &kw, "", r).expect("checks"));
    }

    #[test]
    fn aggregate_matches_hand_computation() {
        let v = |s: Vec<bool>, l: Vec<bool>| SampleVerdict {
            key: 0,
            instruction_id_list: vec![String::new(); s.len()],
            strict: s,
            loose: l,
        };
        let scores = aggregate(&[
            v(vec![true, false], vec![true, true]),
            v(vec![true], vec![true]),
        ]);
        assert_eq!(scores.prompt_level_strict_acc, 0.5);
        assert_eq!(scores.prompt_level_loose_acc, 1.0);
        assert!((scores.inst_level_strict_acc - 2.0 / 3.0).abs() < 1e-12);
        // std of [1, 0] with ddof 1 is sqrt(0.5); over sqrt(2) gives 0.5.
        let se = scores.prompt_level_strict_acc_stderr.expect("n = 2");
        assert!((se - 0.5).abs() < 1e-12);
        assert_eq!(scores.prompt_level_loose_acc_stderr, Some(0.0));
        assert_eq!(scores.n_instructions, 3);
    }
}
