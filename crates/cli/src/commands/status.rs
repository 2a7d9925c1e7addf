//! `smolsweep status SWEEP.toml [--json] [--results NAME]`: the grid points
//! with state, attempt, progress, last loss, scores (of the sweep's own
//! `[eval]`, or of a results set `eval-sweep` made) and slot, after a line
//! per training set's data preparation. Reads only.

use anyhow::Result;
use smolsweep_orchestrator::snapshot;
use smolsweep_orchestrator::SweepSpec;

use crate::args::StatusArgs;

pub fn run(a: &StatusArgs) -> Result<()> {
    let spec = SweepSpec::load(&a.sweep)?;
    let data = super::prepared::read(&spec);
    // The data lines first: a sweep still tokenising has no trials yet.
    if !a.json {
        for e in &data {
            println!("{}", super::prepared::line(e));
        }
    }
    let snap = super::sweep_snapshot(&spec, a.results.as_deref())?;
    if a.json {
        let mut doc = snapshot::render_json(&snap);
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("data".into(), serde_json::to_value(&data)?);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", snapshot::render_table(&snap));
    }
    Ok(())
}
