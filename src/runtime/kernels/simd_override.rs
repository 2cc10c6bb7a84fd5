//! The `PLCC_SIMD` environment variable: a cap on the instruction sets the
//! CPU kernels pick at run time, for testing the slower paths on a fast CPU
//! and for working around a kernel on a given machine.
//!
//! | `PLCC_SIMD`                | [`SimdCap`]         | kernels                                  |
//! |----------------------------|---------------------|------------------------------------------|
//! | unset, empty or `native`   | [`SimdCap::Native`] | the best set the CPU supports            |
//! | `avx512`                   | [`SimdCap::Avx512`] | AVX-512 and AVX-VNNI, no AMX tiles: what an AMD Zen 4 or an Ice Lake Xeon runs |
//! | `avx2`                     | [`SimdCap::Avx2`]   | AVX2 and FMA only (no AVX-VNNI, no AVX-512): what an AMD Zen 2/3 runs, even on a newer CPU |
//! | `scalar`                   | [`SimdCap::Scalar`] | no SIMD (portable code, or candle's f32) |
//!
//! Values are matched ignoring case and surrounding spaces; any other value
//! is reported once on stderr and treated as `native`. The variable is read
//! once, on the first call to [`simd_cap`], and holds for the process.
//! A cap never raises a level above what the CPU detects, and constructors
//! that take an explicit level ignore it.

use std::sync::OnceLock;

/// The highest instruction-set family the kernels may use, ordered
/// `Scalar < Avx2 < Avx512 < Native`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdCap {
    /// No SIMD kernels.
    Scalar,
    /// AVX2 and FMA kernels at most (not AVX-VNNI nor AVX-512).
    Avx2,
    /// AVX-512 and AVX-VNNI kernels at most (not AMX).
    Avx512,
    /// No cap: whatever the CPU supports.
    Native,
}

impl SimdCap {
    /// The name of the environment variable.
    pub const VAR: &'static str = "PLCC_SIMD";

    /// The cap a value of `PLCC_SIMD` asks for, or `None` for an unknown
    /// value. An unset variable is `Native`.
    pub fn parse(value: Option<&str>) -> Option<SimdCap> {
        let Some(value) = value else {
            return Some(SimdCap::Native);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "native" => Some(SimdCap::Native),
            "avx512" => Some(SimdCap::Avx512),
            "avx2" => Some(SimdCap::Avx2),
            "scalar" => Some(SimdCap::Scalar),
            _ => None,
        }
    }

    /// Whether AMX tile kernels may run.
    pub fn allows_amx(self) -> bool {
        self >= SimdCap::Native
    }

    /// Whether 512-bit (AVX-512) kernels may run.
    pub fn allows_avx512(self) -> bool {
        self >= SimdCap::Avx512
    }

    /// Whether 256-bit (AVX2-family) kernels may run.
    pub fn allows_avx2(self) -> bool {
        self >= SimdCap::Avx2
    }
}

/// The cap from `PLCC_SIMD`, read on the first call.
pub fn simd_cap() -> SimdCap {
    static CAP: OnceLock<SimdCap> = OnceLock::new();
    *CAP.get_or_init(|| {
        let value = std::env::var(SimdCap::VAR).ok();
        SimdCap::parse(value.as_deref()).unwrap_or_else(|| {
            eprintln!(
                "{}={:?} is not one of native, avx512, avx2, scalar; using native",
                SimdCap::VAR,
                value.unwrap_or_default()
            );
            SimdCap::Native
        })
    })
}

/// Whether AVX-512F kernels may run: the CPU has it and the cap allows it.
pub fn avx512f_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        simd_cap().allows_avx512() && is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether AVX2 + FMA kernels may run: the CPU has them and the cap allows.
pub fn avx2_fma_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        simd_cap().allows_avx2()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `fn $name(args)` that runs its body compiled for AVX-512F, or
/// for AVX2 + FMA, where the CPU has them and the cap allows, else as
/// portable code: the element loops of the body vectorize at the widest
/// width the machine may use.
macro_rules! widest_simd {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if $crate::runtime::kernels::simd_override::avx512f_enabled() {
                    // SAFETY: the CPU has the features `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::runtime::kernels::simd_override::avx2_fma_enabled() {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(super) use widest_simd;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_values() {
        assert_eq!(SimdCap::parse(None), Some(SimdCap::Native));
        assert_eq!(SimdCap::parse(Some("")), Some(SimdCap::Native));
        assert_eq!(SimdCap::parse(Some("Native")), Some(SimdCap::Native));
        assert_eq!(SimdCap::parse(Some(" AVX2 ")), Some(SimdCap::Avx2));
        assert_eq!(SimdCap::parse(Some("avx512")), Some(SimdCap::Avx512));
        assert_eq!(SimdCap::parse(Some("scalar")), Some(SimdCap::Scalar));
        assert_eq!(SimdCap::parse(Some("sse2")), None);
    }

    #[test]
    fn caps_are_ordered() {
        assert!(SimdCap::Native.allows_amx() && SimdCap::Native.allows_avx512());
        assert!(!SimdCap::Avx512.allows_amx() && SimdCap::Avx512.allows_avx512());
        assert!(SimdCap::Avx512.allows_avx2() && SimdCap::Native.allows_avx2());
        assert!(!SimdCap::Avx2.allows_avx512() && SimdCap::Avx2.allows_avx2());
        assert!(!SimdCap::Scalar.allows_avx512() && !SimdCap::Scalar.allows_avx2());
    }
}
