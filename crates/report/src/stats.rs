//! The statistics of the ratio analysis: Spearman's rank correlation (ties
//! get average ranks) and a seeded percentile bootstrap for its confidence
//! interval.
//!
//! The bootstrap uses its own small generator (SplitMix64) rather than a
//! crate's, so that the interval printed in a report depends only on this
//! file: a dependency update cannot change a published number.

use serde::Serialize;

/// Ranks of `v` from 1, ties sharing the average of the ranks they span
/// (the convention of `scipy.stats.rankdata(method="average")`).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        // Positions start..end hold equal values: ranks start+1 ..= end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &k in &order[start..end] {
            ranks[k] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson's correlation, `None` when either side is constant or there are
/// fewer than two points.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    // Relative test: rank vectors of ties are exactly constant, but means of
    // sums may leave rounding dust.
    if sxx <= 1e-12 * (1.0 + mx * mx) * n as f64 || syy <= 1e-12 * (1.0 + my * my) * n as f64 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's rho: Pearson's correlation of the average ranks. `None` when
/// either variable is constant (rho is undefined) or `n < 2`.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast, and fully specified
/// here, which is what a reproducible report needs.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias for the small
    /// `n` of a sweep is below 1e-17).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// The `p`-quantile of sorted data by linear interpolation between order
/// statistics (Hyndman and Fan type 7, numpy's default).
pub fn quantile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// Seed of the report's bootstrap: fixed, so a report is reproducible.
pub const BOOTSTRAP_SEED: u64 = 0x5EED_5EED_0000_0585;
/// Resamples per interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Result of [`bootstrap_spearman`].
#[derive(Debug, Clone, Serialize)]
pub struct Bootstrap {
    /// Rho of each resample where it is defined, in draw order.
    #[serde(skip)]
    pub replicates: Vec<f64>,
    /// Resamples where rho was undefined (all x or all y tied) and which
    /// were left out.
    pub degenerate: usize,
    /// Percentile interval at `level` (e.g. 0.95).
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
}

/// Percentile bootstrap of Spearman's rho: `resamples` draws of `n` pairs
/// with replacement, each pair kept whole. Resamples with an undefined rho
/// are dropped (and counted); `None` when fewer than three points are given
/// or every resample is degenerate.
pub fn bootstrap_spearman(
    x: &[f64],
    y: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<Bootstrap> {
    let n = x.len();
    if n < 3 || y.len() != n {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut replicates = Vec::with_capacity(resamples);
    let mut degenerate = 0;
    let (mut bx, mut by) = (vec![0.0; n], vec![0.0; n]);
    for _ in 0..resamples {
        for k in 0..n {
            let i = rng.below(n);
            bx[k] = x[i];
            by[k] = y[i];
        }
        match spearman(&bx, &by) {
            Some(r) => replicates.push(r),
            None => degenerate += 1,
        }
    }
    let mut sorted = replicates.clone();
    sorted.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    let lo = quantile_sorted(&sorted, alpha)?;
    let hi = quantile_sorted(&sorted, 1.0 - alpha)?;
    Some(Bootstrap {
        replicates,
        degenerate,
        lo,
        hi,
        level,
    })
}

/// Mean and sample standard deviation (n - 1); the deviation is `None` for
/// a single value.
pub fn mean_sd(v: &[f64]) -> (f64, Option<f64>) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, None);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some(var.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 20.0, 5.0, 20.0]),
            vec![2.0, 4.0, 4.0, 1.0, 4.0]
        );
        assert_eq!(average_ranks(&[1.0, 1.0]), vec![1.5, 1.5]);
    }

    #[test]
    fn spearman_without_ties_matches_the_d_squared_formula() {
        // Ranks x = 1..5, y = (2, 1, 4, 3, 5): sum d^2 = 4,
        // rho = 1 - 6 * 4 / (5 * 24) = 0.8.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [0.2, 0.1, 0.4, 0.3, 0.5];
        assert!((spearman(&x, &y).expect("defined") - 0.8).abs() < 1e-12);
        // Monotone but non-linear: exactly 1; reversed: exactly -1.
        let y2: Vec<f64> = x.iter().map(|v: &f64| v.exp()).collect();
        assert!((spearman(&x, &y2).expect("defined") - 1.0).abs() < 1e-12);
        let y3: Vec<f64> = x.iter().map(|v| -v * v).collect();
        assert!((spearman(&x, &y3).expect("defined") + 1.0).abs() < 1e-12);
    }

    #[test]
    fn spearman_with_ties_uses_average_ranks() {
        // By hand: ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4), both with
        // mean 2.5; deviations (-1.5, 0, 0, 1.5) and (-1.5, .5, -.5, 1.5):
        // sum of products 4.5, sums of squares 4.5 and 5, so
        // rho = 4.5 / sqrt(4.5 * 5) = 0.9486832980505138.
        let x = [1.0, 2.0, 2.0, 3.0];
        let y = [10.0, 30.0, 20.0, 40.0];
        let rho = spearman(&x, &y).expect("defined");
        assert!((rho - 0.948_683_298_050_513_8).abs() < 1e-12, "{rho}");
    }

    #[test]
    fn spearman_is_undefined_for_a_constant_side() {
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0], &[1.0]), None);
    }

    #[test]
    fn quantile_is_numpy_type_7() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        // h = 4 * 0.025 = 0.1 -> 1.1; h = 4 * 0.975 = 3.9 -> 4.9.
        assert!((quantile_sorted(&v, 0.025).expect("data") - 1.1).abs() < 1e-12);
        assert!((quantile_sorted(&v, 0.975).expect("data") - 4.9).abs() < 1e-12);
        assert_eq!(quantile_sorted(&v, 0.5), Some(3.0));
        assert_eq!(quantile_sorted(&[], 0.5), None);
    }

    #[test]
    fn bootstrap_matches_the_exact_resampling_distribution() {
        // x = (1, 2, 3), y = (1, 3, 2). Of the 27 equally likely resamples,
        // 3 repeat one pair (rho undefined), 6 are permutations (rho = 0.5,
        // the sample's: sum d^2 = 2, 1 - 12/24), and 18 hold two distinct
        // pairs, 6 for each pair, where rho = +1 if the pair is concordant
        // and -1 if not: pairs (1,2) and (1,3) are concordant, (2,3) is not.
        // So among defined resamples P(1) = 12/24, P(-1) = 6/24,
        // P(0.5) = 6/24, mean (12 - 6 + 3) / 24 = 0.375, and the 95%
        // interval is [-1, 1].
        let x = [1.0, 2.0, 3.0];
        let y = [1.0, 3.0, 2.0];
        let b = bootstrap_spearman(&x, &y, 20_000, 0.95, 7).expect("defined");
        let m = b.replicates.len() as f64;
        let frac = |v: f64| {
            b.replicates
                .iter()
                .filter(|&&r| (r - v).abs() < 1e-9)
                .count() as f64
                / m
        };
        // Binomial standard errors at 20000 draws are below 0.004.
        assert!((frac(1.0) - 0.5).abs() < 0.015, "{}", frac(1.0));
        assert!((frac(-1.0) - 0.25).abs() < 0.015, "{}", frac(-1.0));
        assert!((frac(0.5) - 0.25).abs() < 0.015, "{}", frac(0.5));
        assert_eq!(frac(1.0) + frac(-1.0) + frac(0.5), 1.0);
        let mean = b.replicates.iter().sum::<f64>() / m;
        assert!((mean - 0.375).abs() < 0.02, "{mean}");
        let degenerate = b.degenerate as f64 / 20_000.0;
        assert!((degenerate - 3.0 / 27.0).abs() < 0.01, "{degenerate}");
        assert_eq!((b.lo, b.hi), (-1.0, 1.0));
    }

    #[test]
    fn bootstrap_is_deterministic_and_tight_for_a_perfect_trend() {
        let x: Vec<f64> = (0..8).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 0.1 + 0.01 * v).collect();
        let a = bootstrap_spearman(&x, &y, 500, 0.95, BOOTSTRAP_SEED).expect("defined");
        let b = bootstrap_spearman(&x, &y, 500, 0.95, BOOTSTRAP_SEED).expect("defined");
        assert_eq!(a.replicates, b.replicates);
        // Every defined resample of a strictly increasing relation has
        // rho = 1.
        assert_eq!((a.lo, a.hi), (1.0, 1.0));
        assert!(bootstrap_spearman(&x[..2], &y[..2], 10, 0.95, 1).is_none());
    }

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of the reference C implementation for seed 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut r = SplitMix64::new(1);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }

    #[test]
    fn mean_sd_by_hand() {
        let (m, sd) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        // Sum of squares 32, n - 1 = 7.
        assert!((sd.expect("n > 1") - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[3.0]), (3.0, None));
    }
}
