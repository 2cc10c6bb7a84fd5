//! AVX2 micro-kernels: 6 rows × up to 16 columns.
//!
//! [`tile`]: activations are i16, weights are sign-extended from i8
//! (`vpmovsxbw`) and multiplied by `vpmaddwd` (i16 × i16, adjacent pairs
//! summed into i32), which is exact for any int8 operands.
//!
//! [`tile_narrow`]: for weights within ±8, activations shifted to u8 and
//! `vpmaddubsw` (u8 × s8 pairs summed into i16), summed in i16 for as many
//! steps as the weights' magnitude allows ([`narrow_steps`]), then widened
//! by `vpmaddwd` with ones: exact, since nothing passes the i16 range.

use std::arch::x86_64::*;

use crate::runtime::kernels::tile::TILE_MAX;

const ROWS: usize = 6;
const LANES: usize = 8;
const PANEL_COLS: usize = 16;

/// Computes the 6 × (8·`vectors`) tile into `acc[r · 16 + c]`.
///
/// # Safety
/// The CPU must support AVX2; `x` must hold 6 rows of stride `lda` i16 with
/// at least `2 · steps` values each, and `panel` `steps · vectors · 16` bytes.
pub(crate) unsafe fn tile(
    vectors: usize,
    x: *const i16,
    lda: usize,
    panel: *const i8,
    steps: usize,
    acc: &mut [i32; TILE_MAX],
) {
    match vectors {
        1 => tile_n::<1>(x, lda, panel, steps, acc),
        2 => tile_n::<2>(x, lda, panel, steps, acc),
        _ => unreachable!("a panel holds 1 or 2 vectors"),
    }
}

#[target_feature(enable = "avx2")]
unsafe fn tile_n<const NV: usize>(
    x: *const i16,
    lda: usize,
    panel: *const i8,
    steps: usize,
    acc: &mut [i32; TILE_MAX],
) {
    let mut sums = [[_mm256_setzero_si256(); NV]; ROWS];
    let step_bytes = NV * LANES * 2;
    for s in 0..steps {
        let b = panel.add(s * step_bytes);
        let mut w = [_mm256_setzero_si256(); NV];
        for (v, wv) in w.iter_mut().enumerate() {
            let bytes = _mm_loadu_si128(b.add(v * LANES * 2) as *const __m128i);
            *wv = _mm256_cvtepi8_epi16(bytes);
        }
        for (r, row_sums) in sums.iter_mut().enumerate() {
            let xv = _mm256_set1_epi32((x.add(r * lda + s * 2) as *const i32).read_unaligned());
            for (sum, &wv) in row_sums.iter_mut().zip(&w) {
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(xv, wv));
            }
        }
    }
    for (r, row_sums) in sums.iter().enumerate() {
        for (v, &sum) in row_sums.iter().enumerate() {
            let dst = acc.as_mut_ptr().add(r * PANEL_COLS + v * LANES);
            _mm256_storeu_si256(dst as *mut __m256i, sum);
        }
    }
}

/// Steps summed in i16 before widening, for weights at most `max_abs` in
/// magnitude: each i16 pair sum is at most 2 · 255 · `max_abs`, and the
/// steps' total must stay within 32 767 (8 steps at ±8, 9 at ±7, 21 at ±3,
/// 64 at ±1).
fn narrow_steps(max_abs: i16) -> usize {
    (32_767 / (2 * 255 * max_abs.max(1) as usize)).clamp(1, 64)
}

/// As [`tile`] for u8 activations (`q + 128`) and weights within ±8 in the
/// 4-k layout of the VNNI kernels; the +128 shift is removed by the caller.
///
/// # Safety
/// The CPU must support AVX2; `x` must hold 6 rows of stride `lda` bytes
/// with at least `4 · steps` bytes each, `panel` `steps · vectors · 32`
/// bytes, and every weight must be within ±`max_abs` (at most 8).
pub(crate) unsafe fn tile_narrow(
    vectors: usize,
    x: *const u8,
    lda: usize,
    panel: *const i8,
    (steps, max_abs): (usize, i16),
    acc: &mut [i32; TILE_MAX],
) {
    let block_steps = narrow_steps(max_abs);
    match vectors {
        1 => tile_narrow_n::<1>(x, lda, panel, steps, block_steps, acc),
        2 => tile_narrow_n::<2>(x, lda, panel, steps, block_steps, acc),
        _ => unreachable!("a panel holds 1 or 2 vectors"),
    }
}

#[target_feature(enable = "avx2")]
unsafe fn tile_narrow_n<const NV: usize>(
    x: *const u8,
    lda: usize,
    panel: *const i8,
    steps: usize,
    block_steps: usize,
    acc: &mut [i32; TILE_MAX],
) {
    let ones = _mm256_set1_epi16(1);
    let step_bytes = NV * LANES * 4;
    let mut sums = [[_mm256_setzero_si256(); NV]; ROWS];
    let mut s = 0;
    while s < steps {
        let block = (steps - s).min(block_steps);
        let mut part = [[_mm256_setzero_si256(); NV]; ROWS];
        for t in s..s + block {
            let b = panel.add(t * step_bytes);
            let mut w = [_mm256_setzero_si256(); NV];
            for (v, wv) in w.iter_mut().enumerate() {
                *wv = _mm256_loadu_si256(b.add(v * LANES * 4) as *const __m256i);
            }
            for (r, row_part) in part.iter_mut().enumerate() {
                let xv = _mm256_set1_epi32((x.add(r * lda + t * 4) as *const i32).read_unaligned());
                for (p, &wv) in row_part.iter_mut().zip(&w) {
                    *p = _mm256_add_epi16(*p, _mm256_maddubs_epi16(xv, wv));
                }
            }
        }
        for (row_sums, row_part) in sums.iter_mut().zip(&part) {
            for (sum, &p) in row_sums.iter_mut().zip(row_part) {
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, ones));
            }
        }
        s += block;
    }
    for (r, row_sums) in sums.iter().enumerate() {
        for (v, &sum) in row_sums.iter().enumerate() {
            let dst = acc.as_mut_ptr().add(r * PANEL_COLS + v * LANES);
            _mm256_storeu_si256(dst as *mut __m256i, sum);
        }
    }
}

/// The grouped GEMM's fold of one scale group into a tile's f32 sums
/// (`int_gemm::fold_tile_portable`, the same multiply then add, without
/// fused multiply-add, so the results are identical), 8 columns a step,
/// the tail one at a time.
///
/// # Safety
/// The CPU must support AVX2; `shift` (when given) must hold `sw.len()`
/// values and `rows · width` must not pass `TILE_MAX`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn fold_tile(
    sums: &mut [f32; TILE_MAX],
    acc: &[i32; TILE_MAX],
    shift: Option<&[i32]>,
    sw: &[f32],
    rows: usize,
    width: usize,
) {
    let cols = sw.len();
    let whole = cols / LANES * LANES;
    for r in 0..rows {
        let row = r * width;
        for c in (0..whole).step_by(LANES) {
            let mut a = _mm256_loadu_si256(acc.as_ptr().add(row + c) as *const __m256i);
            if let Some(z) = shift {
                a = _mm256_sub_epi32(a, _mm256_loadu_si256(z.as_ptr().add(c) as *const __m256i));
            }
            let w = _mm256_loadu_ps(sw.as_ptr().add(c));
            let dst = sums.as_mut_ptr().add(row + c);
            let sum = _mm256_add_ps(
                _mm256_loadu_ps(dst),
                _mm256_mul_ps(_mm256_cvtepi32_ps(a), w),
            );
            _mm256_storeu_ps(dst, sum);
        }
        for c in whole..cols {
            let a = acc[row + c] - shift.map_or(0, |z| z[c]);
            sums[row + c] += a as f32 * sw[c];
        }
    }
}
