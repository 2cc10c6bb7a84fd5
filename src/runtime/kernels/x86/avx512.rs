//! AVX-512 VNNI micro-kernel: 8 rows × up to 48 columns, `vpdpbusd` on
//! u8 activations (`q + 128`) and s8 weights, 4 k values per lane.

use std::arch::x86_64::*;

use crate::runtime::kernels::tile::TILE_MAX;

const LANES: usize = 16;
const PANEL_COLS: usize = 48;

/// Runs `$kernel::<vectors, rows>($args)` for the tile's `vectors` (1 to 3)
/// and real `rows` (1 to 8): a tile of fewer real rows (the last of a short
/// input) computes only those.
macro_rules! by_shape {
    ($kernel:ident, $vectors:expr, $rows:expr, ($($arg:expr),*)) => {
        match ($vectors, $rows) {
            (1, 1) => $kernel::<1, 1>($($arg),*),
            (1, 2) => $kernel::<1, 2>($($arg),*),
            (1, 3) => $kernel::<1, 3>($($arg),*),
            (1, 4) => $kernel::<1, 4>($($arg),*),
            (1, 5) => $kernel::<1, 5>($($arg),*),
            (1, 6) => $kernel::<1, 6>($($arg),*),
            (1, 7) => $kernel::<1, 7>($($arg),*),
            (1, 8) => $kernel::<1, 8>($($arg),*),
            (2, 1) => $kernel::<2, 1>($($arg),*),
            (2, 2) => $kernel::<2, 2>($($arg),*),
            (2, 3) => $kernel::<2, 3>($($arg),*),
            (2, 4) => $kernel::<2, 4>($($arg),*),
            (2, 5) => $kernel::<2, 5>($($arg),*),
            (2, 6) => $kernel::<2, 6>($($arg),*),
            (2, 7) => $kernel::<2, 7>($($arg),*),
            (2, 8) => $kernel::<2, 8>($($arg),*),
            (3, 1) => $kernel::<3, 1>($($arg),*),
            (3, 2) => $kernel::<3, 2>($($arg),*),
            (3, 3) => $kernel::<3, 3>($($arg),*),
            (3, 4) => $kernel::<3, 4>($($arg),*),
            (3, 5) => $kernel::<3, 5>($($arg),*),
            (3, 6) => $kernel::<3, 6>($($arg),*),
            (3, 7) => $kernel::<3, 7>($($arg),*),
            (3, 8) => $kernel::<3, 8>($($arg),*),
            _ => unreachable!("a panel holds 1 to 3 vectors, a tile 1 to 8 rows"),
        }
    };
}

/// Computes the first `rows` rows of the 8 × (16·`vectors`) tile into
/// `acc[r · 48 + c]` (the rows past them are left as they were).
///
/// # Safety
/// The CPU must support AVX-512F/BW/VNNI; `x` must hold `rows` rows of
/// stride `lda` bytes with at least `4 · steps` bytes each, and `panel`
/// `steps · vectors · 64` bytes.
pub(crate) unsafe fn tile(
    (vectors, rows): (usize, usize),
    x: *const u8,
    lda: usize,
    panel: *const i8,
    steps: usize,
    acc: &mut [i32; TILE_MAX],
) {
    let acc = acc.as_mut_ptr();
    by_shape!(tile_n, vectors, rows, (x, lda, panel, steps, acc, false))
}

/// As [`tile`] into any `acc` of at least `rows · 48` accumulators, and
/// with `add` adding the products to the accumulators already there (the
/// AMX kernel's rows and k tail).
///
/// # Safety
/// As for [`tile`].
pub(crate) unsafe fn tile_into(
    (vectors, rows): (usize, usize),
    x: *const u8,
    lda: usize,
    panel: *const i8,
    steps: usize,
    acc: &mut [i32],
    add: bool,
) {
    assert!(acc.len() >= rows * PANEL_COLS, "accumulators too short");
    let acc = acc.as_mut_ptr();
    by_shape!(tile_n, vectors, rows, (x, lda, panel, steps, acc, add))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_n<const NV: usize, const R: usize>(
    x: *const u8,
    lda: usize,
    panel: *const i8,
    steps: usize,
    acc: *mut i32,
    add: bool,
) {
    let mut sums = [[_mm512_setzero_si512(); NV]; R];
    if add {
        for (r, row_sums) in sums.iter_mut().enumerate() {
            for (v, sum) in row_sums.iter_mut().enumerate() {
                let src = acc.add(r * PANEL_COLS + v * LANES);
                *sum = _mm512_loadu_si512(src as *const __m512i);
            }
        }
    }
    let step_bytes = NV * LANES * 4;
    for s in 0..steps {
        let b = panel.add(s * step_bytes);
        let mut w = [_mm512_setzero_si512(); NV];
        for (v, wv) in w.iter_mut().enumerate() {
            *wv = _mm512_loadu_si512(b.add(v * LANES * 4) as *const __m512i);
        }
        for (r, row_sums) in sums.iter_mut().enumerate() {
            let xv = _mm512_set1_epi32((x.add(r * lda + s * 4) as *const i32).read_unaligned());
            for (sum, &wv) in row_sums.iter_mut().zip(&w) {
                *sum = _mm512_dpbusd_epi32(*sum, xv, wv);
            }
        }
    }
    for (r, row_sums) in sums.iter().enumerate() {
        for (v, &sum) in row_sums.iter().enumerate() {
            let dst = acc.add(r * PANEL_COLS + v * LANES);
            _mm512_storeu_si512(dst as *mut __m512i, sum);
        }
    }
}

/// As [`tile`] (the first `rows` rows) for weights stored as 2-bit indices into `levels`
/// ([`crate::runtime::kernels::weights::WeightForm::Codes2`]): each 16-byte group of
/// codes is zero-extended word by word to qwords (`vpmovzxwq`), spread to one
/// code per byte (`vpmultishiftqb`), masked and mapped to its level
/// (`vpshufb`) before the multiply-accumulate.
///
/// # Safety
/// The CPU must support AVX-512F/BW/VNNI/VBMI; `x` as for [`tile`], `panel`
/// `steps · vectors · 16` bytes.
pub(crate) unsafe fn tile_codes2(
    (vectors, rows): (usize, usize),
    x: *const u8,
    lda: usize,
    panel: *const i8,
    steps: usize,
    levels: [i8; 4],
    acc: &mut [i32; TILE_MAX],
) {
    by_shape!(
        tile_codes2_n,
        vectors,
        rows,
        (x, lda, panel, steps, levels, acc)
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
unsafe fn tile_codes2_n<const NV: usize, const R: usize>(
    x: *const u8,
    lda: usize,
    panel: *const i8,
    steps: usize,
    levels: [i8; 4],
    acc: &mut [i32; TILE_MAX],
) {
    let table = _mm512_broadcast_i32x4(_mm_setr_epi8(
        levels[0], levels[1], levels[2], levels[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ));
    // Byte j of each qword takes the 8 bits from bit 2·j: code j in its low bits.
    let spread = _mm512_set1_epi64(0x0E0C_0A08_0604_0200);
    let low_two = _mm512_set1_epi8(3);
    let mut sums = [[_mm512_setzero_si512(); NV]; R];
    let step_bytes = NV * LANES;
    for s in 0..steps {
        let b = panel.add(s * step_bytes);
        let mut w = [_mm512_setzero_si512(); NV];
        for (v, wv) in w.iter_mut().enumerate() {
            let packed = _mm_loadu_si128(b.add(v * LANES) as *const __m128i);
            let words = _mm512_cvtepu16_epi64(packed);
            let codes = _mm512_and_si512(_mm512_multishift_epi64_epi8(spread, words), low_two);
            *wv = _mm512_shuffle_epi8(table, codes);
        }
        for (r, row_sums) in sums.iter_mut().enumerate() {
            let xv = _mm512_set1_epi32((x.add(r * lda + s * 4) as *const i32).read_unaligned());
            for (sum, &wv) in row_sums.iter_mut().zip(&w) {
                *sum = _mm512_dpbusd_epi32(*sum, xv, wv);
            }
        }
    }
    for (r, row_sums) in sums.iter().enumerate() {
        for (v, &sum) in row_sums.iter().enumerate() {
            let dst = acc.as_mut_ptr().add(r * PANEL_COLS + v * LANES);
            _mm512_storeu_si512(dst as *mut __m512i, sum);
        }
    }
}

/// The grouped GEMM's fold of one scale group into a tile's f32 sums
/// (`int_gemm::fold_tile_portable`, the same multiply then add, without
/// fused multiply-add, so the results are identical), 16 columns a step
/// with a masked tail.
///
/// # Safety
/// The CPU must support AVX-512F; `shift` (when given) must hold
/// `sw.len()` values and `rows · width` must not pass `TILE_MAX`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn fold_tile(
    sums: &mut [f32; TILE_MAX],
    acc: &[i32; TILE_MAX],
    shift: Option<&[i32]>,
    sw: &[f32],
    rows: usize,
    width: usize,
) {
    let cols = sw.len();
    for r in 0..rows {
        let row = r * width;
        let mut c = 0;
        while c < cols {
            let n = (cols - c).min(LANES);
            let mask: __mmask16 = if n == LANES { 0xffff } else { (1u16 << n) - 1 };
            let mut a = _mm512_maskz_loadu_epi32(mask, acc.as_ptr().add(row + c));
            if let Some(z) = shift {
                a = _mm512_sub_epi32(a, _mm512_maskz_loadu_epi32(mask, z.as_ptr().add(c)));
            }
            let w = _mm512_maskz_loadu_ps(mask, sw.as_ptr().add(c));
            let dst = sums.as_mut_ptr().add(row + c);
            let sum = _mm512_add_ps(
                _mm512_maskz_loadu_ps(mask, dst),
                _mm512_mul_ps(_mm512_cvtepi32_ps(a), w),
            );
            _mm512_mask_storeu_ps(dst, mask, sum);
            c += LANES;
        }
    }
}
