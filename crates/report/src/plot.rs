//! Shared plotting machinery: the embedded font, the colour map, value
//! formatting, pixel<->data geometry, and drawing into an RGB buffer that is
//! then written as PNG.
//!
//! Figures are drawn with plotters' bitmap backend into memory and encoded
//! with the `png` crate, so no system library (fontconfig, freetype) and no
//! system font is needed: the font is DejaVu Sans, compiled into the binary
//! (see `fonts/LICENSE-DejaVu.txt`).

use crate::ReportError;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;
use std::io::BufWriter;
use std::path::Path;
use std::sync::OnceLock;

/// The drawing area every figure function draws on.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// DejaVu Sans, embedded so rendering needs no system font.
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Font family name every text style here uses (plotters' default).
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters, once per process.
pub fn ensure_font() -> Result<(), ReportError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        // Register under every generic family so a default style anywhere
        // in plotters finds a font.
        ["sans-serif", "serif", "monospace"]
            .iter()
            .all(|name| plotters::style::register_font(name, FontStyle::Normal, FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

/// A drawing error from plotters, as text (its error types are generic over
/// the backend); [`render_png`] attaches the file name.
#[derive(Debug)]
pub struct DrawError(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError(e.to_string())
    }
}

pub type PlotResult<T> = Result<T, DrawError>;

/// Draws a `width` x `height` figure with `draw` and writes it to `path` as
/// an 8-bit RGB PNG.
pub fn render_png<T>(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area) -> PlotResult<T>,
) -> Result<T, ReportError> {
    ensure_font()?;
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    let out = {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        let draw_err = |e: DrawError| ReportError::Draw {
            path: path.to_path_buf(),
            message: e.0,
        };
        root.fill(&WHITE).map_err(|e| draw_err(e.into()))?;
        let out = draw(&root).map_err(draw_err)?;
        root.present().map_err(|e| draw_err(e.into()))?;
        out
    };
    write_png(path, width, height, &buf)
        .map_err(|source| ReportError::Png {
            path: path.to_path_buf(),
            source,
        })
        .map(|()| out)
}

fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<(), png::EncodingError> {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // Flat colour bands compress well; the slower setting keeps committed
    // example images small.
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()
}

/// Text style in the embedded font.
pub fn text(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Text style anchored at `h`/`v`.
pub fn text_at(size: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&color).pos(Pos::new(h, v))
}

/// Draws `s` anchored at `(x, y)` on a translucent white box, so it stays
/// readable over any contour colour.
pub fn boxed_label(root: &Area, s: &str, (x, y): (i32, i32), style: &TextStyle) -> PlotResult<()> {
    let (w, h) = root.estimate_text_size(s, style)?;
    let (w, h) = (w as i32, h as i32);
    let x0 = match style.pos.h_pos {
        HPos::Left => x,
        HPos::Center => x - w / 2,
        HPos::Right => x - w,
    };
    let y0 = match style.pos.v_pos {
        VPos::Top => y,
        VPos::Center => y - h / 2,
        VPos::Bottom => y - h,
    };
    root.draw(&Rectangle::new(
        [(x0 - 2, y0 - 1), (x0 + w + 2, y0 + h + 2)],
        WHITE.mix(0.78).filled(),
    ))?;
    root.draw(&Text::new(s.to_string(), (x, y), style.clone()))?;
    Ok(())
}

/// The sequential colour map, light (worst) to dark (best): ColorBrewer's
/// YlGnBu, so "darker = better" as in the paper's Figure 1 while staying
/// readable in print and for the common colour-vision deficiencies.
const YLGNBU: [(u8, u8, u8); 9] = [
    (255, 255, 217),
    (237, 248, 177),
    (199, 233, 180),
    (127, 205, 187),
    (65, 182, 196),
    (29, 145, 192),
    (34, 94, 168),
    (37, 52, 148),
    (8, 29, 88),
];

/// Colour at `t` in `[0, 1]` along the map (0 light, 1 dark).
pub fn colormap(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0) * (YLGNBU.len() - 1) as f64;
    let i = (t.floor() as usize).min(YLGNBU.len() - 2);
    let f = t - i as f64;
    let lerp = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (YLGNBU[i], YLGNBU[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// Relative luminance (0 black, 1 white), to pick label colours and, in
/// tests, to check that better is darker.
pub fn luminance(c: [u8; 3]) -> f64 {
    (0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2])) / 255.0
}

/// Number of filled-contour bands.
pub const LEVELS: usize = 10;

/// Marker colour of a diverged point (a red cross).
pub const DIVERGED_RGB: [u8; 3] = [215, 25, 28];
/// Marker colour of a failed point (a square).
pub const FAILED_RGB: [u8; 3] = [120, 0, 160];
/// Colour of the dashed iso-ratio lines.
pub const ISO_RGB: [u8; 3] = [230, 85, 13];
/// Fill of the plot area where nothing was measured (outside the measured
/// points' bounding box).
pub const UNMEASURED_RGB: [u8; 3] = [236, 236, 236];

pub fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// How a metric's values are printed: benchmark accuracies in `[0, 1]` as
/// percentages with one decimal (as the paper's tables do), anything else
/// with three significant digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ValueFmt {
    pub percent: bool,
}

impl ValueFmt {
    pub fn for_values(values: &[f64]) -> Self {
        Self {
            percent: !values.is_empty() && values.iter().all(|v| (0.0..=1.0).contains(v)),
        }
    }

    pub fn fmt(&self, v: f64) -> String {
        if self.percent {
            no_negative_zero(format!("{:.1}", v * 100.0))
        } else {
            sig3(v)
        }
    }

    /// Spread (a difference of values) in the same unit.
    pub fn fmt_spread(&self, v: f64) -> String {
        self.fmt(v)
    }

    pub fn unit(&self) -> &'static str {
        if self.percent {
            " (%)"
        } else {
            ""
        }
    }
}

/// Three significant digits, without exponent for everyday magnitudes.
pub fn sig3(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return no_negative_zero(format!("{v}"));
    }
    let mag = v.abs().log10().floor() as i32;
    if (-3..=4).contains(&mag) {
        let decimals = (2 - mag).max(0) as usize;
        no_negative_zero(format!("{v:.decimals$}"))
    } else {
        format!("{v:.2e}")
    }
}

/// `-0.0` (a negative zero, or a tiny negative value rounded to zero) as
/// `0.0`: an axis labelled "0.0, -0.0" reads as two different values.
fn no_negative_zero(s: String) -> String {
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// A learning rate as the paper writes it: `3e-5`, `1.5e-4`.
pub fn fmt_lr(lr: f64) -> String {
    let exp = lr.log10().floor() as i32;
    let mant = lr / 10f64.powi(exp);
    let mant = (mant * 100.0).round() / 100.0;
    if (mant - mant.round()).abs() < 1e-9 {
        format!("{}e{}", mant.round() as i64, exp)
    } else {
        format!("{mant}e{exp}")
    }
}

/// `LR / BS x 1e6`, the paper's unit for the ratio (Table 2): two decimals
/// from 1 up (`11.25`), three significant digits below (`0.0969`), trailing
/// zeros trimmed (`10`, `0.5`).
pub fn fmt_ratio_e6(ratio: f64) -> String {
    let r = ratio * 1e6;
    let s = if r >= 100.0 {
        return format!("{r:.0}");
    } else if r >= 1.0 {
        format!("{r:.2}")
    } else if r >= 0.001 {
        sig3(r)
    } else {
        return format!("{r:.1e}");
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Pixel rectangle of a plot area and the data range it shows, in the log
/// coordinates the plots use (`x = log10(LR)`; `y = log2(BS)` or a score).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Geometry {
    /// Left, top, right, bottom pixel edges of the plot area (right and
    /// bottom exclusive).
    pub px: (i32, i32, i32, i32),
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
}

impl Geometry {
    /// Pixel position (fractional) of data point `(x, y)`.
    pub fn to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        let (l, t, r, b) = self.px;
        let fx = (x - self.x_range.0) / (self.x_range.1 - self.x_range.0);
        let fy = (y - self.y_range.0) / (self.y_range.1 - self.y_range.0);
        (
            f64::from(l) + fx * f64::from(r - l),
            f64::from(b) - fy * f64::from(b - t),
        )
    }

    /// Data point at pixel position `(px, py)` (pass `+0.5` for a centre).
    pub fn to_data(&self, px: f64, py: f64) -> (f64, f64) {
        let (l, t, r, b) = self.px;
        let fx = (px - f64::from(l)) / f64::from(r - l);
        let fy = (f64::from(b) - py) / f64::from(b - t);
        (
            self.x_range.0 + fx * (self.x_range.1 - self.x_range.0),
            self.y_range.0 + fy * (self.y_range.1 - self.y_range.0),
        )
    }

    pub fn to_ipixel(&self, x: f64, y: f64) -> (i32, i32) {
        let (px, py) = self.to_pixel(x, y);
        (px.round() as i32, py.round() as i32)
    }

    pub fn contains_px(&self, (x, y): (i32, i32)) -> bool {
        let (l, t, r, b) = self.px;
        x >= l && x < r && y >= t && y < b
    }
}

/// The pixel rectangle of a chart's plotting area.
pub fn plot_rect(range: (std::ops::Range<i32>, std::ops::Range<i32>)) -> (i32, i32, i32, i32) {
    (range.0.start, range.1.start, range.0.end, range.1.end)
}

/// Marker of a diverged point: a thick red cross on a white halo.
pub fn draw_diverged(root: &Area, (x, y): (i32, i32), r: i32) -> PlotResult<()> {
    let halo = ShapeStyle::from(&WHITE).stroke_width(5);
    let red = ShapeStyle::from(&rgb(DIVERGED_RGB)).stroke_width(3);
    for style in [halo, red] {
        root.draw(&PathElement::new(
            vec![(x - r, y - r), (x + r, y + r)],
            style,
        ))?;
        root.draw(&PathElement::new(
            vec![(x - r, y + r), (x + r, y - r)],
            style,
        ))?;
    }
    Ok(())
}

/// Marker of a failed point: a purple square outline on a white halo.
pub fn draw_failed(root: &Area, (x, y): (i32, i32), r: i32) -> PlotResult<()> {
    root.draw(&Rectangle::new(
        [(x - r - 1, y - r - 1), (x + r + 1, y + r + 1)],
        ShapeStyle::from(&WHITE).stroke_width(4),
    ))?;
    root.draw(&Rectangle::new(
        [(x - r, y - r), (x + r, y + r)],
        ShapeStyle::from(&rgb(FAILED_RGB)).stroke_width(2),
    ))?;
    Ok(())
}

/// Marker of a measured point: white dot, black ring.
pub fn draw_scored(root: &Area, (x, y): (i32, i32), r: i32) -> PlotResult<()> {
    root.draw(&Circle::new((x, y), r, WHITE.filled()))?;
    root.draw(&Circle::new(
        (x, y),
        r,
        ShapeStyle::from(&BLACK).stroke_width(1),
    ))?;
    Ok(())
}

/// Marker of a point with no result yet: small hollow grey circle.
pub fn draw_missing(root: &Area, (x, y): (i32, i32), r: i32) -> PlotResult<()> {
    root.draw(&Circle::new(
        (x, y),
        r,
        ShapeStyle::from(&RGBColor(110, 110, 110)).stroke_width(1),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormap_gets_darker_with_t() {
        let lum: Vec<f64> = (0..=20)
            .map(|k| {
                let c = colormap(f64::from(k) / 20.0);
                luminance([c.0, c.1, c.2])
            })
            .collect();
        assert!(lum.windows(2).all(|w| w[1] < w[0]), "{lum:?}");
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_lr(3e-5), "3e-5");
        assert_eq!(fmt_lr(1.5e-4), "1.5e-4");
        assert_eq!(fmt_lr(9e-5), "9e-5");
        assert_eq!(fmt_ratio_e6(9e-5 / 8.0), "11.25");
        assert_eq!(fmt_ratio_e6(3.1e-6 / 32.0), "0.0969");
        assert_eq!(fmt_ratio_e6(1e-5), "10");
        assert_eq!(fmt_ratio_e6(5e-7), "0.5");
        let pct = ValueFmt::for_values(&[0.25, 0.5]);
        assert_eq!(pct.fmt(0.4567), "45.7");
        // Regression: a flat axis was labelled "0.0, -0.0".
        assert_eq!(pct.fmt(-0.0), "0.0");
        assert_eq!(pct.fmt(-1e-6), "0.0");
        assert_eq!(pct.fmt(-0.5), "-50.0");
        assert_eq!(sig3(-0.0), "0");
        let raw = ValueFmt::for_values(&[1.5, 0.5]);
        assert_eq!(raw.fmt(2.345_67), "2.35");
    }

    #[test]
    fn the_embedded_font_draws_text() {
        // Only the font compiled into the binary is registered, so this is
        // what a machine without system fonts renders.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.png");
        render_png(&path, (120, 40), |root| {
            root.draw(&Text::new("Score 42", (5, 10), text(18.0)))?;
            Ok(())
        })
        .expect("renders");
        let file = std::io::BufReader::new(std::fs::File::open(&path).expect("png"));
        let mut reader = png::Decoder::new(file).read_info().expect("header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        reader.next_frame(&mut buf).expect("data");
        let dark = buf.chunks(3).filter(|p| p.iter().all(|&c| c < 100)).count();
        assert!(dark > 40, "only {dark} dark pixels: no glyphs drawn");
    }

    #[test]
    fn geometry_round_trips() {
        let g = Geometry {
            px: (60, 40, 560, 440),
            x_range: (-6.0, -3.0),
            y_range: (2.0, 8.0),
        };
        let (px, py) = g.to_pixel(-4.5, 5.0);
        assert_eq!((px, py), (310.0, 240.0));
        let (x, y) = g.to_data(px, py);
        assert!((x + 4.5).abs() < 1e-12 && (y - 5.0).abs() < 1e-12);
    }
}
