//! Dynamic per-token quantization of f32 activations to int8, stored in the
//! element type and padding a [`SimdLevel`]'s kernel reads.

use rayon::prelude::*;

use super::SimdLevel;

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
        SimdLevel::Scalar => ActivationData::I8(fill(x, k, k_padded, m_padded, &mut scales, |q| q)),
        SimdLevel::Avx2 => {
            ActivationData::I16(fill(x, k, k_padded, m_padded, &mut scales, |q| q as i16))
        }
        SimdLevel::AvxVnni | SimdLevel::Avx512Vnni => {
            ActivationData::U8(fill(x, k, k_padded, m_padded, &mut scales, |q| {
                (q as u8) ^ 0x80
            }))
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

fn fill<T: Copy + Send + Sync>(
    x: &[f32],
    k: usize,
    k_padded: usize,
    m_padded: usize,
    scales: &mut [f32],
    map: impl Fn(i8) -> T + Sync,
) -> Vec<T> {
    let zero = map(0);
    let mut out = vec![zero; m_padded * k_padded];
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
                *scale = quantize_row_dispatch(row, dst, &map);
            }
        });
    out
}

fn quantize_row_dispatch<T: Copy>(row: &[f32], dst: &mut [T], map: &impl Fn(i8) -> T) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if SimdLevel::Avx512Vnni.is_available() {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { quantize_row_avx512(row, dst, map) };
        }
        if SimdLevel::Avx2.is_available() {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { quantize_row_avx2(row, dst, map) };
        }
    }
    quantize_row(row, dst, map)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_row_avx512<T: Copy>(row: &[f32], dst: &mut [T], map: &impl Fn(i8) -> T) -> f32 {
    quantize_row(row, dst, map)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2<T: Copy>(row: &[f32], dst: &mut [T], map: &impl Fn(i8) -> T) -> f32 {
    quantize_row(row, dst, map)
}

/// Quantizes one row into `dst` and returns its scale. Compiled once per
/// instruction set; IEEE arithmetic makes every copy give the same result.
#[inline(always)]
fn quantize_row<T: Copy>(row: &[f32], dst: &mut [T], map: &impl Fn(i8) -> T) -> f32 {
    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (scale, inv) = if max > 0.0 && max.is_finite() {
        (max / 127.0, 127.0 / max)
    } else {
        (0.0, 0.0)
    };
    for (d, &v) in dst.iter_mut().zip(row) {
        *d = map((v * inv).round_ties_even().clamp(-127.0, 127.0) as i8);
    }
    scale
}
