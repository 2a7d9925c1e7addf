//! The figures: the Figure-1-style contour plot of one metric over LR x BS,
//! its fallback line plot for single-axis sweeps, the combined multi-panel
//! figure, and the score-against-ratio scatter of the ratio analysis.
//!
//! Axes are logarithmic the way the paper draws them: `x = log10(LR)`,
//! `y = log2(BS)` (ticks at the swept values, labelled in natural units).
//! Surfaces, markers and iso-ratio lines are drawn in pixel space through
//! one [`Geometry`], so what the tests decode maps back exactly.

use crate::interp::Surface;
use crate::plot::*;
use crate::sweep::{Axes, Point, PointStatus};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde::Serialize;

/// Pixel size (width, height) of each per-metric figure (contour or line).
pub const METRIC_FIGURE_SIZE: (u32, u32) = (760, 620);
/// Pixel size of one panel of the combined figure.
pub const PANEL_SIZE: (u32, u32) = (560, 480);
/// Height of the combined figure's title strip.
pub const COMBINED_TITLE_H: u32 = 44;
/// Panels per row of the combined figure (Figure 1 has its four in a row).
pub const COMBINED_COLUMNS: usize = 4;
/// Pixel size of each ratio-analysis scatter.
pub const RATIO_FIGURE_SIZE: (u32, u32) = (760, 500);

/// Everything the figures need about one metric.
#[derive(Debug, Clone)]
pub struct MetricData<'a> {
    pub metric: &'a str,
    pub axes: &'a Axes,
    pub points: &'a [Point],
    pub higher_is_better: bool,
    pub fmt: ValueFmt,
}

impl MetricData<'_> {
    fn scored(&self) -> impl Iterator<Item = &Point> {
        self.points
            .iter()
            .filter(|p| p.status == PointStatus::Scored)
    }

    /// Figure kind this metric's data allow: contours need scored points on
    /// at least two LRs and two BSs.
    pub fn kind(&self) -> PlotKind {
        let mut lrs: Vec<f64> = self.scored().map(|p| p.lr).collect();
        lrs.sort_by(f64::total_cmp);
        lrs.dedup();
        let mut bss: Vec<u32> = self.scored().map(|p| p.batch_size).collect();
        bss.sort_unstable();
        bss.dedup();
        if lrs.is_empty() {
            PlotKind::Empty
        } else if lrs.len() >= 2 && bss.len() >= 2 {
            PlotKind::Contour
        } else {
            PlotKind::Line
        }
    }

    fn value_range(&self) -> (f64, f64) {
        let (lo, hi) = self
            .scored()
            .filter_map(|p| p.mean)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        (lo, hi)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlotKind {
    /// Filled contours over LR x BS.
    Contour,
    /// Score against the one axis that varies.
    Line,
    /// Nothing scored yet.
    Empty,
}

/// What was drawn in one panel, for the summary and for tests that decode
/// the PNG.
#[derive(Debug, Clone, Serialize)]
pub struct PanelInfo {
    pub kind: PlotKind,
    /// Plot area and its data ranges (`log10 LR`, and `log2 BS` for a
    /// contour or the score for a line plot).
    pub geometry: Option<Geometry>,
    /// The filled-contour colours from the worst band to the best.
    pub band_colours: Vec<[u8; 3]>,
    /// Value boundaries of the bands (`LEVELS + 1` values, ascending).
    pub band_edges: Vec<f64>,
    /// LR/BS of each dashed iso-ratio line drawn.
    pub iso_ratios: Vec<f64>,
    /// Whether the surface came from a complete grid (pure bilinear) rather
    /// than one with IDW-filled nodes.
    pub complete_grid: Option<bool>,
}

/// Draws one metric in `area` (a contour if the data allow, else a line
/// plot). `root` is the whole canvas, used for pixel-space drawing.
pub fn metric_panel(
    root: &Area,
    area: &Area,
    d: &MetricData,
    title: &str,
) -> PlotResult<PanelInfo> {
    match d.kind() {
        PlotKind::Contour => contour_panel(root, area, d, title),
        PlotKind::Line => line_panel(root, area, d, title),
        PlotKind::Empty => {
            let (w, h) = area.dim_in_pixel();
            area.draw(&Text::new(
                format!("{title}: no completed trial yet"),
                (w as i32 / 2, h as i32 / 2),
                text_at(15.0, BLACK, HPos::Center, VPos::Center),
            ))?;
            Ok(PanelInfo {
                kind: PlotKind::Empty,
                geometry: None,
                band_colours: Vec::new(),
                band_edges: Vec::new(),
                iso_ratios: Vec::new(),
                complete_grid: None,
            })
        }
    }
}

/// Draws `title` centred across the top of `area`, shrinking the font until
/// it fits the width (metric and sweep names can be long), and returns the
/// area below it.
fn draw_title<'a>(area: &Area<'a>, title: &str) -> PlotResult<Area<'a>> {
    const TITLE_H: u32 = 30;
    let (w, _) = area.dim_in_pixel();
    let mut size = 17.0;
    while size > 9.0 {
        let (tw, _) = area.estimate_text_size(title, &text(size))?;
        if tw + 12 <= w {
            break;
        }
        size -= 1.0;
    }
    let (top, rest) = area.split_vertically(TITLE_H);
    top.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, TITLE_H as i32 / 2 + 2),
        text_at(size, BLACK, HPos::Center, VPos::Center),
    ))?;
    Ok(rest)
}

/// `(min - pad, max + pad)` with the pad a fraction of the mean step, so
/// border markers and their labels fit inside the plot.
fn padded(v: &[f64], frac: f64, single: f64) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi - lo < 1e-12 {
        return (lo - single, hi + single);
    }
    let step = (hi - lo) / (v.len().max(2) - 1) as f64;
    (lo - frac * step, hi + frac * step)
}

/// Tick marks and labels at the swept values (plotters would put them at
/// round numbers of log10 LR, which mean nothing to a reader).
fn draw_ticks(
    root: &Area,
    geom: &Geometry,
    x_ticks: &[(f64, String)],
    y_ticks: &[(f64, String)],
) -> PlotResult<()> {
    let (l, _, _, b) = geom.px;
    let style_x = text_at(12.0, BLACK, HPos::Center, VPos::Top);
    let style_y = text_at(12.0, BLACK, HPos::Right, VPos::Center);
    for (v, label) in x_ticks {
        let (px, _) = geom.to_ipixel(*v, geom.y_range.0);
        root.draw(&PathElement::new(vec![(px, b), (px, b + 5)], BLACK))?;
        root.draw(&Text::new(label.clone(), (px, b + 8), style_x.clone()))?;
    }
    for (v, label) in y_ticks {
        let (_, py) = geom.to_ipixel(geom.x_range.0, *v);
        root.draw(&PathElement::new(vec![(l - 5, py), (l, py)], BLACK))?;
        root.draw(&Text::new(label.clone(), (l - 8, py), style_y.clone()))?;
    }
    Ok(())
}

fn band_colour(k: usize, higher_is_better: bool) -> [u8; 3] {
    let t = (k as f64 + 0.5) / LEVELS as f64;
    // Keep the lightest band off pure white so it reads as data.
    let t = 0.04 + 0.96 * if higher_is_better { t } else { 1.0 - t };
    let c = colormap(t);
    [c.0, c.1, c.2]
}

fn contour_panel(root: &Area, area: &Area, d: &MetricData, title: &str) -> PlotResult<PanelInfo> {
    let area = &draw_title(area, title)?;
    let (w, h) = area.dim_in_pixel();
    let legend_h = 30;
    let cbar_w = 92;
    let (main, legend_area) = area.split_vertically(h - legend_h);
    let (plot_area, cbar_area) = main.split_horizontally(w - cbar_w);

    let xs: Vec<f64> = d.axes.lrs.iter().map(|v| v.log10()).collect();
    let ys: Vec<f64> = d.axes.bss.iter().map(|&b| f64::from(b).log2()).collect();
    let x_range = padded(&xs, 0.3, 0.5);
    let y_range = padded(&ys, 0.3, 0.5);

    let mut chart = ChartBuilder::on(&plot_area)
        .margin(8)
        // Room above the plot for the top row's labels and the colour
        // bar's heading.
        .margin_top(18)
        .margin_right(4)
        .x_label_area_size(46)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    // Ticks go at the swept values (drawn below), not plotters' round
    // numbers, so its own labels are off.
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc("learning rate (log scale)")
        .y_desc("effective batch size (log2 scale)")
        .axis_desc_style(text(14.0))
        .draw()?;
    let geom = Geometry {
        px: plot_rect(chart.plotting_area().get_pixel_range()),
        x_range,
        y_range,
    };
    let x_ticks: Vec<(f64, String)> = d.axes.lrs.iter().map(|&v| (v.log10(), fmt_lr(v))).collect();
    let y_ticks: Vec<(f64, String)> = d
        .axes
        .bss
        .iter()
        .map(|&b| (f64::from(b).log2(), b.to_string()))
        .collect();
    draw_ticks(root, &geom, &x_ticks, &y_ticks)?;

    // The surface: measured means on the grid, missing nodes IDW-filled.
    let values: Vec<Option<f64>> = d
        .axes
        .bss
        .iter()
        .flat_map(|&bs| {
            d.axes.lrs.iter().map(move |&lr| {
                d.points
                    .iter()
                    .find(|p| p.batch_size == bs && p.lr == lr && p.status == PointStatus::Scored)
                    .and_then(|p| p.mean)
            })
        })
        .collect();
    let (vmin, vmax) = d.value_range();
    let band_edges: Vec<f64> = (0..=LEVELS)
        .map(|k| vmin + (vmax - vmin) * k as f64 / LEVELS as f64)
        .collect();
    let band_colours: Vec<[u8; 3]> = (0..LEVELS)
        .map(|k| band_colour(k, d.higher_is_better))
        .collect();
    let surface = Surface::new(xs.clone(), ys.clone(), &values);
    let band_of = |v: f64| -> usize {
        if vmax - vmin < 1e-15 {
            LEVELS / 2
        } else {
            (((v - vmin) / (vmax - vmin) * LEVELS as f64).floor() as usize).min(LEVELS - 1)
        }
    };
    let (l, t, r, b) = geom.px;
    let (pw, ph) = ((r - l) as usize, (b - t) as usize);
    let mut bands: Vec<Option<usize>> = Vec::with_capacity(pw * ph);
    let nx = xs.len();
    for py in t..b {
        for px in l..r {
            let (x, y) = geom.to_data(f64::from(px) + 0.5, f64::from(py) + 0.5);
            // Pixels whose nearest grid node (in grid steps) has no score —
            // diverged, failed or not run — stay grey: the interpolated
            // surface there would be a guess, not a measurement.
            let i = crate::interp::fractional_index(&xs, x).round() as usize;
            let j = crate::interp::fractional_index(&ys, y).round() as usize;
            let measured = values[j * nx + i].is_some();
            bands.push(
                surface
                    .as_ref()
                    .filter(|_| measured)
                    .and_then(|s| s.value(x, y))
                    .map(band_of),
            );
        }
    }
    for j in 0..ph {
        for i in 0..pw {
            let here = bands[j * pw + i];
            let colour = match here {
                None => rgb(UNMEASURED_RGB),
                Some(k) => {
                    // A band edge (the next pixel right or below is in
                    // another band) is darkened into a thin contour line.
                    let right = (i + 1 < pw).then(|| bands[j * pw + i + 1]).flatten();
                    let below = (j + 1 < ph).then(|| bands[(j + 1) * pw + i]).flatten();
                    let edge = right.is_some_and(|o| o != k) || below.is_some_and(|o| o != k);
                    let c = band_colours[k];
                    if edge {
                        RGBColor(
                            (f64::from(c[0]) * 0.72) as u8,
                            (f64::from(c[1]) * 0.72) as u8,
                            (f64::from(c[2]) * 0.72) as u8,
                        )
                    } else {
                        rgb(c)
                    }
                }
            };
            root.draw_pixel((l + i as i32, t + j as i32), &colour)?;
        }
    }

    let iso_ratios = draw_iso_ratios(root, &geom)?;
    draw_grid_markers(root, &geom, d)?;
    draw_colour_bar(root, &cbar_area, &geom, d, &band_edges, &band_colours)?;
    draw_legend(root, &legend_area, d, true, &[])?;
    Ok(PanelInfo {
        kind: PlotKind::Contour,
        geometry: Some(geom),
        band_colours,
        band_edges,
        iso_ratios,
        complete_grid: surface.map(|s| s.is_complete()),
    })
}

/// The LR/BS values whose iso-ratio lines cross the plot: decades, or
/// 1-2-5 steps where fewer than two decades cross; at most about seven.
pub fn iso_ratio_values(geom: &Geometry) -> Vec<f64> {
    let l2 = 2f64.log10();
    let (x0, x1) = geom.x_range;
    let (y0, y1) = geom.y_range;
    // log10(LR/BS) = x - y log10(2) over the plot.
    let lo = x0 - y1 * l2;
    let hi = x1 - y0 * l2;
    let margin = 0.04 * (hi - lo);
    let inside = |c: f64| c > lo + margin && c < hi - margin;
    let decades: Vec<f64> = ((lo.floor() as i32)..=(hi.ceil() as i32))
        .map(f64::from)
        .filter(|&c| inside(c))
        .collect();
    let mut logs = if decades.len() >= 2 {
        decades
    } else {
        ((lo.floor() as i32)..=(hi.ceil() as i32))
            .flat_map(|k| [0.0, 2f64.log10(), 5f64.log10()].map(|f| f64::from(k) + f))
            .filter(|&c| inside(c))
            .collect()
    };
    while logs.len() > 7 {
        logs = logs.into_iter().step_by(2).collect();
    }
    logs.into_iter().map(|c| 10f64.powf(c)).collect()
}

/// Dashed lines of constant LR/BS (straight in log-log), each labelled with
/// LR/BS x 1e6 at its upper end.
/// A dashed straight line from `a` to `b`, each dash placed along the exact
/// segment (plotters' `DashedPathElement` accumulates rounding and bends
/// long, steep lines).
fn dashed_line(
    root: &Area,
    a: (i32, i32),
    b: (i32, i32),
    dash: f64,
    gap: f64,
    style: ShapeStyle,
) -> PlotResult<()> {
    let (dx, dy) = (f64::from(b.0 - a.0), f64::from(b.1 - a.1));
    let len = (dx * dx + dy * dy).sqrt();
    if len < 1.0 {
        return Ok(());
    }
    let at = |s: f64| {
        (
            a.0 + (dx * s / len).round() as i32,
            a.1 + (dy * s / len).round() as i32,
        )
    };
    let mut t = 0.0;
    while t < len {
        let end = (t + dash).min(len);
        root.draw(&PathElement::new(vec![at(t), at(end)], style))?;
        t += dash + gap;
    }
    Ok(())
}

fn draw_iso_ratios(root: &Area, geom: &Geometry) -> PlotResult<Vec<f64>> {
    let l2 = 2f64.log10();
    let (x0, x1) = geom.x_range;
    let (y0, y1) = geom.y_range;
    let ratios = iso_ratio_values(geom);
    let style = ShapeStyle::from(&rgb(ISO_RGB)).stroke_width(2);
    for &ratio in &ratios {
        let c = ratio.log10();
        // x = c + y log10(2); clip y so x stays in [x0, x1].
        let ya = y0.max((x0 - c) / l2);
        let yb = y1.min((x1 - c) / l2);
        if yb <= ya {
            continue;
        }
        let pa = geom.to_ipixel(c + ya * l2, ya);
        let pb = geom.to_ipixel(c + yb * l2, yb);
        dashed_line(root, pa, pb, 9.0, 6.0, style)?;
        // Label a little inside the upper end, along the line.
        let (dx, dy) = (f64::from(pa.0 - pb.0), f64::from(pa.1 - pb.1));
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let at = (
            pb.0 + (dx / len * 22.0) as i32,
            pb.1 + (dy / len * 22.0) as i32,
        );
        boxed_label(
            root,
            &fmt_ratio_e6(ratio),
            at,
            &text_at(11.0, rgb(ISO_RGB), HPos::Center, VPos::Center),
        )?;
    }
    Ok(ratios)
}

fn draw_grid_markers(root: &Area, geom: &Geometry, d: &MetricData) -> PlotResult<()> {
    for p in d.points {
        let at = geom.to_ipixel(p.lr.log10(), f64::from(p.batch_size).log2());
        match p.status {
            PointStatus::Scored => {
                draw_scored(root, at, 4)?;
                let mut label = d.fmt.fmt(p.mean.unwrap_or(f64::NAN));
                if p.diverged + p.failed > 0 {
                    label.push('†');
                }
                if p.stopped_early > 0 {
                    label.push('*');
                }
                boxed_label(
                    root,
                    &label,
                    (at.0, at.1 - 6),
                    &text_at(12.0, BLACK, HPos::Center, VPos::Bottom),
                )?;
            }
            PointStatus::Diverged => {
                draw_diverged(root, at, 6)?;
                boxed_label(
                    root,
                    "diverged",
                    (at.0, at.1 - 9),
                    &text_at(10.0, rgb(DIVERGED_RGB), HPos::Center, VPos::Bottom),
                )?;
            }
            PointStatus::Failed => {
                draw_failed(root, at, 5)?;
                boxed_label(
                    root,
                    "failed",
                    (at.0, at.1 - 8),
                    &text_at(10.0, rgb(FAILED_RGB), HPos::Center, VPos::Bottom),
                )?;
            }
            PointStatus::Missing => draw_missing(root, at, 4)?,
        }
    }
    Ok(())
}

fn draw_colour_bar(
    root: &Area,
    cbar_area: &Area,
    geom: &Geometry,
    d: &MetricData,
    edges: &[f64],
    colours: &[[u8; 3]],
) -> PlotResult<()> {
    let (bx, _) = cbar_area.get_base_pixel();
    let (x0, x1) = (bx + 10, bx + 30);
    let (top, bottom) = (geom.px.1, geom.px.3);
    let n = colours.len() as i32;
    for (k, c) in colours.iter().enumerate() {
        let k = k as i32;
        // Band k spans from the bottom up.
        let yb = bottom - (bottom - top) * k / n;
        let yt = bottom - (bottom - top) * (k + 1) / n;
        root.draw(&Rectangle::new([(x0, yt), (x1, yb)], rgb(*c).filled()))?;
    }
    root.draw(&Rectangle::new(
        [(x0, top), (x1, bottom)],
        ShapeStyle::from(&BLACK).stroke_width(1),
    ))?;
    for (k, &v) in edges.iter().enumerate().step_by(2) {
        let y = bottom - (bottom - top) * k as i32 / n;
        root.draw(&PathElement::new(vec![(x1, y), (x1 + 4, y)], BLACK))?;
        root.draw(&Text::new(
            d.fmt.fmt(v),
            (x1 + 6, y),
            text_at(11.0, BLACK, HPos::Left, VPos::Center),
        ))?;
    }
    let note = if d.higher_is_better {
        "darker = better"
    } else {
        "darker = better (lower)"
    };
    root.draw(&Text::new(
        format!("score{}", d.fmt.unit()),
        (x0 - 4, top - 12),
        text_at(11.0, BLACK, HPos::Left, VPos::Center),
    ))?;
    root.draw(&Text::new(
        note.to_string(),
        (x0 - 6, bottom + 30),
        text_at(10.0, BLACK, HPos::Left, VPos::Center),
    ))?;
    Ok(())
}

/// Draws a legend marker centred at a pixel.
type MarkerFn<'x> = dyn Fn(&Area, (i32, i32)) -> PlotResult<()> + 'x;

/// One row of marker explanations under a plot, listing only the kinds of
/// marker this metric has.
fn draw_legend(
    root: &Area,
    legend_area: &Area,
    d: &MetricData,
    iso: bool,
    series: &[(RGBColor, String)],
) -> PlotResult<()> {
    let (bx, by) = legend_area.get_base_pixel();
    let (_, h) = legend_area.dim_in_pixel();
    let y = by + h as i32 / 2;
    let mut x = bx + 14;
    let style = text_at(11.0, BLACK, HPos::Left, VPos::Center);
    let has = |s: PointStatus| d.points.iter().any(|p| p.status == s);
    let item = |x: &mut i32, label: &str, draw: &MarkerFn| -> PlotResult<()> {
        draw(root, (*x + 6, y))?;
        root.draw(&Text::new(label.to_string(), (*x + 16, y), style.clone()))?;
        let (tw, _) = root.estimate_text_size(label, &style)?;
        *x += 16 + tw as i32 + 14;
        Ok(())
    };
    if series.is_empty() {
        item(&mut x, "measured (mean score)", &|a, p| {
            draw_scored(a, p, 4)
        })?;
    }
    for (colour, label) in series {
        item(&mut x, label, &|a, p| {
            a.draw(&Circle::new(p, 5, colour.filled()))?;
            Ok(())
        })?;
    }
    if has(PointStatus::Diverged) {
        item(&mut x, "diverged", &|a, p| draw_diverged(a, p, 5))?;
    }
    if has(PointStatus::Failed) {
        item(&mut x, "failed", &|a, p| draw_failed(a, p, 4))?;
    }
    if has(PointStatus::Missing) {
        item(&mut x, "not done", &|a, p| draw_missing(a, p, 4))?;
    }
    if iso {
        item(&mut x, "LR/BS × 10⁶", &|a, (px, py)| {
            dashed_line(
                a,
                (px - 8, py),
                (px + 6, py),
                5.0,
                3.0,
                ShapeStyle::from(&rgb(ISO_RGB)).stroke_width(2),
            )
        })?;
    }
    let mut notes = Vec::new();
    if d.points
        .iter()
        .any(|p| p.status == PointStatus::Scored && p.diverged + p.failed > 0)
    {
        notes.push("† some seeds diverged/failed");
    }
    if d.points.iter().any(|p| p.stopped_early > 0) {
        notes.push("* stopped early by the stop rule, scored there");
    }
    if !notes.is_empty() {
        root.draw(&Text::new(notes.join("   "), (x, y), style.clone()))?;
    }
    Ok(())
}

/// A categorical palette (Tableau 10) for series by batch size or LR.
const SERIES: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

fn series_colour(k: usize) -> RGBColor {
    rgb(SERIES[k % SERIES.len()])
}

/// The single-axis fallback: score against LR (one line per BS) or, when
/// only the BS varies among the scored points, against BS.
fn line_panel(root: &Area, area: &Area, d: &MetricData, title: &str) -> PlotResult<PanelInfo> {
    let area = &draw_title(area, title)?;
    let (_, h) = area.dim_in_pixel();
    let legend_h = 30;
    let (main, legend_area) = area.split_vertically(h - legend_h);
    let mut scored_lrs: Vec<f64> = d.scored().map(|p| p.lr).collect();
    scored_lrs.sort_by(f64::total_cmp);
    scored_lrs.dedup();
    let mut scored_bss: Vec<u32> = d.scored().map(|p| p.batch_size).collect();
    scored_bss.sort_unstable();
    scored_bss.dedup();
    // The x axis is whichever axis the scores vary along; with a single
    // scored point, whichever the sweep itself varies.
    let along_lr = if scored_lrs.len() >= 2 {
        true
    } else if scored_bss.len() >= 2 {
        false
    } else {
        d.axes.lrs.len() > 1 || d.axes.bss.len() == 1
    };
    let xpos = |p: &Point| {
        if along_lr {
            p.lr.log10()
        } else {
            f64::from(p.batch_size).log2()
        }
    };
    let key_xs: Vec<f64> = if along_lr {
        d.axes.lrs.iter().map(|v| v.log10()).collect()
    } else {
        d.axes.bss.iter().map(|&b| f64::from(b).log2()).collect()
    };
    let x_range = padded(&key_xs, 0.3, 0.5);
    // The y range covers every mean +- sd, with room below for the
    // diverged/failed row and above for the labels.
    let (vmin, vmax) = d
        .scored()
        .flat_map(|p| {
            let m = p.mean.unwrap_or(f64::NAN);
            let sd = p.sd.unwrap_or(0.0);
            [m - sd, m + sd]
        })
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let span = if vmax - vmin > 1e-12 {
        vmax - vmin
    } else {
        vmin.abs().max(0.01) * 0.2
    };
    let y_range = (vmin - 0.28 * span, vmax + 0.18 * span);
    let mut chart = ChartBuilder::on(&main)
        .margin(8)
        .margin_right(24)
        .x_label_area_size(46)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    let fmt = d.fmt;
    let y_fmt = |v: &f64| fmt.fmt(*v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc(if along_lr {
            "learning rate (log scale)"
        } else {
            "effective batch size (log2 scale)"
        })
        .y_desc(format!("{}{}", d.metric, d.fmt.unit()))
        .y_label_formatter(&y_fmt)
        .y_labels(6)
        .max_light_lines(1)
        .light_line_style(RGBColor(242, 242, 242))
        .bold_line_style(RGBColor(215, 215, 215))
        .label_style(text(12.0))
        .axis_desc_style(text(14.0))
        .draw()?;
    let geom = Geometry {
        px: plot_rect(chart.plotting_area().get_pixel_range()),
        x_range,
        y_range,
    };
    let x_ticks: Vec<(f64, String)> = if along_lr {
        d.axes.lrs.iter().map(|&v| (v.log10(), fmt_lr(v))).collect()
    } else {
        d.axes
            .bss
            .iter()
            .map(|&b| (f64::from(b).log2(), b.to_string()))
            .collect()
    };
    draw_ticks(root, &geom, &x_ticks, &[])?;
    // One series per value of the other axis.
    let groups: Vec<u64> = {
        let mut g: Vec<u64> = d
            .points
            .iter()
            .map(|p| {
                if along_lr {
                    u64::from(p.batch_size)
                } else {
                    p.lr.to_bits()
                }
            })
            .collect();
        g.sort_unstable();
        g.dedup();
        g
    };
    let group_of = |p: &Point| {
        if along_lr {
            u64::from(p.batch_size)
        } else {
            p.lr.to_bits()
        }
    };
    for (gi, g) in groups.iter().enumerate() {
        let colour = series_colour(gi);
        let mut pts: Vec<&Point> = d.scored().filter(|p| group_of(p) == *g).collect();
        pts.sort_by(|a, b| xpos(a).total_cmp(&xpos(b)));
        let line: Vec<(i32, i32)> = pts
            .iter()
            .map(|p| geom.to_ipixel(xpos(p), p.mean.unwrap_or(f64::NAN)))
            .collect();
        root.draw(&PathElement::new(
            line,
            ShapeStyle::from(&colour).stroke_width(2),
        ))?;
        for p in &pts {
            let mean = p.mean.unwrap_or(f64::NAN);
            let at = geom.to_ipixel(xpos(p), mean);
            if let Some(sd) = p.sd {
                let lo = geom.to_ipixel(xpos(p), mean - sd);
                let hi = geom.to_ipixel(xpos(p), mean + sd);
                root.draw(&PathElement::new(
                    vec![lo, hi],
                    ShapeStyle::from(&colour).stroke_width(1),
                ))?;
            }
            root.draw(&Circle::new(at, 5, colour.filled()))?;
            // Right of the marker, clear of the error bar.
            boxed_label(
                root,
                &d.fmt.fmt(mean),
                (at.0 + 8, at.1 - 3),
                &text_at(12.0, BLACK, HPos::Left, VPos::Bottom),
            )?;
        }
    }
    // Unscored points in a row along the bottom.
    let bottom_y = y_range.0 + 0.1 * span;
    for p in d.points.iter().filter(|p| p.status != PointStatus::Scored) {
        let at = geom.to_ipixel(xpos(p), bottom_y);
        match p.status {
            PointStatus::Diverged => draw_diverged(root, at, 6)?,
            PointStatus::Failed => draw_failed(root, at, 5)?,
            _ => draw_missing(root, at, 4)?,
        }
    }
    boxed_label(
        root,
        if along_lr {
            "single-axis sweep: only the learning rate varies"
        } else {
            "single-axis sweep: only the batch size varies"
        },
        (geom.px.0 + 8, geom.px.1 + 6),
        &text_at(12.0, BLACK, HPos::Left, VPos::Top),
    )?;
    // Which BS (or LR) each line is, in the legend row.
    let series: Vec<(RGBColor, String)> = groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            let label = if along_lr {
                format!("BS {g} (mean ± sd)")
            } else {
                format!("LR {} (mean ± sd)", fmt_lr(f64::from_bits(*g)))
            };
            (series_colour(gi), label)
        })
        .collect();
    draw_legend(root, &legend_area, d, false, &series)?;
    Ok(PanelInfo {
        kind: PlotKind::Line,
        geometry: Some(geom),
        band_colours: Vec::new(),
        band_edges: Vec::new(),
        iso_ratios: Vec::new(),
        complete_grid: None,
    })
}

/// Score against `log10(LR/BS)`: each seed as a small grey dot, each grid
/// point's mean as a dot coloured by batch size with a +-1 sd bar, and
/// diverged or failed points along the bottom.
/// `note` (the correlation) is printed in the top-left corner.
pub fn ratio_scatter(root: &Area, d: &MetricData, note: &str) -> PlotResult<Geometry> {
    let (w, _) = root.dim_in_pixel();
    let (main, side) = root.split_horizontally(w - 96);
    let xs_all: Vec<f64> = d.points.iter().map(|p| p.ratio().log10()).collect();
    let (x_lo, x_hi) = padded(&xs_all, 0.0, 0.5);
    let x_pad = 0.05 * (x_hi - x_lo);
    let x_range = (x_lo - x_pad, x_hi + x_pad);
    let seed_scores: Vec<f64> = d.scored().flat_map(|p| p.scores.iter().copied()).collect();
    let lo = seed_scores.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = seed_scores
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let span = if hi - lo > 1e-12 {
        hi - lo
    } else {
        lo.abs().max(0.01) * 0.2
    };
    let y_range = (lo - 0.22 * span, hi + 0.16 * span);
    let main = draw_title(&main, &format!("{}: score against LR/BS", d.metric))?;
    let mut chart = ChartBuilder::on(&main)
        .margin(10)
        .x_label_area_size(46)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    let fmt = d.fmt;
    let y_fmt = |v: &f64| fmt.fmt(*v);
    let x_fmt = |v: &f64| format!("{v:.1}");
    chart
        .configure_mesh()
        .x_desc("log10(LR / BS)      (−6 is LR/BS × 10⁶ = 1)")
        .y_desc(format!("score{}", d.fmt.unit()))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .max_light_lines(1)
        .light_line_style(RGBColor(242, 242, 242))
        .bold_line_style(RGBColor(215, 215, 215))
        .label_style(text(12.0))
        .axis_desc_style(text(14.0))
        .draw()?;
    let geom = Geometry {
        px: plot_rect(chart.plotting_area().get_pixel_range()),
        x_range,
        y_range,
    };
    let bss = &d.axes.bss;
    let bs_colour = |bs: u32| series_colour(bss.iter().position(|&b| b == bs).unwrap_or(0));
    for p in d.scored() {
        let x = p.ratio().log10();
        if p.scores.len() > 1 {
            for &s in &p.scores {
                root.draw(&Circle::new(
                    geom.to_ipixel(x, s),
                    2,
                    RGBColor(150, 150, 150).filled(),
                ))?;
            }
        }
        let mean = p.mean.unwrap_or(f64::NAN);
        if let Some(sd) = p.sd {
            root.draw(&PathElement::new(
                vec![geom.to_ipixel(x, mean - sd), geom.to_ipixel(x, mean + sd)],
                ShapeStyle::from(&bs_colour(p.batch_size)).stroke_width(1),
            ))?;
        }
        let at = geom.to_ipixel(x, mean);
        root.draw(&Circle::new(at, 5, bs_colour(p.batch_size).filled()))?;
        root.draw(&Circle::new(
            at,
            5,
            ShapeStyle::from(&BLACK).stroke_width(1),
        ))?;
    }
    let bottom_y = y_range.0 + 0.08 * span;
    for p in d.points.iter() {
        let at = geom.to_ipixel(p.ratio().log10(), bottom_y);
        match p.status {
            PointStatus::Diverged => draw_diverged(root, at, 5)?,
            PointStatus::Failed => draw_failed(root, at, 4)?,
            _ => {}
        }
    }
    boxed_label(
        root,
        note,
        (geom.px.0 + 8, geom.px.1 + 6),
        &text_at(12.0, BLACK, HPos::Left, VPos::Top),
    )?;
    // Legend: colour per batch size, then the other markers.
    let (sx, _) = side.get_base_pixel();
    let mut y = geom.px.1 + 10;
    root.draw(&Text::new(
        "batch size".to_string(),
        (sx + 4, y),
        text_at(12.0, BLACK, HPos::Left, VPos::Center),
    ))?;
    for &bs in bss {
        if !d.scored().any(|p| p.batch_size == bs) {
            continue;
        }
        y += 18;
        root.draw(&Circle::new((sx + 10, y), 5, bs_colour(bs).filled()))?;
        root.draw(&Text::new(
            bs.to_string(),
            (sx + 20, y),
            text_at(12.0, BLACK, HPos::Left, VPos::Center),
        ))?;
    }
    let small = text_at(11.0, BLACK, HPos::Left, VPos::Center);
    if d.scored().any(|p| p.scores.len() > 1) {
        y += 22;
        root.draw(&Circle::new(
            (sx + 10, y),
            2,
            RGBColor(150, 150, 150).filled(),
        ))?;
        root.draw(&Text::new(
            "one seed".to_string(),
            (sx + 20, y),
            small.clone(),
        ))?;
        y += 18;
        root.draw(&PathElement::new(
            vec![(sx + 10, y - 7), (sx + 10, y + 7)],
            ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(1),
        ))?;
        root.draw(&Text::new("±1 sd".to_string(), (sx + 20, y), small.clone()))?;
    }
    if d.points.iter().any(|p| p.status == PointStatus::Diverged) {
        y += 22;
        draw_diverged(root, (sx + 10, y), 4)?;
        root.draw(&Text::new(
            "diverged".to_string(),
            (sx + 20, y),
            small.clone(),
        ))?;
    }
    if d.points.iter().any(|p| p.status == PointStatus::Failed) {
        y += 20;
        draw_failed(root, (sx + 10, y), 4)?;
        root.draw(&Text::new(
            "failed".to_string(),
            (sx + 20, y),
            small.clone(),
        ))?;
    }
    Ok(geom)
}
