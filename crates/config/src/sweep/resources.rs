//! `[resources]`: where a sweep's trials run — child processes on this
//! machine (`backend = "local"`) or one Slurm job per trial attempt
//! (`backend = "slurm"`, options in `[resources.slurm]`) — and when one is
//! given up early (`stop_rule`). Not part of the frozen spec: a restarted
//! sweep may run on a machine with other GPUs, on a cluster, be given more
//! retries, or have its stop rule turned off (its stopped trials then train
//! on to the end).

use toml::Value;

use crate::enums::word_enum;
use crate::keys::{check, schema, Default, Key, KeyError, Kind};

word_enum! {
    /// Whether a sweep stops trials that are doing worse than the others.
    StopRule {
        /// Every trial trains to the end (what Figure 1 wants).
        None = "none",
        /// Google Vizier's median stopping rule (Golovin et al., 2017,
        /// section 3.2.2): at each `stop_at` fraction of its steps, a trial
        /// whose best training loss so far is worse than the median of the
        /// completed trials' running mean losses to the same fraction stops.
        Median = "median",
    }
}

/// Where the stop rule looks by default: a quarter, half and three
/// quarters of the way (never during the first quarter, where warmup and
/// the first drop of the loss make trials hard to compare).
pub const DEFAULT_STOP_AT: [f64; 3] = [0.25, 0.5, 0.75];

/// Which GPUs the sweep may use.
#[derive(Debug, Clone, PartialEq)]
pub enum Gpus {
    /// Whatever `nvidia-smi` (or libtorch) finds; none means CPU.
    Auto,
    /// These indices; an empty list means CPU only, even on a GPU machine.
    List(Vec<u32>),
}

/// How many trials share one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slots {
    /// This many at once on each GPU (without GPUs: CPU slots).
    Fixed(u32),
    /// As many as fit by the measured peak GPU memory of the trials that
    /// ran there (one per GPU until a measurement exists), at most
    /// [`AUTO_SLOTS_MAX`]; without GPUs, one CPU slot.
    Auto,
}

/// The most trials `slots_per_gpu = "auto"` puts on one GPU, however small
/// they are: past a handful of 135M trials an H100 is compute-bound (more
/// trials only share the same FLOPs), and each trial also holds a CPU
/// core for its data and a CUDA context.
pub const AUTO_SLOTS_MAX: u32 = 8;

impl Slots {
    /// The most trials this puts on one GPU.
    pub fn max_per_gpu(self) -> u32 {
        match self {
            Slots::Fixed(n) => n,
            Slots::Auto => AUTO_SLOTS_MAX,
        }
    }
}

/// Where trials run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Child processes of the orchestrator, over this machine's GPU slots.
    #[default]
    Local,
    /// One Slurm job per trial attempt (`sbatch`), tracked with `squeue`.
    Slurm,
}

impl Backend {
    pub const NAMES: &'static [&'static str] = &["local", "slurm"];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Slurm => "slurm",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Resources {
    pub backend: Backend,
    pub gpus: Gpus,
    /// Trials sharing one GPU (or, without GPUs, CPU slots).
    pub slots_per_gpu: Slots,
    /// Attempts after the first for a failed trial.
    pub max_retries: u32,
    pub stop_rule: StopRule,
    /// Fractions of a trial's planned steps at which the stop rule looks,
    /// ascending, each in (0, 1).
    pub stop_at: Vec<f64>,
    /// Completed trials the stop rule needs before it stops anything.
    pub stop_min_completed: u32,
    /// `[resources.slurm]` (its defaults when the table is absent).
    pub slurm: SlurmConfig,
}

impl std::default::Default for Resources {
    fn default() -> Self {
        Resources {
            backend: Backend::Local,
            gpus: Gpus::Auto,
            slots_per_gpu: Slots::Fixed(1),
            max_retries: 2,
            stop_rule: StopRule::None,
            stop_at: DEFAULT_STOP_AT.to_vec(),
            stop_min_completed: 3,
            slurm: SlurmConfig::default(),
        }
    }
}

/// Every key of `[resources]` (`[resources.slurm]` is [`SLURM_KEYS`]).
pub static RESOURCES_KEYS: &[Key] = &[
    Key {
        name: "backend",
        doc: "Where trials run: \"local\" child processes, or one Slurm job per trial attempt.",
        kind: Kind::Choice(Backend::NAMES),
        default: Default::Toml("\"local\""),
    },
    Key {
        name: "gpus",
        doc:
            "\"auto\" (every GPU found), a list of GPU indices, or [] for CPU only (local backend).",
        kind: Kind::Gpus,
        default: Default::Toml("\"auto\""),
    },
    Key {
        name: "slots_per_gpu",
        doc: "Trials at once on each GPU, or \"auto\": as many as fit by the measured peak GPU memory of the first trial there, at most 8 (without GPUs: CPU slots, \"auto\" is 1; local backend).",
        kind: Kind::IntOrAuto,
        default: Default::Toml("1"),
    },
    Key {
        name: "max_retries",
        doc: "Attempts after the first for a failed trial (a Slurm requeue is not one).",
        kind: Kind::Int { min: 0 },
        default: Default::Toml("2"),
    },
    Key {
        name: "stop_rule",
        doc: "\"none\", or \"median\": stop a trial whose best loss is worse than the median of the completed trials' running mean losses at the same fraction of their steps (Vizier's median stopping rule).",
        kind: Kind::Choice(StopRule::NAMES),
        default: Default::Toml("\"none\""),
    },
    Key {
        name: "stop_at",
        doc: "Fractions of a trial's planned steps at which the stop rule looks.",
        kind: Kind::Fractions,
        default: Default::Toml("[0.25, 0.5, 0.75]"),
    },
    Key {
        name: "stop_min_completed",
        doc: "Completed trials the stop rule needs before it stops any.",
        kind: Kind::Int { min: 1 },
        default: Default::Toml("3"),
    },
];

schema! {
    /// `[resources.slurm]`: how each trial attempt is submitted with `sbatch`.
    pub struct SlurmConfig, keys SLURM_KEYS;

    /// Partition of the jobs (`--partition`; default: the cluster's default partition).
    partition: Option<String> = unset, Kind::Word;
    /// Account charged (`--account`).
    account: Option<String> = unset, Kind::Word;
    /// Quality of service (`--qos`).
    qos: Option<String> = unset, Kind::Word;
    /// Time limit of each trial's job (`--time`); past it the trial checkpoints and is requeued.
    time: Option<String> = unset, Kind::SlurmTime;
    /// GPUs per trial (`--gres=gpu:N`; 0 for CPU-only jobs).
    gpus_per_trial: u32 = "1", Kind::Int { min: 0 };
    /// CPUs per trial (`--cpus-per-task`; the trial's threads).
    cpus_per_trial: Option<u32> = unset, Kind::Int { min: 1 };
    /// Memory per trial (`--mem`, e.g. "32G").
    mem: Option<String> = unset, Kind::SlurmMem;
    /// Node features required (`--constraint`).
    constraint: Option<String> = unset, Kind::Word;
    /// Jobs of the sweep queued or running at once.
    max_concurrent: u32 = "64", Kind::Int { min: 1 };
    /// Further sbatch arguments, passed on verbatim (e.g. ["--exclusive"]).
    extra_args: Vec<String> = "[]", Kind::Words;
    /// Seconds before the time limit that the trial is told (USR2) to checkpoint and requeue.
    signal_grace_s: u32 = "120", Kind::Int { min: 1 };
}

impl std::default::Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            qos: None,
            time: None,
            gpus_per_trial: 1,
            cpus_per_trial: None,
            mem: None,
            constraint: None,
            max_concurrent: 64,
            extra_args: Vec::new(),
            signal_grace_s: 120,
        }
    }
}

/// The largest count `slots_per_gpu`, `max_retries` and the Slurm counts
/// may be: beyond it a value is a typo, not a plan.
const MAX_COUNT: i64 = 1024;

/// The keys `keys` allows in `t` (prefixed `what.`), each checked by its
/// kind; unknown keys refused naming the ones there are.
fn checked(
    keys: &[Key],
    t: &toml::Table,
    what: &str,
    skip: &[&str],
) -> Result<toml::Table, KeyError> {
    let mut out = toml::Table::new();
    for (k, v) in t {
        if skip.contains(&k.as_str()) {
            continue;
        }
        let Some(key) = keys.iter().find(|key| key.name == k) else {
            let names: Vec<&str> = keys
                .iter()
                .map(|k| k.name)
                .chain(skip.iter().copied())
                .collect();
            return Err(KeyError::new(
                format!("{what}.{k}"),
                format!("unknown key (expected {})", names.join(", ")),
            ));
        };
        let v = check(key.kind, v, std::path::Path::new("."))
            .map_err(|b| KeyError::new(format!("{what}.{k}{}", b.suffix), b.message))?;
        let min = match key.kind {
            Kind::Int { min } => Some(min),
            Kind::IntOrAuto => Some(1),
            _ => None,
        };
        if let (Some(min), Value::Integer(n)) = (min, &v) {
            if *n > MAX_COUNT {
                return Err(KeyError::new(
                    format!("{what}.{k}"),
                    format!("{n} is out of range ({min}..={MAX_COUNT})"),
                ));
            }
        }
        out.insert(k.clone(), v);
    }
    Ok(out)
}

impl Resources {
    pub fn from_table(t: &toml::Table) -> Result<Self, KeyError> {
        let top = checked(RESOURCES_KEYS, t, "resources", &["slurm"])?;
        let backend = match top.get("backend").and_then(Value::as_str) {
            Some("slurm") => Backend::Slurm,
            _ => Backend::Local,
        };
        let gpus = match top.get("gpus") {
            Some(Value::Array(a)) => Gpus::List(
                a.iter()
                    .filter_map(|v| v.as_integer())
                    .map(|n| n as u32)
                    .collect(),
            ),
            _ => Gpus::Auto,
        };
        let int = |key: &str, default: u32| {
            top.get(key)
                .and_then(Value::as_integer)
                .map(|n| n as u32)
                .unwrap_or(default)
        };
        let slurm = match t.get("slurm") {
            None => SlurmConfig::default(),
            Some(Value::Table(s)) => SlurmConfig::from_table(s)?,
            Some(v) => {
                return Err(KeyError::new(
                    "resources.slurm",
                    crate::value::wrong_type("a table", v),
                ))
            }
        };
        let stop_rule = match top.get("stop_rule").and_then(Value::as_str) {
            Some("median") => StopRule::Median,
            _ => StopRule::None,
        };
        let stop_at = match top.get("stop_at") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_float).collect(),
            _ => DEFAULT_STOP_AT.to_vec(),
        };
        let slots_per_gpu = match top.get("slots_per_gpu") {
            Some(Value::String(_)) => Slots::Auto,
            _ => Slots::Fixed(int("slots_per_gpu", 1)),
        };
        Ok(Resources {
            backend,
            gpus,
            slots_per_gpu,
            max_retries: int("max_retries", 2),
            stop_rule,
            stop_at,
            stop_min_completed: int("stop_min_completed", 3),
            slurm,
        })
    }
}

impl SlurmConfig {
    /// Validates a `[resources.slurm]` table (errors name `resources.slurm.KEY`).
    pub fn from_table(t: &toml::Table) -> Result<Self, KeyError> {
        let mut s = checked(SLURM_KEYS, t, "resources.slurm", &[])?;
        crate::keys::fill_defaults(SLURM_KEYS, &mut s)?;
        Self::check_types(&s)
            .map_err(|e| KeyError::new(format!("resources.slurm.{}", e.key), e.message))?;
        let cfg: SlurmConfig = Value::Table(s)
            .try_into()
            .map_err(|e: toml::de::Error| KeyError::new("resources.slurm", e.to_string()))?;
        if let Some(minutes) = cfg
            .time
            .as_deref()
            .and_then(crate::keys::slurm_time_minutes)
        {
            // The USR2 must come while the job still runs, with time to spare.
            if u64::from(cfg.signal_grace_s) >= minutes * 60 {
                return Err(KeyError::new(
                    "resources.slurm.signal_grace_s",
                    format!(
                        "{} s is not shorter than the time limit ({:?})",
                        cfg.signal_grace_s,
                        cfg.time.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(cfg)
    }

    /// The `sbatch` options these settings stand for (before `extra_args`).
    pub fn sbatch_options(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut opt = |flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push(format!("--{flag}={v}"));
            }
        };
        opt("partition", &self.partition);
        opt("account", &self.account);
        opt("qos", &self.qos);
        opt("time", &self.time);
        opt("mem", &self.mem);
        opt("constraint", &self.constraint);
        if let Some(n) = self.cpus_per_trial {
            out.push(format!("--cpus-per-task={n}"));
        }
        if self.gpus_per_trial > 0 {
            out.push(format!("--gres=gpu:{}", self.gpus_per_trial));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Resources, KeyError> {
        Resources::from_table(&text.parse::<toml::Table>().expect("toml"))
    }

    #[test]
    fn slurm_keys_are_checked_and_named() {
        let r = parse(
            "backend = \"slurm\"\n[slurm]\npartition = \"gpu\"\ntime = \"01:30:00\"\nmem = \"16G\"\ncpus_per_trial = 4\nextra_args = [\"--exclusive\"]\n",
        )
        .expect("valid");
        assert_eq!(r.backend, Backend::Slurm);
        assert_eq!(r.slurm.partition.as_deref(), Some("gpu"));
        assert_eq!(r.slurm.signal_grace_s, 120);
        assert_eq!(
            r.slurm.sbatch_options(),
            [
                "--partition=gpu",
                "--time=01:30:00",
                "--mem=16G",
                "--cpus-per-task=4",
                "--gres=gpu:1"
            ]
        );
        for (text, key, says) in [
            (
                "backend = \"k8s\"",
                "resources.backend",
                "not one of local, slurm",
            ),
            (
                "[slurm]\ntime = \"90 minutes\"",
                "resources.slurm.time",
                "not a Slurm time limit",
            ),
            (
                "[slurm]\ntime = \"0\"",
                "resources.slurm.time",
                "not a Slurm time limit",
            ),
            (
                "[slurm]\nmem = \"lots\"",
                "resources.slurm.mem",
                "not a Slurm memory size",
            ),
            (
                "[slurm]\npartition = \"a b\"",
                "resources.slurm.partition",
                "one word",
            ),
            (
                "[slurm]\ngpus_per_trial = -1",
                "resources.slurm.gpus_per_trial",
                "must be >= 0",
            ),
            (
                "[slurm]\nmax_concurrent = 0",
                "resources.slurm.max_concurrent",
                "must be positive",
            ),
            (
                "[slurm]\nmax_concurrent = 5000",
                "resources.slurm.max_concurrent",
                "out of range",
            ),
            (
                "[slurm]\nextra_args = \"--exclusive\"",
                "resources.slurm.extra_args",
                "a list of strings",
            ),
            (
                "[slurm]\nextra_args = [\"a\\nb\"]",
                "resources.slurm.extra_args[0]",
                "one line",
            ),
            ("[slurm]\nnodes = 2", "resources.slurm.nodes", "unknown key"),
            (
                "[slurm]\ntime = \"5\"\nsignal_grace_s = 300",
                "resources.slurm.signal_grace_s",
                "not shorter",
            ),
            ("slurm = 3", "resources.slurm", "a table"),
            ("gpus = [0, 0]", "resources.gpus[1]", "listed twice"),
            (
                "slots_per_gpu = 0",
                "resources.slots_per_gpu",
                "must be positive",
            ),
            (
                "slots_per_gpu = \"many\"",
                "resources.slots_per_gpu",
                "a positive integer or \"auto\"",
            ),
            (
                "slots_per_gpu = 2000",
                "resources.slots_per_gpu",
                "out of range",
            ),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {}", e.message);
            assert!(e.message.contains(says), "{text}: {}", e.message);
        }
    }

    #[test]
    fn slurm_time_limits_read_as_sbatch_reads_them() {
        for (s, m) in [
            ("90", Some(90)),
            ("1:30", Some(2)),
            ("01:00:00", Some(60)),
            ("1-0", Some(1440)),
            ("2-01:30", Some(2970)),
            ("0:0:30", Some(1)),
        ] {
            assert_eq!(crate::keys::slurm_time_minutes(s), m, "{s}");
        }
        for s in ["", "1:2:3:4", "-5", "a", "1-", "0", "1-2-3"] {
            assert_eq!(crate::keys::slurm_time_minutes(s), None, "{s}");
        }
    }

    /// A number keeps meaning what it always did; "auto" is the packing.
    #[test]
    fn slots_per_gpu_is_a_number_or_auto() {
        assert_eq!(parse("").expect("empty").slots_per_gpu, Slots::Fixed(1));
        let three = parse("slots_per_gpu = 3").expect("3");
        assert_eq!(three.slots_per_gpu, Slots::Fixed(3));
        assert_eq!(three.slots_per_gpu.max_per_gpu(), 3);
        let auto = parse("slots_per_gpu = \"auto\"").expect("auto");
        assert_eq!(auto.slots_per_gpu, Slots::Auto);
        assert_eq!(auto.slots_per_gpu.max_per_gpu(), AUTO_SLOTS_MAX);
        let doc = RESOURCES_KEYS
            .iter()
            .find(|k| k.name == "slots_per_gpu")
            .map(|k| k.doc)
            .unwrap_or_default();
        assert!(
            doc.contains(&format!("at most {AUTO_SLOTS_MAX}")),
            "the key's doc names the cap: {doc}"
        );
    }

    #[test]
    fn the_defaults_are_the_key_lists_defaults() {
        let r = parse("").expect("empty");
        assert_eq!(r.backend, Backend::Local);
        let from_keys = SlurmConfig::from_table(&toml::Table::new()).expect("defaults");
        assert_eq!(from_keys, SlurmConfig::default());
    }
}
