//! Cholesky factorization of symmetric positive-definite matrices, in f64,
//! and the upper factor of an SPD matrix's inverse that GPTQ walks column by
//! column. Row-major `n × n` slices throughout; the inner loops are
//! contiguous dot products (independent ones in parallel).

use rayon::prelude::*;

/// The matrix was not positive definite: pivot `index` was `pivot` (≤ 0 or
/// not finite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotPositiveDefinite {
    pub index: usize,
    pub pivot: f64,
}

/// The lower factor `L` of `a = L Lᵀ` (row-major; the upper triangle is 0).
pub fn cholesky_lower(a: &[f64], n: usize) -> Result<Vec<f64>, NotPositiveDefinite> {
    assert_eq!(a.len(), n * n, "matrix size does not match n");
    let mut l = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = l[i * n..i * n + j]
                .iter()
                .zip(&l[j * n..j * n + j])
                .map(|(x, y)| x * y)
                .sum();
            let v = a[i * n + j] - dot;
            if i == j {
                if !(v > 0.0 && v.is_finite()) {
                    return Err(NotPositiveDefinite { index: i, pivot: v });
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = v / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// The inverse of a lower-triangular matrix with a non-zero diagonal
/// (lower-triangular again).
fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    // Column by column, stored transposed so the inner loop is contiguous:
    // t[j][i] = (L⁻¹)[i][j].
    // Columns are independent: solve them in parallel.
    let mut t = vec![0.0f64; n * n];
    t.par_chunks_mut(n).enumerate().for_each(|(j, col)| {
        col[j] = 1.0 / l[j * n + j];
        for i in j + 1..n {
            let dot: f64 = l[i * n + j..i * n + i]
                .iter()
                .zip(&col[j..i])
                .map(|(x, y)| x * y)
                .sum();
            col[i] = -dot / l[i * n + i];
        }
    });
    let mut inv = vec![0.0f64; n * n];
    for j in 0..n {
        for i in j..n {
            inv[i * n + j] = t[j * n + i];
        }
    }
    inv
}

/// The inverse of the SPD matrix `a`, from its Cholesky factor.
pub fn spd_inverse(a: &[f64], n: usize) -> Result<Vec<f64>, NotPositiveDefinite> {
    let linv = lower_inverse(&cholesky_lower(a, n)?, n);
    // a⁻¹ = L⁻ᵀ L⁻¹: entry (i, j) is the dot of columns i and j of L⁻¹,
    // i.e. of rows i and j of L⁻ᵀ; with lt = L⁻ᵀ row-major the rows are
    // contiguous.
    let mut lt = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            lt[j * n + i] = linv[i * n + j];
        }
    }
    let mut inv = vec![0.0f64; n * n];
    inv.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (j, out) in row.iter_mut().enumerate() {
            // Column i of L⁻¹ is non-zero from row i on, column j from row j.
            let start = j.max(i);
            *out = lt[i * n + start..(i + 1) * n]
                .iter()
                .zip(&lt[j * n + start..(j + 1) * n])
                .map(|(x, y)| x * y)
                .sum();
        }
    });
    Ok(inv)
}

/// The upper factor `U` of `a⁻¹ = Uᵀ U` for the SPD matrix `a` (row-major,
/// lower triangle 0). Row `j` of `U`, divided by `U[j][j]`, is row `j` of
/// the inverse of `a` after the variables before `j` were eliminated: the
/// error-propagation row GPTQ uses for column `j`.
pub fn inverse_upper_factor(a: &[f64], n: usize) -> Result<Vec<f64>, NotPositiveDefinite> {
    let l = cholesky_lower(&spd_inverse(a, n)?, n)?;
    let mut u = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            u[j * n + i] = l[i * n + j];
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // B Bᵀ + n·I for a fixed pseudo-random B.
        let mut s = 7u64;
        let b: Vec<f64> = (0..n * n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += n as f64 * 0.1;
        }
        a
    }

    fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                for j in 0..n {
                    c[i * n + j] += a[i * n + k] * b[k * n + j];
                }
            }
        }
        c
    }

    fn transpose(a: &[f64], n: usize) -> Vec<f64> {
        (0..n * n).map(|x| a[(x % n) * n + x / n]).collect()
    }

    #[test]
    fn factor_and_inverse_reconstruct() {
        let n = 9;
        let a = spd(n);
        let l = cholesky_lower(&a, n).unwrap();
        let back = matmul(&l, &transpose(&l, n), n);
        assert!(a.iter().zip(&back).all(|(x, y)| (x - y).abs() < 1e-10));
        let inv = spd_inverse(&a, n).unwrap();
        let eye = matmul(&a, &inv, n);
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((eye[i * n + j] - want).abs() < 1e-9, "({i}, {j})");
            }
        }
        let u = inverse_upper_factor(&a, n).unwrap();
        let back = matmul(&transpose(&u, n), &u, n);
        assert!(inv.iter().zip(&back).all(|(x, y)| (x - y).abs() < 1e-10));
        assert!((0..n).all(|i| (0..i).all(|j| u[i * n + j] == 0.0)));
    }

    #[test]
    fn indefinite_matrices_are_reported() {
        let a = [1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky_lower(&a, 2).unwrap_err().index, 1);
    }
}
