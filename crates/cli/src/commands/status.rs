//! `smolsweep status SWEEP.toml [--json]`: the grid points with state,
//! attempt, progress, last loss, scores and slot. Reads only.

use anyhow::Result;
use smolsweep_orchestrator::snapshot;
use smolsweep_orchestrator::SweepSpec;

use crate::args::StatusArgs;

pub fn run(a: &StatusArgs) -> Result<()> {
    let spec = SweepSpec::load(&a.sweep)?;
    let snap = super::sweep_snapshot(&spec)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&snapshot::render_json(&snap))?
        );
    } else {
        print!("{}", snapshot::render_table(&snap));
    }
    Ok(())
}
