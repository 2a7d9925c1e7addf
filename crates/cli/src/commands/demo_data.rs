//! `smolsweep demo-data`: writes the demo sweep's generated data (the
//! generator is the `smolsweep-demo` crate) and lists what it wrote.

use std::io::Write as _;

use anyhow::{Context, Result};

use crate::args::DemoDataArgs;

pub fn run(a: &DemoDataArgs) -> Result<()> {
    let files = smolsweep_demo::generate(a.seed);
    smolsweep_demo::write_files(&a.out, &files)?;
    let mut out = std::io::stdout().lock();
    for (rel, text) in &files {
        let path = a.out.join(rel);
        writeln!(out, "{}: {} rows", path.display(), text.lines().count())
            .context("writing to stdout")?;
    }
    Ok(())
}
