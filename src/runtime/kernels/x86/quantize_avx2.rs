//! AVX2 per-token activation quantization, with the portable definition's
//! results (`activations::quantize_row`, the rule of `quantize_rule`): the max ignores NaN, `vcvtps2dq`
//! rounds to nearest even (the default MXCSR mode), a NaN product
//! quantizes to 0, and the int32 clamp to ±127 matches the float clamp for
//! the finite products that occur (at most 127 in magnitude). Eight values
//! a step, the tail one at a time by the same formula.

use std::arch::x86_64::*;

use crate::runtime::kernels::quantize_rule::{max_magnitude, quantize_value, scale_and_inverse};

/// The row's largest magnitude (NaN ignored).
#[target_feature(enable = "avx2")]
unsafe fn max_abs(row: &[f32]) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let mut maxv = _mm256_setzero_ps();
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        let v = _mm256_andnot_ps(sign, _mm256_loadu_ps(c.as_ptr()));
        // A NaN first operand yields the second: NaN is ignored.
        maxv = _mm256_max_ps(v, maxv);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), maxv);
    max_magnitude(&lanes).max(max_magnitude(tail))
}

/// `q` of eight products `v · inv` as i32 lanes.
#[inline(always)]
unsafe fn q_lanes(v: __m256, inv: __m256) -> __m256i {
    let p = _mm256_mul_ps(v, inv);
    let ordered = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(p, p));
    let q = _mm256_and_si256(_mm256_cvtps_epi32(p), ordered);
    let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
    _mm256_min_epi32(_mm256_max_epi32(q, lo), hi)
}

/// Quantizes `row` into `row.len()` bytes at `dst` as `q ^ flip` and
/// returns its scale.
///
/// # Safety
/// The CPU must support AVX2; `dst` must hold `row.len()` bytes.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_bytes(row: &[f32], dst: *mut u8, flip: u8) -> f32 {
    let (scale, inv) = scale_and_inverse(max_abs(row));
    let invv = _mm256_set1_ps(inv);
    let flipv = _mm_set1_epi8(flip as i8);
    // Bytes 0–3 of each 128-bit half after two packs: one dword per half.
    let gather = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
    let whole = row.len() / 8 * 8;
    for i in (0..whole).step_by(8) {
        let q = q_lanes(_mm256_loadu_ps(row.as_ptr().add(i)), invv);
        let words = _mm256_packs_epi32(q, q);
        let bytes = _mm256_packs_epi16(words, words);
        let eight = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(bytes, gather));
        _mm_storel_epi64(dst.add(i) as *mut __m128i, _mm_xor_si128(eight, flipv));
    }
    for (i, &v) in row.iter().enumerate().skip(whole) {
        *dst.add(i) = quantize_value(v, inv) as u8 ^ flip;
    }
    scale
}

/// Quantizes `row` into `row.len()` i16 at `dst` and returns its scale.
///
/// # Safety
/// The CPU must support AVX2; `dst` must hold `row.len()` values.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_i16(row: &[f32], dst: *mut i16) -> f32 {
    let (scale, inv) = scale_and_inverse(max_abs(row));
    let invv = _mm256_set1_ps(inv);
    let whole = row.len() / 8 * 8;
    for i in (0..whole).step_by(8) {
        let q = q_lanes(_mm256_loadu_ps(row.as_ptr().add(i)), invv);
        // Words 0–3 of each half, the halves' first quadwords side by side.
        let words = _mm256_permute4x64_epi64::<0b1000>(_mm256_packs_epi32(q, q));
        _mm_storeu_si128(dst.add(i) as *mut __m128i, _mm256_castsi256_si128(words));
    }
    for (i, &v) in row.iter().enumerate().skip(whole) {
        *dst.add(i) = quantize_value(v, inv) as i16;
    }
    scale
}
