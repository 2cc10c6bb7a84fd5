//! The integer GEMM driver: splits `x · Wᵀ` into rayon tasks of
//! (row block × panel block), runs the level's micro-kernel on each
//! micro-tile, removes the VNNI activation shift and hands the exact i32
//! accumulators to an epilogue (store as i32, or scale to f32).

use std::ops::Range;

use rayon::prelude::*;

use super::activations::{ActivationData, QuantizedActivations};
use super::scalar;
use super::simd_level::SimdLevel;
use super::tile::{finish, TILE_MAX};
use super::values::{fresh, writable, Fresh};
use super::weights::{IntegerWeights, WeightForm};

/// Below this many multiply-accumulates the product runs on the calling
/// thread.
const SERIAL_MACS: usize = 1 << 18;

/// Exact i32 accumulators `acc[i, j] = Σ_k qx[i, k] · w[j, k]`, `m × n`
/// (weights with one scale per output column).
pub fn int_gemm_i32(a: &QuantizedActivations, w: &IntegerWeights) -> Vec<i32> {
    assert_eq!(w.groups, 1, "exact accumulators need one scale per row");
    let mut out = vec![0i32; a.m * w.n];
    let ptr = SharedOut(out.as_mut_ptr());
    let n = w.n;
    run(a, w, &|row, col, tile: TileRow| {
        let TileRow::Exact(accs) = tile else {
            unreachable!("one scale group gives exact accumulators")
        };
        // SAFETY: each (row, col) is written by exactly one micro-tile, and
        // row < m, col + accs.len() <= n, so the write stays inside `out`.
        let dst = unsafe { std::slice::from_raw_parts_mut(ptr.at(row * n + col), accs.len()) };
        dst.copy_from_slice(accs);
    });
    out
}

/// `out[i, j] = (acc[i, j] · sx[i]) · sw[j] + bias[j]`, `m × n` row-major;
/// with scale groups `(Σ_g acc_g[i, j] · sw[g, j]) · sx[i] + bias[j]`, the
/// groups in order.
pub fn int_gemm_f32(
    a: &QuantizedActivations,
    w: &IntegerWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    int_gemm_f32_uninit(a, w, bias, writable(out));
}

/// [`int_gemm_f32`] into a fresh vector, written once without being
/// zeroed first (every element is one micro-tile's output).
pub fn int_gemm_f32_vec(
    a: &QuantizedActivations,
    w: &IntegerWeights,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    // SAFETY: `int_gemm_f32_uninit` writes all `m × n` elements (each (row,
    // col) of the output belongs to exactly one micro-tile row).
    unsafe { fresh(a.m * w.n, |out| int_gemm_f32_uninit(a, w, bias, out)) }
}

/// [`int_gemm_f32`] writing every element of `out`, whatever it held.
fn int_gemm_f32_uninit(
    a: &QuantizedActivations,
    w: &IntegerWeights,
    bias: Option<&[f32]>,
    out: &mut [Fresh],
) {
    assert_eq!(out.len(), a.m * w.n, "output length does not match m × n");
    if let Some(b) = bias {
        assert_eq!(b.len(), w.n, "bias length does not match n");
    }
    let ptr = SharedOut(out.as_mut_ptr());
    let n = w.n;
    run(a, w, &|row, col, tile: TileRow| {
        let len = tile.len();
        // SAFETY: as in `int_gemm_i32`: disjoint, in-bounds writes.
        let dst = unsafe { std::slice::from_raw_parts_mut(ptr.at(row * n + col), len) };
        let bias = bias.map(|b| &b[col..col + len]);
        match tile {
            TileRow::Exact(accs) => {
                finish_row(dst, accs, a.scales[row], &w.scales[col..col + len], bias)
            }
            TileRow::Scaled(sums) => finish_scaled_row(dst, sums, a.scales[row], bias),
        }
    });
}

/// One output row of a micro-tile, as the epilogue receives it.
#[derive(Clone, Copy)]
enum TileRow<'a> {
    /// Exact accumulators (one scale per output column).
    Exact(&'a [i32]),
    /// `Σ_g acc_g · sw[g]` over the scale groups.
    Scaled(&'a [f32]),
}

impl TileRow<'_> {
    fn len(self) -> usize {
        match self {
            TileRow::Exact(a) => a.len(),
            TileRow::Scaled(s) => s.len(),
        }
    }
}

/// `dst[c] = finish(accs[c], sx, sw[c], bias[c])`, vectorized for the
/// widest instruction set this CPU has (the same IEEE operations in the same
/// order on every path).
fn finish_row(dst: &mut [Fresh], accs: &[i32], sx: f32, sw: &[f32], bias: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if SimdLevel::Avx512Vnni.is_enabled() {
        // SAFETY: AVX-512F is available, checked just above.
        return unsafe { finish_row_avx512(dst, accs, sx, sw, bias) };
    }
    finish_row_portable(dst, accs, sx, sw, bias)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn finish_row_avx512(
    dst: &mut [Fresh],
    accs: &[i32],
    sx: f32,
    sw: &[f32],
    bias: Option<&[f32]>,
) {
    finish_row_portable(dst, accs, sx, sw, bias)
}

#[inline(always)]
fn finish_row_portable(dst: &mut [Fresh], accs: &[i32], sx: f32, sw: &[f32], bias: Option<&[f32]>) {
    match bias {
        Some(b) => {
            for (((d, &acc), &s), &bj) in dst.iter_mut().zip(accs).zip(sw).zip(b) {
                d.write(finish(acc, sx, s, bj));
            }
        }
        None => {
            for ((d, &acc), &s) in dst.iter_mut().zip(accs).zip(sw) {
                d.write(finish(acc, sx, s, 0.0));
            }
        }
    }
}

/// `dst[c] = sums[c] · sx + bias[c]` (the grouped epilogue).
fn finish_scaled_row(dst: &mut [Fresh], sums: &[f32], sx: f32, bias: Option<&[f32]>) {
    match bias {
        Some(b) => {
            for ((d, &s), &bj) in dst.iter_mut().zip(sums).zip(b) {
                d.write(s * sx + bj);
            }
        }
        None => {
            for (d, &s) in dst.iter_mut().zip(sums) {
                d.write(s * sx);
            }
        }
    }
}

/// Folds one scale group of a micro-tile into its f32 sums: for each of
/// `rows` rows, `sums[r·w + c] += (acc[r·w + c] − shift[c]) as f32 · sw[c]`
/// over the `sw.len()` real columns (`w` = `panel_cols`). The same IEEE
/// operations in the same order on every instruction set.
type FoldTile = fn(&mut [f32; TILE_MAX], &[i32; TILE_MAX], Option<&[i32]>, &[f32], usize, usize);

/// The fold vectorized for the widest instruction set this CPU has.
fn fold_tile_for_cpu() -> FoldTile {
    #[cfg(target_arch = "x86_64")]
    if SimdLevel::Avx512Vnni.is_enabled() {
        return |sums, acc, shift, sw, rows, width| {
            // SAFETY: AVX-512F is available, checked when this was chosen.
            unsafe { super::x86::avx512::fold_tile(sums, acc, shift, sw, rows, width) }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if SimdLevel::Avx2.is_enabled() {
        return |sums, acc, shift, sw, rows, width| {
            // SAFETY: AVX2 is available, checked when this was chosen.
            unsafe { super::x86::avx2::fold_tile(sums, acc, shift, sw, rows, width) }
        };
    }
    fold_tile_portable
}

#[inline(always)]
pub(crate) fn fold_tile_portable(
    sums: &mut [f32; TILE_MAX],
    acc: &[i32; TILE_MAX],
    shift: Option<&[i32]>,
    sw: &[f32],
    rows: usize,
    width: usize,
) {
    let cols = sw.len();
    for r in 0..rows {
        let s = &mut sums[r * width..r * width + cols];
        let a = &acc[r * width..r * width + cols];
        match shift {
            Some(z) => {
                for (((s, &a), &z), &w) in s.iter_mut().zip(a).zip(z).zip(sw) {
                    *s += (a - z) as f32 * w;
                }
            }
            None => {
                for ((s, &a), &w) in s.iter_mut().zip(a).zip(sw) {
                    *s += a as f32 * w;
                }
            }
        }
    }
}

/// A raw output pointer shared by tasks that write disjoint regions.
#[derive(Clone, Copy)]
struct SharedOut<T>(*mut T);
// SAFETY: the tasks write disjoint elements (see the callers).
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}
impl<T> SharedOut<T> {
    /// # Safety
    /// `offset` must be inside the allocation.
    unsafe fn at(self, offset: usize) -> *mut T {
        self.0.add(offset)
    }
}

/// Runs every micro-tile and calls `epilogue(row, first_col, tile_row)` for
/// each real row of each tile with its real columns: the shift-corrected
/// accumulators, or with scale groups their scaled sum.
fn run(
    a: &QuantizedActivations,
    w: &IntegerWeights,
    epilogue: &(dyn Fn(usize, usize, TileRow) + Sync),
) {
    assert_eq!(
        a.level, w.level,
        "activations and weights packed for different kernels"
    );
    assert_eq!(a.k, w.k, "activation and weight widths differ");
    assert!(
        w.level.is_available() && (w.form == WeightForm::Int8 || codes2_available()),
        "{:?} {:?} kernels do not run on this CPU",
        w.level,
        w.form
    );
    let tiling = w.level.tiling();
    let (mr, panel_cols) = (tiling.rows, tiling.panel_cols());
    let row_tiles = a.m_padded / mr;
    let n_panels = w.n.div_ceil(panel_cols);
    if a.m == 0 || w.n == 0 {
        return;
    }

    let threads = rayon::current_num_threads().max(1);
    let serial = a.m * w.n * w.k.max(1) < SERIAL_MACS || threads == 1;
    let wanted_tasks = if serial { 1 } else { 4 * threads };
    let tiles_per_block = (row_tiles / wanted_tasks).clamp(1, 8);
    let row_blocks = row_tiles.div_ceil(tiles_per_block);
    let panel_splits = wanted_tasks.div_ceil(row_blocks).clamp(1, n_panels);
    let panels_per_block = n_panels.div_ceil(panel_splits);
    let panel_blocks = n_panels.div_ceil(panels_per_block);
    let shifted = matches!(a.data, ActivationData::U8(_));
    let fold = fold_tile_for_cpu();
    let all_steps = a.k_padded / tiling.group;

    let task = |t: usize| {
        let (rb, pb) = (t / panel_blocks, t % panel_blocks);
        let panels = pb * panels_per_block..((pb + 1) * panels_per_block).min(n_panels);
        let tiles = rb * tiles_per_block..((rb + 1) * tiles_per_block).min(row_tiles);
        let mut acc = [0i32; TILE_MAX];
        let mut sums = [0f32; TILE_MAX];
        for p in panels {
            let first_col = p * panel_cols;
            let real_cols = panel_cols.min(w.n - first_col);
            let vectors = real_cols.div_ceil(tiling.lanes);
            let panel = &w.data[w.panel_offset(first_col)..];
            for tile in tiles.clone() {
                let first_row = tile * mr;
                let rows = mr.min(a.m - first_row);
                let tile_rows = first_row..first_row + rows;
                let steps = StepRange {
                    first: 0,
                    count: all_steps,
                };
                if w.groups == 1 {
                    micro_tile(a, w, panel, &tile_rows, steps, vectors, &mut acc);
                    if shifted {
                        let shift = &w.shifted_sums[first_col..first_col + real_cols];
                        for r in 0..rows {
                            for (v, s) in acc[r * panel_cols..].iter_mut().zip(shift) {
                                *v -= s;
                            }
                        }
                    }
                    for r in 0..rows {
                        let row_acc = &acc[r * panel_cols..r * panel_cols + real_cols];
                        epilogue(first_row + r, first_col, TileRow::Exact(row_acc));
                    }
                    continue;
                }
                sums.fill(0.0);
                for g in 0..w.groups {
                    let first = g * w.group_len / tiling.group;
                    let end = ((g + 1) * w.group_len).min(a.k_padded) / tiling.group;
                    let steps = StepRange {
                        first,
                        count: end - first,
                    };
                    micro_tile(a, w, panel, &tile_rows, steps, vectors, &mut acc);
                    let cols = g * w.n + first_col..g * w.n + first_col + real_cols;
                    let shift = shifted.then(|| &w.shifted_sums[cols.clone()]);
                    fold(&mut sums, &acc, shift, &w.scales[cols], rows, panel_cols);
                }
                for r in 0..rows {
                    let row = &sums[r * panel_cols..r * panel_cols + real_cols];
                    epilogue(first_row + r, first_col, TileRow::Scaled(row));
                }
            }
        }
    };
    let tasks = row_blocks * panel_blocks;
    if serial {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

/// The k groups (of the level's multiply-accumulate width) a micro-tile sums.
#[derive(Clone, Copy)]
struct StepRange {
    first: usize,
    count: usize,
}

/// Computes one micro-tile (the input's `rows`, at most the level's, which
/// starts a tile; `vectors` vectors of the weights' `panel`; the k groups of
/// `range`) into `acc[r · panel_cols + c]`. Kernels that cannot skip the
/// tile's padding rows compute them too.
fn micro_tile(
    a: &QuantizedActivations,
    w: &IntegerWeights,
    panel: &[i8],
    rows: &Range<usize>,
    range: StepRange,
    vectors: usize,
    acc: &mut [i32; TILE_MAX],
) {
    let (level, form) = (w.level, w.form);
    let tiling = level.tiling();
    let steps = range.count;
    let width = vectors * tiling.lanes;
    let (skip, panel_bytes) = match form {
        WeightForm::Int8 => (
            range.first * width * tiling.group,
            steps * width * tiling.group,
        ),
        WeightForm::Codes2 { .. } => (
            range.first * width * tiling.group / 4,
            steps * width * tiling.group / 4,
        ),
    };
    assert!(
        range.first + steps <= a.k_padded / tiling.group,
        "step range past the row"
    );
    assert!(panel.len() >= skip + panel_bytes, "panel too short");
    let panel = &panel[skip..];
    let start = rows.start * a.k_padded + range.first * tiling.group;
    let end = rows.start * a.k_padded + tiling.rows * a.k_padded;
    let rows = rows.len();
    match (&a.data, level, form) {
        #[cfg(target_arch = "x86_64")]
        (ActivationData::U8(x), SimdLevel::Avx512Vnni, WeightForm::Codes2 { levels }) => {
            let x = &x[start..end];
            // SAFETY: AVX-512 VNNI and VBMI are available (checked in `run`);
            // the rows and the panel hold the tile (checked above).
            unsafe {
                super::x86::avx512::tile_codes2(
                    (vectors, rows),
                    x.as_ptr(),
                    a.k_padded,
                    panel.as_ptr(),
                    steps,
                    levels,
                    acc,
                )
            }
        }
        (ActivationData::I8(x), SimdLevel::Scalar, WeightForm::Int8) => {
            scalar::tile(&x[start..end], a.k_padded, panel, steps, acc)
        }
        #[cfg(target_arch = "x86_64")]
        (ActivationData::I16(x), SimdLevel::Avx2, WeightForm::Int8) => {
            let x = &x[start..end];
            // SAFETY: AVX2 is available (checked in `run`); the activation rows and the panel
            // hold the tile's `steps` groups (checked above).
            unsafe {
                super::x86::avx2::tile(vectors, x.as_ptr(), a.k_padded, panel.as_ptr(), steps, acc)
            }
        }
        #[cfg(target_arch = "x86_64")]
        (ActivationData::U8(x), SimdLevel::Avx2Narrow, WeightForm::Int8) => {
            let x = &x[start..end];
            // SAFETY: as above, for AVX2; the weights are within ±8
            // (checked when they were packed).
            unsafe {
                super::x86::avx2::tile_narrow(
                    vectors,
                    x.as_ptr(),
                    a.k_padded,
                    panel.as_ptr(),
                    (steps, w.max_abs),
                    acc,
                )
            }
        }
        #[cfg(target_arch = "x86_64")]
        (ActivationData::U8(x), SimdLevel::AvxVnni, WeightForm::Int8) => {
            let x = &x[start..end];
            // SAFETY: as above, for AVX-VNNI.
            unsafe {
                super::x86::avxvnni::tile(
                    vectors,
                    x.as_ptr(),
                    a.k_padded,
                    panel.as_ptr(),
                    steps,
                    acc,
                )
            }
        }
        #[cfg(target_arch = "x86_64")]
        (ActivationData::U8(x), SimdLevel::Amx, WeightForm::Int8) => {
            let x = &x[start..end];
            // SAFETY: AMX tiles and AVX-512 VNNI are usable (checked in
            // `run`); the slice holds the tile's 16 padded rows.
            unsafe {
                super::x86::amx::tile(
                    (vectors, rows),
                    x.as_ptr(),
                    a.k_padded,
                    panel.as_ptr(),
                    steps,
                    acc,
                )
            }
        }
        #[cfg(target_arch = "x86_64")]
        (ActivationData::U8(x), SimdLevel::Avx512Vnni, WeightForm::Int8) => {
            let x = &x[start..end];
            // SAFETY: as above, for AVX-512 VNNI.
            unsafe {
                super::x86::avx512::tile(
                    (vectors, rows),
                    x.as_ptr(),
                    a.k_padded,
                    panel.as_ptr(),
                    steps,
                    acc,
                )
            }
        }
        _ => unreachable!("activations and weights are always packed for their level"),
    }
}

/// Whether this CPU runs the in-register 2-bit decoding kernel.
pub fn codes2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        SimdLevel::Avx512Vnni.is_available() && is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
