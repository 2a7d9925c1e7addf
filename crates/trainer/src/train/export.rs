//! The end product of a trial: the trained model as a HF directory
//! (weights, config, tokenizer files) whose `chat_template` is the one it
//! was trained with. A reward model's is a one-label
//! `LlamaForSequenceClassification` (`smolsweep_model::score`); a DPO
//! policy's also names its reference and beta
//! ([`crate::dpo::implicit::DPO_EXPORT_FILE`]), for `dpo_reward_accuracy`.

use std::path::Path;

use serde_json::json;
use smolsweep_model::Llama;

use super::setup::Template;
use crate::error::{Result, TrainError};

/// Writes the export under a temporary name and renames it to `out`, so a
/// kill mid-write leaves no half export.
pub(super) fn export_model(
    model: &Llama,
    src: &Path,
    out: &Path,
    template: &Template,
    reward_model: bool,
    dpo: Option<&crate::dpo::implicit::DpoExport>,
) -> Result<()> {
    let tmp = out.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    smolsweep_model::hf::save_weights_and_config(model, &tmp, model.kind())?;
    smolsweep_model::hf::copy_tokenizer_files(src, &tmp)?;
    if !template.is_models_own {
        set_chat_template(&tmp, &template.source)?;
    }
    if reward_model {
        let dtype = smolsweep_model::hf::torch_dtype_name(model.kind());
        smolsweep_model::score::export_config(&tmp, &model.config, dtype)?;
    }
    if let Some(d) = dpo {
        d.write(&tmp)?;
    }
    let _ = std::fs::remove_dir_all(out);
    std::fs::rename(&tmp, out).map_err(|e| TrainError::io(out, e))
}

/// Puts `source` into the `tokenizer_config.json` of `dir` and drops a
/// `chat_template.jinja` that would take precedence over it.
fn set_chat_template(dir: &Path, source: &str) -> Result<()> {
    let tc = dir.join("tokenizer_config.json");
    let mut v: serde_json::Value = std::fs::read_to_string(&tc)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("chat_template".into(), source.into());
    }
    std::fs::write(
        &tc,
        serde_json::to_vec_pretty(&v).map_err(|e| TrainError::Other(e.to_string()))?,
    )
    .map_err(|e| TrainError::io(&tc, e))?;
    let _ = std::fs::remove_file(dir.join("chat_template.jinja"));
    Ok(())
}
