//! What `smolsweep eval --convention smollm2` generates, against
//! lighteval@ea46419a's vLLM-backend generation path
//! (`VLLMModel.greedy_until` / `_generate`) run as is with a transformers
//! stand-in for `vllm.LLM.generate` that keeps vLLM's stop, detokenisation
//! and length rules (scripts/reference/smollm2_generation_reference.py,
//! fixture tests/fixtures/evals/smollm2/generations.json). On the real
//! SmolLM2-135M-Instruct weights (CPU, fp32), for GSM8K (5-shot), IFEval and
//! BBH (3-shot) documents: the same prompt tokens, the same generated text
//! after lighteval's post-processing, the same number of generated tokens,
//! the same stop reason and the same per-document score.

use serde_json::Value;
use smolsweep_evals::convention::Layer;
use smolsweep_evals::loglik::BatchSize;
use smolsweep_evals::tasks::{Docs, PromptFormat};
use smolsweep_evals::{
    evaluate, load_task, Convention, DataSources, EvalOptions, TaskKind, TaskSpec,
};
use smolsweep_model::{DType, DeviceSpec, LoadedModel};

use crate::common::{real_model, root};

fn fixture() -> Value {
    let p = root().join("tests/fixtures/evals/smollm2/generations.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("json")
}

fn data(dir: &str) -> DataSources {
    DataSources {
        data_dir: Some(root().join(dir)),
        fewshot_from: None,
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("u32"))
        .collect()
}

/// vLLM's (finish_reason, stop_reason) as smolsweep names it: "stop" with
/// no stop_reason is the eos token, with a string a stop string.
fn stop_reason(w: &Value) -> &'static str {
    match (w["finish_reason"].as_str(), &w["stop_reason"]) {
        (Some("stop"), Value::Null) => "eos",
        (Some("stop"), Value::String(_)) => "stop_string",
        (Some("length"), _) => "length",
        other => panic!("unexpected finish {other:?}"),
    }
}

/// vLLM counts the eos token among the generated ids; smolsweep does not
/// keep it.
fn generated_without_eos(w: &Value, eos: u32) -> usize {
    let g = ids(&w["generated_ids"]);
    g.len() - usize::from(g.last() == Some(&eos) && stop_reason(w) == "eos")
}

/// Text, token count and stop reason of one sample against the reference,
/// with the first differing character named on a mismatch.
fn same_generation(at: &str, got: &Value, w: &Value, eos: u32) {
    let (g, e) = (
        got["response"].as_str().expect("response"),
        w["text"].as_str().expect("text"),
    );
    if g != e {
        let k = g.chars().zip(e.chars()).take_while(|(a, b)| a == b).count();
        panic!(
            "{at}: generated text differs at character {k} (reference min logit margin {} at \
             token {}):\n ours: {g:?}\n  ref: {e:?}",
            w["min_logit_margin"], w["min_margin_at"]
        );
    }
    assert_eq!(
        got["generated_tokens"].as_u64(),
        Some(generated_without_eos(w, eos) as u64),
        "{at}: generated tokens"
    );
    assert_eq!(
        got["stop_reason"].as_str(),
        Some(stop_reason(w)),
        "{at}: stop reason"
    );
}

#[test]
fn generations_and_scores_equal_lightevals_vllm_path() {
    let reference = fixture();
    let want = &reference["tasks"];
    let m = LoadedModel::load(&real_model(), DeviceSpec::Cpu, DType::Auto).expect("load");
    let tok = &m.tokenizer;
    let eos = tok.eos_id().expect("eos");
    let layer = Layer::new(Convention::Smollm2, tok, false).expect("layer");
    let gen_data = data("tests/fixtures/evals/smollm2/generation/data");
    let load = |kind, src: &DataSources, limit| {
        load_task(&TaskSpec { kind, path: None }, src, limit).expect("load")
    };
    let gsm8k = load(TaskKind::Gsm8k, &gen_data, None);
    let ifeval = load(TaskKind::Ifeval, &gen_data, None);

    // The prompt tokens the runner hands the engine.
    let Docs::Gsm8k { docs, fewshot } = &gsm8k.docs else {
        panic!("not gsm8k")
    };
    let prompts = layer
        .gsm8k_prompts(tok, docs, fewshot, 5, 1234)
        .expect("prompts");
    let wg = want["gsm8k"].as_array().expect("gsm8k");
    assert_eq!(prompts.len(), wg.len());
    for (i, (p, w)) in prompts.iter().zip(wg).enumerate() {
        assert_eq!(p.ids, ids(&w["prompt_ids"]), "gsm8k doc {i} prompt tokens");
    }
    let g = layer.gsm8k_generation(tok);
    assert_eq!(serde_json::json!(g.until), wg[0]["stop"]);
    assert_eq!(
        Some(g.max_new_tokens as u64),
        wg[0]["max_new_tokens"].as_u64()
    );
    let Docs::IfEval(idocs) = &ifeval.docs else {
        panic!("not ifeval")
    };
    let wi = want["ifeval"].as_array().expect("ifeval");
    let iprompts = layer.ifeval_prompts(tok, idocs).expect("prompts");
    assert_eq!(iprompts.len(), wi.len());
    for (i, (p, w)) in iprompts.iter().zip(wi).enumerate() {
        assert_eq!(p.ids, ids(&w["prompt_ids"]), "ifeval doc {i} prompt tokens");
    }
    let g = layer.ifeval_generation(tok);
    assert_eq!(serde_json::json!(g.until), wi[0]["stop"]);
    assert_eq!(
        Some(g.max_new_tokens as u64),
        wi[0]["max_new_tokens"].as_u64()
    );

    // Generation and scoring as `smolsweep eval --convention smollm2` runs them.
    let opts = EvalOptions {
        convention: Convention::Smollm2,
        keep_samples: true,
        ..Default::default()
    };
    // The fixture keeps documents that end on each kind of stop (or the
    // stop strings would go untested).
    let all_docs = want.as_object().expect("tasks").values();
    let reasons: Vec<&str> = all_docs
        .flat_map(|d| d.as_array().expect("docs"))
        .map(stop_reason)
        .collect();
    assert!(reasons.contains(&"eos") && reasons.contains(&"stop_string"));
    let res = evaluate(&m, &[gsm8k, ifeval], &opts).expect("evaluate");
    let samples = &res.tasks["gsm8k"].samples;
    assert_eq!(samples.len(), wg.len());
    for (i, (s, w)) in samples.iter().zip(wg).enumerate() {
        let at = format!("gsm8k doc {i}");
        same_generation(&at, s, w, eos);
        let qem = w["score"]["qem"].as_f64().expect("qem");
        assert_eq!(s["correct"].as_bool(), Some(qem == 1.0), "{at}: score");
    }
    let samples = &res.tasks["ifeval"].samples;
    assert_eq!(samples.len(), wi.len());
    for (i, (s, w)) in samples.iter().zip(wi).enumerate() {
        let at = format!("ifeval doc {i}");
        same_generation(&at, s, w, eos);
        let sc = &w["score"];
        assert_eq!(s["strict"], sc["inst_level_strict_acc"], "{at}: strict");
        assert_eq!(s["loose"], sc["inst_level_loose_acc"], "{at}: loose");
        assert_eq!(
            s["correct"].as_bool(),
            Some(sc["prompt_level_strict_acc"].as_f64() == Some(1.0)),
            "{at}: prompt-level strict"
        );
    }

    // BBH: the subtasks of the fixture, each on its first documents with
    // the whole split as the few-shot pool (the runner's `limit`).
    let names: Vec<String> = want
        .as_object()
        .expect("tasks")
        .keys()
        .filter_map(|k| k.strip_prefix("bbh:").map(str::to_owned))
        .collect();
    assert!(!names.is_empty());
    let n_docs = want[&format!("bbh:{}", names[0])]
        .as_array()
        .expect("bbh")
        .len();
    let bbh = load(
        TaskKind::Bbh,
        &data("tests/fixtures/evals/mmlu_bbh/data"),
        Some(n_docs),
    );
    let Docs::Bbh(all) = bbh.docs else {
        panic!("not bbh")
    };
    let subtasks: Vec<_> = all
        .into_iter()
        .filter(|s| names.contains(&s.name))
        .collect();
    assert_eq!(subtasks.len(), names.len());
    let format = PromptFormat::chat(tok).expect("chat");
    let run = smolsweep_evals::bbh::run(&m, &subtasks, true, &format, BatchSize::Auto, true)
        .expect("bbh");
    assert_eq!(run.samples.len(), names.len() * n_docs);
    for s in &run.samples {
        let name = s["subtask"].as_str().expect("subtask");
        let i = s["index"].as_u64().expect("index") as usize;
        let w = &want[&format!("bbh:{name}")][i];
        let at = format!("bbh {name} doc {i}");
        let prompt = s["prompt"].as_str().expect("prompt");
        assert_eq!(prompt, w["context"].as_str().expect("context"), "{at}");
        assert_eq!(
            tok.encode_with(prompt, true).expect("encode"),
            ids(&w["prompt_ids"]),
            "{at}: prompt tokens"
        );
        same_generation(&at, s, w, eos);
        let em = w["score"]["em"].as_f64().expect("em");
        assert_eq!(s["exact_match"].as_bool(), Some(em == 1.0), "{at}: score");
    }
}
