//! The workspace's end-to-end tests of the `smolsweep` binary, as one test
//! binary (`cargo test --release -p smolsweep --test it`): one link against
//! libtorch instead of one per file, and one place that lists them all.
//!
//! Every `.rs` file in this folder is a module declared here; `layout`
//! fails the run if one is not, so a new file cannot go uncompiled. Tests
//! run as threads of one process: they pass settings to the programs they
//! spawn through `Command::env`, never through this process's environment
//! or working directory. Filter by module, e.g. `--test it orchestrator_spec`.

mod common;
mod orchestrator_helpers;

mod data_cache;
mod demo_e2e;
mod dpo_e2e;
mod dpo_parity;
mod dpo_reward_eval;
mod dpo_sweep;
mod error_chains;
mod eval_bad_inputs;
mod eval_grow;
mod eval_ifeval_e2e;
mod eval_reference;
mod generation_parity;
mod hub_layouts;
mod layout;
mod mmlu_bbh_reference;
mod model_bad_inputs;
mod model_reference;
mod one_schema;
mod orchestrator_chaos;
mod orchestrator_packing;
mod orchestrator_spec;
mod orchestrator_sweep;
mod prepare;
mod readme_keys;
mod rm_e2e;
mod rm_eval;
mod rm_parity;
mod sft_labels_reference;
mod slurm_backend;
mod smollm2_generation_reference;
mod smollm2_reference;
mod stop_rule;
mod sweep_chain;
mod trainer_e2e;
