//! `smolsweep prepare SWEEP.toml`: check the sweep and its data, then
//! tokenise the training data once per distinct data, model tokenizer,
//! chat template, `max_seq_len` and cache folder, so that the trials only
//! map the cache. `smolsweep run` does the same before it starts trials;
//! on a cluster, run this on a login node before submitting.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use smolsweep_orchestrator::SweepSpec;
use smolsweep_trainer::data::Origin;
use smolsweep_trainer::{TrainError, TrialConfig};

use super::prepared::{self, Entry};
use crate::args::PrepareArgs;

pub fn run(a: &PrepareArgs) -> Result<()> {
    let mut spec = SweepSpec::load(&a.sweep)?;
    super::resolve_models(&mut spec)?;
    super::preflight::check(&spec)?;
    for line in prepare_sweep(&spec, 4)? {
        println!("{line}");
    }
    Ok(())
}

/// What decides a tokenisation cache: two trials equal here share one.
fn data_identity(cfg: &TrialConfig) -> (Vec<PathBuf>, PathBuf, String, usize, PathBuf) {
    (
        cfg.data.clone(),
        cfg.model.clone(),
        cfg.chat_template.to_string(),
        cfg.max_seq_len,
        cfg.cache_dir(),
    )
}

/// Tokenises every distinct training set of the sweep (one line of
/// outcome per set); SIGTERM/SIGINT stop it within about a second with
/// `stopped_status`, leaving no partial cache.
pub(crate) fn prepare_sweep(spec: &SweepSpec, stopped_status: u8) -> Result<Vec<String>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handlers = Vec::new();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        handlers.push(
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .context("installing signal handlers")?,
        );
    }
    let mut seen = Vec::new();
    let mut lines = Vec::new();
    let mut result = Ok(());
    for point in spec.points() {
        let cfg = match spec.trial(&point, &spec.output_dir) {
            Ok(c) => c,
            Err(e) => {
                result = Err(anyhow::anyhow!(
                    "{}: {}: {}",
                    spec.file.display(),
                    e.key,
                    e.message
                ));
                break;
            }
        };
        let id = data_identity(&cfg);
        if seen.contains(&id) {
            continue;
        }
        let what = cfg
            .data
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        tracing::info!(data = %what, max_seq_len = cfg.max_seq_len, "preparing the training data");
        let entry = |state: &str, samples: Option<usize>, detail: Option<String>| Entry {
            data: what.clone(),
            max_seq_len: cfg.max_seq_len,
            state: state.to_owned(),
            samples,
            detail,
            updated: prepared::now(),
        };
        prepared::update(spec, entry("tokenising", None, None));
        match smolsweep_trainer::prepare::prepare(&cfg, &stop) {
            Ok(p) => {
                prepared::update(spec, entry("ready", Some(p.samples), None));
                let how = match p.origin {
                    Some(Origin::Cache) => "already tokenised",
                    Some(Origin::Waited) => "tokenised by another process",
                    Some(Origin::Built) => "tokenised",
                    None => "not cached (the cache folder cannot be written)",
                };
                lines.push(format!(
                    "{what} (max_seq_len {}): {} samples, {how}, in {}",
                    cfg.max_seq_len,
                    p.samples,
                    cfg.cache_dir().display()
                ));
            }
            Err(TrainError::Stopped) => {
                prepared::update(spec, entry("stopped", None, None));
                eprintln!("stopped while preparing the data of {what}; no partial cache is left");
                result = Err(super::ExitStatus(stopped_status).into());
                break;
            }
            Err(e) => {
                let e = anyhow::Error::from(e);
                prepared::update(spec, entry("failed", None, Some(format!("{e:#}"))));
                result = Err(e.context(format!("preparing {what}")));
                break;
            }
        }
        seen.push(id);
    }
    // The scheduler installs its own handlers next.
    for h in handlers {
        signal_hook::low_level::unregister(h);
    }
    result.map(|()| lines)
}
