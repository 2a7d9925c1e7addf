//! results.json: what one evaluation gives, written by `smolsweep eval`
//! and read back by the orchestrator into the sweep record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::enums::Convention;
use crate::paper::{paper_scores, PaperScore};

/// A metric's value and lm-eval's standard error of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub value: f64,
    pub stderr: Option<f64>,
}

/// One task's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResult {
    pub task: String,
    /// Whose prompts, few-shot picks, generation settings and metrics the
    /// scores follow (results written before conventions existed are
    /// lm-eval's).
    #[serde(default = "lm_eval")]
    pub convention: Convention,
    /// Examples evaluated.
    pub n: usize,
    pub num_fewshot: usize,
    /// Seconds from the first tokenisation to the last score.
    pub wall_s: f64,
    pub examples_per_s: f64,
    /// Metric name -> value and stderr; the names are the registry's
    /// ([`crate::Task::metrics`]).
    pub metrics: BTreeMap<String, Metric>,
    pub data_files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fewshot_files: Vec<String>,
    /// Subtask (BBH's 27, MMLU-Pro's categories) -> its metrics, for a
    /// task whose headline aggregates several.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subtasks: BTreeMap<String, BTreeMap<String, Metric>>,
    /// One JSON object per example (when samples are kept), for samples.jsonl.
    #[serde(skip)]
    pub samples: Vec<Value>,
}

fn lm_eval() -> Convention {
    Convention::LmEval
}

/// Everything one evaluation gives (results.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalResults {
    pub model: String,
    pub device: String,
    pub dtype: String,
    pub chat_template: bool,
    pub smolsweep_version: String,
    /// Task name -> result.
    pub tasks: BTreeMap<String, TaskResult>,
    pub total_wall_s: f64,
    /// The SmolTulu paper's table rows these scores make (ARC (Average),
    /// IFEval (Average), ...), in the paper's order: derived from `tasks`
    /// when written, recomputed from scores wherever they are shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paper: Vec<PaperScore>,
}

impl EvalResults {
    /// Fills [`EvalResults::paper`] from the task scores.
    pub fn with_paper_rows(mut self) -> Self {
        self.paper = paper_scores(|task, metric| {
            self.tasks
                .get(task)
                .and_then(|r| r.metrics.get(metric))
                .copied()
        });
        self
    }

    /// Every (task, metric, value) in task then metric order.
    pub fn scores(&self) -> Vec<(&str, &str, Metric)> {
        self.tasks
            .iter()
            .flat_map(|(task, r)| {
                r.metrics
                    .iter()
                    .map(move |(m, v)| (task.as_str(), m.as_str(), *v))
            })
            .collect()
    }
}
