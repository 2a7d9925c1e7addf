//! A trial's data tokenised ahead of its training: what `smolsweep
//! prepare` and `smolsweep run` do once per distinct data, tokenizer,
//! template and length before any trial starts, so that the trials only
//! map the cache (and a login node can prepare before jobs are submitted).

use std::sync::atomic::AtomicBool;

use smolsweep_model::TextTokenizer;

use crate::config::TrialConfig;
use crate::data::{Loaded, Origin, Samples};
use crate::error::Result;
use crate::train::setup::{load_data, template_for};

/// What preparing found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    pub samples: usize,
    /// `None`: the cache could not be written, so nothing was kept (the
    /// trials will tokenise for themselves).
    pub origin: Option<Origin>,
}

/// Tokenises `cfg`'s data into its cache (or finds it there), exactly as
/// the trial itself would; `stop` interrupts it within about a second.
pub fn prepare(cfg: &TrialConfig, stop: &AtomicBool) -> Result<Prepared> {
    let model_dir = smolsweep_model::hf::resolve_model_dir(&cfg.model)?;
    let tok = TextTokenizer::from_dir(&model_dir)?;
    let template = template_for(cfg, &tok)?;
    if cfg.stage != crate::config::Stage::Sft {
        // The pairs only; the reference log-probs need the model and are
        // computed by the first trial.
        let spec = crate::train::setup::data_spec(cfg, &tok, &template);
        let pairs = crate::data::preference::load_or_build_pairs(&spec, stop)?;
        let origin = match &pairs.chosen {
            Loaded::Mapped(_, origin) => Some(*origin),
            _ => None,
        };
        return Ok(Prepared {
            samples: pairs.len(),
            origin,
        });
    }
    let loaded = load_data(cfg, &tok, &template, stop)?;
    let origin = match &loaded {
        Loaded::Mapped(_, origin) => Some(*origin),
        _ => None,
    };
    Ok(Prepared {
        samples: loaded.len(),
        origin,
    })
}
