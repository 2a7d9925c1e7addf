//! The closed sets of values trial and eval keys take, as enums: parsed
//! from their TOML/CLI spelling, printed back the same way, and listing
//! their spellings for error messages and the schema documentation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enum whose values are fixed lowercase words.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($word),+];
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(format!("{s:?} is not one of {}", Self::NAMES.join(", "))),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use word_enum;

word_enum! {
    /// Where a trial's weights start.
    InitKind {
        /// The model directory's safetensors.
        Pretrained = "pretrained",
        /// Fresh weights from the config and the trial's seed.
        Random = "random",
    }
}

word_enum! {
    /// Learning-rate schedule after warmup.
    Schedule { Linear = "linear", Cosine = "cosine", Constant = "constant" }
}

word_enum! {
    /// How token losses are combined across gradient accumulation.
    LossReduction {
        /// Every token of the effective batch weighs the same (open-instruct).
        Sum = "sum",
        /// Each micro-batch's mean, averaged over micro-batches.
        Mean = "mean",
    }
}

word_enum! {
    /// The chat template conversations are rendered with.
    ChatTemplate {
        /// The model's own Jinja `chat_template`.
        Model = "model",
        /// open-instruct's Tulu template.
        Tulu = "tulu",
        /// ChatML, as SmolLM2.
        Chatml = "chatml",
    }
}

word_enum! {
    /// What a trial trains: the three stages of the Tulu 3 / SmolTulu recipe.
    Stage {
        /// Supervised fine-tuning on chat data.
        Sft = "sft",
        /// Direct preference optimisation on chosen/rejected pairs.
        Dpo = "dpo",
        /// A reward model (a scalar head) on chosen/rejected pairs.
        Rm = "rm",
    }
}

word_enum! {
    /// The DPO loss, as open-instruct names it.
    DpoLoss {
        /// Each sequence's log-prob divided by its label count (Tulu 3, SmolTulu).
        DpoNorm = "dpo_norm",
        /// Summed sequence log-probs (the original DPO).
        Dpo = "dpo",
    }
}

word_enum! {
    /// How the chosen and rejected sequences of a DPO micro-batch are run.
    Forward {
        /// Two forward passes, chosen then rejected (SmolTulu).
        Separate = "separate",
        /// One forward pass over both, padded to one length.
        Concatenated = "concatenated",
    }
}

word_enum! {
    /// How attention runs over packed rows.
    Attention {
        /// Varlen flash attention on CUDA in bf16 with a supported head dim, else masked SDPA.
        Auto = "auto",
        /// Varlen flash attention (an error where it cannot run).
        Varlen = "varlen",
        /// Scaled dot-product attention with the block-diagonal mask.
        Sdpa = "sdpa",
    }
}

word_enum! {
    /// Whose conventions an evaluation follows: prompts, few-shot picks,
    /// generation settings and metrics.
    Convention {
        /// lm-evaluation-harness, task by task (its YAMLs).
        LmEval = "lm-eval",
        /// SmolLM2's evaluation: lighteval@ea46419a with the chat template,
        /// as the SmolTulu paper's numbers were made.
        Smollm2 = "smollm2",
    }
}

word_enum! {
    /// Compute dtype.
    DType {
        /// f32 on the CPU, bf16 on CUDA.
        Auto = "auto",
        F32 = "f32",
        Bf16 = "bf16",
    }
}

/// `auto`, `cpu`, `cuda` (the first visible GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA when libtorch sees a GPU, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl DeviceSpec {
    pub const NAMES: &'static [&'static str] = &["auto", "cpu", "cuda", "cuda:N"];
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse()
                    .map(DeviceSpec::Cuda)
                    .map_err(|_| format!("{s:?}: expected cuda:N with N a device index")),
                None => Err(format!("{s:?} is not one of auto, cpu, cuda, cuda:N")),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A positive count, or `"auto"`: micro-batch sizes and eval batch sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MicroBatch {
    /// Largest that fits (a memory probe on CUDA, a cache budget on CPU).
    #[default]
    Auto,
    Fixed(u32),
}

impl FromStr for MicroBatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(MicroBatch::Auto),
            _ => match s.parse::<u32>() {
                Ok(n) if n > 0 => Ok(MicroBatch::Fixed(n)),
                _ => Err(format!("{s:?}: expected a positive integer or \"auto\"")),
            },
        }
    }
}

impl fmt::Display for MicroBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MicroBatch::Auto => f.write_str("auto"),
            MicroBatch::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for MicroBatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MicroBatch::Auto => s.serialize_str("auto"),
            MicroBatch::Fixed(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for MicroBatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(0) => Err(serde::de::Error::custom("must be at least 1")),
            Raw::N(n) => Ok(MicroBatch::Fixed(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in Schedule::NAMES {
            assert_eq!(
                s.parse::<Schedule>().map(|x| x.to_string()).as_deref(),
                Ok(*s)
            );
        }
        assert!("step".parse::<Schedule>().is_err());
        assert_eq!("cuda".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(3)));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert_eq!("auto".parse::<MicroBatch>(), Ok(MicroBatch::Auto));
        assert!("0".parse::<MicroBatch>().is_err());
    }
}
