//! An f32 matrix multiply for inference linears on AVX-512 CPUs:
//! `y = x Wᵀ + b` with `W` packed once into 32-column panels, a 6 × 32
//! register-blocked kernel and rows split across the rayon pool. The packed
//! copy is a snapshot of the weight (inference only). Where AVX-512 is
//! missing, `PackedWeight::new` returns `None` and callers use candle's matmul.

use rayon::prelude::*;

/// Output columns per panel (two 16-lane registers).
const NR: usize = 32;
/// Rows per register tile.
const MR: usize = 6;
/// Rows per parallel work item.
const ROWS_PER_TASK: usize = 8 * MR;

/// `W` `[n, k]` and its bias, packed as `[n / NR][k][NR]` (zero padded).
#[derive(Debug, Clone)]
pub struct PackedWeight {
    pub n: usize,
    pub k: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

/// True when the packed kernel can run on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl PackedWeight {
    /// Packs row-major `w` `[n, k]` and `bias` `[n]` (zeros when `None`).
    pub fn new(w: &[f32], bias: Option<&[f32]>, n: usize, k: usize) -> Option<Self> {
        if !available() || w.len() != n * k || bias.is_some_and(|b| b.len() != n) {
            return None;
        }
        let blocks = n.div_ceil(NR);
        let mut panels = vec![0f32; blocks * k * NR];
        for (col, row) in w.chunks_exact(k).enumerate() {
            let (blk, lane) = (col / NR, col % NR);
            for (kk, &x) in row.iter().enumerate() {
                panels[(blk * k + kk) * NR + lane] = x;
            }
        }
        let mut padded_bias = vec![0f32; blocks * NR];
        if let Some(b) = bias {
            padded_bias[..n].copy_from_slice(b);
        }
        Some(PackedWeight {
            n,
            k,
            panels,
            bias: padded_bias,
        })
    }

    /// `x` row-major `[m, k]` → `[m, n]`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let mut out = vec![0f32; m * n];
        out.par_chunks_mut(ROWS_PER_TASK * n)
            .zip(x.par_chunks(ROWS_PER_TASK * k))
            .for_each(|(out_rows, x_rows)| {
                let rows = x_rows.len() / k;
                for blk in 0..n.div_ceil(NR) {
                    let cols = NR.min(n - blk * NR);
                    let panel = &self.panels[blk * k * NR..][..k * NR];
                    let bias = &self.bias[blk * NR..][..NR];
                    let mut r = 0;
                    while r < rows {
                        let tile = MR.min(rows - r);
                        let a = &x_rows[r * k..];
                        let c = &mut out_rows[r * n + blk * NR..];
                        // SAFETY: `new` checked AVX-512; the slices hold `tile`
                        // rows of `k` (a) and `n` (c) elements from their start.
                        unsafe { tile_kernel(a, k, tile, panel, bias, c, n, cols) };
                        r += tile;
                    }
                }
            });
        out
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_kernel(
    a: &[f32],
    lda: usize,
    rows: usize,
    panel: &[f32],
    bias: &[f32],
    c: &mut [f32],
    ldc: usize,
    cols: usize,
) {
    match rows {
        6 => kernel::<6>(a, lda, panel, bias, c, ldc, cols),
        5 => kernel::<5>(a, lda, panel, bias, c, ldc, cols),
        4 => kernel::<4>(a, lda, panel, bias, c, ldc, cols),
        3 => kernel::<3>(a, lda, panel, bias, c, ldc, cols),
        2 => kernel::<2>(a, lda, panel, bias, c, ldc, cols),
        _ => kernel::<1>(a, lda, panel, bias, c, ldc, cols),
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_kernel(
    _: &[f32],
    _: usize,
    _: usize,
    _: &[f32],
    _: &[f32],
    _: &mut [f32],
    _: usize,
    _: usize,
) {
    unreachable!("PackedWeight::new returns None without AVX-512")
}

/// `R` rows × 32 columns: `c[r][j] = bias[j] + Σ_k a[r][k] · panel[k][j]`,
/// storing the first `cols` columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize>(
    a: &[f32],
    lda: usize,
    panel: &[f32],
    bias: &[f32],
    c: &mut [f32],
    ldc: usize,
    cols: usize,
) {
    use std::arch::x86_64::*;
    let k = panel.len() / NR;
    let b0 = _mm512_loadu_ps(bias.as_ptr());
    let b1 = _mm512_loadu_ps(bias.as_ptr().add(16));
    let mut acc = [[b0, b1]; R];
    let ap = a.as_ptr();
    let mut wp = panel.as_ptr();
    for kk in 0..k {
        let w0 = _mm512_loadu_ps(wp);
        let w1 = _mm512_loadu_ps(wp.add(16));
        for (r, row) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*ap.add(r * lda + kk));
            row[0] = _mm512_fmadd_ps(x, w0, row[0]);
            row[1] = _mm512_fmadd_ps(x, w1, row[1]);
        }
        wp = wp.add(NR);
    }
    let m0: __mmask16 = if cols >= 16 {
        0xffff
    } else {
        ((1u32 << cols) - 1) as u16
    };
    let m1: __mmask16 = if cols >= 32 {
        0xffff
    } else if cols > 16 {
        ((1u32 << (cols - 16)) - 1) as u16
    } else {
        0
    };
    let cp = c.as_mut_ptr();
    for (r, row) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(cp.add(r * ldc), m0, row[0]);
        _mm512_mask_storeu_ps(cp.add(r * ldc + 16), m1, row[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_matmul_matches_plain_reference() {
        if !available() {
            eprintln!("SKIPPED: no AVX-512 on this CPU");
            return;
        }
        let (m, k, n) = (53, 37, 45);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 104_729) % 89) as f32 / 89.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
        let packed = PackedWeight::new(&w, Some(&b), n, k).unwrap();
        let y = packed.matmul(&x, m);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = b[j] + (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>();
                assert!(
                    (y[i * n + j] - want).abs() < 1e-4,
                    "({i}, {j}): {} vs {want}",
                    y[i * n + j]
                );
            }
        }
    }
}
