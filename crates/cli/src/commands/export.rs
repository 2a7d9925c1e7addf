//! `smolsweep export SWEEP.toml --csv FILE [--results NAME]`: one row per
//! trial with its hyperparameters, state and every score (of the sweep's
//! own `[eval]`, or of a results set). Reads only.

use anyhow::{Context, Result};
use smolsweep_orchestrator::snapshot;
use smolsweep_orchestrator::SweepSpec;

use crate::args::ExportArgs;

pub fn run(a: &ExportArgs) -> Result<()> {
    let spec = SweepSpec::load(&a.sweep)?;
    let snap = super::sweep_snapshot(&spec, a.results.as_deref())?;
    let text = snapshot::render_csv(&spec, &snap);
    if a.csv.as_os_str() == "-" {
        print!("{text}");
    } else {
        snapshot::write_csv(&a.csv, &text)
            .with_context(|| format!("writing {}", a.csv.display()))?;
        eprintln!("{} trials written to {}", snap.rows.len(), a.csv.display());
    }
    Ok(())
}
