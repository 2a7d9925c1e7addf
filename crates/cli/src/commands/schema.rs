//! `smolsweep schema trial|sweep`: a fully commented TOML file with every
//! key, its kind and its default, printed from the schema itself.

use anyhow::Result;
use smolsweep_config::doc;

use crate::args::{SchemaArgs, SchemaKind};

pub fn run(a: &SchemaArgs) -> Result<()> {
    let text = match a.kind {
        SchemaKind::Trial => doc::trial_toml(),
        SchemaKind::Sweep => doc::sweep_toml(),
    };
    print!("{text}");
    Ok(())
}
