//! AVX-VNNI micro-kernel: 6 rows × up to 16 columns, `vpdpbusd` on 256-bit
//! registers (u8 activations `q + 128`, s8 weights, 4 k values per lane).

use std::arch::x86_64::*;

use crate::runtime::kernels::tile::TILE_MAX;

const ROWS: usize = 6;
const LANES: usize = 8;
const PANEL_COLS: usize = 16;

/// Computes the 6 × (8·`vectors`) tile into `acc[r · 16 + c]`.
///
/// # Safety
/// The CPU must support AVX2 and AVX-VNNI; `x` must hold 6 rows of stride
/// `lda` bytes with at least `4 · steps` bytes each, and `panel`
/// `steps · vectors · 32` bytes.
pub(crate) unsafe fn tile(
    vectors: usize,
    x: *const u8,
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

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn tile_n<const NV: usize>(
    x: *const u8,
    lda: usize,
    panel: *const i8,
    steps: usize,
    acc: &mut [i32; TILE_MAX],
) {
    let mut sums = [[_mm256_setzero_si256(); NV]; ROWS];
    let step_bytes = NV * LANES * 4;
    for s in 0..steps {
        let b = panel.add(s * step_bytes);
        let mut w = [_mm256_setzero_si256(); NV];
        for (v, wv) in w.iter_mut().enumerate() {
            *wv = _mm256_loadu_si256(b.add(v * LANES * 4) as *const __m256i);
        }
        for (r, row_sums) in sums.iter_mut().enumerate() {
            let xv = _mm256_set1_epi32((x.add(r * lda + s * 4) as *const i32).read_unaligned());
            for (sum, &wv) in row_sums.iter_mut().zip(&w) {
                *sum = _mm256_dpbusd_avx_epi32(*sum, xv, wv);
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
