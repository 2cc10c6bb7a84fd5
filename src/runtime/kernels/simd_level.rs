//! The instruction sets the integer kernels run on ([`SimdLevel`]): which
//! ones this CPU has, which the `PLCC_SIMD` cap allows, the fastest for a
//! weight's magnitude, and the micro-tile each one computes.

use super::simd_override::simd_cap;
use super::tile::Tiling;

/// The instruction set a kernel runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimdLevel {
    Scalar,
    Avx2,
    /// AVX2 for weights within ±[`NARROW_MAX`] (4 bits and fewer): see
    /// Dispatch.
    Avx2Narrow,
    AvxVnni,
    Avx512Vnni,
    /// AMX-INT8 tiles (`tdpbusd`) on the AVX-512 VNNI layout: see Dispatch.
    Amx,
}

/// The largest weight magnitude [`SimdLevel::Avx2Narrow`] takes.
pub const NARROW_MAX: i16 = 8;

impl SimdLevel {
    /// Every level, slowest first.
    pub const ALL: [SimdLevel; 6] = [
        SimdLevel::Scalar,
        SimdLevel::Avx2,
        SimdLevel::Avx2Narrow,
        SimdLevel::AvxVnni,
        SimdLevel::Avx512Vnni,
        SimdLevel::Amx,
    ];

    /// The level in words.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "portable",
            SimdLevel::Avx2 => "AVX2",
            SimdLevel::Avx2Narrow => "AVX2 (weights within ±8)",
            SimdLevel::AvxVnni => "AVX-VNNI",
            SimdLevel::Avx512Vnni => "AVX-512 VNNI",
            SimdLevel::Amx => "AMX-INT8",
        }
    }

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        match self {
            SimdLevel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 | SimdLevel::Avx2Narrow => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::AvxVnni => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Amx => {
                SimdLevel::Avx512Vnni.is_available() && super::x86::amx::tiles_usable()
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Whether kernels pick the level: the CPU runs it and the `PLCC_SIMD`
    /// cap ([`SimdCap`](super::SimdCap)) allows it (`avx2` allows the AVX2
    /// levels only, `avx512` everything but `Amx`).
    pub fn is_enabled(self) -> bool {
        let cap = simd_cap();
        let allowed = match self {
            SimdLevel::Scalar => true,
            SimdLevel::Avx2 | SimdLevel::Avx2Narrow => cap.allows_avx2(),
            SimdLevel::AvxVnni | SimdLevel::Avx512Vnni => cap.allows_avx512(),
            SimdLevel::Amx => cap.allows_amx(),
        };
        allowed && self.is_available()
    }

    /// The levels this CPU can run, slowest first.
    pub fn available() -> Vec<SimdLevel> {
        Self::ALL.into_iter().filter(|l| l.is_available()).collect()
    }

    /// The fastest enabled level for weights of any magnitude.
    pub fn detect() -> SimdLevel {
        Self::ALL
            .into_iter()
            .rev()
            .filter(|&l| l != SimdLevel::Avx2Narrow)
            .find(|l| l.is_enabled())
            .unwrap_or(SimdLevel::Scalar)
    }

    /// The fastest enabled level for weights no larger than `max_abs` in
    /// magnitude: [`SimdLevel::Avx2Narrow`] instead of `Avx2` when they fit.
    pub fn detect_for(max_abs: i16) -> SimdLevel {
        match Self::detect() {
            SimdLevel::Avx2 if max_abs <= NARROW_MAX => SimdLevel::Avx2Narrow,
            level => level,
        }
    }

    /// How the level tiles the product: rows per micro-tile, columns per
    /// vector, vectors per panel, k values per multiply-accumulate group.
    pub(crate) fn tiling(self) -> Tiling {
        match self {
            SimdLevel::Scalar => Tiling {
                rows: 4,
                lanes: 16,
                vectors: 1,
                group: 1,
            },
            SimdLevel::Avx2 => Tiling {
                rows: 6,
                lanes: 8,
                vectors: 2,
                group: 2,
            },
            SimdLevel::Avx2Narrow | SimdLevel::AvxVnni => Tiling {
                rows: 6,
                lanes: 8,
                vectors: 2,
                group: 4,
            },
            SimdLevel::Avx512Vnni => Tiling {
                rows: 8,
                lanes: 16,
                vectors: 3,
                group: 4,
            },
            // The same panels as `Avx512Vnni`; one 16-row A tile.
            SimdLevel::Amx => Tiling {
                rows: 16,
                lanes: 16,
                vectors: 3,
                group: 4,
            },
        }
    }
}
