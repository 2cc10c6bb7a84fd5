//! Integer weights repacked at load time into the panel layout a
//! [`SimdLevel`]'s kernel reads, with their per-column scales and sums.

use super::SimdLevel;

/// An `n × k` integer weight matrix (`y = x · Wᵀ`: `n` outputs, `k` inputs)
/// ready for [`super::gemm_f32`].
///
/// Layout: panels of `panel_cols` output columns (the last one narrower,
/// rounded up to the vector width). Within a panel of width `w`, for each
/// group `s` of `G` consecutive k, the `G` weights of column 0, then of column
/// 1, …: element `(j, kk)` of the panel sits at `(kk / G)·w·G + j·G + kk % G`.
/// Panel `p` starts at `p · panel_cols · k_padded`. Padding is zero.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegerWeights {
    pub level: SimdLevel,
    pub n: usize,
    pub k: usize,
    pub k_padded: usize,
    pub(crate) data: Vec<i8>,
    /// `128 · Σ_k w[j, k]` per output column: the VNNI kernels' correction
    /// for the +128 shift of the activations.
    pub(crate) shifted_sums: Vec<i32>,
    /// `sw` per output column.
    pub scales: Vec<f32>,
}

impl IntegerWeights {
    /// Packs `values` (`n × k`, row-major) with one scale per row.
    pub fn new(values: &[i8], n: usize, k: usize, scales: Vec<f32>, level: SimdLevel) -> Self {
        assert_eq!(values.len(), n * k, "weight length does not match n × k");
        assert_eq!(scales.len(), n, "one weight scale per output row");
        let tiling = level.tiling();
        let (group, panel_cols) = (tiling.group, tiling.panel_cols());
        let k_padded = k.div_ceil(group) * group;
        let n_panels = n.div_ceil(panel_cols);
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
                            0
                        });
                    }
                }
            }
        }
        let shifted_sums = values
            .chunks_exact(k.max(1))
            .take(n)
            .map(|row| 128 * row.iter().map(|&v| v as i32).sum::<i32>())
            .chain(std::iter::repeat(0))
            .take(n)
            .collect();
        IntegerWeights {
            level,
            n,
            k,
            k_padded,
            data,
            shifted_sums,
            scales,
        }
    }

    /// Bytes of packed weights.
    pub fn packed_bytes(&self) -> usize {
        self.data.len()
    }

    /// The same weights repacked for another level.
    pub fn to_level(&self, level: SimdLevel) -> Self {
        IntegerWeights::new(&self.values(), self.n, self.k, self.scales.clone(), level)
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
            let panel = &self.data[p * panel_cols * self.k_padded..];
            let jj = j % panel_cols;
            for kk in 0..self.k {
                out[j * self.k + kk] =
                    panel[(kk / group) * width * group + jj * group + kk % group];
            }
        }
        out
    }
}
