//! BIG-Bench Hard over its 27 subtasks (rows `input`, `target`; one HF
//! config folder per subtask), in both conventions:
//!
//! - `smollm2` (lighteval@ea46419a, SmolLM2's `custom|bbh|3|1`): 3-shot
//!   answer-only, the query `Question: {input}\nAnswer: `, examples from
//!   the subtask's own split by lighteval's "balanced" sampler under
//!   Python's global `random.seed(0)` ([`balanced_pool`]), chat-wrapped as
//!   user/assistant turns; greedy generation with the stop strings
//!   `Question:`, `Question` and the eos text and no cap but the 2048-token
//!   window, each prompt's own (vLLM's v0 engine with `max_tokens=None`:
//!   2049 less the prompt's length, [`MaxNew::Window`]); `em` =
//!   `pred.strip() == gold.strip()` (an empty prediction scores 0); the
//!   score is the macro mean over subtasks.
//! - `lm-eval` (lm-evaluation-harness 0.4.13, `bbh_cot_fewshot` v4.0): the
//!   subtask's description and its 3 chain-of-thought exemplars as the YAML
//!   ships them (vendored in `data/bbh_cot_fewshot.json`), `Q: {input}\nA:
//!   Let's think step by step.\n`, `until: ["</s>", "Q", "\n\n"]` plus the
//!   eos text, 1024 new tokens; the answer the first match of
//!   `(?<=the answer is )(.*)(?=.)`, stripped (`[invalid]` when none),
//!   `exact_match` without normalisation; the group score is the mean over
//!   all samples (`weight_by_size`).
//!
//! Both keep each subtask's score.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{json, Value};
use smolsweep_datasets::{data_files, read_records, Record};
use smolsweep_model::{LoadedModel, Message};

use crate::chat_wrap;
use crate::error::{EvalError, Result};
use crate::generation::{generate_all, generate_all_with, Engine, MaxNew};
use crate::loglik::BatchSize;
use crate::pyrandom::PyRandom;
use crate::runner::{mean_and_stderr, Metric};
use crate::tasks::PromptFormat;
use crate::text::py_strip;

pub use smolsweep_config::benchmarks::BBH_SUBTASKS as SUBTASKS;

/// Solved examples before each question in both conventions.
pub const NUM_FEWSHOT: usize = 3;
/// The seed lighteval's balanced sampler passes to `random.seed`.
pub const SMOLLM2_SEED: u64 = 0;
/// `generation_kwargs` of lm-eval 0.4.13's `_cot_fewshot_template_yaml`.
pub const LM_EVAL_UNTIL: [&str; 3] = ["</s>", "Q", "\n\n"];
pub const LM_EVAL_MAX_GEN_TOKS: usize = 1024;
pub const INVALID: &str = "[invalid]";

/// One BBH item.
#[derive(Debug, Clone, PartialEq)]
pub struct BbhDoc {
    pub index: usize,
    pub location: String,
    pub subtask: String,
    pub input: String,
    pub target: String,
}

/// One subtask: its whole split (the few-shot pool) and the evaluated
/// items (its first `limit`).
#[derive(Debug, Clone)]
pub struct BbhSubtask {
    pub name: String,
    pub pool: Vec<BbhDoc>,
    pub n_eval: usize,
}

impl BbhSubtask {
    pub fn docs(&self) -> &[BbhDoc] {
        &self.pool[..self.n_eval]
    }
}

fn field_err(rec: &Record, field: &str, msg: impl Into<String>) -> EvalError {
    EvalError::Field {
        task: "bbh".into(),
        location: rec.location(),
        field: field.into(),
        msg: msg.into(),
    }
}

/// A document from one row (`input`, `target`, both strings).
pub fn bbh_doc(index: usize, rec: &Record, subtask: &str) -> Result<BbhDoc> {
    let get = |f: &str| match rec.row.get(f) {
        None | Some(Value::Null) => Err(field_err(rec, f, "missing")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(field_err(rec, f, format!("expected a string, found {v}"))),
    };
    Ok(BbhDoc {
        index,
        location: rec.location(),
        subtask: subtask.to_owned(),
        input: get("input")?,
        target: get("target")?,
    })
}

/// The files of one subtask under `root`: its folder (`NAME/`, or
/// `data/NAME/`, hub and `--local-dir` layouts) restricted to `split`
/// (else `alt_split`, else all its files), or a file `NAME.{jsonl,json,parquet}`.
fn subtask_files(root: &Path, name: &str, split: &str, alt_split: &str) -> Result<Vec<PathBuf>> {
    let wrap = |source| EvalError::Dataset {
        task: "bbh".into(),
        source,
    };
    for base in [root.to_path_buf(), root.join("data")] {
        let dir = base.join(name);
        if dir.is_dir() {
            for s in [Some(split), Some(alt_split), None] {
                let files = data_files(&dir, s).map_err(wrap)?;
                if !files.is_empty() {
                    return Ok(files);
                }
            }
        }
        for ext in ["parquet", "jsonl", "json"] {
            let f = base.join(format!("{name}.{ext}"));
            if f.is_file() {
                return Ok(vec![f]);
            }
        }
    }
    Ok(Vec::new())
}

/// Reads all 27 subtasks from the first root that holds any of them; a
/// root that holds some but not all is an error naming the missing ones.
pub fn load(
    roots: &[PathBuf],
    split: &str,
    alt_split: &str,
    limit: Option<usize>,
) -> Result<(Vec<BbhSubtask>, Vec<PathBuf>)> {
    for root in roots {
        if root.is_file() {
            return Err(EvalError::Task {
                task: "bbh".into(),
                msg: format!(
                    "{}: a single file; BBH is read from a directory with one folder (or file) \
                     per subtask ({}/, ...)",
                    root.display(),
                    SUBTASKS[0]
                ),
            });
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in SUBTASKS {
            let files = subtask_files(root, name, split, alt_split)?;
            if files.is_empty() {
                missing.push(name);
            } else {
                found.push((name, files));
            }
        }
        if found.is_empty() {
            continue;
        }
        if !missing.is_empty() {
            return Err(EvalError::Task {
                task: "bbh".into(),
                msg: format!(
                    "{}: no data for {} of the 27 subtasks: {}",
                    root.display(),
                    missing.len(),
                    missing.join(", ")
                ),
            });
        }
        let mut subtasks = Vec::new();
        let mut all_files = Vec::new();
        for (name, files) in found {
            let records = read_records(&files, root).map_err(|source| EvalError::Dataset {
                task: "bbh".into(),
                source,
            })?;
            let pool = records
                .iter()
                .enumerate()
                .map(|(i, r)| bbh_doc(i, r, name))
                .collect::<Result<Vec<_>>>()?;
            let n_eval = limit.map_or(pool.len(), |l| l.min(pool.len()));
            subtasks.push(BbhSubtask {
                name: name.to_owned(),
                pool,
                n_eval,
            });
            all_files.extend(files);
        }
        return Ok((subtasks, all_files));
    }
    Err(EvalError::Task {
        task: "bbh".into(),
        msg: format!(
            "{}: no subtask folders ({}/, {}/, ... or data/NAME/)",
            roots
                .first()
                .map_or_else(String::new, |r| r.display().to_string()),
            SUBTASKS[0],
            SUBTASKS[1]
        ),
    })
}

// ---------------------------------------------------------------- smollm2

/// SmolLM2's `bbh_prompt` query.
pub fn smollm2_query(input: &str) -> String {
    format!("Question: {input}\nAnswer: ")
}

/// lighteval's `_init_fewshot_sampling_balanced` (prompt_manager.py at
/// ea46419a): indices into `pool` of the `k + 1` examples it keeps, in
/// order. Groups items by target, orders the groups by size (largest
/// first; labels sorted, ties shuffled), then cycles through the groups
/// popping `randrange(len)` from each.
pub fn balanced_pool(pool: &[BbhDoc], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = PyRandom::new(seed);
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in pool.iter().enumerate() {
        by_label.entry(d.target.as_str()).or_default().push(i);
    }
    // counts_to_labels in sorted-label order, then counts descending.
    let mut by_count: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (label, items) in &by_label {
        by_count.entry(items.len()).or_default().push(label);
    }
    let mut sorted_labels: Vec<&str> = Vec::new();
    for (_, labels) in by_count.iter_mut().rev() {
        rng.shuffle(labels);
        sorted_labels.extend(labels.iter());
    }
    let mut left = pool.len().min(k + 1);
    let mut out = Vec::with_capacity(left);
    let mut at = 0;
    while left > 0 {
        // `cycle(...)`, and `if not next_label: break` (an empty label, or
        // no labels, ends the draw).
        let Some(label) = sorted_labels.get(at % sorted_labels.len().max(1)).copied() else {
            break;
        };
        at += 1;
        if label.is_empty() {
            break;
        }
        let items = by_label.get_mut(label).expect("label of the pool");
        if items.is_empty() {
            continue;
        }
        let j = rng.randrange(items.len());
        out.push(items.remove(j));
        left -= 1;
    }
    out
}

/// The examples for `doc`: the balanced pool less any item equal to it
/// (lighteval compares whole `Doc`s: same input and target), the first `k`.
pub fn smollm2_shots<'a>(
    doc: &BbhDoc,
    pool: &'a [BbhDoc],
    chosen: &[usize],
    k: usize,
) -> Vec<&'a BbhDoc> {
    chosen
        .iter()
        .map(|&i| &pool[i])
        .filter(|x| !(x.input == doc.input && x.target == doc.target))
        .take(k)
        .collect()
}

/// The chat-wrapped 3-shot prompt.
pub fn smollm2_prompt(format: &PromptFormat, doc: &BbhDoc, shots: &[&BbhDoc]) -> Result<String> {
    let pairs: Vec<(String, String)> = shots
        .iter()
        .map(|s| (smollm2_query(&s.input), s.target.clone()))
        .collect();
    chat_wrap::wrap(format, &pairs, &smollm2_query(&doc.input))
}

/// lighteval's `exact_match` (`ExactMatches(strip_strings=True)`).
pub fn smollm2_em(pred: &str, gold: &str) -> bool {
    !pred.is_empty() && py_strip(pred) == py_strip(gold)
}

// ----------------------------------------------------------------- lm-eval

#[derive(Debug, Deserialize)]
struct CotSubtask {
    description: String,
    doc_to_text: String,
    samples: Vec<CotSample>,
}

#[derive(Debug, Deserialize)]
struct CotSample {
    input: String,
    target: String,
}

#[derive(Debug, Deserialize)]
struct CotFile {
    subtasks: BTreeMap<String, CotSubtask>,
}

fn cot_data() -> &'static CotFile {
    static DATA: OnceLock<CotFile> = OnceLock::new();
    DATA.get_or_init(|| {
        serde_json::from_str(include_str!("../data/bbh_cot_fewshot.json"))
            .expect("the vendored bbh_cot_fewshot.json parses (checked by a test)")
    })
}

fn cot(subtask: &str) -> Result<&'static CotSubtask> {
    cot_data()
        .subtasks
        .get(subtask)
        .ok_or_else(|| EvalError::Task {
            task: "bbh".into(),
            msg: format!("no lm-eval exemplars for subtask `{subtask}`"),
        })
}

fn render_text(template: &str, input: &str) -> String {
    template.replace("{{input}}", input)
}

/// `bbh_cot_fewshot_{subtask}`'s prompt: the description, each exemplar
/// as `doc_to_text + target + "\n\n"`, then the question. With a chat
/// template: the description as a system turn, the exemplars as
/// user/assistant turns.
pub fn lm_eval_prompt(format: &PromptFormat, doc: &BbhDoc) -> Result<String> {
    let c = cot(&doc.subtask)?;
    let shots = &c.samples[..NUM_FEWSHOT.min(c.samples.len())];
    if format.is_chat() {
        let mut turns = Vec::new();
        if !c.description.is_empty() {
            turns.push(Message::new("system", &c.description));
        }
        for s in shots {
            turns.push(Message::new("user", &render_text(&c.doc_to_text, &s.input)));
            turns.push(Message::new("assistant", &s.target));
        }
        turns.push(Message::new(
            "user",
            &render_text(&c.doc_to_text, &doc.input),
        ));
        return format.render_turns(&turns);
    }
    let mut p = c.description.clone();
    for s in shots {
        p.push_str(&render_text(&c.doc_to_text, &s.input));
        p.push_str(&s.target);
        p.push_str("\n\n");
    }
    p.push_str(&render_text(&c.doc_to_text, &doc.input));
    Ok(p)
}

fn answer_re() -> &'static fancy_regex::Regex {
    static RE: OnceLock<fancy_regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        fancy_regex::Regex::new(r"(?<=the answer is )(.*)(?=.)").expect("static regex")
    })
}

/// The `get-answer` filter.
pub fn lm_eval_extract(response: &str) -> String {
    match answer_re().captures(response) {
        Ok(Some(c)) => py_strip(c.get(1).map_or("", |g| g.as_str())).to_owned(),
        _ => INVALID.to_owned(),
    }
}

/// `exact_match` with no options: equality (numpy ignores trailing NULs).
pub fn lm_eval_exact_match(pred: &str, gold: &str) -> bool {
    pred.trim_end_matches('\0') == gold.trim_end_matches('\0')
}

// ------------------------------------------------------------------ running

/// What a task of subtasks gives (BBH, MMLU-Pro): the group metrics,
/// every subtask's, the samples.
pub struct GroupRun {
    pub metrics: BTreeMap<String, Metric>,
    pub subtasks: BTreeMap<String, BTreeMap<String, Metric>>,
    pub num_fewshot: usize,
    pub samples: Vec<Value>,
}

/// Runs every subtask under `convention`'s prompts, generation settings
/// and metric.
pub fn run(
    m: &LoadedModel,
    subtasks: &[BbhSubtask],
    smollm2: bool,
    format: &PromptFormat,
    batch: BatchSize,
    keep_samples: bool,
) -> Result<GroupRun> {
    let mut prompts = Vec::new();
    let mut owners: Vec<(usize, usize)> = Vec::new();
    for (s, st) in subtasks.iter().enumerate() {
        let chosen = balanced_pool(&st.pool, NUM_FEWSHOT, SMOLLM2_SEED);
        for (j, d) in st.docs().iter().enumerate() {
            prompts.push(if smollm2 {
                smollm2_prompt(format, d, &smollm2_shots(d, &st.pool, &chosen, NUM_FEWSHOT))?
            } else {
                lm_eval_prompt(format, d)?
            });
            owners.push((s, j));
        }
    }
    let ids = prompts
        .iter()
        .map(|p| m.tokenizer.encode_with(p, smollm2))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let outs = if smollm2 {
        generate_all_with(
            m,
            &ids,
            &chat_wrap::SMOLLM2_STOP,
            MaxNew::Window(chat_wrap::max_model_length(m)),
            batch,
            Engine::default(),
        )?
    } else {
        generate_all(m, &ids, &LM_EVAL_UNTIL, LM_EVAL_MAX_GEN_TOKS, batch)?
    };
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); subtasks.len()];
    let mut samples = Vec::new();
    for ((&(s, j), p), o) in owners.iter().zip(&prompts).zip(&outs) {
        let d = &subtasks[s].docs()[j];
        let text = &o.text;
        let (pred, em) = if smollm2 {
            (text.clone(), smollm2_em(text, &d.target))
        } else {
            let e = lm_eval_extract(text);
            let em = lm_eval_exact_match(&e, &d.target);
            (e, em)
        };
        per[s].push(f64::from(u8::from(em)));
        if keep_samples {
            samples.push(json!({
                "task": "bbh",
                "subtask": d.subtask,
                "index": d.index,
                "source": d.location,
                "prompt": p,
                "response": text,
                "generated_tokens": o.token_ids.len(),
                "stop_reason": o.stop_reason,
                "extracted": pred,
                "gold": d.target,
                "exact_match": em,
                "correct": em,
            }));
        }
    }
    let mut sub = BTreeMap::new();
    let mut means = Vec::new();
    for (st, xs) in subtasks.iter().zip(&per) {
        let m = mean_and_stderr(xs);
        means.push(m);
        sub.insert(
            st.name.clone(),
            BTreeMap::from([("exact_match".to_owned(), m)]),
        );
    }
    let metric = if smollm2 {
        macro_mean(&means)
    } else {
        let all: Vec<f64> = per.iter().flatten().copied().collect();
        mean_and_stderr(&all)
    };
    Ok(GroupRun {
        metrics: BTreeMap::from([("exact_match".to_owned(), metric)]),
        subtasks: sub,
        num_fewshot: NUM_FEWSHOT,
        samples,
    })
}

/// The mean of the subtasks' scores, with the standard error of a mean of
/// independent estimates (sqrt of the summed squared stderrs over the
/// number of subtasks).
pub fn macro_mean(ms: &[Metric]) -> Metric {
    if ms.is_empty() {
        return Metric {
            value: f64::NAN,
            stderr: None,
        };
    }
    let n = ms.len() as f64;
    let value = ms.iter().map(|m| m.value).sum::<f64>() / n;
    let stderr = ms
        .iter()
        .map(|m| m.stderr.map(|s| s * s))
        .sum::<Option<f64>>()
        .map(|ss| ss.sqrt() / n);
    Metric { value, stderr }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: usize, input: &str, target: &str) -> BbhDoc {
        BbhDoc {
            index: i,
            location: format!("f, row {}", i + 1),
            subtask: "navigate".into(),
            input: input.into(),
            target: target.into(),
        }
    }

    #[test]
    fn vendored_exemplars_cover_every_subtask() {
        for s in SUBTASKS {
            let c = cot(s).expect("subtask");
            assert_eq!(c.samples.len(), 3, "{s}");
            assert!(c.doc_to_text.contains("{{input}}"), "{s}");
        }
        assert_eq!(cot_data().subtasks.len(), 27);
    }

    #[test]
    fn extraction_as_lm_eval() {
        assert_eq!(lm_eval_extract("So the answer is (A)."), "(A)");
        assert_eq!(lm_eval_extract("the answer is False."), "False");
        // Lower-case only; `(?=.)` leaves the last character out.
        assert_eq!(lm_eval_extract("The answer is B"), INVALID);
        assert_eq!(lm_eval_extract("the answer is B"), "");
        assert_eq!(lm_eval_extract("no answer"), INVALID);
    }

    #[test]
    fn smollm2_em_strips_and_rejects_empty() {
        assert!(smollm2_em(" False ", "False"));
        assert!(!smollm2_em("", ""));
        assert!(!smollm2_em("(A).", "(A)"));
    }

    #[test]
    fn balanced_pool_draws_across_labels_and_drops_the_doc() {
        let pool: Vec<BbhDoc> = (0..9)
            .map(|i| doc(i, &format!("q{i}"), if i % 3 == 0 { "Yes" } else { "No" }))
            .collect();
        let chosen = balanced_pool(&pool, 3, 0);
        assert_eq!(chosen.len(), 4);
        // "No" (6 items) comes first, then "Yes" (3), alternating.
        let labels: Vec<&str> = chosen.iter().map(|&i| pool[i].target.as_str()).collect();
        assert_eq!(labels, ["No", "Yes", "No", "Yes"]);
        let shots = smollm2_shots(&pool[chosen[1]], &pool, &chosen, 3);
        assert_eq!(shots.len(), 3);
        assert!(shots.iter().all(|s| s.index != chosen[1]));
    }
}
