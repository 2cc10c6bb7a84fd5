//! AMX-INT8 micro-kernel: 16 rows × up to 48 columns on the AVX-512 VNNI
//! panels, `tdpbusd` on tiles of 16 rows × 64 k values (u8 activations
//! `q + 128`, s8 weights, exact i32 sums), the k values past the last whole
//! tile by the AVX-512 VNNI kernel; and whether this process may use the
//! tiles (the CPU has them, the OS saves them and grants them).
//!
//! Tiles: `tmm0` the activations, `tmm1..=3` one 16-column vector of the
//! panel each (16 groups of 4 k values, the panel's own layout read with
//! the panel's row stride), `tmm4..=6` their accumulators. Every tile is
//! 16 rows × 64 bytes; a thread loads that configuration once.

use std::arch::asm;
use std::arch::x86_64::__cpuid_count;
use std::cell::Cell;
use std::sync::OnceLock;

use super::avx512;
use crate::runtime::kernels::tile::TILE_MAX;

const ROWS: usize = 16;
const LANES: usize = 16;
const PANEL_COLS: usize = 48;
/// k groups of 4 in one tile row (64 bytes).
const TILE_STEPS: usize = 16;
/// Rows of the AVX-512 VNNI kernel that computes the k tail.
const VNNI_ROWS: usize = 8;

/// Whether AMX-TILE and AMX-INT8 kernels can run in this process: the CPU
/// has them, the OS saves their state, and (on Linux) it granted this
/// process the tile data (asked once).
pub(crate) fn tiles_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| cpu_has_amx_int8() && os_saves_tiles() && tile_data_granted())
}

fn cpu_has_amx_int8() -> bool {
    // CPUID.(EAX=7, ECX=0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
    let max_leaf = __cpuid_count(0, 0).eax;
    max_leaf >= 7 && {
        let edx = __cpuid_count(7, 0).edx;
        edx & (1 << 24) != 0 && edx & (1 << 25) != 0
    }
}

fn os_saves_tiles() -> bool {
    // CPUID.1:ECX bit 27: the OS enabled XSAVE (and so XGETBV).
    if __cpuid_count(1, 0).ecx & (1 << 27) == 0 {
        return false;
    }
    // SAFETY: XGETBV is available when OSXSAVE is set, checked above.
    let xcr0 = unsafe { xcr0() };
    // XCR0 bit 17 XTILECFG, bit 18 XTILEDATA.
    xcr0 & (0b11 << 17) == 0b11 << 17
}

#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    std::arch::x86_64::_xgetbv(0)
}

#[cfg(target_os = "linux")]
fn tile_data_granted() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes which xstate
    // features the process may use.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn tile_data_granted() -> bool {
    false
}

/// The tile configuration `ldtilecfg` reads (palette 1).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

/// Tiles 0 to 6: 16 rows of 64 bytes.
static CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0],
};

thread_local! {
    static CONFIGURED: Cell<bool> = const { Cell::new(false) };
}

/// Loads [`CONFIG`] on this thread unless it already did.
///
/// # Safety
/// [`tiles_usable`] must be true.
unsafe fn configure_thread() {
    CONFIGURED.with(|done| {
        if !done.get() {
            asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const TileConfig, options(nostack));
            done.set(true);
        }
    });
}

/// Computes the 16 × (16·`vectors`) tile into `acc[r · 48 + c]` (all 16
/// rows, or with no whole tile of k only the first `rows`).
///
/// # Safety
/// [`tiles_usable`] must be true and the CPU must support AVX-512 VNNI; `x`
/// must hold 16 rows of stride `lda` bytes with at least `4 · steps` bytes
/// each, and `panel` `steps · vectors · 64` bytes.
pub(crate) unsafe fn tile(
    (vectors, rows): (usize, usize),
    x: *const u8,
    lda: usize,
    panel: *const i8,
    steps: usize,
    acc: &mut [i32; TILE_MAX],
) {
    debug_assert!((1..=3).contains(&vectors) && rows <= ROWS);
    let step_bytes = vectors * LANES * 4;
    let whole = steps / TILE_STEPS;
    if whole > 0 {
        configure_thread();
        tile_steps(vectors, x, lda, panel, whole, step_bytes, acc.as_mut_ptr());
    }
    let done = whole * TILE_STEPS;
    if done == steps && whole > 0 {
        return;
    }
    let (x, panel) = (x.add(done * 4), panel.add(done * step_bytes));
    for first in (0..rows).step_by(VNNI_ROWS) {
        let part = (vectors, (rows - first).min(VNNI_ROWS));
        let acc = &mut acc[first * PANEL_COLS..];
        let x = x.add(first * lda);
        avx512::tile_into(part, x, lda, panel, steps - done, acc, whole > 0);
    }
}

/// The whole tiles of k: `tiles` times 16 groups of 4 k values, summed from
/// zero and stored to `acc` (row stride 48).
#[inline(always)]
unsafe fn tile_steps(
    vectors: usize,
    x: *const u8,
    lda: usize,
    panel: *const i8,
    tiles: usize,
    step_bytes: usize,
    acc: *mut i32,
) {
    asm!(
        "tilezero tmm4",
        "tilezero tmm5",
        "tilezero tmm6",
        options(nostack, nomem)
    );
    for t in 0..tiles {
        let a = x.add(t * TILE_STEPS * 4);
        let w = panel.add(t * TILE_STEPS * step_bytes);
        asm!(
            "tileloadd tmm0, [{a} + {lda} * 1]",
            "tileloadd tmm1, [{w} + {ws} * 1]",
            "tdpbusd tmm4, tmm0, tmm1",
            a = in(reg) a, lda = in(reg) lda, w = in(reg) w, ws = in(reg) step_bytes,
            options(nostack, readonly),
        );
        if vectors > 1 {
            asm!(
                "tileloadd tmm2, [{w} + {ws} * 1 + 64]",
                "tdpbusd tmm5, tmm0, tmm2",
                w = in(reg) w, ws = in(reg) step_bytes,
                options(nostack, readonly),
            );
        }
        if vectors > 2 {
            asm!(
                "tileloadd tmm3, [{w} + {ws} * 1 + 128]",
                "tdpbusd tmm6, tmm0, tmm3",
                w = in(reg) w, ws = in(reg) step_bytes,
                options(nostack, readonly),
            );
        }
    }
    let row_bytes = PANEL_COLS * 4;
    asm!(
        "tilestored [{c} + {cs} * 1], tmm4",
        "tilestored [{c} + {cs} * 1 + 64], tmm5",
        "tilestored [{c} + {cs} * 1 + 128], tmm6",
        c = in(reg) acc, cs = in(reg) row_bytes,
        options(nostack),
    );
}
