//! `smolsweep eval-sweep SWEEP.toml --tasks T1,T2[=PATH] [--name NAME]
//! [--set KEY=VALUE]`: evaluate every completed trial's export on the given
//! tasks into a new, named results set of the sweep's record, beside the
//! scores its own `[eval]` gave (which stay untouched); nothing trains.
//! The options not given come from the file's `[eval]`. The same name
//! again resumes the set (the trials it lacks are evaluated).

use anyhow::{Context, Result};
use smolsweep_config::sweep::task_name;
use smolsweep_config::EvalConfig;
use smolsweep_orchestrator::store::check_set_name;
use smolsweep_orchestrator::{EvalSweepSummary, SweepOptions, SweepSpec};

use super::run::{gpu_fallback, task_files, trial_program};
use crate::args::EvalSweepArgs;

/// `--set KEY=VALUE`: the value as TOML (`50`, `true`, `"auto"`), or as
/// text when it is not TOML (`auto`).
fn option(text: &str) -> Result<(String, toml::Value)> {
    let (k, v) = text
        .split_once('=')
        .with_context(|| format!("--set {text}: expected KEY=VALUE"))?;
    let (k, v) = (k.trim(), v.trim());
    if k == "tasks" {
        anyhow::bail!("--set {text}: tasks are given with --tasks");
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

pub fn run(a: &EvalSweepArgs) -> Result<()> {
    let spec = SweepSpec::load(&a.sweep)?;
    let file = a.sweep.display().to_string();
    let cwd = std::env::current_dir().context("the current directory")?;
    let tasks: Vec<String> = a
        .tasks
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((n, p)) => format!("{}={}", n.trim(), cwd.join(p.trim()).display()),
            None => t.to_string(),
        })
        .collect();
    let name = a.name.clone().unwrap_or_else(|| {
        tasks
            .iter()
            .map(|t| task_name(t))
            .collect::<Vec<_>>()
            .join("+")
    });
    check_set_name(&name).map_err(|e| anyhow::anyhow!("--name {e}"))?;
    let mut table = spec.eval_table.clone().unwrap_or_default();
    table.insert(
        "tasks".into(),
        toml::Value::Array(tasks.into_iter().map(toml::Value::String).collect()),
    );
    for o in &a.options {
        let (k, v) = option(o)?;
        table.insert(k, v);
    }
    let base = spec.file.parent().unwrap_or(std::path::Path::new("."));
    let eval = EvalConfig::from_table(&table, base).map_err(|e| {
        anyhow::anyhow!(
            "{file}: eval-sweep --tasks/--set: eval.{}: {}",
            e.key,
            e.message
        )
    })?;
    // Every task's data is read once here, so a bad path fails now and
    // not once per trial.
    let files = task_files();
    for t in &eval.tasks {
        files(t, eval.data_dir.as_deref()).map_err(|e| anyhow::anyhow!("--tasks {t}: {e}"))?;
    }
    let eval_json =
        serde_json::to_value(&eval).context("the results set's [eval] options as JSON")?;
    let opts = SweepOptions {
        program: trial_program()?,
        gpu_fallback: Some(gpu_fallback()),
        progress: !a.no_progress,
        task_files: Some(files),
        // Evaluations run here, whatever the backend.
        detach: false,
        on_stop: smolsweep_orchestrator::OnStop::Leave,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let s: EvalSweepSummary = rt.block_on(smolsweep_orchestrator::eval_sweep(
        spec, eval, eval_json, &name, opts,
    ))?;
    drop(rt);
    let line = format!(
        "results set {name}: {} completed trials, {} evaluated now, {} failed",
        s.trials,
        s.evaluated,
        s.failed.len()
    );
    if s.interrupted {
        eprintln!("interrupted: {line}; run the same command again to resume");
        return Err(super::ExitStatus(130).into());
    }
    eprintln!("{line} (show it: smolsweep status {file} --results {name})");
    if !s.failed.is_empty() {
        anyhow::bail!(
            "{} evaluations failed:\n  {}",
            s.failed.len(),
            s.failed.join("\n  ")
        );
    }
    Ok(())
}
