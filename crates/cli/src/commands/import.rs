//! `smolsweep import-gguf`: a GGUF file to a HF model directory.

use anyhow::{Context, Result};
use tch::Kind;

use crate::args::{ImportArgs, SaveDtype};

pub fn run(a: &ImportArgs) -> Result<()> {
    let kind = match a.dtype {
        SaveDtype::F32 => Kind::Float,
        SaveDtype::Bf16 => Kind::BFloat16,
    };
    let t = std::time::Instant::now();
    let s = smolsweep_model::gguf::import_gguf(&a.file, &a.out, kind)
        .with_context(|| format!("importing {}", a.file.display()))?;
    let types: Vec<String> = s.types.iter().map(|(t, n)| format!("{n} {t}")).collect();
    tracing::info!(
        secs = format!("{:.1}", t.elapsed().as_secs_f64()),
        "imported {} tensors ({}) into {}",
        s.tensors,
        types.join(", "),
        s.out.display()
    );
    println!("{}", s.out.display());
    Ok(())
}
