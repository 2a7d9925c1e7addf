//! One module per subcommand; each takes its parsed arguments and returns
//! `anyhow::Result`, with context naming what failed.

mod bench;
mod generate;
mod import;
mod info;
mod score;

use anyhow::{Context, Result};
use smolsweep_model::{DType, DeviceSpec, LoadedModel};

use crate::args::{Command, ModelArgs};

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Info => info::run(),
        Command::Generate(a) => generate::run(&a),
        Command::Score(a) => score::run(&a),
        Command::ImportGguf(a) => import::run(&a),
        Command::Bench(b) => bench::run(b),
    }
}

/// Loads `--model` on `--device` in `--dtype`.
pub(crate) fn load_model(a: &ModelArgs) -> Result<LoadedModel> {
    let device: DeviceSpec = a.device.parse().context("--device")?;
    let dtype: DType = a.dtype.parse().context("--dtype")?;
    let t = std::time::Instant::now();
    let m = LoadedModel::load(&a.model, device, dtype)
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
