//! Branch-free f32 `exp` and `tanh` that vectorize inside the inference
//! kernels (libm's are scalar calls): Cody–Waite range reduction to
//! `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, Cephes' degree-6 polynomial for `eʳ`,
//! and `2ⁿ` built in the exponent bits. Relative error of `exp` below 2e-7.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in a part exact in f32 and the rest.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `eˣ`, clamped to the normal range (`x < -87.3` gives about 1.2e-38
/// instead of a subnormal or 0, `x > 88.3` about 2e38 instead of infinity).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // n is an integer in [−126, 128]; adding 1.5·2²³ puts it in the low
    // mantissa bits, read back with integer operations that vectorize (a
    // saturating `as i32` does not).
    let n = ((n + ROUND_MAGIC).to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    er * f32::from_bits(((n + 127) << 23) as u32)
}

/// 1.5·2²³: `x + ROUND_MAGIC` holds an integer-valued `x` (|x| < 2²²) in its
/// low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `tanh x = 1 − 2 / (e²ˣ + 1)`; absolute error below 3e-7.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_in_relative_error() {
        let worst = (-87_000..=88_000)
            .map(|i| i as f32 * 1e-3)
            .map(|x| ((exp(x) - x.exp()) / x.exp()).abs())
            .fold(0f32, f32::max);
        assert!(worst < 2e-7, "max relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e30) > 0.0 && exp(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn tanh_matches_libm_in_absolute_error() {
        let worst = (-20_000..=20_000)
            .map(|i| i as f32 * 1e-3)
            .map(|x| (tanh(x) - x.tanh()).abs())
            .fold(0f32, f32::max);
        assert!(worst < 3e-7, "max absolute error {worst}");
        assert_eq!((tanh(50.0), tanh(-50.0)), (1.0, -1.0));
    }
}
