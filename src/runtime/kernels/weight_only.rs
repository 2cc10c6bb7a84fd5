//! `WeightOnlyLinear`: weight-only quantization on the CPU, `y = x · Wᵀ + b`
//! with float inputs and the weight kept as its integer levels (one i8 each)
//! and scales. The product is the f32 GEMM's ([`super::f32_gemm`]): for each
//! panel of output columns and slice of k, the levels are decoded into a
//! small f32 buffer (level × its row's or group's scale, the same product
//! [`WeightOnlyLinear::dequantized`] gives) that the f32 micro-kernel then
//! reads for every row of the task. The weight is never held as f32: its
//! levels take a byte a weight, a quarter of an f32 copy, and each decoded
//! slice (32 KiB at most) serves up to 96 rows of input.
//!
//! Layout: the levels as the f32 panels (`[n / nr][k][nr]`, `nr` the
//! level's panel width, the last panel zero padded); the scales
//! `[groups][n rounded up to panels]`, one per group of `group_len` k values
//! and output column (one group with one scale per row).

use crate::quant::Quantized;

use super::f32_gemm::{gemm, F32Level, PanelSource, K_BLOCK};
use super::levels::{integer_levels, KernelError};

/// A linear layer on integer weight levels and f32 inputs.
#[derive(Debug, Clone)]
pub struct WeightOnlyLinear {
    n: usize,
    k: usize,
    level: F32Level,
    levels: Vec<i8>,
    /// k values per scale group (`k` with one scale per row).
    group_len: usize,
    /// Scales per group and output column, `[g · n_padded + j]`.
    scales: Vec<f32>,
    /// `n` rounded up to whole panels.
    n_padded: usize,
    /// The bias padded to `n_padded` (zeros without one).
    padded_bias: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl WeightOnlyLinear {
    /// `q` (`[out, in]`, symmetric, scales per tensor, row or group of a
    /// multiple of 4) on the fastest f32 level this CPU runs; `None` when it
    /// runs none (`PLCC_SIMD=scalar`, or not x86-64).
    pub fn new(q: &Quantized, bias: Option<Vec<f32>>) -> Result<Option<Self>, KernelError> {
        let Some(level) = F32Level::detect() else {
            return Ok(None);
        };
        let levels = integer_levels(q)?;
        Self::from_levels(
            &levels.values,
            q.rows,
            q.cols,
            &levels.scales,
            levels.group_len,
            bias,
            level,
        )
        .map(Some)
    }

    /// From levels `n × k` row-major and their scales, `n × groups`
    /// row-major (`groups = ⌈k / group_len⌉`, one per row without a
    /// `group_len`), for `level` (which the CPU must support).
    pub fn from_levels(
        values: &[i8],
        n: usize,
        k: usize,
        row_scales: &[f32],
        group_len: Option<usize>,
        bias: Option<Vec<f32>>,
        level: F32Level,
    ) -> Result<Self, KernelError> {
        let group_len = group_len.unwrap_or(k).clamp(1, k.max(1));
        let groups = k.div_ceil(group_len).max(1);
        if values.len() != n * k || row_scales.len() != n * groups {
            return Err(KernelError::Malformed(format!(
                "{} levels and {} scales for a {n}x{k} matrix in groups of {group_len}",
                values.len(),
                row_scales.len()
            )));
        }
        if let Some(b) = bias.as_ref().filter(|b| b.len() != n) {
            return Err(KernelError::BiasLength {
                expected: n,
                found: b.len(),
            });
        }
        if !level.is_supported() {
            return Err(KernelError::Device(format!(
                "this CPU does not run the {level:?} f32 kernel"
            )));
        }
        let nr = level.panel_cols();
        let n_padded = n.div_ceil(nr) * nr;
        let mut levels = vec![0i8; n_padded * k];
        for (j, row) in values.chunks_exact(k.max(1)).enumerate().take(n) {
            let (blk, lane) = (j / nr, j % nr);
            for (kk, &v) in row.iter().enumerate() {
                levels[(blk * k + kk) * nr + lane] = v;
            }
        }
        let mut scales = vec![0f32; groups * n_padded];
        for j in 0..n {
            for g in 0..groups {
                scales[g * n_padded + j] = row_scales[j * groups + g];
            }
        }
        let mut padded_bias = vec![0f32; n_padded];
        if let Some(b) = &bias {
            padded_bias[..n].copy_from_slice(b);
        }
        Ok(WeightOnlyLinear {
            n,
            k,
            level,
            levels,
            group_len,
            scales,
            n_padded,
            padded_bias,
            bias,
        })
    }

    pub fn in_features(&self) -> usize {
        self.k
    }

    pub fn out_features(&self) -> usize {
        self.n
    }

    pub fn level(&self) -> F32Level {
        self.level
    }

    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// k values per scale group (`in_features` with one scale per row).
    pub fn group_len(&self) -> usize {
        self.group_len
    }

    /// Bytes the weight takes: levels and scales.
    pub fn packed_bytes(&self) -> usize {
        self.levels.len() + 4 * self.scales.len()
    }

    fn groups(&self) -> usize {
        self.scales.len() / self.n_padded.max(1)
    }

    /// The levels as an `n × k` row-major matrix.
    pub fn values(&self) -> Vec<i8> {
        let nr = self.level.panel_cols();
        let mut out = vec![0i8; self.n * self.k];
        for (j, row) in out.chunks_exact_mut(self.k.max(1)).enumerate().take(self.n) {
            let (blk, lane) = (j / nr, j % nr);
            for (kk, v) in row.iter_mut().enumerate() {
                *v = self.levels[(blk * self.k + kk) * nr + lane];
            }
        }
        out
    }

    /// The scales as `n × groups`, row-major (the layout `from_levels` takes).
    pub fn row_scales(&self) -> Vec<f32> {
        let groups = self.groups();
        (0..self.n)
            .flat_map(|j| (0..groups).map(move |g| self.scales[g * self.n_padded + j]))
            .collect()
    }

    /// The weight the product multiplies by, `n × k` row-major: each level
    /// times its scale, as the kernel decodes it.
    pub fn dequantized(&self) -> Vec<f32> {
        let values = self.values();
        let mut out = Vec::with_capacity(values.len());
        for (j, row) in values.chunks_exact(self.k.max(1)).enumerate() {
            for (kk, &v) in row.iter().enumerate() {
                out.push(decode(
                    v,
                    self.scales[(kk / self.group_len) * self.n_padded + j],
                ));
            }
        }
        out
    }

    /// `x` row-major `[m, k]` → `[m, n]`.
    ///
    /// # Panics
    /// When `x.len() != m · k`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        gemm(self.level, self, &self.padded_bias, x, m, self.n, self.k)
    }
}

/// One weight: its level times its scale.
#[inline(always)]
fn decode(level: i8, scale: f32) -> f32 {
    level as f32 * scale
}

impl PanelSource for WeightOnlyLinear {
    fn panel<'a>(
        &'a self,
        blk: usize,
        k0: usize,
        depth: usize,
        scratch: &'a mut [f32],
    ) -> &'a [f32] {
        let nr = self.level.panel_cols();
        debug_assert!(depth <= K_BLOCK && scratch.len() >= depth * nr);
        let out = &mut scratch[..depth * nr];
        let levels = &self.levels[(blk * self.k + k0) * nr..][..depth * nr];
        let column = blk * nr;
        let scale_row = |kk: usize| {
            let g = (k0 + kk) / self.group_len;
            &self.scales[g * self.n_padded + column..][..nr]
        };
        decode_slice(self.level, levels, &scale_row, out, nr);
        out
    }
}

/// `out[kk][j] = levels[kk][j] · scale_row(kk)[j]` for a `[depth][nr]`
/// slice, compiled for the level's instruction set.
fn decode_slice<'s>(
    level: F32Level,
    levels: &[i8],
    scale_row: &dyn Fn(usize) -> &'s [f32],
    out: &mut [f32],
    nr: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a `WeightOnlyLinear` is only built for a level the CPU
        // supports (`from_levels` checks it).
        unsafe {
            match level {
                F32Level::Avx512 => decode_avx512(levels, scale_row, out, nr),
                F32Level::Avx2Fma => decode_avx2(levels, scale_row, out, nr),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = level;
        decode_plain(levels, scale_row, out, nr)
    }
}

#[inline(always)]
fn decode_plain<'s>(
    levels: &[i8],
    scale_row: &dyn Fn(usize) -> &'s [f32],
    out: &mut [f32],
    nr: usize,
) {
    for (kk, (out, levels)) in out
        .chunks_exact_mut(nr)
        .zip(levels.chunks_exact(nr))
        .enumerate()
    {
        for ((o, &l), &s) in out.iter_mut().zip(levels).zip(scale_row(kk)) {
            *o = decode(l, s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn decode_avx512<'s>(
    levels: &[i8],
    scale_row: &dyn Fn(usize) -> &'s [f32],
    out: &mut [f32],
    nr: usize,
) {
    decode_plain(levels, scale_row, out, nr)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn decode_avx2<'s>(
    levels: &[i8],
    scale_row: &dyn Fn(usize) -> &'s [f32],
    out: &mut [f32],
    nr: usize,
) {
    decode_plain(levels, scale_row, out, nr)
}

#[cfg(test)]
#[path = "weight_only_tests.rs"]
mod tests;
