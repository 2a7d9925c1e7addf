//! Prompts, requests and GSM8K answer extraction against
//! lm-evaluation-harness, without a model: the fixtures written by
//! `scripts/reference/lm_eval_fixtures.py` hold lm-eval's own requests for
//! the fixture datasets and its filters' output on a corpus of answers.

use std::path::{Path, PathBuf};

use serde_json::Value;
use smolsweep_evals::gsm8k;
use smolsweep_evals::runner::gsm8k_prompts;
use smolsweep_evals::tasks::{Docs, PromptFormat};
use smolsweep_evals::{load_task, DataSources, TaskKind, TaskSpec};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/evals")
}

fn json(name: &str) -> Value {
    let p = fixtures().join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("fixture json")
}

fn sources() -> DataSources {
    DataSources {
        data_dir: Some(fixtures().join("data")),
        fewshot_from: None,
    }
}

fn spec(kind: TaskKind) -> TaskSpec {
    TaskSpec { kind, path: None }
}

#[test]
fn multiple_choice_requests_equal_lm_evals() {
    let reference = json("lm_eval_loglik.json");
    for kind in [
        TaskKind::ArcEasy,
        TaskKind::ArcChallenge,
        TaskKind::Hellaswag,
        TaskKind::Piqa,
    ] {
        let data = load_task(&spec(kind), &sources(), None).expect("load");
        let Docs::MultipleChoice(docs) = &data.docs else {
            panic!("not multiple choice")
        };
        let samples = reference["tasks"][kind.name()]["samples"]
            .as_array()
            .expect("samples");
        assert_eq!(docs.len(), samples.len(), "{}", kind.name());
        for (d, s) in docs.iter().zip(samples) {
            let want: Vec<(String, String)> =
                serde_json::from_value(s["requests"].clone()).expect("requests");
            let got = PromptFormat::Plain.mc_requests(d).expect("requests");
            assert_eq!(got, want, "{} doc {}", kind.name(), d.index);
            assert_eq!(
                s["target"].as_u64(),
                Some(d.gold as u64),
                "{} doc {} gold",
                kind.name(),
                d.index
            );
        }
    }
}

/// The 5-shot prompts, few-shot examples drawn as lm-eval draws them
/// (`random.Random(1234).sample(train, 5)` per question, in order).
#[test]
fn gsm8k_prompts_equal_lm_evals() {
    let reference = json("lm_eval_gsm8k.json");
    let data = load_task(&spec(TaskKind::Gsm8k), &sources(), None).expect("load");
    let Docs::Gsm8k { docs, fewshot } = &data.docs else {
        panic!("not gsm8k")
    };
    let prompts = gsm8k_prompts(docs, fewshot, 5, &PromptFormat::Plain, 1234).expect("prompts");
    let samples: Vec<&Value> = reference["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["filter"] == "strict-match")
        .collect();
    assert_eq!(samples.len(), docs.len());
    for s in samples {
        let i = s["doc_id"].as_u64().expect("doc_id") as usize;
        assert_eq!(prompts[i], s["prompt"].as_str().expect("prompt"), "doc {i}");
    }
}

/// lm-eval's filters and metric on the answers its model produced.
#[test]
fn gsm8k_extraction_of_lm_eval_responses() {
    let reference = json("lm_eval_gsm8k.json");
    for s in reference["samples"].as_array().expect("samples") {
        let response = s["response"].as_str().expect("response");
        let got = match s["filter"].as_str().expect("filter") {
            "strict-match" => gsm8k::extract_strict(response),
            _ => gsm8k::extract_flexible(response),
        };
        assert_eq!(
            got,
            s["filtered"].as_str().expect("filtered"),
            "{response:?}"
        );
        let target = s["target"].as_str().expect("target");
        assert_eq!(
            f64::from(u8::from(gsm8k::exact_match(&got, target))),
            s["exact_match"].as_f64().expect("em")
        );
    }
}

#[test]
fn gsm8k_extraction_corpus_equals_lm_evals_filters() {
    let reference = json("lm_eval_gsm8k_extract.json");
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 25);
    for c in cases {
        let response = c["response"].as_str().expect("response");
        let strict = gsm8k::extract_strict(response);
        let flexible = gsm8k::extract_flexible(response);
        assert_eq!(
            strict,
            c["strict"].as_str().expect("strict"),
            "strict {response:?}"
        );
        assert_eq!(
            flexible,
            c["flexible"].as_str().expect("flex"),
            "flexible {response:?}"
        );
        for (reference, em) in c["exact_match"].as_object().expect("em") {
            let em: Vec<f64> = serde_json::from_value(em.clone()).expect("pair");
            assert_eq!(
                [
                    f64::from(u8::from(gsm8k::exact_match(&strict, reference))),
                    f64::from(u8::from(gsm8k::exact_match(&flexible, reference)))
                ],
                [em[0], em[1]],
                "{response:?} vs {reference:?}"
            );
        }
    }
}
