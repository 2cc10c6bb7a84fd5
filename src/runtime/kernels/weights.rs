//! Integer weights repacked at load time into the panel layout a
//! [`SimdLevel`]'s kernel reads, with their scales (one per output column,
//! or one per group of k values and output column) and shift sums.

use super::simd_level::{SimdLevel, NARROW_MAX};

/// An `n × k` integer weight matrix (`y = x · Wᵀ`: `n` outputs, `k` inputs)
/// ready for [`super::int_gemm_f32`].
///
/// Layout: panels of `panel_cols` output columns (the last one narrower,
/// rounded up to the vector width). Within a panel of width `w`, for each
/// group `s` of `G` consecutive k, the `G` weights of column 0, then of column
/// 1, …: element `(j, kk)` of the panel sits at `(kk / G)·w·G + j·G + kk % G`.
/// Panel `p` starts at `p · panel_cols · k_padded`. Padding is zero.
///
/// In [`WeightForm::Codes2`] the same sequence is stored as 2-bit indices
/// into four levels, four per byte (element `e` of the sequence in byte
/// `e / 4` at bit `2·(e % 4)`), and decoded by the kernel in registers.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegerWeights {
    pub level: SimdLevel,
    pub form: WeightForm,
    pub n: usize,
    pub k: usize,
    pub k_padded: usize,
    pub(crate) data: Vec<i8>,
    /// k values per scale group: a multiple of 4 (every level's k group),
    /// or `k_padded` with one scale per output column.
    pub group_len: usize,
    /// Scale groups along k (1 with one scale per output column).
    pub groups: usize,
    /// `128 · Σ w[j, k]` over each group's k (the padding in the last group)
    /// per output column, `[g · n + j]`: the VNNI kernels' correction for the
    /// +128 shift of the activations.
    pub(crate) shifted_sums: Vec<i32>,
    /// `sw` per group and output column, `[g · n + j]` (with one group: per
    /// output column).
    pub scales: Vec<f32>,
    /// The largest weight magnitude (bounds how long the narrow AVX2 kernel
    /// sums in i16).
    pub(crate) max_abs: i16,
}

/// How the packed weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightForm {
    /// One i8 per weight.
    Int8,
    /// 2-bit indices into `levels` (AVX-512 VNNI + VBMI kernel only).
    Codes2 { levels: [i8; 4] },
}

impl IntegerWeights {
    /// Packs `values` (`n × k`, row-major) with one scale per row.
    ///
    /// # Panics
    /// For [`SimdLevel::Avx2Narrow`], when a value is beyond ±8.
    pub fn new(values: &[i8], n: usize, k: usize, scales: Vec<f32>, level: SimdLevel) -> Self {
        Self::pack(values, n, k, scales, None, level, WeightForm::Int8)
    }

    /// Packs `values` (`n × k`, row-major) with one scale per group of
    /// `group_len` consecutive k of a row: `row_scales` is `n × groups`
    /// row-major, `groups = ⌈k / group_len⌉`. `None` when `group_len` is not
    /// a positive multiple of 4 or the scales do not match.
    pub fn new_grouped(
        values: &[i8],
        n: usize,
        k: usize,
        row_scales: &[f32],
        group_len: usize,
        level: SimdLevel,
    ) -> Option<Self> {
        let groups = k.div_ceil(group_len.max(1)).max(1);
        if group_len == 0 || !group_len.is_multiple_of(4) || row_scales.len() != n * groups {
            return None;
        }
        if groups == 1 {
            return Some(Self::new(values, n, k, row_scales.to_vec(), level));
        }
        let scales = (0..groups)
            .flat_map(|g| (0..n).map(move |j| row_scales[j * groups + g]))
            .collect();
        Some(Self::pack(
            values,
            n,
            k,
            scales,
            Some(group_len),
            level,
            WeightForm::Int8,
        ))
    }

    /// The scales as `n × groups`, row-major (the layout `new_grouped` takes).
    pub fn row_scales(&self) -> Vec<f32> {
        (0..self.n)
            .flat_map(|j| (0..self.groups).map(move |g| self.scales[g * self.n + j]))
            .collect()
    }

    /// Packs weights that take at most four distinct values as 2-bit codes
    /// for the AVX-512 VNNI kernel that decodes them in registers. `None`
    /// when a value is not among `levels`.
    pub fn new_codes2(
        values: &[i8],
        n: usize,
        k: usize,
        scales: Vec<f32>,
        levels: [i8; 4],
    ) -> Option<Self> {
        if !values.iter().all(|v| levels.contains(v)) {
            return None;
        }
        Some(Self::pack(
            values,
            n,
            k,
            scales,
            None,
            SimdLevel::Avx512Vnni,
            WeightForm::Codes2 { levels },
        ))
    }

    fn pack(
        values: &[i8],
        n: usize,
        k: usize,
        scales: Vec<f32>,
        group_len: Option<usize>,
        level: SimdLevel,
        form: WeightForm,
    ) -> Self {
        assert_eq!(values.len(), n * k, "weight length does not match n × k");
        assert!(
            level != SimdLevel::Avx2Narrow
                || values.iter().all(|&v| (v as i16).abs() <= NARROW_MAX),
            "weights beyond ±{NARROW_MAX} packed for the narrow AVX2 kernel"
        );
        let tiling = level.tiling();
        let (group, panel_cols) = (tiling.group, tiling.panel_cols());
        let k_padded = k.div_ceil(group) * group;
        let group_len = group_len.unwrap_or(k_padded).max(1);
        let groups = k_padded.div_ceil(group_len).max(1);
        assert_eq!(
            scales.len(),
            n * groups,
            "one weight scale per group and row"
        );
        let n_panels = n.div_ceil(panel_cols);
        // The padding value: zero, or for four nonzero 2-bit levels the first
        // level, whose products with the zero activation padding cancel in the
        // shift correction below.
        let pad = match form {
            WeightForm::Codes2 { levels } if !levels.contains(&0) => levels[0],
            _ => 0,
        };
        let mut data = Vec::with_capacity(n_panels * panel_cols * k_padded);
        for p in 0..n_panels {
            let first = p * panel_cols;
            let real = panel_cols.min(n - first);
            let width = real.div_ceil(tiling.lanes) * tiling.lanes;
            for s in 0..k_padded / group {
                for j in 0..width {
                    for t in 0..group {
                        let kk = s * group + t;
                        data.push(if j < real && kk < k {
                            values[(first + j) * k + kk]
                        } else {
                            pad
                        });
                    }
                }
            }
        }
        if let WeightForm::Codes2 { levels } = form {
            data = pack_codes2(&data, levels);
        }
        let mut shifted_sums = vec![0i32; groups * n];
        for (j, row) in values.chunks_exact(k.max(1)).take(n).enumerate() {
            for g in 0..groups {
                let span = g * group_len..((g + 1) * group_len).min(k_padded);
                let real: i32 = row[span.start.min(k)..span.end.min(k)]
                    .iter()
                    .map(|&v| v as i32)
                    .sum();
                let padding = (span.end - span.start.max(k).min(span.end)) as i32 * pad as i32;
                shifted_sums[g * n + j] = 128 * (real + padding);
            }
        }
        let max_abs = values.iter().map(|&v| (v as i16).abs()).max().unwrap_or(0);
        IntegerWeights {
            level,
            form,
            n,
            k,
            k_padded,
            data,
            group_len,
            groups,
            shifted_sums,
            scales,
            max_abs,
        }
    }

    /// Bytes of packed weights.
    pub fn packed_bytes(&self) -> usize {
        self.data.len()
    }

    /// Offset in `data` of the panel that starts at output column `col`.
    pub(crate) fn panel_offset(&self, col: usize) -> usize {
        match self.form {
            WeightForm::Int8 => col * self.k_padded,
            WeightForm::Codes2 { .. } => col * self.k_padded / 4,
        }
    }

    /// The weights times their scales as an `n × k` row-major f32 matrix.
    pub fn dequantized(&self) -> Vec<f32> {
        let values = self.values();
        let mut out = Vec::with_capacity(values.len());
        for (j, row) in values.chunks_exact(self.k.max(1)).enumerate() {
            for (kk, &v) in row.iter().enumerate() {
                let g = kk / self.group_len;
                out.push(v as f32 * self.scales[g * self.n + j]);
            }
        }
        out
    }

    /// The weights as an `n × k` row-major matrix.
    pub fn values(&self) -> Vec<i8> {
        let tiling = self.level.tiling();
        let (group, panel_cols) = (tiling.group, tiling.panel_cols());
        let mut out = vec![0i8; self.n * self.k];
        for j in 0..self.n {
            let p = j / panel_cols;
            let real = panel_cols.min(self.n - p * panel_cols);
            let width = real.div_ceil(tiling.lanes) * tiling.lanes;
            let offset = p * panel_cols * self.k_padded;
            let jj = j % panel_cols;
            for kk in 0..self.k {
                let e = offset + (kk / group) * width * group + jj * group + kk % group;
                out[j * self.k + kk] = match self.form {
                    WeightForm::Int8 => self.data[e],
                    WeightForm::Codes2 { levels } => {
                        levels[(self.data[e / 4] as u8 >> (2 * (e % 4))) as usize & 3]
                    }
                };
            }
        }
        out
    }
}

/// Replaces each value of the packed sequence by its 2-bit index into
/// `levels`, four per byte, low bits first.
fn pack_codes2(sequence: &[i8], levels: [i8; 4]) -> Vec<i8> {
    sequence
        .chunks(4)
        .map(|four| {
            four.iter().enumerate().fold(0u8, |byte, (i, v)| {
                let code = levels.iter().position(|l| l == v).unwrap_or(0) as u8;
                byte | code << (2 * i)
            }) as i8
        })
        .collect()
}
