//! AVX2 + FMA f32 micro-kernel for [`crate::runtime::kernels::f32_gemm`]: up
//! to 6 rows × 16 columns of `c = bias + a · panel` (or `c += a · panel`), in
//! 12 ymm accumulators fed per k by two 8-lane weight vectors and one
//! broadcast activation per row (15 of the 16 ymm registers). Column tails
//! are loaded and stored by `vmaskmovps`.

use std::arch::x86_64::*;

use crate::runtime::kernels::values::Fresh;

/// Output columns per weight panel (two 8-lane vectors).
pub(crate) const PANEL_COLS: usize = 16;
/// Rows per register tile.
pub(crate) const ROWS: usize = 6;

/// For `r < rows`, `j < cols` and `k = panel.len() / 16`:
/// `c[r][j] = bias[j] + Σ_k a[k][r] · panel[k][j]`, or with `bias` `None`,
/// `c[r][j] += Σ_k a[k][r] · panel[k][j]`.
///
/// # Safety
/// The CPU must support AVX2 and FMA. `a` (packed activations, `[k][6]`)
/// must hold `6 · k` values, `panel` `16 · k`, `bias` 16, and `c`
/// `(rows − 1) · ldc + cols`; `1 ≤ rows ≤ 6`, `cols ≤ 16`.
pub(crate) unsafe fn tile(
    a: &[f32],
    rows: usize,
    panel: &[f32],
    bias: Option<&[f32]>,
    c: &mut [Fresh],
    ldc: usize,
    cols: usize,
) {
    let k = panel.len() / PANEL_COLS;
    debug_assert!((1..=ROWS).contains(&rows) && cols <= PANEL_COLS);
    debug_assert!(a.len() >= k * ROWS && bias.is_none_or(|b| b.len() >= PANEL_COLS));
    debug_assert!(c.len() >= (rows - 1) * ldc + cols);
    let bias = bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
    let (a, panel, c) = (a.as_ptr(), panel.as_ptr(), c.as_mut_ptr().cast::<f32>());
    match rows {
        6 => kernel::<6>(a, panel, k, bias, c, ldc, cols),
        5 => kernel::<5>(a, panel, k, bias, c, ldc, cols),
        4 => kernel::<4>(a, panel, k, bias, c, ldc, cols),
        3 => kernel::<3>(a, panel, k, bias, c, ldc, cols),
        2 => kernel::<2>(a, panel, k, bias, c, ldc, cols),
        _ => kernel::<1>(a, panel, k, bias, c, ldc, cols),
    }
}

/// [`tile`] for `R` rows; a null `bias` accumulates onto `c`.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize>(
    a: *const f32,
    panel: *const f32,
    k: usize,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    let full = cols == PANEL_COLS;
    // Lane j of a mask is all ones where `j < cols` (resp. `8 + j < cols`).
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols as i32), lane);
    let m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols as i32 - 8), lane);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    if bias.is_null() {
        for (r, row) in acc.iter_mut().enumerate() {
            let cr = c.add(r * ldc);
            *row = if full {
                [_mm256_loadu_ps(cr), _mm256_loadu_ps(cr.add(8))]
            } else {
                [
                    _mm256_maskload_ps(cr, m0),
                    _mm256_maskload_ps(cr.add(8), m1),
                ]
            };
        }
    } else {
        acc = [[_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))]; R];
    }
    let (mut ap, mut wp) = (a, panel);
    for _ in 0..k {
        let w0 = _mm256_loadu_ps(wp);
        let w1 = _mm256_loadu_ps(wp.add(8));
        for (r, row) in acc.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*ap.add(r));
            row[0] = _mm256_fmadd_ps(x, w0, row[0]);
            row[1] = _mm256_fmadd_ps(x, w1, row[1]);
        }
        ap = ap.add(ROWS);
        wp = wp.add(PANEL_COLS);
    }
    for (r, row) in acc.iter().enumerate() {
        let cr = c.add(r * ldc);
        if full {
            _mm256_storeu_ps(cr, row[0]);
            _mm256_storeu_ps(cr.add(8), row[1]);
        } else {
            _mm256_maskstore_ps(cr, m0, row[0]);
            _mm256_maskstore_ps(cr.add(8), m1, row[1]);
        }
    }
}
