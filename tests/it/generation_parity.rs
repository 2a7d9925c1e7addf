//! Continuous batching on the real SmolLM2-135M-Instruct weights: prompts
//! of different lengths through fewer slots than prompts, with stop
//! strings, give the tokens each prompt gives when generated alone.

use smolsweep_model::{generate, DType, DeviceSpec, GenerateOptions, LoadedModel};

use crate::common::real_model;

#[test]
fn continuous_batching_equals_one_at_a_time_on_smollm2() {
    let m = LoadedModel::load(&real_model(), DeviceSpec::Cpu, DType::Auto).expect("load");
    let texts = [
        "Question: Tom has 3 apples and buys 5 more. How many apples does he have?\nAnswer:",
        "Write one short sentence about the sea.",
        "Question: What is 12 times 4?\nAnswer:",
        "List three colours:",
        "Translate to French: good morning\nFrench:",
    ];
    let prompts: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| m.tokenizer.encode(t).expect("encode"))
        .collect();
    let opts = GenerateOptions {
        max_new_tokens: 40,
        stop_strings: vec!["Question:".to_owned(), "\n\n".to_owned()],
        stop_token_ids: m.stop_token_ids(),
        use_cache: true,
    };
    let alone: Vec<_> = prompts
        .iter()
        .map(|p| {
            generate::generate(&m.model, &m.tokenizer, std::slice::from_ref(p), &opts)
                .expect("alone")
                .remove(0)
        })
        .collect();
    let lens: Vec<usize> = alone.iter().map(|g| g.token_ids.len()).collect();
    assert!(
        lens.iter().min() != lens.iter().max(),
        "rows should end at different steps: {lens:?}"
    );
    let batched =
        smolsweep_evals::generation::continuous(&m.model, &m.tokenizer, &prompts, &opts, 2)
            .expect("continuous");
    assert_eq!(batched, alone);
}
