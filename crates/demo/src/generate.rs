//! The whole data set from one seed: how many items of each kind, and the
//! order they are drawn from the stream in (which fixes every byte: a new
//! draw anywhere but at the end changes everything after it).

use serde_json::Value;

use crate::arc::{
    after_question, arc_challenge_item, arc_easy_item, arc_row, color_question, compare_question,
};
use crate::gsm8k::{gsm8k_item, gsm8k_row};
use crate::hellaswag::{hellaswag_item, hs_row};
use crate::ifeval::{ifeval_item, ifeval_row};
use crate::piqa::{piqa_item, piqa_row};
use crate::rng::Rng;
use crate::sft;
use crate::split::draw;
use crate::write::jsonl;

/// Conversations per skill in `sft/train.jsonl`.
const SFT_COLOR: usize = 300;
const SFT_BIGGER: usize = 600;
const SFT_SMALLER: usize = 600;
const SFT_AFTER: usize = 500;
const SFT_HELLASWAG: usize = 500;
const SFT_PIQA: usize = 300;
const SFT_GSM8K: usize = 600;
const SFT_IFEVAL: usize = 400;

/// Items per evaluation set (small: the eval of a whole grid must take
/// minutes on a CPU, and generation tasks are the slow ones).
const N_ARC: usize = 150;
const N_HELLASWAG: usize = 150;
const N_PIQA: usize = 150;
const N_GSM8K_TEST: usize = 50;
const N_GSM8K_TRAIN: usize = 200;
const N_IFEVAL: usize = 40;

/// Preference pairs for the DPO / reward-model demo, and held-out ones.
const N_PREF_TRAIN: usize = 400;
const N_PREF_TEST: usize = 100;

/// Every file, as (path relative to the output directory, contents).
pub fn generate(seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed ^ 0x5EED_DE70_DA7A_0001);
    let mut sft: Vec<Value> = Vec::new();

    // ARC.
    let arc_e = draw(&mut rng, N_ARC, true, arc_easy_item);
    let arc_c = draw(&mut rng, N_ARC, true, arc_challenge_item);
    let mut mc_sft = Vec::new();
    mc_sft.extend(draw(&mut rng, SFT_COLOR, false, color_question));
    mc_sft.extend(draw(&mut rng, SFT_BIGGER, false, |r| {
        compare_question(r, true)
    }));
    mc_sft.extend(draw(&mut rng, SFT_SMALLER, false, |r| {
        compare_question(r, false)
    }));
    mc_sft.extend(draw(&mut rng, SFT_AFTER, false, after_question));
    sft.extend(mc_sft.iter().map(sft::arc));

    // HellaSwag.
    let hs_test = draw(&mut rng, N_HELLASWAG, true, hellaswag_item);
    sft.extend(
        draw(&mut rng, SFT_HELLASWAG, false, hellaswag_item)
            .iter()
            .map(sft::hellaswag),
    );

    // PIQA.
    let piqa_test = draw(&mut rng, N_PIQA, true, piqa_item);
    sft.extend(
        draw(&mut rng, SFT_PIQA, false, piqa_item)
            .iter()
            .map(sft::piqa),
    );

    // GSM8K: the train split is both the few-shot pool and SFT data; some
    // conversations carry earlier solved problems as turns before the last
    // one, so the model has seen the few-shot layout the eval builds.
    let gsm_test = draw(&mut rng, N_GSM8K_TEST, true, gsm8k_item);
    let gsm_train = draw(&mut rng, SFT_GSM8K.max(N_GSM8K_TRAIN), false, gsm8k_item);
    for (i, g) in gsm_train.iter().enumerate().take(SFT_GSM8K) {
        let n_shots = if i % 3 == 0 { rng.below(3) + 1 } else { 0 };
        let shots: Vec<_> = (0..n_shots).map(|_| rng.pick(&gsm_train)).collect();
        sft.push(sft::gsm8k(&shots, g));
    }

    // IFEval.
    let if_test = draw(&mut rng, N_IFEVAL, true, ifeval_item);
    sft.extend(
        draw(&mut rng, SFT_IFEVAL, false, ifeval_item)
            .iter()
            .map(sft::ifeval),
    );

    rng.shuffle(&mut sft);

    // Drawn last, so every file above keeps its bytes.
    let pref_train = crate::preference::pairs(&mut rng, N_PREF_TRAIN, false);
    let pref_test = crate::preference::pairs(&mut rng, N_PREF_TEST, true);

    let numbered = |prefix: &'static str, items: &[crate::arc::Mc]| {
        jsonl(items.iter().enumerate().map(|(i, q)| arc_row(prefix, i, q)))
    };
    let mut files = vec![
        ("sft/train.jsonl".to_owned(), jsonl(sft)),
        (
            "arc_easy/test.jsonl".to_owned(),
            numbered("demo_easy", &arc_e),
        ),
        (
            "arc_challenge/test.jsonl".to_owned(),
            numbered("demo_challenge", &arc_c),
        ),
        (
            "hellaswag/validation.jsonl".to_owned(),
            jsonl(hs_test.iter().enumerate().map(|(i, h)| hs_row(i, h))),
        ),
        (
            "piqa/validation.jsonl".to_owned(),
            jsonl(piqa_test.iter().map(piqa_row)),
        ),
        (
            "gsm8k/train.jsonl".to_owned(),
            jsonl(gsm_train.iter().take(N_GSM8K_TRAIN).map(gsm8k_row)),
        ),
        (
            "gsm8k/test.jsonl".to_owned(),
            jsonl(gsm_test.iter().map(gsm8k_row)),
        ),
        (
            "ifeval/train.jsonl".to_owned(),
            jsonl(if_test.iter().enumerate().map(|(i, f)| ifeval_row(i, f))),
        ),
    ];
    files.push(("preference/train.jsonl".to_owned(), jsonl(pref_train)));
    files.push(("preference/test.jsonl".to_owned(), jsonl(pref_test)));
    files
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn rows(files: &[(String, String)], name: &str) -> Vec<Value> {
        let text = &files
            .iter()
            .find(|(p, _)| p == name)
            .unwrap_or_else(|| panic!("{name} not written"))
            .1;
        text.lines()
            .map(|l| serde_json::from_str(l).expect("valid JSON line"))
            .collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = generate(7);
        assert_eq!(a, generate(7));
        assert_ne!(a, generate(8));
    }

    #[test]
    fn rows_have_the_hf_schemas() {
        let f = generate(0);
        let has = |name: &str, fields: &[&str], n: usize| {
            let rs = rows(&f, name);
            assert_eq!(rs.len(), n, "{name}");
            for r in &rs {
                for k in fields {
                    assert!(r.get(*k).is_some(), "{name}: {k} missing in {r}");
                }
            }
            rs
        };
        for r in has(
            "arc_easy/test.jsonl",
            &["id", "question", "choices", "answerKey"],
            N_ARC,
        )
        .iter()
        .chain(&has(
            "arc_challenge/test.jsonl",
            &["id", "question", "choices", "answerKey"],
            N_ARC,
        )) {
            let labels = r["choices"]["label"].as_array().expect("labels");
            assert_eq!(r["choices"]["text"].as_array().expect("text").len(), 4);
            assert!(labels.contains(&r["answerKey"]));
        }
        for r in has(
            "hellaswag/validation.jsonl",
            &[
                "activity_label",
                "ctx_a",
                "ctx_b",
                "ctx",
                "endings",
                "label",
            ],
            N_HELLASWAG,
        ) {
            assert!(
                r["label"].is_string(),
                "Rowan/hellaswag's label is a string"
            );
        }
        has(
            "piqa/validation.jsonl",
            &["goal", "sol1", "sol2", "label"],
            N_PIQA,
        );
        for name in ["gsm8k/train.jsonl", "gsm8k/test.jsonl"] {
            let n = if name.contains("train") {
                N_GSM8K_TRAIN
            } else {
                N_GSM8K_TEST
            };
            for r in has(name, &["question", "answer"], n) {
                let a = r["answer"].as_str().expect("answer");
                let (_, n) = a.rsplit_once("#### ").expect("#### N");
                assert!(n.parse::<u32>().is_ok(), "{a}");
            }
        }
        for r in has(
            "sft/train.jsonl",
            &["messages"],
            rows(&f, "sft/train.jsonl").len(),
        ) {
            let m = r["messages"].as_array().expect("messages");
            assert_eq!(m[0]["role"], "user");
            assert_eq!(m[1]["role"], "assistant");
        }
    }

    #[test]
    fn ifeval_rows_use_real_ids_and_kwargs() {
        let f = generate(0);
        let rs = rows(&f, "ifeval/train.jsonl");
        assert_eq!(rs.len(), N_IFEVAL);
        for r in &rs {
            let sample: smolsweep_evals::ifeval::IfEvalSample =
                serde_json::from_value(r.clone()).expect("IFEval schema");
            assert_eq!(sample.kwargs.len(), sample.instruction_id_list.len());
            for id in &sample.instruction_id_list {
                assert!(
                    smolsweep_evals::ifeval::INSTRUCTION_IDS.contains(&id.as_str()),
                    "{id} is not a registry id"
                );
            }
        }
    }

    #[test]
    fn test_items_are_never_in_the_sft_data() {
        let f = generate(3);
        let sft = &f[0].1;
        for r in rows(&f, "gsm8k/test.jsonl") {
            let q = r["question"].as_str().expect("question");
            assert!(!sft.contains(q), "{q} is in the SFT data");
        }
        for r in rows(&f, "arc_easy/test.jsonl") {
            let q = r["question"].as_str().expect("question");
            if q.starts_with("Which number") {
                assert!(!sft.contains(q), "{q} is in the SFT data");
            }
        }
    }

    #[test]
    fn the_demo_sweep_parses_and_reads_this_data() {
        // The layout `make demo` makes: sweeps/demo.toml beside demo/.
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/demo.toml");
        let root = tempfile::tempdir().expect("tempdir");
        let file = root.path().join("sweeps/demo.toml");
        std::fs::create_dir_all(root.path().join("sweeps")).expect("mkdir");
        std::fs::copy(&src, &file).expect("copy demo.toml");
        std::fs::create_dir_all(root.path().join("demo/model")).expect("mkdir");
        std::fs::write(root.path().join("demo/model/config.json"), "{}").expect("write");
        for (rel, text) in generate(0) {
            let p = root.path().join("demo/data").join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let spec = smolsweep_orchestrator::SweepSpec::load(&file).expect("demo.toml is valid");
        assert!(spec.trial_count() >= 12, "at least 4 lr x 3 batch sizes");
        let eval = spec.eval.expect("an [eval] section");
        let written: Vec<String> = generate(0).into_iter().map(|(p, _)| p).collect();
        for task in &eval.tasks {
            assert!(
                written.iter().any(|p| p.starts_with(&format!("{task}/"))),
                "demo-data writes no {task}/"
            );
        }
    }
}
