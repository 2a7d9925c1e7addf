//! End-to-end checks of `render_report` on fixtures whose scores come from a
//! known function of log LR and log BS: the files exist at their documented
//! sizes, and decoding the PNGs shows the darkest band where the function
//! peaks, the iso-ratio lines, and the diverged and failed markers.

use smolsweep_report::{
    render_report, PlotKind, ReportInput, TrialResult, TrialState, DIVERGED_RGB, FAILED_RGB,
    ISO_RGB, METRIC_FIGURE_SIZE, PANEL_SIZE, RATIO_FIGURE_SIZE,
};
use std::collections::BTreeMap;
use std::path::Path;

struct Image {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn at(&self, x: i32, y: i32) -> Option<[u8; 3]> {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return None;
        }
        let k = (y as usize * self.w + x as usize) * 3;
        Some([self.rgb[k], self.rgb[k + 1], self.rgb[k + 2]])
    }

    /// Pixels of exactly `c` within `r` of `(x, y)`.
    fn count_near(&self, (x, y): (i32, i32), r: i32, c: [u8; 3]) -> usize {
        let mut n = 0;
        for dy in -r..=r {
            for dx in -r..=r {
                if self.at(x + dx, y + dy) == Some(c) {
                    n += 1;
                }
            }
        }
        n
    }
}

fn decode(path: &Path) -> Image {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("png exists"));
    let mut reader = png::Decoder::new(file).read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    Image {
        w: info.width as usize,
        h: info.height as usize,
        rgb: buf,
    }
}

/// The known surface: peaks at LR = 10^-4.5 (about 3.2e-5), BS = 32.
fn known(lr: f64, bs: u32) -> f64 {
    let x = lr.log10();
    let y = f64::from(bs).log2();
    0.6 - 0.08 * (x + 4.5).powi(2) - 0.01 * (y - 5.0).powi(2)
}

const PEAK: (f64, f64) = (-4.5, 5.0);

fn trial(lr: f64, bs: u32, seed: i64, state: TrialState, scores: &[(&str, f64)]) -> TrialResult {
    TrialResult {
        lr,
        batch_size: bs,
        seed: Some(seed),
        state,
        scores: scores.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        extra: BTreeMap::from([("epochs".to_string(), "2".to_string())]),
        divergence: None,
        stopped_at: None,
    }
}

fn lrs() -> Vec<f64> {
    (0..7)
        .map(|k| 10f64.powf(-6.0 + 0.5 * f64::from(k)))
        .collect()
}

const BSS: [u32; 7] = [4, 8, 16, 32, 64, 128, 256];

/// The full 7 x 7 grid scored by `known`, except one diverged corner point
/// (high LR, small BS) and one failed one.
fn full_grid() -> ReportInput {
    let mut trials = Vec::new();
    for lr in lrs() {
        for bs in BSS {
            let state = if lr > 5e-4 && bs == 4 {
                TrialState::Diverged
            } else if lr < 2e-6 && bs == 256 {
                TrialState::Failed
            } else {
                TrialState::Completed
            };
            let s = known(lr, bs);
            let scores: Vec<(&str, f64)> = if state == TrialState::Completed {
                vec![
                    ("arc_challenge/acc_norm", s),
                    ("gsm8k/exact_match,strict-match", s - 0.2),
                    ("hellaswag/acc_norm", s),
                    ("ifeval/prompt_level_strict_acc", s),
                ]
            } else {
                Vec::new()
            };
            trials.push(trial(lr, bs, 0, state, &scores));
        }
    }
    ReportInput {
        sweep_name: "fixture".into(),
        spec_toml: "name = \"fixture\"\n".into(),
        expected_points: trials.len(),
        trials,
    }
}

#[test]
fn contour_darkest_band_sits_on_the_peak_and_markers_are_drawn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = full_grid();
    let summary = render_report(&input, dir.path()).expect("renders");

    let m = &summary.metrics[0];
    assert_eq!(m.metric, "arc_challenge/acc_norm");
    assert_eq!(m.panel.kind, PlotKind::Contour);
    // Two grid nodes have no score, so the surface is IDW-filled there.
    assert_eq!(m.panel.complete_grid, Some(false));
    let img = decode(&m.figure);
    assert_eq!((img.w as u32, img.h as u32), METRIC_FIGURE_SIZE);
    let geom = m.panel.geometry.expect("contour geometry");

    // Darker must mean better along the bands.
    let lum =
        |c: [u8; 3]| 0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2]);
    let bands = &m.panel.band_colours;
    assert!(bands.windows(2).all(|w| lum(w[1]) < lum(w[0])), "{bands:?}");

    // Centroid, in data coordinates, of the plot-area pixels of a band.
    let centroid = |c: [u8; 3]| -> (f64, f64, usize) {
        let (l, t, r, b) = geom.px;
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
        for y in t..b {
            for x in l..r {
                if img.at(x, y) == Some(c) {
                    let (dx, dy) = geom.to_data(f64::from(x) + 0.5, f64::from(y) + 0.5);
                    sx += dx;
                    sy += dy;
                    n += 1;
                }
            }
        }
        (sx / n as f64, sy / n as f64, n)
    };
    let (bx, by, n) = centroid(*bands.last().expect("bands"));
    assert!(n > 200, "darkest band has only {n} pixels");
    // Within a quarter of a grid step (0.5 decade, 1 doubling) of the peak.
    assert!(
        (bx - PEAK.0).abs() < 0.125,
        "darkest band centred at log10 LR {bx}"
    );
    assert!(
        (by - PEAK.1).abs() < 0.25,
        "darkest band centred at log2 BS {by}"
    );
    // The lightest band (the corners) comes nowhere near it: every one of
    // its pixels is over two grid steps from the peak.
    let (l, t, r, b) = geom.px;
    let mut nearest = f64::INFINITY;
    for y in t..b {
        for x in l..r {
            if img.at(x, y) == Some(bands[0]) {
                let (dx, dy) = geom.to_data(f64::from(x) + 0.5, f64::from(y) + 0.5);
                nearest = nearest.min(((dx - PEAK.0) / 0.5).hypot(dy - PEAK.1));
            }
        }
    }
    assert!(
        nearest > 2.0 && nearest.is_finite(),
        "lightest band {nearest} steps from the peak"
    );

    // Iso-ratio lines: dashes of ISO_RGB along each line.
    assert!(m.panel.iso_ratios.len() >= 2, "{:?}", m.panel.iso_ratios);
    let l2 = 2f64.log10();
    let mut checked = 0;
    for &ratio in &m.panel.iso_ratios {
        let c = ratio.log10();
        let (mut hits, mut samples) = (0, 0);
        for k in 0..=200 {
            let y = geom.y_range.0 + (geom.y_range.1 - geom.y_range.0) * f64::from(k) / 200.0;
            let x = c + y * l2;
            // Stay clear of the ends, where the label sits.
            if x < geom.x_range.0 + 0.15 || x > geom.x_range.1 - 0.3 {
                continue;
            }
            samples += 1;
            if img.count_near(geom.to_ipixel(x, y), 2, ISO_RGB) > 0 {
                hits += 1;
            }
        }
        if samples >= 10 {
            // Dashes are 9 px on, 6 off: about 60% of samples hit.
            assert!(hits * 10 >= samples * 4, "ratio {ratio}: {hits}/{samples}");
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "only {checked} iso-ratio lines long enough to check"
    );
    // The diverged corner (LR 1e-3, BS 4) has its red cross, the failed one
    // (LR 1e-6, BS 256) its purple square.
    let diverged = geom.to_ipixel(-3.0, 2.0);
    assert!(
        img.count_near(diverged, 7, DIVERGED_RGB) >= 12,
        "no diverged cross"
    );
    let failed = geom.to_ipixel(-6.0, 8.0);
    assert!(
        img.count_near(failed, 7, FAILED_RGB) >= 12,
        "no failed square"
    );
    // A completed point has neither.
    let ok = geom.to_ipixel(-4.5, 5.0);
    assert_eq!(img.count_near(ok, 7, DIVERGED_RGB), 0);

    // The combined figure: four panels in a row, each with the peak dark.
    let combined = decode(summary.combined.as_ref().expect("combined"));
    assert_eq!(combined.w as u32, 4 * PANEL_SIZE.0);
    assert_eq!(
        combined.h as u32,
        PANEL_SIZE.1 + smolsweep_report::COMBINED_TITLE_H
    );
    assert_eq!(summary.combined_panels.len(), 4);
    for p in &summary.combined_panels {
        let g = p.geometry.expect("geometry");
        let darkest = *p.band_colours.last().expect("bands");
        assert!(combined.count_near(g.to_ipixel(PEAK.0 + 0.1, PEAK.1 + 0.2), 3, darkest) > 0);
    }

    // figure1.png: the paper's four panels in its order; without the
    // averages, one task of each stands in (GSM8K named lm-eval's way).
    assert_eq!(
        summary.figure1_metrics,
        [
            "arc_challenge/acc_norm",
            "gsm8k/exact_match,strict-match",
            "hellaswag/acc_norm",
            "ifeval/prompt_level_strict_acc"
        ]
    );
    let fig1 = decode(summary.figure1.as_ref().expect("figure1"));
    assert_eq!(fig1.w as u32, 4 * PANEL_SIZE.0);
    assert_eq!(summary.figure1_panels.len(), 4);

    // Ratio scatters at their documented size.
    let ratio = decode(m.ratio_figure.as_ref().expect("ratio figure"));
    assert_eq!((ratio.w as u32, ratio.h as u32), RATIO_FIGURE_SIZE);
}

#[test]
fn report_files_are_complete_and_self_contained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = full_grid();
    let summary = render_report(&input, dir.path()).expect("renders");
    for f in &summary.files {
        assert!(f.exists(), "{} missing", f.display());
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(md.contains("![All benchmarks over LR × BS](all_metrics.png)"));
    assert!(md.contains("![Figure 1: the paper's four panels over LR × BS](figure1.png)"));
    assert!(md.contains("| metric | best LR |"));
    assert!(
        md.contains("All 49 expected trials have finished (47 completed, 1 diverged, 1 failed)."),
        "{md}"
    );
    assert!(md.contains("```toml\nname = \"fixture\"\n```"));
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("html");
    // Every image inlined; none referenced by file.
    let images = md.matches("![").count();
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), images);
    assert!(!html.contains(".png\""));
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), input.trials.len() + 1);
    assert_eq!(
        lines[0],
        "lr,batch_size,lr_over_bs_x1e6,seed,state,epochs,arc_challenge/acc_norm,\"gsm8k/exact_match,strict-match\",hellaswag/acc_norm,ifeval/prompt_level_strict_acc"
    );
    // The best point is the function's peak; the peak lies at a middle ratio,
    // and the summary parses as JSON.
    let best = summary.metrics[0].analysis.best.as_ref().expect("best");
    assert_eq!(best.batch_size, 32);
    assert!((best.lr.log10() + 4.5).abs() < 1e-9);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("summary.json")).expect("json"),
    )
    .expect("valid json");
    assert_eq!(json["metrics"].as_array().map(Vec::len), Some(4));
}

#[test]
fn partial_sweep_renders_what_is_done_and_says_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input = full_grid();
    // Only the lower-left 3 x 3 block has finished; some of the rest are
    // running or pending, the others not in the database yet.
    input.trials.retain(|t| t.lr < 2e-4 || t.batch_size < 64);
    for t in &mut input.trials {
        if t.lr > 2e-5 || t.batch_size > 16 {
            t.state = if t.batch_size == 4 {
                TrialState::Running
            } else {
                TrialState::Pending
            };
            t.scores.clear();
        }
    }
    let summary = render_report(&input, dir.path()).expect("renders");
    assert!(!summary.progress.is_complete());
    let m = &summary.metrics[0];
    assert_eq!(m.panel.kind, PlotKind::Contour);
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(
        md.contains("Partial sweep: 9 of 49 expected trials have finished"),
        "{md}"
    );
    assert!(md.contains("## What is missing"));
    assert!(md.contains("pending"));
    assert!(md.contains("not recorded at all yet"));
    let img = decode(&m.figure);
    assert_eq!((img.w as u32, img.h as u32), METRIC_FIGURE_SIZE);
    // Outside the measured 3 x 3 block the plot is the "unmeasured" grey.
    let g = m.panel.geometry.expect("geometry");
    let far = g.to_ipixel(-3.2, 7.5);
    assert_eq!(img.at(far.0, far.1), Some([236, 236, 236]));
}

#[test]
fn single_axis_sweeps_get_line_plots() {
    for (name, keep) in [
        (
            "one BS",
            Box::new(|t: &TrialResult| t.batch_size == 32) as Box<dyn Fn(&TrialResult) -> bool>,
        ),
        (
            "one LR",
            Box::new(|t: &TrialResult| (t.lr.log10() + 4.5).abs() < 1e-9),
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut input = full_grid();
        input.trials.retain(|t| keep(t));
        input.expected_points = input.trials.len();
        let summary = render_report(&input, dir.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for m in &summary.metrics {
            assert_eq!(m.panel.kind, PlotKind::Line, "{name}: {}", m.metric);
            let img = decode(&m.figure);
            assert_eq!((img.w as u32, img.h as u32), METRIC_FIGURE_SIZE);
        }
        // The x axis is the one that varies: log10 LR (negative) or log2
        // BS (positive).
        let g = summary.metrics[0].panel.geometry.expect("geometry");
        match name {
            "one BS" => assert!(g.x_range.1 < 0.0, "{name}: {g:?}"),
            _ => assert!(g.x_range.0 > 0.0, "{name}: {g:?}"),
        }
        // 7 points along the axis: the correlation is computed.
        assert!(summary.metrics[0].analysis.rho.is_some(), "{name}");
    }
}

#[test]
fn nothing_finished_still_renders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = ReportInput {
        sweep_name: "empty".into(),
        spec_toml: String::new(),
        trials: vec![trial(1e-5, 8, 0, TrialState::Pending, &[])],
        expected_points: 4,
    };
    let summary = render_report(&input, dir.path()).expect("renders");
    assert!(summary.metrics.is_empty());
    assert!(summary.combined.is_none());
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(md.contains("nothing to plot"));
}

#[test]
fn seeds_are_averaged_into_the_plots_and_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut trials = Vec::new();
    for lr in [1e-5, 3e-5, 1e-4] {
        for bs in [8, 32] {
            for seed in 0..3 {
                let s = 0.4 + 0.01 * f64::from(seed as i32) + (lr * 1e3);
                trials.push(trial(
                    lr,
                    bs,
                    seed,
                    TrialState::Completed,
                    &[("gsm8k/em", s)],
                ));
            }
        }
    }
    let input = ReportInput {
        sweep_name: "seeds".into(),
        spec_toml: String::new(),
        expected_points: trials.len(),
        trials,
    };
    let summary = render_report(&input, dir.path()).expect("renders");
    let m = &summary.metrics[0];
    assert_eq!(m.points.len(), 6);
    assert!(m
        .points
        .iter()
        .all(|p| p.scores.len() == 3 && p.sd.is_some()));
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(md.contains("± 1.0 (n=3)"), "{md}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = ReportInput {
        sweep_name: "bad".into(),
        spec_toml: String::new(),
        trials: vec![trial(0.0, 8, 0, TrialState::Completed, &[("a/b", 0.5)])],
        expected_points: 1,
    };
    let err = render_report(&input, dir.path()).expect_err("zero LR");
    assert!(err.to_string().contains("learning rate 0"), "{err}");
    // An output path that cannot be a directory is named in the error.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let err = render_report(&full_grid(), &file.join("sub")).expect_err("not a dir");
    assert!(err.to_string().contains("file/sub"), "{err}");
}

#[test]
fn a_two_by_two_grid_gets_contours_darkest_at_its_best_corner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut trials = Vec::new();
    for (lr, bs, s) in [
        (1e-5, 8, 0.30),
        (1e-5, 64, 0.35),
        (1e-4, 8, 0.50),
        (1e-4, 64, 0.40),
    ] {
        trials.push(trial(lr, bs, 0, TrialState::Completed, &[("gsm8k/em", s)]));
    }
    let input = ReportInput {
        sweep_name: "2x2".into(),
        spec_toml: String::new(),
        expected_points: 4,
        trials,
    };
    let summary = render_report(&input, dir.path()).expect("renders");
    let m = &summary.metrics[0];
    assert_eq!(m.panel.kind, PlotKind::Contour);
    assert_eq!(m.panel.complete_grid, Some(true));
    let img = decode(&m.figure);
    let g = m.panel.geometry.expect("geometry");
    // Just inside the best corner (LR 1e-4, BS 8) and the worst (1e-5, 8),
    // clear of the markers and labels: the best is much darker.
    let lum = |(x, y): (i32, i32)| {
        let c = img.at(x, y).expect("inside the image");
        (0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2])) / 255.0
    };
    let best = lum(g.to_ipixel(-4.0 - 0.06, 3.0 + 0.25));
    let worst = lum(g.to_ipixel(-5.0 + 0.06, 3.0 + 0.25));
    assert!(
        best + 0.4 < worst,
        "best corner luminance {best}, worst {worst}"
    );
}

/// A diverged trial says which rule stopped it: beside its state in the
/// results table, and in the CSV's `divergence` column (present only
/// when some trial has one, so other reports keep their columns).
#[test]
fn diverged_trials_name_the_rule_that_stopped_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut trials = Vec::new();
    for lr in [1e-5, 1e-4] {
        for bs in [8, 16] {
            let s = known(lr, bs);
            trials.push(trial(
                lr,
                bs,
                0,
                TrialState::Completed,
                &[("arc_challenge/acc_norm", s)],
            ));
        }
    }
    let mut bad = trial(1e4, 8, 0, TrialState::Diverged, &[]);
    bad.divergence = Some("zero_grad at step 22".into());
    trials.push(bad);
    let input = ReportInput {
        sweep_name: "fixture".into(),
        spec_toml: String::new(),
        expected_points: trials.len(),
        trials,
    };
    render_report(&input, dir.path()).expect("renders");
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(md.contains("| diverged: zero_grad at step 22 |"), "{md}");
    assert!(md.contains("| completed |"), "{md}");
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).expect("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "divergence")
        .expect("divergence column");
    assert_eq!(header[col - 1], "state");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let diverged: Vec<&Vec<&str>> = rows.iter().filter(|r| r[col - 1] == "diverged").collect();
    assert_eq!(diverged.len(), 1);
    assert_eq!(diverged[0][col], "zero_grad at step 22");
    assert!(rows
        .iter()
        .filter(|r| r[col - 1] == "completed")
        .all(|r| r[col].is_empty()));
}

/// A sweep scored on all seven of the paper's rows, its averages included
/// as the orchestrator passes them (metrics named as the row).
fn paper_grid() -> ReportInput {
    let mut trials = Vec::new();
    for lr in lrs() {
        for bs in BSS {
            let s = known(lr, bs);
            let scores = vec![
                ("ARC (Average)", s),
                ("IFEval (Average)", s * 0.9),
                ("arc_easy/acc_norm", s),
                ("arc_challenge/acc_norm", s),
                ("bbh/exact_match", s * 0.5),
                ("gsm8k/exact_match_strict", s * 0.4),
                ("hellaswag/acc_norm", s),
                ("ifeval/prompt_level_strict_acc", s),
                ("ifeval/inst_level_strict_acc", s * 0.8),
                ("piqa/acc_norm", s),
                ("piqa/acc", s * 0.97),
            ];
            trials.push(trial(lr, bs, 0, TrialState::Completed, &scores));
        }
    }
    ReportInput {
        sweep_name: "paper".into(),
        spec_toml: String::new(),
        expected_points: trials.len(),
        trials,
    }
}

#[test]
fn figure1_has_the_papers_panels_and_the_report_its_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = render_report(&paper_grid(), dir.path()).expect("renders");
    assert_eq!(
        summary.figure1_metrics,
        [
            "ARC (Average)",
            "gsm8k/exact_match_strict",
            "hellaswag/acc_norm",
            "IFEval (Average)"
        ]
    );
    // The averages keep their own contour like every metric.
    for m in ["ARC (Average)", "IFEval (Average)"] {
        let ms = summary
            .metrics
            .iter()
            .find(|x| x.metric == m)
            .unwrap_or_else(|| panic!("{m}"));
        assert!(ms.figure.exists());
    }
    assert!(dir.path().join("all_metrics.png").exists());
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(md.contains("## The paper's Table 9 rows"), "{md}");
    // Best points at the known peak; the paper's values beside them.
    let best = summary
        .metrics
        .iter()
        .find(|m| m.metric == "ARC (Average)")
        .and_then(|m| m.analysis.best.clone())
        .expect("best");
    let line = md
        .lines()
        .find(|l| l.starts_with("| ARC (Average) | `ARC (Average)`"))
        .unwrap_or_else(|| panic!("no ARC row in {md}"));
    assert!(line.ends_with("| 51.0 | 55.6 |"), "{line}");
    assert!(line.contains(&format!("| {} |", best.batch_size)), "{line}");
    // BBH is the task's headline only once the registry knows the task;
    // PIQA is acc_norm, not acc.
    let piqa = md
        .lines()
        .find(|l| l.starts_with("| PIQA |"))
        .expect("PIQA row");
    assert!(
        piqa.contains("`piqa/acc_norm`") && piqa.ends_with("| 72.7 | 76.9 |"),
        "{piqa}"
    );
    assert!(md
        .lines()
        .any(|l| l.starts_with("| IFEval (Average) | `IFEval (Average)`")));
    assert!(md
        .lines()
        .any(|l| l.starts_with("| GSM8K (5-shot) | `gsm8k/exact_match_strict`")));
}

#[test]
fn a_dpo_sweep_gets_table_5_in_the_papers_unit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input = paper_grid();
    input.spec_toml = "[train]\nstage = \"dpo\"\n".into();
    render_report(&input, dir.path()).expect("renders");
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(
        md.contains("## Table 5: DPO learning rate and batch size"),
        "{md}"
    );
    // 8e-7 / 12 x 1e7 = 0.667, as the paper prints it.
    assert!(
        md.contains("| SmolTulu DPO-1130 (paper) | 8e-7 | 12 | 0.667 | – |"),
        "{md}"
    );
    assert!(
        md.contains("| this sweep, best by `ARC (Average)` |"),
        "{md}"
    );
    // An SFT sweep has none.
    let dir = tempfile::tempdir().expect("tempdir");
    render_report(&paper_grid(), dir.path()).expect("renders");
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(!md.contains("Table 5"), "{md}");
}
