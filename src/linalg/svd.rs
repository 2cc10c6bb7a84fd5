//! Truncated SVD of a tall matrix `W` (`m × n`, m ≫ n, such as a vocabulary ×
//! hidden embedding) through the eigen-decomposition of its Gram matrix WᵀW.
//! The best rank-r approximation is `W ≈ (W·V_r)·V_rᵀ`, where `V_r` holds the
//! top r right singular vectors: the factors are the `m × r` table `W·V_r` and
//! the `r × n` projection `V_rᵀ`.

use super::eigen::symmetric_eigen;

/// `W ≈ left · right` with `left: m × r` and `right: r × n`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LowRankFactors {
    pub rank: usize,
    pub left: Vec<f32>,
    pub right: Vec<f32>,
    /// All singular values of `W`, descending.
    pub singular_values: Vec<f64>,
}

impl LowRankFactors {
    /// Fraction of ‖W‖²_F kept by the rank-r approximation.
    pub fn energy_kept(&self) -> f64 {
        let total: f64 = self.singular_values.iter().map(|s| s * s).sum();
        let kept: f64 = self
            .singular_values
            .iter()
            .take(self.rank)
            .map(|s| s * s)
            .sum();
        if total > 0.0 {
            kept / total
        } else {
            1.0
        }
    }
}

/// Rank-`rank` factors of the row-major `m × n` matrix `w` (`rank ≤ n`).
pub fn truncated_svd_factors(w: &[f32], m: usize, n: usize, rank: usize) -> LowRankFactors {
    assert_eq!(w.len(), m * n, "matrix size does not match m × n");
    assert!(rank >= 1 && rank <= n, "rank must be in 1..=n");
    let mut gram = vec![0.0f64; n * n];
    for row in w.chunks_exact(n) {
        for i in 0..n {
            let ri = row[i] as f64;
            if ri == 0.0 {
                continue;
            }
            let g = &mut gram[i * n..(i + 1) * n];
            for (j, gj) in g.iter_mut().enumerate().skip(i) {
                *gj += ri * row[j] as f64;
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            gram[i * n + j] = gram[j * n + i];
        }
    }
    let (eigenvalues, vectors) = symmetric_eigen(&gram, n);
    let singular_values = eigenvalues.iter().map(|e| e.max(0.0).sqrt()).collect();
    // right = V_rᵀ (r × n)
    let mut right = vec![0.0f32; rank * n];
    for k in 0..rank {
        for j in 0..n {
            right[k * n + j] = vectors[j * n + k] as f32;
        }
    }
    // left = W · V_r (m × r)
    let mut left = vec![0.0f32; m * rank];
    for (row, out) in w.chunks_exact(n).zip(left.chunks_exact_mut(rank)) {
        for (k, o) in out.iter_mut().enumerate() {
            let mut acc = 0.0f64;
            for j in 0..n {
                acc += row[j] as f64 * vectors[j * n + k];
            }
            *o = acc as f32;
        }
    }
    LowRankFactors {
        rank,
        left,
        right,
        singular_values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn a_rank_two_matrix_is_recovered_exactly_at_rank_two() {
        let (m, n) = (40, 6);
        let u: Vec<f32> = (0..m * 2).map(|i| ((i * 13) % 7) as f32 - 3.0).collect();
        let v: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 5) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let w = product(&u, &v, m, 2, n);
        let f = truncated_svd_factors(&w, m, n, 2);
        let approx = product(&f.left, &f.right, m, 2, n);
        let scale = w.iter().fold(0.0f32, |a, x| a.max(x.abs()));
        for (a, b) in approx.iter().zip(&w) {
            assert!((a - b).abs() <= 1e-4 * scale);
        }
        assert!(f.singular_values[2] < 1e-3 * f.singular_values[0]);
        assert!((f.energy_kept() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn truncation_error_is_the_dropped_singular_values() {
        let (m, n, r) = (50, 8, 3);
        let w: Vec<f32> = (0..m * n)
            .map(|i| (((i * 7919) % 101) as f32 / 50.0) - 1.0)
            .collect();
        let f = truncated_svd_factors(&w, m, n, r);
        let approx = product(&f.left, &f.right, m, r, n);
        let err: f64 = approx
            .iter()
            .zip(&w)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let dropped: f64 = f.singular_values[r..].iter().map(|s| s * s).sum();
        assert!(
            (err - dropped).abs() <= 1e-3 * dropped.max(1e-9),
            "{err} vs {dropped}"
        );
    }
}
