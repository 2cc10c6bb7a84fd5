//! AVX-512 f32 micro-kernel for [`crate::runtime::kernels::f32_gemm`]: up to
//! 12 rows × 32 columns of `c = bias + a · panel` (or `c += a · panel`), in
//! 24 zmm accumulators fed per k by two 16-lane weight vectors and one
//! broadcast activation per row (27 of the 32 zmm registers). Column tails
//! are loaded and stored through write masks.

use std::arch::x86_64::*;

use crate::runtime::kernels::values::Fresh;

/// Output columns per weight panel (two 16-lane vectors).
pub(crate) const PANEL_COLS: usize = 32;
/// Rows per register tile.
pub(crate) const ROWS: usize = 12;

/// For `r < rows`, `j < cols` and `k = panel.len() / 32`:
/// `c[r][j] = bias[j] + Σ_k a[k][r] · panel[k][j]`, or with `bias` `None`,
/// `c[r][j] += Σ_k a[k][r] · panel[k][j]`.
///
/// # Safety
/// The CPU must support AVX-512F. `a` (packed activations, `[k][12]`) must
/// hold `12 · k` values, `panel` `32 · k`, `bias` 32, and `c`
/// `(rows − 1) · ldc + cols`; `1 ≤ rows ≤ 12`, `cols ≤ 32`.
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
        12 => kernel::<12>(a, panel, k, bias, c, ldc, cols),
        11 => kernel::<11>(a, panel, k, bias, c, ldc, cols),
        10 => kernel::<10>(a, panel, k, bias, c, ldc, cols),
        9 => kernel::<9>(a, panel, k, bias, c, ldc, cols),
        8 => kernel::<8>(a, panel, k, bias, c, ldc, cols),
        7 => kernel::<7>(a, panel, k, bias, c, ldc, cols),
        6 => kernel::<6>(a, panel, k, bias, c, ldc, cols),
        5 => kernel::<5>(a, panel, k, bias, c, ldc, cols),
        4 => kernel::<4>(a, panel, k, bias, c, ldc, cols),
        3 => kernel::<3>(a, panel, k, bias, c, ldc, cols),
        2 => kernel::<2>(a, panel, k, bias, c, ldc, cols),
        _ => kernel::<1>(a, panel, k, bias, c, ldc, cols),
    }
}

/// The mask of the first `n` of 16 lanes.
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as u16
    }
}

/// [`tile`] for `R` rows; a null `bias` accumulates onto `c`.
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize>(
    a: *const f32,
    panel: *const f32,
    k: usize,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    if bias.is_null() {
        for (r, row) in acc.iter_mut().enumerate() {
            row[0] = _mm512_maskz_loadu_ps(m0, c.add(r * ldc));
            row[1] = _mm512_maskz_loadu_ps(m1, c.add(r * ldc + 16));
        }
    } else {
        acc = [[_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16))]; R];
    }
    let (mut ap, mut wp) = (a, panel);
    for _ in 0..k {
        let w0 = _mm512_loadu_ps(wp);
        let w1 = _mm512_loadu_ps(wp.add(16));
        for (r, row) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*ap.add(r));
            row[0] = _mm512_fmadd_ps(x, w0, row[0]);
            row[1] = _mm512_fmadd_ps(x, w1, row[1]);
        }
        ap = ap.add(ROWS);
        wp = wp.add(PANEL_COLS);
    }
    for (r, row) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(c.add(r * ldc), m0, row[0]);
        _mm512_mask_storeu_ps(c.add(r * ldc + 16), m1, row[1]);
    }
}
