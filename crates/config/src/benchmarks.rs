//! The benchmark registry: every task smolsweep evaluates, with the facts
//! about it that more than one crate needs — its name, the metrics its
//! results carry and which one headlines it, the split and HF repository
//! it is read from, and its options with their defaults. The scoring
//! itself lives in the evals crate.

use crate::enums::word_enum;

word_enum! {
    /// A benchmark (lm-evaluation-harness's task name).
    Task {
        ArcEasy = "arc_easy",
        ArcChallenge = "arc_challenge",
        Hellaswag = "hellaswag",
        Piqa = "piqa",
        Gsm8k = "gsm8k",
        Ifeval = "ifeval",
        // Reward-model tasks: scored by a sequence classifier's rewards of
        // chosen and rejected answers, not by an LM's log-likelihoods.
        Rewardbench = "rewardbench",
        PreferenceAccuracy = "preference_accuracy",
        // A DPO policy's implicit reward beta * (log pi - log ref) of each
        // side, against the reference it was trained from.
        DpoRewardAccuracy = "dpo_reward_accuracy",
        MmluPro = "mmlu_pro",
        Bbh = "bbh",
    }
}

/// RewardBench's metrics: its four sections, their plain mean, the
/// leaderboard's average, the example-count-weighted average, then every
/// subset's accuracy (the prior sets' only when the data holds them).
pub const REWARDBENCH_METRICS: &[&str] = &[
    "chat",
    "chat_hard",
    "safety",
    "reasoning",
    "average",
    "leaderboard_average",
    "weighted_average",
    "alpacaeval-easy",
    "alpacaeval-length",
    "alpacaeval-hard",
    "mt-bench-easy",
    "mt-bench-med",
    "mt-bench-hard",
    "llmbar-natural",
    "llmbar-adver-neighbor",
    "llmbar-adver-GPTInst",
    "llmbar-adver-GPTOut",
    "llmbar-adver-manual",
    "refusals-dangerous",
    "refusals-offensive",
    "xstest-should-refuse",
    "xstest-should-respond",
    "donotanswer",
    "math-prm",
    "hep-cpp",
    "hep-go",
    "hep-java",
    "hep-js",
    "hep-python",
    "hep-rust",
    "anthropic_helpful",
    "anthropic_hhh",
    "shp",
    "summarize",
];

/// Solved examples before each GSM8K question: lm-eval's `num_fewshot`.
pub const GSM8K_FEWSHOT: u64 = 5;

/// lm-eval's `fewshot_random_seed`.
pub const FEWSHOT_SEED: u64 = 1234;

/// BBH's 27 subtasks (`lighteval/big_bench_hard` configs, lm-eval's
/// `bbh_*_{subtask}` tasks), in lm-eval's group order.
pub const BBH_SUBTASKS: [&str; 27] = [
    "boolean_expressions",
    "causal_judgement",
    "date_understanding",
    "disambiguation_qa",
    "dyck_languages",
    "formal_fallacies",
    "geometric_shapes",
    "hyperbaton",
    "logical_deduction_five_objects",
    "logical_deduction_seven_objects",
    "logical_deduction_three_objects",
    "movie_recommendation",
    "multistep_arithmetic_two",
    "navigate",
    "object_counting",
    "penguins_in_a_table",
    "reasoning_about_colored_objects",
    "ruin_names",
    "salient_translation_error_detection",
    "snarks",
    "sports_understanding",
    "temporal_sequences",
    "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects",
    "web_of_lies",
    "word_sorting",
];

/// `max_gen_toks` of lm-eval's `ifeval.yaml`.
pub const IFEVAL_MAX_GEN_TOKS: usize = 1280;

impl Task {
    /// lm-eval's task name.
    pub fn name(self) -> &'static str {
        self.as_str()
    }

    /// The metrics a result of this task carries (results.json `metrics`).
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Task::ArcEasy | Task::ArcChallenge | Task::Hellaswag | Task::Piqa => {
                &["acc", "acc_norm"]
            }
            Task::Gsm8k => &["exact_match_strict", "exact_match_flexible"],
            Task::Ifeval => &[
                "prompt_level_strict_acc",
                "inst_level_strict_acc",
                "prompt_level_loose_acc",
                "inst_level_loose_acc",
            ],
            Task::Rewardbench => REWARDBENCH_METRICS,
            Task::PreferenceAccuracy | Task::DpoRewardAccuracy => {
                &["accuracy", "margin", "chosen_reward", "rejected_reward"]
            }
            // smollm2: MCF accuracy; lm-eval: CoT exact match.
            Task::MmluPro => &["acc", "exact_match"],
            Task::Bbh => &["exact_match"],
        }
    }

    /// The metric that stands for the task in tables and figures.
    pub fn headline(self) -> &'static str {
        match self {
            Task::ArcEasy | Task::ArcChallenge | Task::Hellaswag | Task::Piqa => "acc_norm",
            Task::Gsm8k => "exact_match_strict",
            Task::Ifeval => "prompt_level_strict_acc",
            Task::MmluPro => "acc",
            Task::Bbh => "exact_match",
            Task::Rewardbench => "average",
            Task::PreferenceAccuracy | Task::DpoRewardAccuracy => "accuracy",
        }
    }

    /// The `[eval]` options that apply to this task.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Task::Gsm8k => &["gsm8k_fewshot"],
            _ => &[],
        }
    }

    /// The split lm-eval evaluates (its `test_split`, else `validation_split`).
    pub fn eval_split(self) -> &'static str {
        match self {
            Task::ArcEasy | Task::ArcChallenge | Task::Gsm8k => "test",
            Task::Hellaswag | Task::Piqa => "validation",
            Task::Ifeval => "train",
            Task::Rewardbench => "filtered",
            // UltraFeedback's preference test split; a file is read whole.
            Task::PreferenceAccuracy | Task::DpoRewardAccuracy => "test_prefs",
            Task::MmluPro => "test",
            // lighteval/big_bench_hard has only `train`; lm-eval's copies
            // (lukaemon/bbh, SaylorTwift/bbh) only `test`, tried next.
            Task::Bbh => "train",
        }
    }

    /// The split read when the evaluated one is absent (the same items
    /// under another name).
    pub fn alt_split(self) -> Option<&'static str> {
        match self {
            Task::Bbh => Some("test"),
            _ => None,
        }
    }

    /// The HF config folder inside the dataset repository, if the
    /// repository has several (the data of another config is never read
    /// under this task's name).
    pub fn config_dir(self) -> Option<&'static str> {
        match self {
            Task::ArcEasy => Some("ARC-Easy"),
            Task::ArcChallenge => Some("ARC-Challenge"),
            Task::Gsm8k => Some("main"),
            _ => None,
        }
    }

    /// Folders each holding one subtask's data, for a task whose subtasks
    /// are separate HF configs without a field naming them (BBH).
    pub fn subtask_dirs(self) -> &'static [&'static str] {
        match self {
            Task::Bbh => &BBH_SUBTASKS,
            _ => &[],
        }
    }

    /// Every config folder of the task's dataset repository (its own
    /// among them), so a download holding only another config is told
    /// apart from a folder of the user's own.
    pub fn dataset_configs(self) -> &'static [&'static str] {
        match self {
            Task::ArcEasy | Task::ArcChallenge => &["ARC-Challenge", "ARC-Easy"],
            Task::Gsm8k => &["main", "socratic"],
            _ => &[],
        }
    }

    /// A file at the repository root that holds the evaluated split when
    /// the repository does not name files by split (IFEval).
    pub fn data_file(self) -> Option<&'static str> {
        match self {
            Task::Ifeval => Some("ifeval_input_data.jsonl"),
            _ => None,
        }
    }

    /// Hub repositories holding the task, as `ORG/NAME`, preferred first
    /// (the hub cache folder is `datasets--ORG--NAME`).
    pub fn hub_repos(self) -> &'static [&'static str] {
        match self {
            Task::ArcEasy | Task::ArcChallenge => &["allenai/ai2_arc"],
            Task::Hellaswag => &["Rowan/hellaswag"],
            Task::Piqa => &["baber/piqa", "ybisk/piqa"],
            Task::Gsm8k => &["openai/gsm8k"],
            Task::Ifeval => &["google/IFEval"],
            Task::Rewardbench => &["allenai/reward-bench"],
            Task::PreferenceAccuracy | Task::DpoRewardAccuracy => {
                &["allenai/ultrafeedback_binarized_cleaned"]
            }
            Task::MmluPro => &["TIGER-Lab/MMLU-Pro"],
            Task::Bbh => &[
                "lighteval/big_bench_hard",
                "lukaemon/bbh",
                "SaylorTwift/bbh",
            ],
        }
    }

    /// Folder names a `--data-dir` may hold the task's dataset under,
    /// besides the hub cache folders: the task's name and the
    /// repositories' names (as `--local-dir` downloads are usually named).
    pub fn folder_names(self) -> Vec<String> {
        let mut names = vec![self.name().to_owned()];
        for r in self.hub_repos() {
            let name = r.rsplit('/').next().unwrap_or(r).to_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Scored by a reward model (a sequence classifier) rather than a
    /// causal LM.
    pub fn is_reward(self) -> bool {
        matches!(self, Task::Rewardbench | Task::PreferenceAccuracy)
    }

    /// Scored by a DPO policy against its reference (the implicit reward),
    /// not by a causal LM alone nor by a reward model.
    pub fn is_dpo(self) -> bool {
        matches!(self, Task::DpoRewardAccuracy)
    }

    /// Scored by log-likelihood (multiple choice) rather than generation.
    pub fn is_multiple_choice(self) -> bool {
        matches!(
            self,
            Task::ArcEasy | Task::ArcChallenge | Task::Hellaswag | Task::Piqa
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_is_one_of_the_metrics() {
        for t in Task::ALL {
            assert!(t.metrics().contains(&t.headline()), "{t}");
            for o in t.options() {
                assert!(
                    crate::keys::find(crate::eval::EVAL_KEYS, o).is_some(),
                    "{t}: option {o} is not an [eval] key"
                );
            }
        }
    }
}
