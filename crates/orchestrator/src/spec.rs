//! The sweep spec the orchestrator runs. It is defined, with all of its
//! validation, in `smolsweep-config` (the same crate that defines the trial
//! schema, so a sweep accepts exactly the trials `smolsweep train` does);
//! these are the names the scheduler and the record use.

pub use smolsweep_config::sweep::{
    check_frozen, point_key, point_label, Axis, Gpus, Point, Resources, SweepSpec,
};
pub use smolsweep_config::value::{format_float, to_json, value_text};
pub use smolsweep_config::ConfigError as SpecError;
