//! A micro-tile of the integer GEMM: its geometry at each instruction set
//! ([`Tiling`]), the largest one ([`TILE_MAX`], the accumulator array every
//! micro-kernel fills) and the formula that finishes each exact accumulator
//! into an output ([`finish`], shared by every kernel and the references).

/// Largest micro-tile, in accumulators (16 rows × 48 columns).
pub(crate) const TILE_MAX: usize = 16 * 48;

/// Micro-tile geometry of a [`SimdLevel`](super::SimdLevel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tiling {
    /// Activation rows per micro-tile.
    pub rows: usize,
    /// Output columns per vector register.
    pub lanes: usize,
    /// Vector registers across a full panel.
    pub vectors: usize,
    /// Consecutive k values one lane multiplies per instruction.
    pub group: usize,
}

impl Tiling {
    pub fn panel_cols(self) -> usize {
        self.lanes * self.vectors
    }
}

/// The output of one dot product: `(acc · sx) · sw + bias`.
#[inline(always)]
pub fn finish(acc: i32, sx: f32, sw: f32, bias: f32) -> f32 {
    acc as f32 * sx * sw + bias
}
