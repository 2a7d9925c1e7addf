//! The `smollm2` convention against lighteval@ea46419a, from the fixtures
//! `scripts/reference/smollm2_reference.py` wrote with lighteval's own
//! prompt building, few-shot sampler, `tok_encode_pair` and metrics:
//! every prompt byte for byte and token for token, GSM8K's few-shot picks
//! and truncation, the generation settings vLLM received, GSM8K's scoring
//! on a corpus of tricky answers, and, on the real SmolLM2-135M-Instruct
//! weights, per-request log-likelihoods against `transformers` and
//! lighteval's acc / acc_norm on them.

use std::path::PathBuf;

use serde_json::Value;
use smolsweep_evals::convention::{smollm2, Layer};
use smolsweep_evals::tasks::Docs;
use smolsweep_evals::{load_task, Convention, DataSources, TaskKind, TaskSpec};
use smolsweep_model::TextTokenizer;

use crate::common::{real_model, root, run, stderr, stdout};

fn fixture(name: &str) -> Value {
    let p = root().join("tests/fixtures/evals/smollm2").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("json")
}

fn data(dir: &str) -> DataSources {
    DataSources {
        data_dir: Some(root().join(dir)),
        fewshot_from: None,
    }
}

fn lm_eval_data() -> PathBuf {
    root().join("tests/fixtures/evals/data")
}

const MC: [TaskKind; 4] = [
    TaskKind::ArcEasy,
    TaskKind::ArcChallenge,
    TaskKind::Hellaswag,
    TaskKind::Piqa,
];

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("u32"))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).expect("strings")
}

#[test]
fn multiple_choice_prompts_and_tokens_equal_lightevals() {
    let reference = fixture("prompts.json");
    let tok = TextTokenizer::from_dir(&real_model()).expect("tokenizer");
    let layer = Layer::new(Convention::Smollm2, &tok, false).expect("layer");
    assert!(layer.uses_chat_template());
    for kind in MC {
        let spec = TaskSpec { kind, path: None };
        let task = load_task(&spec, &data("tests/fixtures/evals/data"), None).expect("load");
        let Docs::MultipleChoice(docs) = &task.docs else {
            panic!("not multiple choice")
        };
        let want = reference["tasks"][kind.name()]["docs"]
            .as_array()
            .expect("docs");
        assert_eq!(docs.len(), want.len(), "{}", kind.name());
        for (d, w) in docs.iter().zip(want) {
            let at = format!("{} doc {}", kind.name(), d.index);
            assert_eq!(w["index"], d.index, "{at}");
            assert_eq!(d.lighteval.choices, strings(&w["choices"]), "{at}");
            assert_eq!(w["gold"].as_u64(), Some(d.gold as u64), "{at}");
            let reqs = layer.mc_requests(d).expect("requests");
            let wr = w["requests"].as_array().expect("requests");
            assert_eq!(reqs.len(), wr.len(), "{at}");
            for ((ctx, cont), r) in reqs.iter().zip(wr) {
                assert_eq!(ctx, r["context"].as_str().expect("context"), "{at}");
                assert_eq!(ctx, w["context"].as_str().expect("context"), "{at}");
                assert_eq!(cont, r["choice"].as_str().expect("choice"), "{at}");
                let e = layer.encode_pair(&tok, ctx, cont).expect("encode");
                assert_eq!(e.context, ids(&r["context_ids"]), "{at} context tokens");
                assert_eq!(
                    e.continuation,
                    ids(&r["continuation_ids"]),
                    "{at} continuation tokens"
                );
            }
        }
    }
    // The template's trailing "\n" is scored with the choice: ARC's first
    // continuation is "\n a mirror" (198 is "\n").
    let first = &reference["tasks"]["arc_easy"]["docs"][0]["requests"][0];
    assert_eq!(ids(&first["continuation_ids"])[0], 198);
}

/// GSM8K's 5-shot prompts: `Random(42)` shuffles the documents, the same
/// generator draws each one's examples; the two long questions go through
/// lighteval's truncation (fewer shots, and its `shots[:-1]` end), then
/// vLLM's left truncation to 2048 - 256 tokens.
#[test]
fn gsm8k_and_ifeval_prompts_picks_and_settings_equal_lightevals() {
    let reference = fixture("prompts.json");
    let tok = TextTokenizer::from_dir(&real_model()).expect("tokenizer");
    let layer = Layer::new(Convention::Smollm2, &tok, false).expect("layer");
    let spec = TaskSpec {
        kind: TaskKind::Gsm8k,
        path: None,
    };
    let task = load_task(&spec, &data("tests/fixtures/evals/smollm2/data"), None).expect("load");
    let Docs::Gsm8k { docs, fewshot } = &task.docs else {
        panic!("not gsm8k")
    };
    // lm-eval's seed must not matter here.
    let prompts = layer
        .gsm8k_prompts(&tok, docs, fewshot, 5, 1234)
        .expect("prompts");
    let want = reference["tasks"]["gsm8k"]["docs"]
        .as_array()
        .expect("docs");
    assert_eq!(prompts.len(), want.len());
    let gen = layer.gsm8k_generation(&tok);
    let mut truncated = 0;
    for (i, (p, w)) in prompts.iter().zip(want).enumerate() {
        assert_eq!(p.text, w["context"].as_str().expect("context"), "doc {i}");
        let picks: Vec<usize> = serde_json::from_value(w["fewshot"].clone()).expect("picks");
        let n = p.fewshot.len();
        assert_eq!(p.fewshot, picks[..n], "doc {i} few-shot picks");
        assert_eq!(p.ids, ids(&w["prompt_ids"]), "doc {i} prompt tokens");
        assert_eq!(gen.until, strings(&w["stop"]), "doc {i}");
        assert_eq!(
            gen.max_new_tokens as u64,
            w["max_new_tokens"].as_u64().expect("n")
        );
        if w["num_effective_few_shots"].as_i64() != Some(5) {
            truncated += 1;
        }
    }
    assert_eq!(truncated, 2, "both long questions are truncated");
    assert_eq!(gen.until, ["Question:", "Question", "<|im_end|>"]);
    assert_eq!(gen.max_new_tokens, 256);

    let spec = TaskSpec {
        kind: TaskKind::Ifeval,
        path: None,
    };
    let task = load_task(&spec, &data("tests/fixtures/evals/data"), None).expect("load");
    let Docs::IfEval(docs) = &task.docs else {
        panic!("not ifeval")
    };
    let prompts = layer.ifeval_prompts(&tok, docs).expect("prompts");
    let gen = layer.ifeval_generation(&tok);
    let want = reference["tasks"]["ifeval"]["docs"]
        .as_array()
        .expect("docs");
    assert_eq!(prompts.len(), want.len());
    for (p, w) in prompts.iter().zip(want) {
        assert_eq!(p.text, w["context"].as_str().expect("context"));
        assert_eq!(p.ids, ids(&w["prompt_ids"]));
        assert_eq!(gen.until, strings(&w["stop"]));
        assert_eq!(
            gen.max_new_tokens as u64,
            w["max_new_tokens"].as_u64().expect("n")
        );
    }
    assert_eq!(gen.max_new_tokens, 1280);
}

#[test]
fn gsm8k_scoring_equals_lightevals_quasi_exact_match() {
    let reference = fixture("gsm8k_extract.json");
    let golds = reference["golds"].as_array().expect("golds");
    for g in golds {
        let g = g.as_str().expect("gold");
        // The task's gold is " " + answer; the fixture's golds carry it.
        let answer = g.strip_prefix(' ').expect("leading space");
        let s = smollm2::gsm8k_score("", answer);
        assert_eq!(s.gold, reference["gold_normalized"][g], "{g:?}");
    }
    for case in reference["cases"].as_array().expect("cases") {
        let pred = case["prediction"].as_str().expect("prediction");
        for g in golds {
            let g = g.as_str().expect("gold");
            let s = smollm2::gsm8k_score(pred, g.strip_prefix(' ').expect("space"));
            assert_eq!(s.filters.len(), 1);
            assert_eq!(s.filters[0].extracted, case["normalized"], "{pred:?}");
            assert_eq!(
                f64::from(u8::from(s.filters[0].correct)),
                case["qem"][g].as_f64().expect("qem"),
                "{pred:?} vs {g:?}"
            );
        }
    }
}

/// `smolsweep eval --convention smollm2` on the real weights: each
/// request's log-likelihood within 1e-3 of `transformers` on lighteval's
/// tokens, the same greedy flags, lighteval's acc and acc_norm per
/// question, their means, and results.json saying whose scores they are.
#[test]
fn loglikelihoods_and_acc_norm_equal_transformers_and_lighteval() {
    let reference = fixture("loglik.json");
    let prompts = fixture("prompts.json");
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("results.json");
    let samples = dir.path().join("samples.jsonl");
    let model = real_model();
    let data = lm_eval_data();
    let mut args = vec![
        "eval",
        "--model",
        model.to_str().expect("utf-8"),
        "--device",
        "cpu",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--samples",
        samples.to_str().expect("utf-8"),
        "--convention",
        "smollm2",
    ];
    for t in MC {
        args.extend(["--task", t.name()]);
    }
    let o = run(&args);
    assert!(
        o.status.success(),
        "eval failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results")).expect("json");
    assert_eq!(results["chat_template"], true);
    let mut got: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for line in std::fs::read_to_string(&samples).expect("samples").lines() {
        let v: Value = serde_json::from_str(line).expect("sample");
        got.entry(v["task"].as_str().expect("task").to_owned())
            .or_default()
            .push(v);
    }
    let mut worst = 0f64;
    for t in MC {
        let name = t.name();
        let want = reference["tasks"][name].as_array().expect("samples");
        let wp = prompts["tasks"][name]["docs"].as_array().expect("docs");
        let g = &got[name];
        assert_eq!(g.len(), want.len(), "{name}");
        let (mut accs, mut norms) = (0.0, 0.0);
        for ((g, w), p) in g.iter().zip(want).zip(wp) {
            let at = format!("{name} doc {}", w["index"]);
            assert_eq!(g["index"], w["index"], "{at}");
            let reqs: Vec<(String, String)> =
                serde_json::from_value(g["requests"].clone()).expect("requests");
            for (r, pr) in reqs.iter().zip(p["requests"].as_array().expect("requests")) {
                assert_eq!(r.0, pr["context"].as_str().expect("context"), "{at}");
                assert_eq!(r.1, pr["choice"].as_str().expect("choice"), "{at}");
            }
            let gl = g["loglik"].as_array().expect("loglik");
            let wl = w["loglik"].as_array().expect("loglik");
            assert_eq!(gl.len(), wl.len(), "{at}");
            for (a, b) in gl.iter().zip(wl) {
                let d = (a.as_f64().expect("f64") - b.as_f64().expect("f64")).abs();
                worst = worst.max(d);
                assert!(d < 1e-3, "{at}: loglik {a} vs transformers {b}");
            }
            assert_eq!(g["is_greedy"], w["is_greedy"], "{at}");
            assert_eq!(g["acc"].as_f64(), w["acc"].as_f64(), "{at} acc");
            assert_eq!(
                g["acc_norm"].as_f64(),
                w["acc_norm"].as_f64(),
                "{at} acc_norm"
            );
            accs += w["acc"].as_f64().expect("acc");
            norms += w["acc_norm"].as_f64().expect("acc_norm");
        }
        let r = &results["tasks"][name];
        assert_eq!(r["convention"], "smollm2", "{name}");
        assert_eq!(r["num_fewshot"], 0, "{name}");
        let n = want.len() as f64;
        let m = &r["metrics"];
        assert!((m["acc_norm"]["value"].as_f64().expect("v") - norms / n).abs() < 1e-12);
        assert!((m["acc"]["value"].as_f64().expect("v") - accs / n).abs() < 1e-12);
    }
    eprintln!("largest |delta loglik| vs transformers: {worst:.2e}");
}
