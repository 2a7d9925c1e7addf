//! One module per subcommand; each takes its parsed arguments and returns
//! `anyhow::Result`, with context naming what failed.

mod bench;
mod bench_tokenise;
mod demo_data;
mod eval;
mod eval_sweep;
mod export;
mod generate;
mod import;
mod info;
mod init_model;
mod preflight;
mod prepare;
mod prepared;
mod report;
mod run;
mod schema;
mod score;
mod status;
mod train;

use anyhow::{Context, Result};
use smolsweep_model::LoadedModel;

use crate::args::{Command, ModelArgs};

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Info => info::run(),
        Command::Generate(a) => generate::run(&a),
        Command::Score(a) => score::run(&a),
        Command::ImportGguf(a) => import::run(&a),
        Command::Bench(b) => bench::run(b),
        Command::Eval(a) => eval::run(&a),
        Command::Train(a) => train::run(&a),
        Command::Report(a) => report::run(&a),
        Command::InitModel(a) => init_model::run(&a),
        Command::DemoData(a) => demo_data::run(&a),
        Command::Run(a) => run::run(&a),
        Command::Prepare(a) => prepare::run(&a),
        Command::EvalSweep(a) => eval_sweep::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Export(a) => export::run(&a),
        Command::Schema(a) => schema::run(&a),
    }
}

/// A command that ends with a specific non-zero exit status (e.g. `train`:
/// 3 diverged, 4 stopped) rather than the generic 1 of an error.
#[derive(Debug)]
pub struct ExitStatus(pub u8);

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitStatus {}

/// Reads a sweep's snapshot from its database (status, export, report),
/// with the scores of results set `results` (None: the sweep's own): a
/// one-thread runtime is all a few queries need.
pub(crate) fn sweep_snapshot(
    spec: &smolsweep_orchestrator::SweepSpec,
    results: Option<&str>,
) -> Result<smolsweep_orchestrator::snapshot::Snapshot> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(smolsweep_orchestrator::snapshot::read_set(spec, results))
        .with_context(|| format!("reading the sweep database {}", spec.db.display()))
}

/// Resolves the sweep's models given as another sweep's trial
/// (`model = { sweep, trial }`), logging which trial each is.
pub(crate) fn resolve_models(spec: &mut smolsweep_orchestrator::SweepSpec) -> Result<()> {
    if spec.model_refs.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Said on stderr like the run's summary: which trial a chained sweep
    // starts from is part of what the run did.
    for r in rt.block_on(smolsweep_orchestrator::chain::resolve_models(spec))? {
        eprintln!("train.{}: {}: {}", r.key, r.how, r.model.display());
    }
    Ok(())
}

/// Loads `--model` on `--device` in `--dtype`.
pub(crate) fn load_model(a: &ModelArgs) -> Result<LoadedModel> {
    let t = std::time::Instant::now();
    let m = LoadedModel::load(&a.model, a.device, a.dtype)
        .with_context(|| format!("loading model {}", a.model.display()))?;
    tracing::info!(
        dir = %m.dir.display(),
        device = ?m.model.device(),
        dtype = ?m.model.kind(),
        params = m.model.config.num_parameters(),
        secs = format!("{:.2}", t.elapsed().as_secs_f64()),
        "model loaded"
    );
    Ok(m)
}
