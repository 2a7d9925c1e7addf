//! SFT token ids and label masks equal open-instruct's
//! (`sft_tulu_tokenize_and_truncate_v1` through `transformers`
//! `apply_chat_template`, re-tokenising every conversation prefix) on the
//! real SmolLM2-135M-Instruct tokenizer, for the model's own template,
//! ChatML and Tulu, with and without truncation, on conversations chosen
//! where cutting one tokenisation could differ from re-tokenising
//! (whitespace across message boundaries, added tokens inside content,
//! digits, non-ASCII, empty turns). Fixture:
//! scripts/reference/sft_labels_reference.py.

use serde_json::Value;
use smolsweep_datasets::Record;
use smolsweep_model::{ChatTemplate, TextTokenizer};
use smolsweep_trainer::data::{tokenize, tokenize_reference};

use crate::common::{real_model, root};

fn fixture() -> Value {
    let p = root().join("tests/fixtures/reference/sft_labels.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("json")
}

fn template(tok: &TextTokenizer, name: &str) -> ChatTemplate {
    match name {
        "model" => tok.model_chat_template().expect("model template"),
        other => ChatTemplate::builtin(other).expect("builtin"),
    }
}

#[test]
fn ids_and_labels_equal_open_instructs_for_every_template() {
    let fx = fixture();
    let tok = TextTokenizer::from_dir(&real_model()).expect("tokenizer");
    let convs = fx["conversations"].as_array().expect("conversations");
    let cases = fx["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), convs.len() * 6, "3 templates x 2 lengths");
    let mut checked = 0;
    for case in cases {
        let name = case["template"].as_str().expect("template");
        let max_len = case["max_seq_len"].as_u64().expect("len") as usize;
        let c = case["conversation"].as_u64().expect("conv") as usize;
        let want_ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).expect("ids");
        let want_mask: Vec<u8> = serde_json::from_value(case["mask"].clone()).expect("mask");
        let rec = Record {
            file: "sft_labels.json".into(),
            index: c,
            row: serde_json::json!({ "messages": convs[c] })
                .as_object()
                .expect("row")
                .clone(),
        };
        let t = template(&tok, name);
        let what = format!("template {name}, max_seq_len {max_len}, conversation {c}");
        // A sample whose labels were all truncated away is dropped (as
        // open-instruct's filter drops it); every other one must match.
        let trainable = want_mask.iter().skip(1).any(|&m| m == 1);
        for (path, got) in [
            (
                "fast",
                tokenize(std::slice::from_ref(&rec), &tok, &t, max_len),
            ),
            (
                "reference",
                tokenize_reference(std::slice::from_ref(&rec), &tok, &t, max_len),
            ),
        ] {
            match got {
                Ok(d) => {
                    assert!(trainable, "{what} ({path}): kept a sample without labels");
                    assert_eq!(d.ids, want_ids, "{what} ({path}): ids");
                    assert_eq!(d.mask, want_mask, "{what} ({path}): labels");
                    checked += 1;
                }
                Err(e) => assert!(
                    !trainable && e.to_string().contains("no trainable conversation"),
                    "{what} ({path}): {e}"
                ),
            }
        }
    }
    // Most cases are trainable; the truncated ones of long prompts are not.
    assert!(checked > cases.len(), "only {checked} checked");
}

/// Random conversations built from the fragments most likely to tokenise
/// differently across a cut: the fast path equals re-tokenising every
/// prefix on all of them (a property test with a fixed seed).
#[test]
fn fast_path_equals_retokenising_on_random_conversations() {
    const PIECES: [&str; 16] = [
        "",
        " ",
        "\n",
        "\n\n",
        "  lead",
        "trail  ",
        "Hello world",
        "123 4567",
        "<|im_end|>",
        "<|im_start|>assistant\n",
        "émoji 😀",
        "\t\ttab",
        "a\n\n\nb",
        "'s don't",
        "x",
        "<|user|>\n",
    ];
    const ROLES: [&str; 4] = ["system", "user", "assistant", "assistant"];
    let tok = TextTokenizer::from_dir(&real_model()).expect("tokenizer");
    // SplitMix64: a fixed, dependency-free sequence.
    let mut state = 0x5eed_u64;
    let mut next = move |n: usize| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let records: Vec<Record> = (0..400)
        .map(|i| {
            let msgs: Vec<Value> = (0..1 + next(6))
                .map(|_| {
                    let content: String =
                        (0..next(4)).map(|_| PIECES[next(PIECES.len())]).collect();
                    serde_json::json!({"role": ROLES[next(ROLES.len())], "content": content})
                })
                .chain(std::iter::once(
                    serde_json::json!({"role": "assistant", "content": "end"}),
                ))
                .collect();
            Record {
                file: "random.jsonl".into(),
                index: i,
                row: serde_json::json!({ "messages": msgs })
                    .as_object()
                    .expect("row")
                    .clone(),
            }
        })
        .collect();
    for name in ["model", "chatml", "tulu"] {
        let t = template(&tok, name);
        let fast = tokenize(&records, &tok, &t, 4096).expect("fast");
        let slow = tokenize_reference(&records, &tok, &t, 4096).expect("reference");
        assert_eq!(fast.stats.samples, 400, "{name}");
        for (i, rec) in records.iter().enumerate() {
            let a = fast.offsets[i] as usize..fast.offsets[i + 1] as usize;
            let b = slow.offsets[i] as usize..slow.offsets[i + 1] as usize;
            assert_eq!(
                (&fast.ids[a.clone()], &fast.mask[a]),
                (&slow.ids[b.clone()], &slow.mask[b]),
                "{name}: conversation {i}: {:?}",
                rec.row["messages"]
            );
        }
    }
}
