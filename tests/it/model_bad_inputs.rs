//! Bad model inputs through the binary: each fails with a message naming
//! the file and the field or tensor, and a non-zero exit status.

use std::path::Path;

use crate::common::*;

fn link_weights(from: &Path, to: &Path) {
    std::os::unix::fs::symlink(from.join("model.safetensors"), to.join("model.safetensors"))
        .expect("symlink");
}

/// The real model's weights and tokenizer beside an edited copy of its
/// config.json.
fn real_model_with_config(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let real = real_model();
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(real.join("config.json")).expect("read"))
            .expect("json");
    edit(&mut cfg);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).expect("write");
    std::fs::copy(
        real.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .expect("copy");
    link_weights(&real, dir.path());
    dir
}

fn generate_err(dir: &Path) -> String {
    let o = run(&[
        "generate",
        "--model",
        dir.to_str().expect("path"),
        "--prompt",
        "hi",
        "--max-new-tokens",
        "1",
    ]);
    assert!(!o.status.success(), "expected failure, got {}", stdout(&o));
    stderr(&o)
}

#[test]
fn config_missing_a_field() {
    let dir = real_model_with_config(|cfg| {
        cfg.as_object_mut()
            .expect("obj")
            .remove("num_hidden_layers");
    });
    let err = generate_err(dir.path());
    assert!(
        err.contains("config.json") && err.contains("num_hidden_layers"),
        "{err}"
    );
}

#[test]
fn model_directory_without_tokenizer() {
    let real = real_model();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(real.join("config.json"), dir.path().join("config.json")).expect("copy");
    link_weights(&real, dir.path());
    let err = generate_err(dir.path());
    assert!(
        err.contains("tokenizer.json") && err.contains(dir.path().to_str().expect("p")),
        "{err}"
    );
}

#[test]
fn weights_with_a_wrong_shape() {
    let dir = real_model_with_config(|cfg| {
        cfg["intermediate_size"] = 1024.into();
    });
    let err = generate_err(dir.path());
    assert!(
        err.contains("model.safetensors")
            && err.contains("mlp.down_proj.weight")
            && err.contains("[576, 1536]"),
        "{err}"
    );
}

#[test]
fn weights_missing_a_tensor() {
    let dir = real_model_with_config(|cfg| {
        // An untied head needs lm_head.weight, which SmolLM2's file lacks.
        cfg["tie_word_embeddings"] = false.into();
    });
    let err = generate_err(dir.path());
    assert!(
        err.contains("lm_head.weight") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn truncated_gguf() {
    let gguf = gguf_path();
    assert!(gguf.is_file(), "run `make weights`");
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = std::fs::read(&gguf).expect("read");
    let cut = dir.path().join("cut.gguf");
    for len in [bytes.len() / 2, 4096] {
        std::fs::write(&cut, &bytes[..len]).expect("write");
        let o = run(&[
            "import-gguf",
            cut.to_str().expect("p"),
            "--out",
            dir.path().join("out").to_str().expect("p"),
        ]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("cut.gguf") && err.contains("truncated"),
            "{err}"
        );
    }
    assert!(!dir.path().join("out/model.safetensors").exists());
}

#[test]
fn not_a_model_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = generate_err(dir.path());
    assert!(err.contains("config.json"), "{err}");
    let err = generate_err(&dir.path().join("nope"));
    assert!(err.contains("nope"), "{err}");
}
