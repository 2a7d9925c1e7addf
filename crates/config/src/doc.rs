//! The schemas as documentation: `smolsweep schema trial|sweep` prints a
//! fully commented TOML file with every key, its kind and its default,
//! built from the key lists themselves so it cannot fall behind them.

use std::fmt::Write;

use crate::eval::EVAL_KEYS;
use crate::keys::{Default, Key, Kind};
use crate::trial::TRIAL_KEYS;

/// Example values for keys without a default, so the printed file is a
/// valid starting point (after its paths are pointed at real files).
fn example(key: &Key) -> &'static str {
    match key.name {
        "model" => "\"models/SmolLM2-135M-Instruct\"",
        "data" => "[\"data/train.jsonl\"]",
        "lr" => "9e-5",
        "output_dir" => "\"runs/trial\"",
        "tasks" => {
            "[\"arc_easy\", \"arc_challenge\", \"hellaswag\", \"piqa\", \"gsm8k\", \"ifeval\"]"
        }
        _ => "\"\"",
    }
}

fn key_lines(out: &mut String, key: &Key) {
    let _ = writeln!(out, "# {}", key.doc.trim());
    let _ = write!(out, "# {}", key.kind.describe());
    match key.default {
        Default::Required => {
            let _ = writeln!(out, "; required");
            let _ = writeln!(out, "{} = {}", key.name, example(key));
        }
        Default::Unset => {
            let _ = writeln!(out, "; unset by default");
            let _ = writeln!(out, "# {} =", key.name);
        }
        Default::Toml(text) => {
            let _ = writeln!(out);
            let _ = writeln!(out, "{} = {text}", key.name);
        }
    }
    out.push('\n');
}

/// The example grid of the printed sweep: the paper's two axes.
const GRID_EXAMPLE: &[(&str, &str)] = &[
    ("lr", "{ log_space = [3e-6, 3e-4, 5] }"),
    ("batch_size", "{ pow2 = [8, 128] }"),
];

/// A trial file (`smolsweep train --config`) with every key.
pub fn trial_toml() -> String {
    let mut out = String::from(
        "# A smolsweep trial: one training job (`smolsweep train --config FILE`).\n\
         # Every key with its default; relative paths are taken from this file's folder.\n\n",
    );
    for key in TRIAL_KEYS {
        key_lines(&mut out, key);
    }
    out
}

/// A sweep file (`smolsweep run`) with every section and key.
pub fn sweep_toml() -> String {
    let mut out = String::from(
        "# A smolsweep sweep (`smolsweep run FILE`): [train] keys shared by every trial,\n\
         # [grid] axes over any trial key, [eval] for every trial, [resources] for this machine.\n\
         # Relative paths are taken from this file's folder.\n\n\
         [sweep]\n\
         # Name recorded in the database (default: the file's stem).\n\
         # name = \"smoltulu-fig1\"\n\
         # Where trials, the database and the report go (default: ./<file stem>).\n\
         # output_dir = \"runs/smoltulu-fig1\"\n\
         # The database (default: <output_dir>/sweep.db; local disk, never NFS).\n\
         # db = \"runs/smoltulu-fig1/sweep.db\"\n\n\
         [train]\n",
    );
    for key in TRIAL_KEYS {
        match key.kind {
            // Set per trial by the orchestrator.
            Kind::OutputDir => {}
            // Swept below.
            _ if GRID_EXAMPLE.iter().any(|(k, _)| *k == key.name) => {
                let _ = writeln!(
                    out,
                    "# {}: {} (swept in [grid] below)\n",
                    key.name,
                    key.doc.trim()
                );
            }
            _ => key_lines(&mut out, key),
        }
    }
    out.push_str(
        "[grid]\n\
         # Any trial key (but output_dir and cache_dir) can be an axis: a list of values,\n\
         # { log_space = [lo, hi, n] } for positive floats, { pow2 = [lo, hi] } for positive integers.\n\
         # The sweep runs every combination.\n",
    );
    for (key, axis) in GRID_EXAMPLE {
        let _ = writeln!(out, "{key} = {axis}");
    }
    out.push_str("\n[eval]\n");
    for key in EVAL_KEYS {
        key_lines(&mut out, key);
    }
    out.push_str("[resources]\n");
    for key in crate::sweep::RESOURCES_KEYS {
        key_lines(&mut out, key);
    }
    out.push_str(
        "[resources.slurm]\n# Used when backend = \"slurm\": one sbatch job per trial attempt.\n\n",
    );
    for key in crate::sweep::SLURM_KEYS {
        key_lines(&mut out, key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_files_parse_and_name_every_key() {
        let t: toml::Table = trial_toml().parse().expect("trial TOML");
        for key in TRIAL_KEYS {
            assert_eq!(
                t.contains_key(key.name),
                key.default != Default::Unset,
                "{}",
                key.name
            );
        }
        let s: toml::Table = sweep_toml().parse().expect("sweep TOML");
        for section in ["sweep", "train", "grid", "eval", "resources"] {
            assert!(s.contains_key(section), "{section}");
        }
    }
}
