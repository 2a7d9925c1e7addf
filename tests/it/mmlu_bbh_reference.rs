//! MMLU-Pro and BBH against their references, from the fixtures that
//! `scripts/reference/mmlu_bbh_reference.py` wrote: lm-evaluation-harness
//! 0.4.13's own prompts (bundled YAMLs and utils) and filters, and
//! lighteval@ea46419a's prompts, balanced few-shot picks, chat-templated
//! contexts, `tok_encode_pair` tokens and exact match under the `smollm2`
//! convention; MMLU-Pro MCF log-likelihoods from `transformers` on the real
//! SmolLM2-135M-Instruct. Bad data is an error naming file and row.

use std::path::PathBuf;

use serde_json::Value;
use smolsweep_evals::tasks::{Docs, PromptFormat};
use smolsweep_evals::{bbh, chat_wrap, load_task, mmlu_pro, DataSources, TaskSpec};
use smolsweep_model::TextTokenizer;

use crate::common::{real_model, root, run, stderr, stdout};

fn dir() -> PathBuf {
    root().join("tests/fixtures/evals/mmlu_bbh")
}

fn reference() -> Value {
    let p = dir().join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json")
}

fn spec(task: &str) -> TaskSpec {
    format!("{task}={}", dir().join("data").join(task).display())
        .parse()
        .expect("spec")
}

fn chat() -> PromptFormat {
    let tok = TextTokenizer::from_dir(&real_model()).expect("tokenizer");
    PromptFormat::chat(&tok).expect("chat template")
}

fn mmlu() -> (Vec<mmlu_pro::MmluProDoc>, Vec<mmlu_pro::MmluProDoc>) {
    match load_task(&spec("mmlu_pro"), &DataSources::default(), None)
        .expect("mmlu_pro")
        .docs
    {
        Docs::MmluPro { docs, fewshot } => (docs, fewshot),
        _ => panic!("not mmlu_pro docs"),
    }
}

fn bbh_subtasks() -> Vec<bbh::BbhSubtask> {
    match load_task(&spec("bbh"), &DataSources::default(), None)
        .expect("bbh")
        .docs
    {
        Docs::Bbh(s) => s,
        _ => panic!("not bbh docs"),
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|x| x.as_str().expect("str").to_owned())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

#[test]
fn mmlu_pro_smollm2_contexts_and_tokens_are_lightevals() {
    let r = reference();
    let tok = TextTokenizer::from_dir(&real_model()).expect("tokenizer");
    let format = chat();
    let (docs, _) = mmlu();
    let want = r["smollm2"]["mmlu_pro"].as_array().expect("list");
    assert_eq!(docs.len(), want.len());
    for (d, w) in docs.iter().zip(want) {
        let reqs = mmlu_pro::smollm2_requests(&format, d).expect("requests");
        assert_eq!(
            reqs[0].0,
            w["context"].as_str().expect("ctx"),
            "{}",
            d.location
        );
        let conts: Vec<String> = reqs.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(conts, strs(&w["choices"]));
        for ((ctx, cont), wc) in reqs
            .iter()
            .zip(w["continuation_ids"].as_array().expect("c"))
        {
            let e = chat_wrap::tok_encode_pair(&tok, ctx, cont).expect("encode");
            // The same context tokens for every letter: the engine scores
            // the question's context once.
            assert_eq!(e.context, ids(&w["context_ids"]), "{}", d.location);
            assert_eq!(e.continuation, ids(wc), "{}", d.location);
        }
    }
}

#[test]
fn mmlu_pro_lm_eval_prompts_are_lm_evals() {
    let r = reference();
    let (docs, pool) = mmlu();
    let test = std::fs::read_to_string(dir().join("data/mmlu_pro/data/test-00000-of-00001.jsonl"))
        .expect("test");
    let qids: Vec<String> = test
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("row")["question_id"].to_string())
        .collect();
    let want = r["lm_eval"]["mmlu_pro_prompts"].as_object().expect("map");
    let mut compared = 0;
    for (d, q) in docs.iter().zip(&qids) {
        // lm-eval's categories are the 14 of its YAMLs: a row of another
        // category is in none of its tasks.
        let Some(w) = want.get(q) else { continue };
        let got = mmlu_pro::lm_eval_prompt(&PromptFormat::Plain, d, &pool, 5).expect("prompt");
        assert_eq!(got, w.as_str().expect("prompt"), "{}", d.location);
        compared += 1;
    }
    assert_eq!(compared, want.len());
    for row in r["lm_eval"]["mmlu_pro_extract"].as_array().expect("corpus") {
        let resp = row[0].as_str().expect("resp");
        let got = mmlu_pro::lm_eval_extract(resp);
        assert_eq!(got, row[1].as_str().expect("extracted"), "{resp:?}");
        let em = mmlu_pro::lm_eval_exact_match(&got, row[2].as_str().expect("gold"));
        assert_eq!(
            f64::from(u8::from(em)),
            row[3].as_f64().expect("em"),
            "{resp:?}"
        );
    }
}

#[test]
fn bbh_prompts_picks_and_scoring_match_both_references() {
    let r = reference();
    let format = chat();
    let subtasks = bbh_subtasks();
    assert_eq!(subtasks.len(), 27);
    for st in &subtasks {
        let w = &r["smollm2"]["bbh"][&st.name];
        let chosen = bbh::balanced_pool(&st.pool, 3, 0);
        let want: Vec<usize> = w["chosen"]
            .as_array()
            .expect("chosen")
            .iter()
            .map(|x| x.as_u64().expect("i") as usize)
            .collect();
        // As documents: lighteval sees only their contents, and a
        // subtask's duplicated row may be picked as either copy.
        let as_docs = |ix: &[usize]| -> Vec<(String, String)> {
            ix.iter()
                .map(|&i| (st.pool[i].input.clone(), st.pool[i].target.clone()))
                .collect()
        };
        assert_eq!(
            as_docs(&chosen),
            as_docs(&want),
            "{}: balanced picks",
            st.name
        );
        for (d, wp) in st.docs().iter().zip(strs(&w["prompts"])) {
            let shots = bbh::smollm2_shots(d, &st.pool, &chosen, 3);
            let got = bbh::smollm2_prompt(&format, d, &shots).expect("prompt");
            assert_eq!(got, wp, "{}", d.location);
        }
        let lw = strs(&r["lm_eval"]["bbh_prompts"][&st.name]);
        assert_eq!(lw.len(), st.docs().len());
        for (d, wp) in st.docs().iter().zip(lw) {
            let got = bbh::lm_eval_prompt(&PromptFormat::Plain, d).expect("prompt");
            assert_eq!(got, wp, "{}", d.location);
        }
    }
    for row in r["lm_eval"]["bbh_extract"].as_array().expect("corpus") {
        let resp = row[0].as_str().expect("resp");
        let got = bbh::lm_eval_extract(resp);
        assert_eq!(got, row[1].as_str().expect("extracted"), "{resp:?}");
        let em = bbh::lm_eval_exact_match(&got, row[2].as_str().expect("gold"));
        assert_eq!(
            f64::from(u8::from(em)),
            row[3].as_f64().expect("em"),
            "{resp:?}"
        );
    }
    for row in r["smollm2"]["em"].as_array().expect("corpus") {
        let (gold, pred) = (row[0].as_str().expect("g"), row[1].as_str().expect("p"));
        let em = bbh::smollm2_em(pred, gold);
        assert_eq!(
            u64::from(em),
            row[2].as_u64().expect("em"),
            "{pred:?} vs {gold:?}"
        );
    }
}

/// `smolsweep eval --convention smollm2` on the real weights: every
/// letter's log-likelihood equals transformers' within 1e-3, and every
/// prediction is the same.
#[test]
fn mmlu_pro_mcf_logliks_equal_transformers() {
    let r = reference();
    let tmp = tempfile::tempdir().expect("tmp");
    let (out, samples) = (tmp.path().join("r.json"), tmp.path().join("s.jsonl"));
    let model = real_model();
    let task = format!("mmlu_pro={}", dir().join("data/mmlu_pro").display());
    let o = run(&[
        "eval",
        "--model",
        model.to_str().expect("utf-8"),
        "--device",
        "cpu",
        "--convention",
        "smollm2",
        "--task",
        &task,
        "--out",
        out.to_str().expect("utf-8"),
        "--samples",
        samples.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let want = r["smollm2"]["mmlu_pro"].as_array().expect("list");
    let got: Vec<Value> = std::fs::read_to_string(&samples)
        .expect("samples")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(got.len(), want.len());
    let mut correct = 0.0;
    for (g, w) in got.iter().zip(want) {
        let (gl, wl) = (
            g["loglik"].as_array().expect("g"),
            w["loglik"].as_array().expect("w"),
        );
        assert_eq!(gl.len(), wl.len());
        for (a, b) in gl.iter().zip(wl) {
            let (a, b) = (a.as_f64().expect("a"), b.as_f64().expect("b"));
            assert!((a - b).abs() < 1e-3, "{}: {a} vs {b}", g["source"]);
        }
        assert_eq!(g["pred"], w["pred"], "{}", g["source"]);
        correct += f64::from(u8::from(w["pred"] == w["gold"]));
    }
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results")).expect("json");
    let acc = results["tasks"]["mmlu_pro"]["metrics"]["acc"]["value"]
        .as_f64()
        .expect("acc");
    assert!((acc - correct / want.len() as f64).abs() < 1e-12, "{acc}");
    assert!(results["tasks"]["mmlu_pro"]["subtasks"]["biology"]["acc"].is_object());
}

#[test]
fn bad_rows_are_named() {
    let d = tempfile::tempdir().expect("tmp");
    let w = |p: &str, text: &str| {
        let p = d.path().join(p);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    for s in bbh::SUBTASKS {
        w(
            &format!("bbh/{s}/train-00000-of-00001.jsonl"),
            "{\"input\": \"x\", \"target\": \"y\"}\n",
        );
    }
    w(
        "bbh/navigate/train-00000-of-00001.jsonl",
        "{\"input\": \"x\", \"target\": \"y\"}\n{\"input\": \"x\"}\n",
    );
    let spec: TaskSpec = format!("bbh={}", d.path().join("bbh").display())
        .parse()
        .expect("spec");
    let e = load_task(&spec, &DataSources::default(), None)
        .expect_err("no target")
        .to_string();
    assert_eq!(
        e,
        format!(
            "task bbh: {}, row 2: field `target`: missing",
            d.path()
                .join("bbh/navigate/train-00000-of-00001.jsonl")
                .display()
        )
    );
    std::fs::remove_dir_all(d.path().join("bbh/snarks")).expect("rm");
    let e = load_task(&spec, &DataSources::default(), None)
        .expect_err("missing")
        .to_string();
    assert!(
        e.contains("no data for 1 of the 27 subtasks: snarks"),
        "{e}"
    );
    let opts: Vec<String> = (0..11).map(|i| format!("\"o{i}\"")).collect();
    w(
        "mmlu/test.jsonl",
        &format!(
            "{{\"question\": \"q\", \"options\": [{}], \"answer\": \"A\", \"answer_index\": 0, \"category\": \"law\"}}\n",
            opts.join(", ")
        ),
    );
    let spec: TaskSpec = format!("mmlu_pro={}", d.path().join("mmlu/test.jsonl").display())
        .parse()
        .expect("spec");
    let e = load_task(&spec, &DataSources::default(), None)
        .expect_err("11")
        .to_string();
    assert!(
        e.ends_with("test.jsonl, row 1: field `options`: 1 to 10 options (A-J), found 11"),
        "{e}"
    );
}
