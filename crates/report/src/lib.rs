//! The sweep report: Figure-1-style contour plots of every benchmark metric
//! over learning rate x effective batch size, the LR/BS ratio analysis, and
//! `report.md`, a self-contained `report.html`, `results.csv` and
//! `summary.json`.
//!
//! The crate takes plain data ([`ReportInput`]) rather than reading the
//! sweep database itself, so it can be tested from fixtures and does not
//! depend on the orchestrator's schema.
//!
//! What [`render_report`] writes into its output directory:
//!
//! | file | what |
//! |---|---|
//! | `figure1.png` | the paper's Figure 1: (a) ARC (Average), (b) GSM8K, (c) HellaSwag, (d) IFEval (Average), each panel of [`PANEL_SIZE`] (see [`sweep::FIGURE1_PANELS`] for what stands in where the sweep lacks a benchmark) under a [`COMBINED_TITLE_H`]-pixel title |
//! | `all_metrics.png` | every metric side by side, Figure-1 benchmarks first, [`COMBINED_COLUMNS`] panels per row |
//! | `metric_<slug>.png` | one metric, [`METRIC_FIGURE_SIZE`] pixels: filled contours when the scored points span at least 2 LRs and 2 BSs, else a line plot |
//! | `ratio_<slug>.png` | score against log10(LR/BS), [`RATIO_FIGURE_SIZE`] pixels |
//! | `report.md`, `report.html` | the report (HTML with the images inlined) |
//! | `results.csv` | one row per trial |
//! | `summary.json` | [`ReportSummary`] as JSON |

pub mod analysis;
pub mod doc;
pub mod figures;
pub mod interp;
pub mod plot;
pub mod stats;
pub mod sweep;

pub use analysis::{RatioAnalysis, Verdict};
pub use figures::{
    PanelInfo, PlotKind, COMBINED_COLUMNS, COMBINED_TITLE_H, METRIC_FIGURE_SIZE, PANEL_SIZE,
    RATIO_FIGURE_SIZE,
};
pub use plot::{Geometry, DIVERGED_RGB, FAILED_RGB, ISO_RGB};
pub use sweep::{Point, PointStatus};

use analysis::fmt_rho;
use doc::{csv_field, Block};
use figures::{metric_panel, ratio_scatter, MetricData};
use plot::{fmt_lr, fmt_ratio_e6, render_png, text_at, ValueFmt};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use sweep::{figure1_metrics, figure1_order, higher_is_better, points_for_metric, slug, Axes};

/// Where a trial stands: the sweep record's states.
pub use smolsweep_config::TrialState;

/// One trial of the sweep: a grid point and seed, its state and its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub lr: f64,
    /// Effective batch size (per-device batch x devices x accumulation).
    pub batch_size: u32,
    #[serde(default)]
    pub seed: Option<i64>,
    pub state: TrialState,
    /// Metric name to score, e.g. `"arc_challenge/acc_norm"`,
    /// `"gsm8k/exact_match,strict-match"`, `"ifeval/prompt_level_strict_acc"`,
    /// `"hellaswag/acc_norm"`. Scores of trials that are not `Completed` are
    /// ignored.
    #[serde(default)]
    pub scores: BTreeMap<String, f64>,
    /// Other hyperparameters, shown in the results table and CSV.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// For a diverged trial, the rule that stopped it and where, as the
    /// sweep record has them (`"zero_grad at step 22"`): shown beside its
    /// state in the results table and as the CSV's `divergence` column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
    /// For a trial the sweep's stop rule stopped, the step it stopped at
    /// (its scores are of the model there): the results table says so and
    /// its point's label is marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<i64>,
}

impl TrialResult {
    /// The state as the results table shows it: a diverged trial with the
    /// rule that stopped it.
    fn state_text(&self) -> String {
        match (&self.state, &self.divergence) {
            (TrialState::Diverged, Some(d)) => format!("diverged: {d}"),
            (TrialState::StoppedEarly, _) => match self.stopped_at {
                Some(step) => format!("stopped early at step {step}"),
                None => "stopped early".to_string(),
            },
            (s, _) => s.as_str().to_string(),
        }
    }
}

/// Whether any trial carries a divergence note (the CSV then has the column).
fn has_divergence(input: &ReportInput) -> bool {
    input.trials.iter().any(|t| t.divergence.is_some())
}

/// Everything the report is made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    pub sweep_name: String,
    /// The sweep's TOML, reproduced in the report.
    pub spec_toml: String,
    pub trials: Vec<TrialResult>,
    /// Trials the spec asks for (grid points x seeds), to say what is
    /// missing.
    pub expected_points: usize,
}

/// What went wrong rendering a report. Messages name the file; an I/O,
/// PNG or JSON cause is the next link of the chain, never repeated in the
/// message.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("invalid report input: {0}")]
    Input(String),
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: drawing failed: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("{path}: writing PNG")]
    Png {
        path: PathBuf,
        source: png::EncodingError,
    },
    #[error("the embedded font (DejaVu Sans) could not be loaded")]
    Font,
    #[error("{path}: writing JSON")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// How far the sweep has got.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    pub expected: usize,
    pub recorded: usize,
    pub completed: usize,
    /// Stopped by the sweep's stop rule, scored where they stopped.
    pub stopped_early: usize,
    pub diverged: usize,
    pub failed: usize,
    pub pending: usize,
    pub running: usize,
    /// Expected trials not in the input at all.
    pub not_recorded: usize,
}

impl Progress {
    fn of(input: &ReportInput) -> Self {
        let count = |s: TrialState| input.trials.iter().filter(|t| t.state == s).count();
        Self {
            expected: input.expected_points,
            recorded: input.trials.len(),
            completed: count(TrialState::Completed),
            diverged: count(TrialState::Diverged),
            stopped_early: count(TrialState::StoppedEarly),
            failed: count(TrialState::Failed),
            pending: count(TrialState::Pending),
            running: count(TrialState::Running),
            not_recorded: input.expected_points.saturating_sub(input.trials.len()),
        }
    }

    pub fn finished(&self) -> usize {
        self.completed + self.stopped_early + self.diverged + self.failed
    }

    /// Whether every expected trial has finished.
    pub fn is_complete(&self) -> bool {
        self.pending + self.running + self.not_recorded == 0
    }

    pub fn sentence(&self) -> String {
        let stopped = match self.stopped_early {
            0 => String::new(),
            n => format!("{n} stopped early by the stop rule, "),
        };
        let done = format!(
            "{} completed, {stopped}{} diverged, {} failed",
            self.completed, self.diverged, self.failed
        );
        if self.is_complete() {
            format!(
                "All {} expected trials have finished ({done}).",
                self.finished().max(self.expected)
            )
        } else {
            format!(
                "Partial sweep: {} of {} expected trials have finished ({done}); {} running, {} pending, {} not yet recorded. The figures show what is done.",
                self.finished(),
                self.expected.max(self.recorded),
                self.running,
                self.pending,
                self.not_recorded
            )
        }
    }
}

/// One metric's outputs.
#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    pub metric: String,
    /// `metric_<slug>.png`.
    pub figure: PathBuf,
    pub panel: PanelInfo,
    /// `ratio_<slug>.png`, when any grid point has a score.
    pub ratio_figure: Option<PathBuf>,
    pub ratio_geometry: Option<Geometry>,
    pub analysis: RatioAnalysis,
    /// The grid points as plotted.
    pub points: Vec<Point>,
}

/// What [`render_report`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    pub out_dir: PathBuf,
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    pub progress: Progress,
    /// `all_metrics.png`, every metric side by side, when there is at
    /// least one metric.
    pub combined: Option<PathBuf>,
    /// Panels of `all_metrics.png`, in drawing order (row-major).
    pub combined_panels: Vec<PanelInfo>,
    /// `figure1.png`, the paper's four panels, when the sweep has any of
    /// their benchmarks.
    pub figure1: Option<PathBuf>,
    /// Its panels, in drawing order.
    pub figure1_panels: Vec<PanelInfo>,
    /// The metric each panel of `figure1.png` draws.
    pub figure1_metrics: Vec<String>,
    pub metrics: Vec<MetricSummary>,
}

/// One metric's data, kept for the combined figure.
struct Prepared {
    name: String,
    points: Vec<Point>,
    higher: bool,
    fmt: ValueFmt,
    slug: String,
}

impl Prepared {
    fn data<'a>(&'a self, axes: &'a Axes) -> MetricData<'a> {
        MetricData {
            metric: &self.name,
            axes,
            points: &self.points,
            higher_is_better: self.higher,
            fmt: self.fmt,
        }
    }
}

/// Draws panels side by side, [`COMBINED_COLUMNS`] to a row, under a
/// title strip: `all_metrics.png` and `figure1.png`.
fn render_sheet(
    path: &Path,
    sweep_name: &str,
    axes: &Axes,
    panels: &[(&Prepared, String)],
) -> Result<Vec<PanelInfo>, ReportError> {
    let cols = panels.len().min(COMBINED_COLUMNS);
    let rows = panels.len().div_ceil(cols);
    let size = (
        PANEL_SIZE.0 * cols as u32,
        PANEL_SIZE.1 * rows as u32 + COMBINED_TITLE_H,
    );
    render_png(path, size, |root| {
        let (title_area, body) = root.split_vertically(COMBINED_TITLE_H);
        let (tw, th) = title_area.dim_in_pixel();
        title_area.draw(&Text::new(
            if panels
                .iter()
                .all(|(p, _)| p.data(axes).kind() == PlotKind::Contour)
            {
                format!(
                    "{sweep_name}: benchmark score over learning rate × effective batch size (darker = better)"
                )
            } else {
                format!("{sweep_name}: benchmark score over the sweep")
            },
            (tw as i32 / 2, th as i32 / 2),
            text_at(20.0, BLACK, HPos::Center, VPos::Center),
        ))?;
        let cells = body.split_evenly((rows, cols));
        let mut out = Vec::new();
        for ((p, title), cell) in panels.iter().zip(&cells) {
            out.push(metric_panel(root, cell, &p.data(axes), title)?);
        }
        Ok(out)
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Renders the whole report into `out_dir` (created if needed).
pub fn render_report(input: &ReportInput, out_dir: &Path) -> Result<ReportSummary, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let axes = Axes::from_trials(&input.trials)?;
    let mut metric_names: Vec<String> = input
        .trials
        .iter()
        .flat_map(|t| t.scores.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    metric_names.sort_by_key(|m| figure1_order(m));
    let progress = Progress::of(input);
    let mut files = Vec::new();

    let mut used_slugs = BTreeSet::new();
    let prepared: Vec<Prepared> = metric_names
        .iter()
        .map(|m| {
            let points = points_for_metric(&axes, &input.trials, m);
            let all: Vec<f64> = points
                .iter()
                .flat_map(|p| p.scores.iter().copied())
                .collect();
            let mut s = slug(m);
            // Two metric names can slug alike ("a/b" and "a_b").
            let base = s.clone();
            let mut k = 2;
            while !used_slugs.insert(s.clone()) {
                s = format!("{base}_{k}");
                k += 1;
            }
            Prepared {
                name: m.clone(),
                higher: higher_is_better(m),
                fmt: ValueFmt::for_values(&all),
                points,
                slug: s,
            }
        })
        .collect();

    let mut metrics = Vec::new();
    for p in &prepared {
        let d = p.data(&axes);
        let figure = out_dir.join(format!("metric_{}.png", p.slug));
        let title = format!("{} — {}", p.name, input.sweep_name);
        let panel = render_png(&figure, METRIC_FIGURE_SIZE, |root| {
            metric_panel(root, root, &d, &title)
        })?;
        files.push(figure.clone());
        let analysis = analysis::analyse(&p.name, &p.points, p.higher, p.fmt);
        let (ratio_figure, ratio_geometry) = if analysis.n_points > 0 {
            let path = out_dir.join(format!("ratio_{}.png", p.slug));
            let note = format!(
                "Spearman {}; n = {} grid points",
                fmt_rho(analysis.n_points, analysis.rho, analysis.ci),
                analysis.n_points
            );
            let g = render_png(&path, RATIO_FIGURE_SIZE, |root| {
                ratio_scatter(root, &d, &note)
            })?;
            files.push(path.clone());
            (Some(path), Some(g))
        } else {
            (None, None)
        };
        metrics.push(MetricSummary {
            metric: p.name.clone(),
            figure,
            panel,
            ratio_figure,
            ratio_geometry,
            analysis,
            points: p.points.clone(),
        });
    }

    let all_panels: Vec<(&Prepared, String)> = prepared
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                p,
                format!("({}) {}", char::from(b'a' + (i % 26) as u8), p.name),
            )
        })
        .collect();
    let (combined, combined_panels) = if all_panels.is_empty() {
        (None, Vec::new())
    } else {
        let path = out_dir.join("all_metrics.png");
        let panels = render_sheet(&path, &input.sweep_name, &axes, &all_panels)?;
        files.push(path.clone());
        (Some(path), panels)
    };
    let figure1_panels: Vec<(&Prepared, String)> = figure1_metrics(&metric_names)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (title, metric))| {
            let p = prepared.iter().find(|p| p.name == metric)?;
            let letter = char::from(b'a' + i as u8);
            Some(if title == metric {
                (p, format!("({letter}) {title}"))
            } else {
                (p, format!("({letter}) {title}: {metric}"))
            })
        })
        .collect();
    let (figure1, figure1_drawn) = if figure1_panels.is_empty() {
        (None, Vec::new())
    } else {
        let path = out_dir.join("figure1.png");
        let panels = render_sheet(&path, &input.sweep_name, &axes, &figure1_panels)?;
        files.push(path.clone());
        (Some(path), panels)
    };

    let csv_path = out_dir.join("results.csv");
    std::fs::write(&csv_path, results_csv(input, &metric_names)).map_err(io_err(&csv_path))?;
    files.push(csv_path);

    let mut summary = ReportSummary {
        out_dir: out_dir.to_path_buf(),
        files,
        progress,
        combined,
        combined_panels,
        figure1,
        figure1_panels: figure1_drawn,
        figure1_metrics: figure1_panels.iter().map(|(p, _)| p.name.clone()).collect(),
        metrics,
    };
    let blocks = report_blocks(input, &summary, &metric_names);
    let md_path = out_dir.join("report.md");
    std::fs::write(&md_path, doc::to_markdown(&blocks)).map_err(io_err(&md_path))?;
    summary.files.push(md_path);
    let html_path = out_dir.join("report.html");
    let html = doc::to_html(
        &format!("smolsweep report: {}", input.sweep_name),
        &blocks,
        out_dir,
    )
    .map_err(|(path, source)| ReportError::Io { path, source })?;
    std::fs::write(&html_path, html).map_err(io_err(&html_path))?;
    summary.files.push(html_path);
    let json_path = out_dir.join("summary.json");
    summary.files.push(json_path.clone());
    let json = serde_json::to_string_pretty(&summary).map_err(|source| ReportError::Json {
        path: json_path.clone(),
        source,
    })?;
    std::fs::write(&json_path, json).map_err(io_err(&json_path))?;
    tracing::info!(dir = %out_dir.display(), files = summary.files.len(), "report written");
    Ok(summary)
}

/// Trials in a stable order: LR, BS, seed.
fn sorted_trials(input: &ReportInput) -> Vec<&TrialResult> {
    let mut t: Vec<&TrialResult> = input.trials.iter().collect();
    t.sort_by(|a, b| {
        a.lr.total_cmp(&b.lr)
            .then(a.batch_size.cmp(&b.batch_size))
            .then(a.seed.cmp(&b.seed))
    });
    t
}

fn extra_keys(input: &ReportInput) -> Vec<String> {
    input
        .trials
        .iter()
        .flat_map(|t| t.extra.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `results.csv`: one row per trial, numbers at full precision.
fn results_csv(input: &ReportInput, metrics: &[String]) -> String {
    let extras = extra_keys(input);
    let divergence = has_divergence(input);
    let mut header = vec![
        "lr".to_string(),
        "batch_size".to_string(),
        "lr_over_bs_x1e6".to_string(),
        "seed".to_string(),
        "state".to_string(),
    ];
    if divergence {
        header.push("divergence".to_string());
    }
    header.extend(extras.iter().cloned());
    header.extend(metrics.iter().cloned());
    let mut out = header
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for t in sorted_trials(input) {
        let mut row = vec![
            format!("{}", t.lr),
            t.batch_size.to_string(),
            format!("{}", t.lr / f64::from(t.batch_size) * 1e6),
            t.seed.map(|s| s.to_string()).unwrap_or_default(),
            t.state.as_str().to_string(),
        ];
        if divergence {
            row.push(t.divergence.clone().unwrap_or_default());
        }
        row.extend(
            extras
                .iter()
                .map(|k| t.extra.get(k).cloned().unwrap_or_default()),
        );
        row.extend(
            metrics
                .iter()
                .map(|m| t.scores.get(m).map(|v| format!("{v}")).unwrap_or_default()),
        );
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

/// The paper's preference-stage points (Tables 5 and 7): name, LR, BS.
const DPO_POINTS: &[(&str, f64, u32)] = &[
    ("SmolTulu DPO-1130", 8.0e-7, 12),
    ("SmolTulu DPO-1207", 5.0e-7, 32),
    ("Tulu 3 DPO 8B", 5.0e-7, 128),
];
const RM_POINTS: &[(&str, f64, u32)] = &[
    ("SmolTulu RM-1130", 4.0e-5, 4),
    ("SmolTulu RM-1207", 7.5e-7, 8),
    ("Tulu 3 RM 8B", 5.0e-7, 128),
];

/// The stage a sweep trains (`[train] stage` of its TOML; SFT without one).
fn stage_of(input: &ReportInput) -> smolsweep_config::Stage {
    input
        .spec_toml
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("train")?.get("stage")?.as_str()?.parse().ok())
        .unwrap_or(smolsweep_config::Stage::Sft)
}

/// For a DPO or reward-model sweep, Table 5 / Table 7 as the paper writes
/// them: the best point of every metric with LR/BS x 10^7, beside the
/// paper's own points.
fn stage_table(input: &ReportInput, summary: &ReportSummary) -> Option<(String, String, Block)> {
    use smolsweep_config::Stage;
    let (title, points) = match stage_of(input) {
        Stage::Dpo => ("Table 5: DPO learning rate and batch size", DPO_POINTS),
        Stage::Rm => (
            "Table 7: reward-model learning rate and batch size",
            RM_POINTS,
        ),
        Stage::Sft => return None,
    };
    let e7 = |lr: f64, bs: u32| format!("{:.3}", lr / f64::from(bs) * 1e7);
    let mut rows: Vec<Vec<String>> = summary
        .metrics
        .iter()
        .filter_map(|m| {
            let best = m.analysis.best.as_ref()?;
            let fmt = ValueFmt::for_values(
                &m.points
                    .iter()
                    .flat_map(|p| p.scores.iter().copied())
                    .collect::<Vec<_>>(),
            );
            Some(vec![
                format!("this sweep, best by `{}`", m.metric),
                fmt_lr(best.lr),
                best.batch_size.to_string(),
                e7(best.lr, best.batch_size),
                format!("{}{}", fmt.fmt(best.mean), fmt.unit()),
            ])
        })
        .collect();
    rows.extend(points.iter().map(|(name, lr, bs)| {
        vec![
            format!("{name} (paper)"),
            fmt_lr(*lr),
            bs.to_string(),
            e7(*lr, *bs),
            "–".to_string(),
        ]
    }));
    Some((
        title.to_string(),
        "The paper writes preference-stage ratios as LR/BS × 10⁷ (Tables 5 and 7); the same unit here, \
         the sweep's best point per metric first, then the paper's."
            .to_string(),
        Block::Table {
            header: vec![
                "point".into(),
                "LR".into(),
                "BS".into(),
                "LR/BS × 10⁷".into(),
                "score".into(),
            ],
            rows,
        },
    ))
}

/// Table 9 as this sweep scores it: per paper row, its best point.
fn paper_table(summary: &ReportSummary) -> Option<Block> {
    use smolsweep_config::paper::PAPER_ROWS;
    let paper = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
    let rows: Vec<Vec<String>> = PAPER_ROWS
        .iter()
        .filter_map(|row| {
            // A combination is a metric of its own; a single row is its
            // task's metric.
            let metric = if row.is_combined() {
                row.name.to_string()
            } else {
                let part = row.parts.first()?;
                format!("{}/{}", part.task, part.metric_name()?)
            };
            let m = summary.metrics.iter().find(|m| m.metric == metric)?;
            let best = m.analysis.best.as_ref()?;
            let fmt = ValueFmt::for_values(
                &m.points
                    .iter()
                    .flat_map(|p| p.scores.iter().copied())
                    .collect::<Vec<_>>(),
            );
            Some(vec![
                row.name.to_string(),
                format!("`{metric}`"),
                fmt_lr(best.lr),
                best.batch_size.to_string(),
                fmt_ratio_e6(best.ratio),
                format!("{}{}", fmt.fmt(best.mean), fmt.unit()),
                paper(row.sft_1130),
                paper(row.sft_1207),
            ])
        })
        .collect();
    (!rows.is_empty()).then(|| Block::Table {
        header: vec![
            "row".into(),
            "metric".into(),
            "best LR".into(),
            "BS".into(),
            "LR/BS × 10⁶".into(),
            "score".into(),
            "SmolTulu SFT-1130".into(),
            "SmolTulu SFT-1207".into(),
        ],
        rows,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn report_blocks(
    input: &ReportInput,
    summary: &ReportSummary,
    metric_names: &[String],
) -> Vec<Block> {
    let mut b = Vec::new();
    b.push(Block::Heading(
        1,
        format!("Sweep report: {}", input.sweep_name),
    ));
    b.push(Block::Para(summary.progress.sentence()));
    let unfinished: Vec<String> = sorted_trials(input)
        .into_iter()
        .filter(|t| matches!(t.state, TrialState::Pending | TrialState::Running))
        .map(|t| {
            format!(
                "LR {}, BS {}{}: {}",
                fmt_lr(t.lr),
                t.batch_size,
                t.seed.map(|s| format!(", seed {s}")).unwrap_or_default(),
                t.state.as_str()
            )
        })
        .collect();
    if !unfinished.is_empty() || summary.progress.not_recorded > 0 {
        b.push(Block::Heading(2, "What is missing".into()));
        let mut items: Vec<String> = unfinished.iter().take(40).cloned().collect();
        if unfinished.len() > 40 {
            items.push(format!("… and {} more", unfinished.len() - 40));
        }
        if summary.progress.not_recorded > 0 {
            items.push(format!(
                "{} expected trials are not recorded at all yet",
                summary.progress.not_recorded
            ));
        }
        b.push(Block::List(items));
    }
    if metric_names.is_empty() {
        b.push(Block::Para(
            "No trial has a score yet, so there is nothing to plot.".into(),
        ));
    }

    if let Some(f) = &summary.figure1 {
        b.push(Block::Heading(
            2,
            "Figure 1: score over learning rate × batch size".into(),
        ));
        b.push(Block::Image(
            file_name(f),
            "Figure 1: the paper's four panels over LR × BS".into(),
        ));
        b.push(Block::Para(format!(
            "The paper's Figure 1 panels, in its order: {}.",
            summary.figure1_metrics.join(", ")
        )));
    }
    if let Some(c) = &summary.combined {
        b.push(Block::Heading(
            2,
            "Every metric over learning rate × batch size".into(),
        ));
        b.push(Block::Image(
            file_name(c),
            "All benchmarks over LR × BS".into(),
        ));
        b.push(Block::Para(
            "x: learning rate (log scale); y: effective batch size (log2 scale); darker = better. \
             Filled contours interpolate the measured grid points bilinearly in log space; where the grid \
             has holes (not yet run, diverged or failed), those nodes are first filled by inverse-distance \
             weighting from the measured ones so the neighbouring cells can be drawn, while the area nearest \
             to each hole, like everything outside the measured region, stays grey. \
             Each measured point is labelled with its mean score (over seeds); red crosses mark diverged \
             runs (the results table says which rule stopped each), purple squares failed ones, grey circles runs not done yet. Dashed lines are constant \
             LR/BS, labelled with LR/BS × 10⁶ as in the paper's Table 2. Sweeps along one axis get line plots."
                .into(),
        ));
    }

    if !summary.metrics.is_empty() {
        b.push(Block::Heading(2, "Best point per benchmark".into()));
        let rows = summary
            .metrics
            .iter()
            .map(|m| {
                let a = &m.analysis;
                let fmt = ValueFmt::for_values(
                    &m.points
                        .iter()
                        .flat_map(|p| p.scores.iter().copied())
                        .collect::<Vec<_>>(),
                );
                let (lr, bs, ratio, score) = match &a.best {
                    Some(best) => (
                        fmt_lr(best.lr),
                        best.batch_size.to_string(),
                        fmt_ratio_e6(best.ratio),
                        match best.sd {
                            Some(sd) => format!(
                                "{} ± {} (n={})",
                                fmt.fmt(best.mean),
                                fmt.fmt_spread(sd),
                                best.seeds
                            ),
                            None => fmt.fmt(best.mean),
                        },
                    ),
                    None => ("–".into(), "–".into(), "–".into(), "–".into()),
                };
                vec![
                    format!("{}{}", m.metric, fmt.unit()),
                    lr,
                    bs,
                    ratio,
                    score,
                    fmt_rho(a.n_points, a.rho, a.ci),
                    a.verdict.label().to_string(),
                ]
            })
            .collect();
        b.push(Block::Table {
            header: vec![
                "metric".into(),
                "best LR".into(),
                "BS".into(),
                "LR/BS × 10⁶".into(),
                "score".into(),
                "Spearman vs log LR/BS".into(),
                "paper's claim".into(),
            ],
            rows,
        });

        if let Some((title, para, table)) = stage_table(input, summary) {
            b.push(Block::Heading(2, title));
            b.push(Block::Para(para));
            b.push(table);
        }
        if let Some(table) = paper_table(summary) {
            b.push(Block::Heading(2, "The paper's Table 9 rows".into()));
            b.push(Block::Para(
                "Each row of the SmolTulu paper's Tables 3 and 9 that this sweep scores, at the sweep's best grid \
                 point for that row, beside the paper's SmolTulu SFT models (Table 3; SmolLM2-1.7B trained on the \
                 full Tulu 3 mixture, so a small or synthetic sweep is not expected to reach them). ARC (Average) \
                 is the mean of ARC-Easy and ARC-Challenge acc_norm, IFEval (Average) the mean of prompt- and \
                 instruction-level strict accuracy. The paper scored with SmolLM2's lighteval setup: compare \
                 like with like by evaluating with `convention = \"smollm2\"`."
                    .into(),
            ));
            b.push(table);
        }

        b.push(Block::Heading(2, "Ratio analysis".into()));
        b.push(Block::Para(format!(
            "The paper (SmolTulu, Section 3.3, Figure 1) found that on SmolLM2-135M reasoning benchmarks (ARC, GSM8K) \
             score best at high LR/BS ratios and pattern-recognition benchmarks (HellaSwag, IFEval) at low ones. \
             For each metric: Spearman's ρ of the grid points' mean scores against log10(LR/BS) (ties get average \
             ranks), with a {}% percentile bootstrap interval over grid points ({} resamples, fixed seed, so the \
             numbers are reproducible). ρ against LR alone and BS alone shows which axis drives a ratio effect.",
            (analysis::CI_LEVEL * 100.0).round(),
            stats::BOOTSTRAP_RESAMPLES
        )));
        for m in &summary.metrics {
            let a = &m.analysis;
            b.push(Block::Heading(3, m.metric.clone()));
            b.push(Block::Para(a.sentence.clone()));
            let mut extra = Vec::new();
            extra.push(format!("scored grid points: {}", a.n_points));
            if let Some(r) = a.rho_lr {
                extra.push(format!("ρ against log LR alone: {r:.2}"));
            }
            if let Some(r) = a.rho_bs {
                extra.push(format!("ρ against log BS alone: {r:.2}"));
            }
            let without: usize = input
                .trials
                .iter()
                .filter(|t| t.state.is_scored() && !t.scores.contains_key(&m.metric))
                .count();
            if without > 0 {
                extra.push(format!(
                    "{without} completed trial(s) have no {} score",
                    m.metric
                ));
            }
            b.push(Block::List(extra));
            b.push(Block::Image(
                file_name(&m.figure),
                format!("{} over LR × BS", m.metric),
            ));
            if let Some(r) = &m.ratio_figure {
                b.push(Block::Image(
                    file_name(r),
                    format!("{} against log10(LR/BS)", m.metric),
                ));
            }
        }
    }

    b.push(Block::Heading(2, "All results".into()));
    let extras = extra_keys(input);
    let fmts: BTreeMap<&str, ValueFmt> = summary
        .metrics
        .iter()
        .map(|m| {
            (
                m.metric.as_str(),
                ValueFmt::for_values(
                    &m.points
                        .iter()
                        .flat_map(|p| p.scores.iter().copied())
                        .collect::<Vec<_>>(),
                ),
            )
        })
        .collect();
    let mut header = vec![
        "LR".to_string(),
        "BS".to_string(),
        "LR/BS × 10⁶".to_string(),
        "seed".to_string(),
        "state".to_string(),
    ];
    header.extend(extras.iter().cloned());
    header.extend(
        metric_names
            .iter()
            .map(|m| format!("{m}{}", fmts.get(m.as_str()).map_or("", |f| f.unit()))),
    );
    let rows = sorted_trials(input)
        .into_iter()
        .map(|t| {
            let mut r = vec![
                fmt_lr(t.lr),
                t.batch_size.to_string(),
                fmt_ratio_e6(t.lr / f64::from(t.batch_size)),
                t.seed.map(|s| s.to_string()).unwrap_or_default(),
                t.state_text(),
            ];
            r.extend(
                extras
                    .iter()
                    .map(|k| t.extra.get(k).cloned().unwrap_or_default()),
            );
            r.extend(metric_names.iter().map(|m| {
                match t.scores.get(m) {
                    Some(v) => fmts
                        .get(m.as_str())
                        .map_or_else(|| v.to_string(), |f| f.fmt(*v)),
                    None => String::new(),
                }
            }));
            r
        })
        .collect();
    b.push(Block::Table { header, rows });
    b.push(Block::Para(
        "The same data at full precision: results.csv.".into(),
    ));

    b.push(Block::Heading(2, "Sweep spec".into()));
    b.push(Block::Code {
        lang: "toml".into(),
        text: input.spec_toml.clone(),
    });
    b
}
