//! `smolsweep status SWEEP.toml [--json] [--results NAME]`: the grid points
//! with state, attempt, progress, last loss, scores (of the sweep's own
//! `[eval]`, or of a results set `eval-sweep` made) and slot. Reads only.

use anyhow::Result;
use smolsweep_orchestrator::snapshot;
use smolsweep_orchestrator::SweepSpec;

use crate::args::StatusArgs;

pub fn run(a: &StatusArgs) -> Result<()> {
    let spec = SweepSpec::load(&a.sweep)?;
    let snap = super::sweep_snapshot(&spec, a.results.as_deref())?;
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
