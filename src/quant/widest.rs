//! [`widest`]: a call compiled for AVX-512F where the CPU has it. The
//! quantizers' per-unit loops (sums, comparisons, `f32::round`) vectorize
//! only when the compiler may use the instructions, and the baseline
//! x86-64 target has no vector rounding; the values are the same either way.

/// `widest!(f(args))` calls `f` (an `#[inline(always)]` function) through a
/// copy compiled for AVX-512F when the CPU has it, else directly.
macro_rules! widest {
    ($f:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                unsafe { avx512(|| $f($($arg),*)) }
            } else {
                $f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($arg),*)
        }
    }};
}
pub(super) use widest;
