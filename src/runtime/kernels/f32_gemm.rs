//! An f32 matrix multiply for inference linears: `y = x Wᵀ + b` with `W`
//! packed once into column panels, a register-blocked micro-kernel and rows
//! split across the rayon pool. The packed copy is a snapshot of the weight
//! (inference only).
//!
//! # Levels
//! [`F32Level`] is chosen when the weight is packed and stored with it:
//! - `Avx512` (AVX-512F): 32-column panels, 12 × 32 tiles in 24 zmm
//!   accumulators (`x86::f32_avx512`).
//! - `Avx2Fma` (AVX2 + FMA, e.g. AMD Zen 2/3, Intel since Haswell):
//!   16-column panels, 6 × 16 tiles in 12 ymm accumulators plus two weight
//!   vectors and a broadcast, 15 of the 16 ymm registers (`x86::f32_avx2`).
//!
//! [`F32Level::detect`] picks the best level the CPU supports within the
//! `PLCC_SIMD` cap ([`super::SimdCap`]: `avx2` keeps AVX2 on an AVX-512 CPU,
//! `scalar` disables both). Without a level, [`available`] is false and
//! [`PackedWeight::new`] returns `None`: callers use candle's matmul.
//! [`PackedWeight::with_level`] forces a level the CPU supports, whatever
//! the cap.
//!
//! # Layout and loops
//! A panel holds `k` rows of `cols` weights (`[n / cols][k][cols]`, the last
//! panel zero padded) and its slice of the bias, which initializes the
//! accumulators. Each rayon task takes up to 96 rows of `x`, fewer when
//! that leaves a thread idle, and repacks them as tiles `[k][rows]` so the
//! kernel broadcasts from one contiguous stream; then for every panel and
//! every 256 values of k (a 32 KiB panel slice that stays in L1 while all
//! of the task's tiles use it) it runs the micro-kernel per tile, the first
//! pass starting from the bias and the others adding to the output. Tails
//! in `m` use a smaller tile, tails in `n` masked loads and stores. Every
//! output is its bias plus its k products added in k order, one fused
//! multiply-add each, so both levels give the same bits.
//!
//! On one Sapphire Rapids core at m = 1536 on the MiniLM shapes
//! (`cargo bench --bench kernels -- f32`), AVX-512 runs at 180–190 GFLOP/s
//! (about 75 % of the core's measured FMA peak of 246; candle's matmul:
//! 190–205) and AVX2 at 110–117 GFLOP/s (85 % of its peak of 133).

use rayon::prelude::*;

use super::simd_override::{simd_cap, SimdCap};
use super::values::{fresh, Fresh};

/// Rows per parallel work item at most (a multiple of every level's tile).
const TASK_ROWS: usize = 96;
/// k values per pass over a panel: the panel's slice (32 KiB at 32 columns,
/// 16 KiB at 16) stays in L1 while every tile of the task's rows uses it.
pub(super) const K_BLOCK: usize = 256;

/// The instruction set an f32 [`PackedWeight`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum F32Level {
    /// AVX2 with FMA3, 256-bit registers.
    Avx2Fma,
    /// AVX-512F, 512-bit registers.
    Avx512,
}

impl F32Level {
    /// Every level, slowest first.
    pub const ALL: [F32Level; 2] = [F32Level::Avx2Fma, F32Level::Avx512];

    /// The level in words.
    pub fn name(self) -> &'static str {
        match self {
            F32Level::Avx2Fma => "AVX2 + FMA",
            F32Level::Avx512 => "AVX-512",
        }
    }

    /// Whether this CPU can run the level (regardless of `PLCC_SIMD`).
    pub fn is_supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                F32Level::Avx2Fma => {
                    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
                }
                F32Level::Avx512 => is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The levels this CPU can run, slowest first.
    pub fn supported() -> Vec<F32Level> {
        Self::ALL.into_iter().filter(|l| l.is_supported()).collect()
    }

    /// The fastest level the CPU supports and `PLCC_SIMD` allows.
    pub fn detect() -> Option<F32Level> {
        Self::best_under(simd_cap())
    }

    fn best_under(cap: SimdCap) -> Option<F32Level> {
        Self::ALL
            .into_iter()
            .rev()
            .find(|l| l.allowed_by(cap) && l.is_supported())
    }

    fn allowed_by(self, cap: SimdCap) -> bool {
        match self {
            F32Level::Avx2Fma => cap.allows_avx2(),
            F32Level::Avx512 => cap.allows_avx512(),
        }
    }

    /// Output columns per packed panel.
    pub fn panel_cols(self) -> usize {
        self.kernel().cols
    }

    /// The level's micro-kernel, for callers that pack their own operands
    /// (the fused attention).
    pub(super) fn kernel(self) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            use super::x86::{f32_avx2, f32_avx512};
            match self {
                F32Level::Avx2Fma => Kernel {
                    tile: f32_avx2::tile,
                    pack: pack_rows::<{ f32_avx2::ROWS }>,
                    rows: f32_avx2::ROWS,
                    cols: f32_avx2::PANEL_COLS,
                },
                F32Level::Avx512 => Kernel {
                    tile: f32_avx512::tile,
                    pack: pack_rows::<{ f32_avx512::ROWS }>,
                    rows: f32_avx512::ROWS,
                    cols: f32_avx512::PANEL_COLS,
                },
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Kernel {
                tile: unsupported_tile,
                pack: pack_rows::<1>,
                rows: 1,
                cols: 1,
            }
        }
    }
}

/// `tile(a, rows, panel, bias, c, ldc, cols)`: `c = bias + a · panel` (or
/// `c += a · panel` without a bias) for the first `rows` rows of a tile of
/// packed activations `a` `[depth][MR]` and the first `cols` columns of a
/// panel slice `[depth][cols]`, into `c` of row stride `ldc`. With a bias
/// `c` is only written (it may be a fresh output); without one, the values
/// it adds to must have been written.
pub(super) type Tile = unsafe fn(&[f32], usize, &[f32], Option<&[f32]>, &mut [Fresh], usize, usize);

/// A level's micro-kernel and its tile: at most `rows` × `cols`.
#[derive(Clone, Copy)]
pub(super) struct Kernel {
    pub(super) tile: Tile,
    /// Packs activation rows for `tile`: [`pack_rows`] with `MR = rows`.
    pub(super) pack: fn(&[f32], usize) -> Vec<f32>,
    pub(super) rows: usize,
    pub(super) cols: usize,
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn unsupported_tile(
    _: &[f32],
    _: usize,
    _: &[f32],
    _: Option<&[f32]>,
    _: &mut [Fresh],
    _: usize,
    _: usize,
) {
    unreachable!("no F32Level is supported off x86-64, so nothing is packed")
}

/// `rows` `[rows, k]` as register tiles of `MR` rows, `[rows / MR][k][MR]`,
/// the last tile zero padded: a tile's activations for one k are adjacent.
fn pack_rows<const MR: usize>(rows: &[f32], k: usize) -> Vec<f32> {
    let tiles = (rows.len() / k).div_ceil(MR);
    let mut packed = vec![0f32; tiles * k * MR];
    let zeros = vec![0f32; k];
    for (dst, src) in packed.chunks_exact_mut(k * MR).zip(rows.chunks(k * MR)) {
        let rows: [&[f32]; MR] =
            std::array::from_fn(|r| src.get(r * k..(r + 1) * k).unwrap_or(&zeros));
        for (kk, out) in dst.chunks_exact_mut(MR).enumerate() {
            for (v, row) in out.iter_mut().zip(&rows) {
                *v = row[kk];
            }
        }
    }
    packed
}

/// True when a packed kernel can run here ([`F32Level::detect`] finds one).
pub fn available() -> bool {
    F32Level::detect().is_some()
}

/// `W` `[n, k]` and its bias, packed for one [`F32Level`] as
/// `[n / cols][k][cols]` (zero padded).
#[derive(Debug, Clone)]
pub struct PackedWeight {
    pub n: usize,
    pub k: usize,
    level: F32Level,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedWeight {
    /// Packs row-major `w` `[n, k]` and `bias` `[n]` (zeros when `None`) for
    /// the detected level; `None` without one or for mismatched lengths.
    pub fn new(w: &[f32], bias: Option<&[f32]>, n: usize, k: usize) -> Option<Self> {
        Self::with_level(w, bias, n, k, F32Level::detect()?)
    }

    /// Packs for `level`; `None` when the CPU does not support it (the
    /// `PLCC_SIMD` cap does not apply) or for mismatched lengths.
    pub fn with_level(
        w: &[f32],
        bias: Option<&[f32]>,
        n: usize,
        k: usize,
        level: F32Level,
    ) -> Option<Self> {
        if !level.is_supported() || w.len() != n * k || bias.is_some_and(|b| b.len() != n) {
            return None;
        }
        let nr = level.panel_cols();
        let blocks = n.div_ceil(nr);
        let mut panels = vec![0f32; blocks * k * nr];
        if k > 0 {
            for (col, row) in w.chunks_exact(k).enumerate() {
                let (blk, lane) = (col / nr, col % nr);
                for (kk, &x) in row.iter().enumerate() {
                    panels[(blk * k + kk) * nr + lane] = x;
                }
            }
        }
        let mut padded_bias = vec![0f32; blocks * nr];
        if let Some(b) = bias {
            padded_bias[..n].copy_from_slice(b);
        }
        Some(PackedWeight {
            n,
            k,
            level,
            panels,
            bias: padded_bias,
        })
    }

    /// The instruction set the weight was packed for.
    pub fn level(&self) -> F32Level {
        self.level
    }

    /// The packed weight back as row-major `[n, k]` (exact).
    pub fn unpacked(&self) -> Vec<f32> {
        let nr = self.level.panel_cols();
        let mut w = vec![0f32; self.n * self.k];
        for (col, row) in w.chunks_exact_mut(self.k.max(1)).enumerate().take(self.n) {
            let (blk, lane) = (col / nr, col % nr);
            for (kk, x) in row.iter_mut().enumerate() {
                *x = self.panels[(blk * self.k + kk) * nr + lane];
            }
        }
        w
    }

    /// `x` row-major `[m, k]` → `[m, n]`.
    ///
    /// # Panics
    /// When `x.len() != m · k`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        gemm(self.level, self, &self.bias, x, m, self.n, self.k)
    }
}

impl PanelSource for PackedWeight {
    fn panel<'a>(&'a self, blk: usize, k0: usize, depth: usize, _: &'a mut [f32]) -> &'a [f32] {
        let nr = self.level.panel_cols();
        &self.panels[(blk * self.k + k0) * nr..][..depth * nr]
    }
}

/// The weights a [`gemm`] multiplies by, one panel slice at a time: stored
/// f32 panels, or weights decoded into a scratch buffer as they are needed.
pub(super) trait PanelSource: Sync {
    /// Columns `blk · nr ..` (`nr` the level's panel width) for k values
    /// `k0 .. k0 + depth`, as `[depth][nr]` f32; `scratch` holds
    /// `K_BLOCK · nr` values a decoding source may fill and return.
    fn panel<'a>(
        &'a self,
        blk: usize,
        k0: usize,
        depth: usize,
        scratch: &'a mut [f32],
    ) -> &'a [f32];
}

/// `x` row-major `[m, k]` times the `[n, k]` weights of `source` (transposed)
/// plus `bias` (`n` rounded up to whole panels) → `[m, n]`, on `level`'s
/// micro-kernel (see Layout and loops).
///
/// # Panics
/// When `x.len() != m · k`.
pub(super) fn gemm(
    level: F32Level,
    source: &impl PanelSource,
    bias: &[f32],
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "f32 gemm: x is not [{m}, {k}]");
    if n == 0 || m == 0 || k == 0 {
        return (0..m).flat_map(|_| &bias[..n]).copied().collect();
    }
    // SAFETY: every element is written: each task's rows, for every panel,
    // by the pass at k0 = 0 (from the bias), the other passes adding to it.
    unsafe {
        fresh(m * n, |out| {
            product_into(level, source, bias, x, (m, n, k), out)
        })
    }
}

/// [`gemm`] into `out` (`m × n`, written by the first pass over k).
fn product_into(
    level: F32Level,
    source: &impl PanelSource,
    bias: &[f32],
    x: &[f32],
    (m, n, k): (usize, usize, usize),
    out: &mut [Fresh],
) {
    let Kernel {
        tile,
        pack,
        rows: mr,
        cols: nr,
    } = level.kernel();
    // Enough tasks for every thread when `m` is small, else
    // `TASK_ROWS` rows, in whole tiles.
    let task_rows = m
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(mr)
        .clamp(mr, TASK_ROWS);
    out.par_chunks_mut(task_rows * n)
        .zip(x.par_chunks(task_rows * k))
        .for_each(|(out_rows, x_rows)| {
            let rows = x_rows.len() / k;
            let a = pack(x_rows, k);
            let mut scratch = vec![0f32; K_BLOCK * nr];
            for blk in 0..n.div_ceil(nr) {
                let cols = nr.min(n - blk * nr);
                for k0 in (0..k).step_by(K_BLOCK) {
                    let depth = K_BLOCK.min(k - k0);
                    let panel = source.panel(blk, k0, depth, &mut scratch);
                    assert_eq!(panel.len(), depth * nr, "f32 gemm: short panel slice");
                    let bias = (k0 == 0).then(|| &bias[blk * nr..][..nr]);
                    for (t, a_tile) in a.chunks_exact(k * mr).enumerate() {
                        let tile_rows = mr.min(rows - t * mr);
                        let a_block = &a_tile[k0 * mr..][..depth * mr];
                        let c = &mut out_rows[t * mr * n + blk * nr..];
                        // SAFETY: the source was packed for `level`, which
                        // the CPU supports; `a_block` holds `depth · mr`
                        // packed activations, the panel slice `depth · nr`
                        // weights (checked above), the bias `nr` values, and
                        // `c` (from row `t · mr` of `rows`) spans
                        // `(tile_rows − 1) · n + cols` values.
                        unsafe { tile(a_block, tile_rows, panel, bias, c, n, cols) };
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = (0..m * k)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let w = (0..n * k)
            .map(|i| ((i * 104_729) % 89) as f32 / 89.0 - 0.5)
            .collect();
        let b = (0..n).map(|i| i as f32 * 0.01 - 0.2).collect();
        (x, w, b)
    }

    /// Checks `y` against an f64 reference, to 1e-4 of the magnitude of the
    /// terms summed.
    fn check(y: &[f32], x: &[f32], w: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) {
        assert_eq!(y.len(), m * n);
        for i in 0..m {
            for j in 0..n {
                let terms = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64);
                let want = b[j] as f64 + terms.clone().sum::<f64>();
                let scale = 1.0 + b[j].abs() as f64 + terms.map(f64::abs).sum::<f64>();
                let got = y[i * n + j] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * scale,
                    "({i}, {j}) of {m}x{k}x{n}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn packed_matmul_matches_plain_reference() {
        if !available() {
            eprintln!("SKIPPED: no f32 SIMD level on this CPU (or PLCC_SIMD=scalar)");
            return;
        }
        let (m, k, n) = (53, 37, 45);
        let (x, w, b) = inputs(m, k, n);
        let packed = PackedWeight::new(&w, Some(&b), n, k).unwrap();
        assert_eq!(Some(packed.level()), F32Level::detect());
        check(&packed.matmul(&x, m), &x, &w, &b, (m, k, n));
    }

    #[test]
    fn every_supported_level_matches_on_odd_shapes() {
        let levels = F32Level::supported();
        if levels.is_empty() {
            eprintln!("SKIPPED: no f32 SIMD level on this CPU");
        }
        let shapes = [
            (53, 37, 45),
            (1, 1, 1),
            (7, 384, 33),
            (6, 5, 16),
            (12, 3, 32),
            (13, 2, 17),
            (97, 64, 31),
            (25, 600, 40),
            (200, 300, 70),
        ];
        for level in levels {
            for (m, k, n) in shapes {
                let (x, w, b) = inputs(m, k, n);
                let packed = PackedWeight::with_level(&w, Some(&b), n, k, level).unwrap();
                assert_eq!(packed.level(), level);
                check(&packed.matmul(&x, m), &x, &w, &b, (m, k, n));
                let no_bias = PackedWeight::with_level(&w, None, n, k, level).unwrap();
                check(&no_bias.matmul(&x, m), &x, &w, &vec![0.0; n], (m, k, n));
            }
        }
    }

    #[test]
    fn levels_agree_bit_for_bit() {
        // Every level adds the products of an output in k order with one
        // fused multiply-add each, starting from the bias.
        let (m, k, n) = (30, 700, 50);
        let (x, w, b) = inputs(m, k, n);
        let outputs: Vec<Vec<f32>> = F32Level::supported()
            .into_iter()
            .map(|l| {
                PackedWeight::with_level(&w, Some(&b), n, k, l)
                    .unwrap()
                    .matmul(&x, m)
            })
            .collect();
        for pair in outputs.windows(2) {
            assert_eq!(pair[0], pair[1]);
        }
    }

    #[test]
    fn empty_dimensions_and_bad_lengths() {
        for level in F32Level::supported() {
            let packed = PackedWeight::with_level(&[], Some(&[1.0, 2.0]), 2, 0, level).unwrap();
            assert_eq!(packed.matmul(&[], 3), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
            assert!(packed.matmul(&[], 0).is_empty());
            let none = PackedWeight::with_level(&[], None, 0, 4, level).unwrap();
            assert!(none.matmul(&[0.0; 8], 2).is_empty());
            assert!(PackedWeight::with_level(&[0.0; 5], None, 2, 3, level).is_none());
            assert!(PackedWeight::with_level(&[0.0; 6], Some(&[0.0]), 2, 3, level).is_none());
        }
    }

    #[test]
    fn the_cap_limits_the_detected_level() {
        assert_eq!(F32Level::best_under(SimdCap::Scalar), None);
        let avx2 = F32Level::Avx2Fma
            .is_supported()
            .then_some(F32Level::Avx2Fma);
        assert_eq!(F32Level::best_under(SimdCap::Avx2), avx2);
        let native = F32Level::supported().last().copied();
        assert_eq!(F32Level::best_under(SimdCap::Native), native);
    }
}
