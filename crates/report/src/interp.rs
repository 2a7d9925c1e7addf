//! Interpolation of benchmark scores over the LR x BS grid, in log space.
//!
//! The contour plots need a value at every pixel, but a sweep only measures
//! the grid points. Coordinates here are already logarithmic (the plots use
//! `log10(LR)` and `log2(BS)`), so "linear" below means linear in log space,
//! which is how the paper's Figure 1 reads.
//!
//! Two methods, chosen by what the sweep has measured:
//!
//! * **Complete grid**: bilinear interpolation on the rectilinear grid
//!   ([`bilinear`]). It goes through every measured point, stays within the
//!   range of each cell's corners, and reproduces any function of the form
//!   `a + b x + c y + d x y` exactly (so a plane in log space is exact).
//! * **Incomplete grid** (a partial sweep, or a point that diverged or
//!   failed and so has no score): the missing grid nodes are first filled by
//!   inverse-distance weighting ([`idw`], Shepard's method with power 2) from
//!   the measured nodes, with distances measured after scaling each axis of
//!   the measured region to `[0, 1]` so that a decade of LR and a doubling of
//!   BS count alike whatever their units; then the filled grid is
//!   interpolated bilinearly. The surface still goes through every measured
//!   point and is continuous, and nothing is extrapolated beyond the
//!   bounding box of the measured points ([`Surface::value`] is `None`
//!   outside it). The contour plot also leaves grey the pixels whose
//!   nearest grid node is a hole, so the filled values only shape the
//!   cells around a hole and are never shown as if measured.

/// Bilinear interpolation on a complete rectilinear grid.
///
/// `xs` and `ys` are strictly increasing node coordinates and `z` holds the
/// values row by row: the value at `(xs[i], ys[j])` is `z[j * nx + i]` with
/// `nx = xs.len()`. A query outside the grid is clamped onto its border.
/// With a single node along an axis, that axis is constant.
pub fn bilinear(xs: &[f64], ys: &[f64], z: &[f64], x: f64, y: f64) -> f64 {
    debug_assert_eq!(z.len(), xs.len() * ys.len());
    let (i0, i1, tx) = bracket(xs, x);
    let (j0, j1, ty) = bracket(ys, y);
    let nx = xs.len();
    let z00 = z[j0 * nx + i0];
    let z10 = z[j0 * nx + i1];
    let z01 = z[j1 * nx + i0];
    let z11 = z[j1 * nx + i1];
    let bottom = z00 + (z10 - z00) * tx;
    let top = z01 + (z11 - z01) * tx;
    bottom + (top - bottom) * ty
}

/// Fractional index of `v` among increasing `nodes` (2.5 is halfway from
/// the third node to the fourth), clamped to `0 ..= len - 1`.
pub fn fractional_index(nodes: &[f64], v: f64) -> f64 {
    let (lo, _, t) = bracket(nodes, v);
    lo as f64 + t
}

/// The two nodes around `v` and the fraction of the way from the first to
/// the second, clamped to the ends of `nodes`.
fn bracket(nodes: &[f64], v: f64) -> (usize, usize, f64) {
    let n = nodes.len();
    if n == 1 || v <= nodes[0] {
        return (0, 0, 0.0);
    }
    if v >= nodes[n - 1] {
        return (n - 1, n - 1, 0.0);
    }
    // First node strictly greater than v; v > nodes[0] so hi >= 1.
    let hi = nodes.partition_point(|&node| node <= v);
    let lo = hi - 1;
    let t = (v - nodes[lo]) / (nodes[hi] - nodes[lo]);
    (lo, hi, t)
}

/// Inverse-distance weighting (Shepard, power 2) of `(x, y, value)` points
/// at `(x, y)`. Exact at a data point; otherwise a weighted mean, so always
/// within the range of the data. `None` when there are no points.
pub fn idw(points: &[(f64, f64, f64)], x: f64, y: f64) -> Option<f64> {
    let mut num = 0.0;
    let mut den = 0.0;
    for &(px, py, v) in points {
        let d2 = (px - x).powi(2) + (py - y).powi(2);
        if d2 < 1e-24 {
            return Some(v);
        }
        let w = 1.0 / d2;
        num += w * v;
        den += w;
    }
    (den > 0.0).then(|| num / den)
}

/// A score surface over a rectilinear grid in log space, some of whose nodes
/// may be unmeasured.
#[derive(Debug, Clone)]
pub struct Surface {
    xs: Vec<f64>,
    ys: Vec<f64>,
    /// Every node filled (measured, or by IDW).
    filled: Vec<f64>,
    /// Bounding box of the measured nodes: `(x_min, x_max, y_min, y_max)`.
    bbox: (f64, f64, f64, f64),
    complete: bool,
}

impl Surface {
    /// Builds the surface. `values[j * xs.len() + i]` is the score at
    /// `(xs[i], ys[j])`, or `None` where there is none. Returns `None` when
    /// no node has a value.
    pub fn new(xs: Vec<f64>, ys: Vec<f64>, values: &[Option<f64>]) -> Option<Self> {
        debug_assert_eq!(values.len(), xs.len() * ys.len());
        let nx = xs.len();
        let known: Vec<(usize, usize, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (k % nx, k / nx, v)))
            .collect();
        if known.is_empty() {
            return None;
        }
        let x_min = known.iter().map(|k| xs[k.0]).fold(f64::INFINITY, f64::min);
        let x_max = known
            .iter()
            .map(|k| xs[k.0])
            .fold(f64::NEG_INFINITY, f64::max);
        let y_min = known.iter().map(|k| ys[k.1]).fold(f64::INFINITY, f64::min);
        let y_max = known
            .iter()
            .map(|k| ys[k.1])
            .fold(f64::NEG_INFINITY, f64::max);
        // Scale each axis of the measured region to [0, 1] for the IDW
        // distances; a degenerate axis keeps unit scale.
        let sx = if x_max > x_min { x_max - x_min } else { 1.0 };
        let sy = if y_max > y_min { y_max - y_min } else { 1.0 };
        let scaled: Vec<(f64, f64, f64)> = known
            .iter()
            .map(|&(i, j, v)| ((xs[i] - x_min) / sx, (ys[j] - y_min) / sy, v))
            .collect();
        let complete = known.len() == values.len();
        let filled = values
            .iter()
            .enumerate()
            .map(|(k, v)| {
                v.unwrap_or_else(|| {
                    let (x, y) = ((xs[k % nx] - x_min) / sx, (ys[k / nx] - y_min) / sy);
                    // `known` is non-empty, so IDW always has an answer.
                    idw(&scaled, x, y).unwrap_or(f64::NAN)
                })
            })
            .collect();
        Some(Self {
            xs,
            ys,
            filled,
            bbox: (x_min, x_max, y_min, y_max),
            complete,
        })
    }

    /// Whether every node was measured (pure bilinear interpolation).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The interpolated value at `(x, y)`, or `None` outside the bounding box
    /// of the measured nodes.
    pub fn value(&self, x: f64, y: f64) -> Option<f64> {
        let (x0, x1, y0, y1) = self.bbox;
        let eps = 1e-9;
        if x < x0 - eps || x > x1 + eps || y < y0 - eps || y > y1 + eps {
            return None;
        }
        Some(bilinear(&self.xs, &self.ys, &self.filled, x, y))
    }

    /// Bounding box of the measured nodes: `(x_min, x_max, y_min, y_max)`.
    pub fn bbox(&self) -> (f64, f64, f64, f64) {
        self.bbox
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-uniform grid, as a sweep with irregular LR steps has.
    fn grid() -> (Vec<f64>, Vec<f64>) {
        (vec![-6.0, -5.5, -4.3, -4.0, -3.0], vec![2.0, 3.0, 5.0, 8.0])
    }

    fn tabulate(xs: &[f64], ys: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
        ys.iter()
            .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect()
    }

    #[test]
    fn bilinear_reproduces_a_plane_in_log_space_exactly() {
        let (xs, ys) = grid();
        let plane = |x: f64, y: f64| 0.3 + 0.07 * x - 0.02 * y;
        let z = tabulate(&xs, &ys, plane);
        for k in 0..200 {
            // Deterministic points spread over the grid.
            let x = -6.0 + 3.0 * ((k as f64 * 0.618_034) % 1.0);
            let y = 2.0 + 6.0 * ((k as f64 * 0.414_214) % 1.0);
            let got = bilinear(&xs, &ys, &z, x, y);
            assert!((got - plane(x, y)).abs() < 1e-12, "at ({x}, {y})");
        }
    }

    #[test]
    fn bilinear_reproduces_the_twisted_term_exactly() {
        // a + b x + c y + d x y is the whole space bilinear interpolation
        // spans; the x y term checks the cell weights, not just edges.
        let (xs, ys) = grid();
        let f = |x: f64, y: f64| 1.0 + 0.5 * x + 0.25 * y + 0.125 * x * y;
        let z = tabulate(&xs, &ys, f);
        for &(x, y) in &[(-5.9, 2.1), (-4.1, 7.9), (-3.5, 4.0), (-5.0, 3.3)] {
            assert!((bilinear(&xs, &ys, &z, x, y) - f(x, y)).abs() < 1e-12);
        }
    }

    #[test]
    fn bilinear_hits_nodes_and_clamps_outside() {
        let (xs, ys) = grid();
        let z = tabulate(&xs, &ys, |x, y| x * x + y);
        assert_eq!(bilinear(&xs, &ys, &z, -4.3, 5.0), (-4.3f64).powi(2) + 5.0);
        // Outside: the border value.
        assert_eq!(bilinear(&xs, &ys, &z, -9.0, 1.0), 36.0 + 2.0);
        assert_eq!(bilinear(&xs, &ys, &z, 0.0, 100.0), 9.0 + 8.0);
    }

    #[test]
    fn bilinear_midpoint_of_a_cell_is_the_mean_of_its_corners() {
        let xs = vec![0.0, 1.0];
        let ys = vec![0.0, 1.0];
        let z = vec![1.0, 2.0, 3.0, 10.0];
        assert!((bilinear(&xs, &ys, &z, 0.5, 0.5) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn fractional_index_is_piecewise_linear_and_clamped() {
        let nodes = [1.0, 2.0, 4.0];
        assert_eq!(fractional_index(&nodes, 1.5), 0.5);
        assert_eq!(fractional_index(&nodes, 3.0), 1.5);
        assert_eq!(fractional_index(&nodes, 4.0), 2.0);
        assert_eq!(fractional_index(&nodes, 0.0), 0.0);
        assert_eq!(fractional_index(&nodes, 9.0), 2.0);
    }

    #[test]
    fn idw_is_exact_at_data_and_a_weighted_mean_elsewhere() {
        let pts = [(0.0, 0.0, 1.0), (1.0, 0.0, 3.0)];
        assert_eq!(idw(&pts, 1.0, 0.0), Some(3.0));
        // Midway: equal weights.
        assert_eq!(idw(&pts, 0.5, 0.0), Some(2.0));
        // At x = 0.25: distances 0.25 and 0.75, weights 16 and 16/9:
        // (16 * 1 + 16/9 * 3) / (16 + 16/9) = (1 + 1/3) / (1 + 1/9) = 1.2.
        let v = idw(&pts, 0.25, 0.0).expect("points");
        assert!((v - 1.2).abs() < 1e-12, "{v}");
        assert_eq!(idw(&[], 0.0, 0.0), None);
    }

    #[test]
    fn missing_centre_node_is_filled_by_idw_in_scaled_coordinates() {
        // 3x3 grid with unequal axis units: after scaling to [0, 1] the
        // centre is 0.5 from the edge midpoints (value 1, weight 4 each) and
        // sqrt(0.5) from the corners (value 3, weight 2 each):
        // (4*4*1 + 4*2*3) / (4*4 + 4*2) = 40 / 24.
        let xs = vec![-6.0, -5.0, -4.0];
        let ys = vec![2.0, 5.0, 8.0];
        let (c, e) = (Some(3.0), Some(1.0));
        let values = [c, e, c, e, None, e, c, e, c];
        let s = Surface::new(xs, ys, &values).expect("values");
        assert!(!s.is_complete());
        let centre = s.value(-5.0, 5.0).expect("inside");
        assert!((centre - 40.0 / 24.0).abs() < 1e-12, "{centre}");
        // Measured nodes are kept exactly.
        assert_eq!(s.value(-6.0, 2.0), Some(3.0));
        assert_eq!(s.value(-5.0, 8.0), Some(1.0));
    }

    #[test]
    fn surface_is_none_outside_the_measured_region() {
        let xs = vec![0.0, 1.0, 2.0];
        let ys = vec![0.0, 1.0];
        // Only the left 2x2 block was measured.
        let values = [Some(1.0), Some(2.0), None, Some(3.0), Some(4.0), None];
        let s = Surface::new(xs, ys, &values).expect("values");
        assert_eq!(s.bbox(), (0.0, 1.0, 0.0, 1.0));
        assert!(s.value(1.5, 0.5).is_none());
        assert!((s.value(0.5, 0.5).expect("inside") - 2.5).abs() < 1e-12);
        assert!(Surface::new(vec![0.0], vec![0.0], &[None]).is_none());
    }

    #[test]
    fn complete_surface_is_plain_bilinear() {
        let (xs, ys) = grid();
        let plane = |x: f64, y: f64| 2.0 - 0.1 * x + 0.3 * y;
        let values: Vec<Option<f64>> = tabulate(&xs, &ys, plane).into_iter().map(Some).collect();
        let s = Surface::new(xs, ys, &values).expect("values");
        assert!(s.is_complete());
        let v = s.value(-4.7, 6.1).expect("inside");
        assert!((v - plane(-4.7, 6.1)).abs() < 1e-12);
    }
}
