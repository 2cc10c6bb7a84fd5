//! Linear weights whose integer levels fit 4 bits (binary, ternary, 2- and
//! 4-bit) as ONNX Runtime's `MatMulNBits` (operator domain
//! `com.microsoft`): `Y = A · dequant(B)^T + bias`, with `B` uint8
//! `[N, k_blocks, block / 2]` (two codes a byte, the first in the low
//! nibble), one scale a block (`[N, k_blocks]`) and no zero points (the
//! operator's default for 4 bits is 8). plcc's levels are symmetric, so
//! each code is `level + 8` and every block's scale is exact: a group's
//! scale (groups of a power of two ≥ 16 that tile the row), or a row's
//! scale repeated over the row's blocks.

use super::builder::{nibbles, Attr, Domain, GraphBuilder};
use crate::runtime::kernels::IntegerLevels;

/// The operator domain of `MatMulNBits`, ONNX Runtime's contrib operators.
pub const MS_DOMAIN: Domain = Domain {
    name: "com.microsoft",
    version: 1,
};

/// The longest block a row-scaled weight is cut into.
const ROW_BLOCK_MAX: usize = 128;
/// The shortest block `MatMulNBits` takes.
const BLOCK_MIN: usize = 16;

/// What ONNX Runtime computes a `MatMulNBits` product in (its
/// `accuracy_level`): the smallest precision it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NBitsCompute {
    /// f32 products of the input and the dequantized blocks (level 1):
    /// the arithmetic plcc's kernels compute, to float rounding.
    Fp32,
    /// ONNX Runtime quantizes the input to int8 per block of `block_size`
    /// values itself and multiplies integers (level 4).
    Int8,
}

impl NBitsCompute {
    fn accuracy_level(self) -> i64 {
        match self {
            NBitsCompute::Fp32 => 1,
            NBitsCompute::Int8 => 4,
        }
    }
}

/// A `rows × cols` weight in `MatMulNBits`' layout.
#[derive(Debug, Clone, PartialEq)]
pub struct NBitsBlocks {
    /// Values of a row per block (a power of two ≥ 16 dividing `cols`).
    pub block: usize,
    pub k_blocks: usize,
    /// `[rows, k_blocks, block / 2]`: `level + 8`, two a byte, the first in
    /// the low nibble.
    pub codes: Vec<u8>,
    /// `[rows, k_blocks]`.
    pub scales: Vec<f32>,
}

/// `levels` of a `rows × cols` weight in `MatMulNBits`' layout, or why
/// they do not map to it exactly.
pub fn nbits_blocks(
    rows: usize,
    cols: usize,
    levels: &IntegerLevels,
) -> Result<NBitsBlocks, String> {
    if levels.values.iter().any(|v| !(-8..=7).contains(v)) {
        return Err("its levels do not fit 4 bits".to_string());
    }
    let (block, scales) = match levels.group_len {
        None => {
            let block = [ROW_BLOCK_MAX, 64, 32, BLOCK_MIN]
                .into_iter()
                .find(|b| cols.is_multiple_of(*b))
                .ok_or_else(|| {
                    format!("rows of {cols} weights are not whole blocks of {BLOCK_MIN}")
                })?;
            let k_blocks = cols / block;
            let scales = levels
                .scales
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, k_blocks))
                .collect();
            (block, scales)
        }
        Some(len) if len.is_power_of_two() && len >= BLOCK_MIN && cols.is_multiple_of(len) => {
            (len, levels.scales.clone())
        }
        Some(len) => {
            return Err(format!(
                "groups of {len} are not blocks (a power of two ≥ {BLOCK_MIN} that tiles rows of {cols})"
            ))
        }
    };
    let k_blocks = cols / block;
    if scales.len() != rows * k_blocks || levels.values.len() != rows * cols {
        return Err(format!(
            "{} scales and {} levels for {rows} rows of {k_blocks} blocks of {block}",
            scales.len(),
            levels.values.len()
        ));
    }
    // Blocks are even and tile each row, so the rows' codes packed end to
    // end are the `[rows, k_blocks, block / 2]` blobs.
    let codes = nibbles(levels.values.iter().map(|&v| (v + 8) as u8));
    Ok(NBitsBlocks {
        block,
        k_blocks,
        codes,
        scales,
    })
}

/// The initializers of one weight in `MatMulNBits`' layout.
#[derive(Debug, Clone)]
pub struct NBitsWeight {
    codes: String,
    scales: String,
    rows: usize,
    cols: usize,
    block: usize,
}

/// Writes `blocks` of weight `name` (`rows × cols`) as initializers.
pub(super) fn store_nbits(
    g: &mut GraphBuilder,
    name: &str,
    rows: usize,
    cols: usize,
    blocks: NBitsBlocks,
) -> NBitsWeight {
    let hint = name.trim_end_matches(".weight");
    let dims = [rows, blocks.k_blocks, blocks.block / 2];
    let codes = g.u8s(&format!("{hint}.nbits"), &dims, blocks.codes);
    let scales = g.f32s(
        &format!("{hint}.nbits_scales"),
        &[rows, blocks.k_blocks],
        &blocks.scales,
    );
    NBitsWeight {
        codes,
        scales,
        rows,
        cols,
        block: blocks.block,
    }
}

/// `x · W^T` (plus `bias`) as one `MatMulNBits` node computing in
/// `compute`.
pub(super) fn matmul_nbits(
    g: &mut GraphBuilder,
    w: &NBitsWeight,
    x: &str,
    bias: Option<&str>,
    compute: NBitsCompute,
    hint: &str,
) -> String {
    let attrs = [
        Attr::Int("K", w.cols as i64),
        Attr::Int("N", w.rows as i64),
        Attr::Int("bits", 4),
        Attr::Int("block_size", w.block as i64),
        Attr::Int("accuracy_level", compute.accuracy_level()),
    ];
    // A, B, scales, zero_points (none: 8), g_idx (none), bias.
    let mut inputs = vec![x, &w.codes, &w.scales];
    if let Some(bias) = bias {
        inputs.extend(["", "", bias]);
    }
    g.op_in(MS_DOMAIN, "MatMulNBits", &inputs, &attrs, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(values: Vec<i8>, scales: Vec<f32>, group_len: Option<usize>) -> IntegerLevels {
        IntegerLevels {
            values,
            scales,
            group_len,
        }
    }

    #[test]
    fn row_scales_repeat_over_the_largest_block_that_tiles_a_row() {
        // 2 rows of 96: blocks of 32 (96 is not a multiple of 64 or 128).
        let values: Vec<i8> = (0..192).map(|i| (i % 15) as i8 - 7).collect();
        let b = nbits_blocks(2, 96, &levels(values.clone(), vec![0.5, 2.0], None)).unwrap();
        assert_eq!((b.block, b.k_blocks), (32, 3));
        assert_eq!(b.scales, [0.5, 0.5, 0.5, 2.0, 2.0, 2.0]);
        assert_eq!(b.codes.len(), 2 * 3 * 16);
        // Code = level + 8, the first of a pair in the low nibble.
        assert_eq!(
            b.codes[0],
            (values[0] + 8) as u8 | (((values[1] + 8) as u8) << 4)
        );
        let second_row_first = 3 * 16;
        assert_eq!(b.codes[second_row_first] & 0x0f, (values[96] + 8) as u8);
        let rows_of_256 = nbits_blocks(1, 256, &levels(vec![1; 256], vec![1.0], None)).unwrap();
        assert_eq!(rows_of_256.block, 128);
    }

    #[test]
    fn group_scales_are_the_blocks_scales() {
        let values: Vec<i8> = (0..128).map(|i| (i % 3) as i8 - 1).collect();
        let scales = vec![1.0, 2.0, 3.0, 4.0];
        let b = nbits_blocks(2, 64, &levels(values, scales.clone(), Some(32))).unwrap();
        assert_eq!((b.block, b.k_blocks), (32, 2));
        assert_eq!(b.scales, scales);
    }

    #[test]
    fn layouts_the_operator_cannot_hold_are_refused() {
        let short_groups = levels(vec![0; 64], vec![1.0; 8], Some(8));
        assert!(nbits_blocks(1, 64, &short_groups)
            .unwrap_err()
            .contains("groups of 8"));
        let odd_rows = levels(vec![0; 40], vec![1.0], None);
        assert!(nbits_blocks(1, 40, &odd_rows)
            .unwrap_err()
            .contains("not whole blocks"));
        let wide = levels(vec![9; 16], vec![1.0], None);
        assert!(nbits_blocks(1, 16, &wide).unwrap_err().contains("4 bits"));
    }
}
