//! Dynamic per-token quantization of f32 activations to int8, stored in the
//! element type and padding a [`SimdLevel`]'s kernel reads.

use rayon::prelude::*;

use super::quantize_rule::{max_magnitude, quantize_value, scale_and_inverse};
use super::simd_level::SimdLevel;
use super::simd_override::widest_simd;
use super::values::{fresh, Fresh};

/// Activation rows quantized to int8 with one scale per row.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedActivations {
    pub level: SimdLevel,
    /// Real rows.
    pub m: usize,
    /// Rows stored: `m` rounded up to the level's micro-tile height; the extra
    /// rows are zero.
    pub m_padded: usize,
    pub k: usize,
    /// Row stride: `k` rounded up to the level's k group; the padding is zero.
    pub k_padded: usize,
    /// `sx = max |x_row| / 127` per real row.
    pub scales: Vec<f32>,
    pub data: ActivationData,
}

/// Quantized values `q ∈ [−127, 127]`, `m_padded × k_padded`, in the form
/// the kernel multiplies.
#[derive(Debug, Clone, PartialEq)]
pub enum ActivationData {
    /// `q` (scalar kernel).
    I8(Vec<i8>),
    /// `q + 128` (VNNI kernels: `vpdpbusd` takes unsigned activations).
    U8(Vec<u8>),
    /// `q` widened (AVX2 kernel: `vpmaddwd` takes i16).
    I16(Vec<i16>),
}

impl QuantizedActivations {
    /// The quantized value `q` of row `r`, column `c` (a real row and column).
    pub fn value(&self, r: usize, c: usize) -> i8 {
        let i = r * self.k_padded + c;
        match &self.data {
            ActivationData::I8(v) => v[i],
            ActivationData::U8(v) => (v[i] as i16 - 128) as i8,
            ActivationData::I16(v) => v[i] as i8,
        }
    }
}

/// Quantizes the `m × k` row-major `x` per row: `sx = max |x_row| / 127`,
/// `q = round_ties_even(x · 127 / max |x_row|)` (all zero for an all-zero row).
pub fn quantize_activations(
    x: &[f32],
    m: usize,
    k: usize,
    level: SimdLevel,
) -> QuantizedActivations {
    assert_eq!(x.len(), m * k, "activation length does not match m × k");
    let tiling = level.tiling();
    let m_padded = m.div_ceil(tiling.rows) * tiling.rows;
    let k_padded = k.div_ceil(tiling.group) * tiling.group;
    let mut scales = vec![0.0f32; m];
    let data = match level {
        SimdLevel::Scalar => ActivationData::I8(fill(x, k, k_padded, m_padded, &mut scales)),
        SimdLevel::Avx2 => ActivationData::I16(fill(x, k, k_padded, m_padded, &mut scales)),
        SimdLevel::Avx2Narrow | SimdLevel::AvxVnni | SimdLevel::Avx512Vnni | SimdLevel::Amx => {
            ActivationData::U8(fill(x, k, k_padded, m_padded, &mut scales))
        }
    };
    QuantizedActivations {
        level,
        m,
        m_padded,
        k,
        k_padded,
        scales,
        data,
    }
}

/// Rows per rayon task when quantizing.
const ROWS_PER_TASK: usize = 64;

/// A stored activation element.
trait Element: Copy + Send + Sync {
    fn from_q(q: i8) -> Self;

    /// Quantizes one row into `dst` (same length) and returns its scale, on
    /// the fastest path this CPU runs.
    fn quantize_row(row: &[f32], dst: &mut [Self]) -> f32;
}

impl Element for i8 {
    fn from_q(q: i8) -> Self {
        q
    }

    fn quantize_row(row: &[f32], dst: &mut [Self]) -> f32 {
        quantize_bytes(row, dst.as_mut_ptr() as *mut u8, dst.len(), 0)
            .unwrap_or_else(|| quantize_row(row, dst))
    }
}

impl Element for u8 {
    fn from_q(q: i8) -> Self {
        (q as u8) ^ 0x80
    }

    fn quantize_row(row: &[f32], dst: &mut [Self]) -> f32 {
        quantize_bytes(row, dst.as_mut_ptr(), dst.len(), 0x80)
            .unwrap_or_else(|| quantize_row(row, dst))
    }
}

impl Element for i16 {
    fn from_q(q: i8) -> Self {
        q as i16
    }

    fn quantize_row(row: &[f32], dst: &mut [Self]) -> f32 {
        assert_eq!(row.len(), dst.len(), "row and destination lengths differ");
        #[cfg(target_arch = "x86_64")]
        if SimdLevel::Avx2.is_enabled() {
            // SAFETY: AVX2 is available (checked just above) and `dst` holds
            // `row.len()` values (asserted above).
            return unsafe { super::x86::quantize_avx2::quantize_i16(row, dst.as_mut_ptr()) };
        }
        quantize_row(row, dst)
    }
}

/// The AVX-512 or AVX2 byte quantizer, when the CPU has one: `q ^ flip`
/// per value.
fn quantize_bytes(row: &[f32], dst: *mut u8, dst_len: usize, flip: u8) -> Option<f32> {
    assert_eq!(row.len(), dst_len, "row and destination lengths differ");
    #[cfg(target_arch = "x86_64")]
    if SimdLevel::Avx512Vnni.is_enabled() {
        // SAFETY: AVX-512F/BW are available (checked just above) and `dst`
        // holds `row.len()` bytes (asserted above).
        return Some(unsafe { quantize_bytes_avx512(row, dst, flip) });
    }
    #[cfg(target_arch = "x86_64")]
    if SimdLevel::Avx2.is_enabled() {
        // SAFETY: AVX2 is available (checked just above); `dst` as above.
        return Some(unsafe { super::x86::quantize_avx2::quantize_bytes(row, dst, flip) });
    }
    let _ = (row, dst, flip);
    None
}

/// Explicit AVX-512 version of [`quantize_row`] for byte outputs, with the
/// same results: the max ignores NaN, `vcvtps2dq` rounds to nearest even
/// (the default MXCSR mode), a NaN product quantizes to 0, and the int32
/// clamp to ±127 matches the float clamp for the finite products that occur.
///
/// # Safety
/// The CPU must support AVX-512F/BW; `dst` must hold `row.len()` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_bytes_avx512(row: &[f32], dst: *mut u8, flip: u8) -> f32 {
    use std::arch::x86_64::*;
    let n = row.len();
    let mask_at = |i: usize| -> __mmask16 {
        if n - i >= 16 {
            0xFFFF
        } else {
            (1u16 << (n - i)) - 1
        }
    };
    // Only AVX-512F intrinsics, so that every one inlines into this function.
    let mut maxv = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let v = _mm512_maskz_loadu_ps(mask_at(i), row.as_ptr().add(i));
        // A NaN first operand yields the second: NaN is ignored.
        maxv = _mm512_max_ps(_mm512_abs_ps(v), maxv);
        i += 16;
    }
    let (scale, inv) = scale_and_inverse(_mm512_reduce_max_ps(maxv));
    let invv = _mm512_set1_ps(inv);
    let (lo, hi) = (_mm512_set1_epi32(-127), _mm512_set1_epi32(127));
    // The flip applies to the low byte, the one the truncating store keeps.
    let flipv = _mm512_set1_epi32(flip as i32);
    let mut i = 0;
    while i < n {
        let mask = mask_at(i);
        let p = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row.as_ptr().add(i)), invv);
        let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(p, p);
        let q = _mm512_maskz_mov_epi32(ordered, _mm512_cvtps_epi32(p));
        let q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
        _mm512_mask_cvtepi32_storeu_epi8(dst.add(i) as *mut i8, mask, _mm512_xor_si512(q, flipv));
        i += 16;
    }
    scale
}

fn fill<T: Element>(
    x: &[f32],
    k: usize,
    k_padded: usize,
    m_padded: usize,
    scales: &mut [f32],
) -> Vec<T> {
    let mut out = vec![T::from_q(0); m_padded * k_padded];
    if k == 0 {
        return out;
    }
    let block = ROWS_PER_TASK * k_padded.max(1);
    out.par_chunks_mut(block)
        .zip(scales.par_chunks_mut(ROWS_PER_TASK))
        .enumerate()
        .for_each(|(b, (out_rows, scale_rows))| {
            let first = b * ROWS_PER_TASK;
            for (i, scale) in scale_rows.iter_mut().enumerate() {
                let row = &x[(first + i) * k..(first + i + 1) * k];
                let dst = &mut out_rows[i * k_padded..i * k_padded + k];
                *scale = T::quantize_row(row, dst);
            }
        });
    out
}

/// Quantizes one row into `dst` and returns its scale: the portable
/// definition every faster path reproduces exactly.
#[inline(always)]
fn quantize_row<T: Element>(row: &[f32], dst: &mut [T]) -> f32 {
    let (scale, inv) = scale_and_inverse(max_magnitude(row));
    for (d, &v) in dst.iter_mut().zip(row) {
        *d = T::from_q(quantize_value(v, inv));
    }
    scale
}

/// The values per-token int8 quantization stands for: `q · sx` for each
/// element of the row-major `x` of rows of width `k`, with `q` and `sx` as
/// [`quantize_activations`] computes them (what the integer kernel
/// multiplies), in f32: the fake quantization of a quantization-aware
/// layer's input while training.
pub fn dequantized_activations(x: &[f32], k: usize) -> Vec<f32> {
    let k = k.max(1);
    let block = ROWS_PER_TASK * k;
    // SAFETY: the rows of `x` and of the output are zipped one to one, and
    // every row writes each of its `k` values.
    unsafe {
        fresh(x.len(), |out| {
            out.par_chunks_mut(block)
                .zip(x.par_chunks(block))
                .for_each(|(out, x)| {
                    for (out, row) in out.chunks_mut(k).zip(x.chunks(k)) {
                        dequantized_row(row, out);
                    }
                })
        })
    }
}

widest_simd! {
    /// [`quantize_row`]'s values times the row's scale, into `out`.
    fn dequantized_row(row: &[f32], out: &mut [Fresh]) {
        let (scale, inv) = scale_and_inverse(max_magnitude(row));
        for (o, &v) in out.iter_mut().zip(row) {
            o.write(quantize_value(v, inv) as f32 * scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_quantizers_match_the_portable_definition() {
        let mut seed = 17u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
        };
        for len in [0usize, 1, 3, 15, 16, 17, 63, 385] {
            let mut rows: Vec<Vec<f32>> =
                (0..4).map(|_| (0..len).map(|_| next()).collect()).collect();
            rows.push(vec![0.0; len]);
            if len > 2 {
                rows[1][1] = f32::NAN;
                rows[2][0] = f32::INFINITY;
                // Exact ties: x · 127 / max lands on k + 0.5.
                rows[3][0] = 127.0;
                rows[3][1] = 2.5;
                rows[3][2] = -3.5;
            }
            for row in rows {
                let mut want = vec![0u8; len];
                let want_scale = quantize_row(&row, &mut want);
                let mut got = vec![0u8; len];
                let got_scale = <u8 as Element>::quantize_row(&row, &mut got);
                assert_eq!((got_scale, &got), (want_scale, &want), "len {len}: {row:?}");
                let mut got_i8 = vec![0i8; len];
                <i8 as Element>::quantize_row(&row, &mut got_i8);
                let flipped: Vec<u8> = got_i8.iter().map(|&q| (q as u8) ^ 0x80).collect();
                assert_eq!(flipped, want);
                #[cfg(target_arch = "x86_64")]
                if SimdLevel::Avx2.is_available() {
                    use crate::runtime::kernels::x86::quantize_avx2;
                    let mut bytes = vec![0u8; len];
                    // SAFETY: AVX2 is available; `bytes` holds `len` values.
                    let scale =
                        unsafe { quantize_avx2::quantize_bytes(&row, bytes.as_mut_ptr(), 0x80) };
                    assert_eq!(
                        (scale, &bytes),
                        (want_scale, &want),
                        "AVX2 bytes, len {len}"
                    );
                    let mut words = vec![0i16; len];
                    // SAFETY: as above.
                    let scale = unsafe { quantize_avx2::quantize_i16(&row, words.as_mut_ptr()) };
                    let words: Vec<u8> = words.iter().map(|&q| (q as u8) ^ 0x80).collect();
                    assert_eq!((scale, &words), (want_scale, &want), "AVX2 i16, len {len}");
                }
            }
        }
    }

    #[test]
    fn dequantized_activations_are_the_kernels_levels_times_scales() {
        let (m, k) = (70, 13);
        let mut x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        x[..k].fill(0.0);
        x[k] = f32::NAN;
        let q = quantize_activations(&x, m, k, SimdLevel::Scalar);
        let values = dequantized_activations(&x, k);
        for r in 0..m {
            for c in 0..k {
                let expected = q.value(r, c) as f32 * q.scales[r];
                assert_eq!(
                    values[r * k + c].to_bits(),
                    expected.to_bits(),
                    "({r}, {c})"
                );
            }
        }
        assert!(dequantized_activations(&[], 4).is_empty());
    }
}
