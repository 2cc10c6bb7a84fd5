//! The portable micro-kernel: plain Rust loops over a 4 × 16 tile, for CPUs
//! without the x86 extensions.

use super::tile::TILE_MAX;

const ROWS: usize = 4;
const COLS: usize = 16;

/// `acc[r · 16 + c] = Σ_s x[r · lda + s] · panel[s · 16 + c]` for the 4 rows
/// of `x` and the 16 columns of the panel.
pub(crate) fn tile(x: &[i8], lda: usize, panel: &[i8], steps: usize, acc: &mut [i32; TILE_MAX]) {
    let mut sums = [[0i32; COLS]; ROWS];
    for (s, w) in panel.chunks_exact(COLS).take(steps).enumerate() {
        for (r, row_sums) in sums.iter_mut().enumerate() {
            let xv = x[r * lda + s] as i32;
            for (sum, &wv) in row_sums.iter_mut().zip(w) {
                *sum += xv * wv as i32;
            }
        }
    }
    for (r, row_sums) in sums.iter().enumerate() {
        acc[r * COLS..(r + 1) * COLS].copy_from_slice(row_sums);
    }
}
