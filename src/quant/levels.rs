//! The levels of each quantizer: the code a weight gets in its unit
//! (`encode`) and the value a code stands for (`decode`), given the unit's
//! parameters (α is the scale, z the zero point):
//! - binary: code 1 → +α, code 0 → −α.
//! - ternary: code c ∈ {0, 1, 2} → (c − 1)·α; |w| above the threshold Δ
//!   takes ±α.
//! - symmetric 4/8-bit: q ∈ [−(2^(b−1)−1), 2^(b−1)−1], code = q + 2^(b−1),
//!   value = q·α/(2^(b−1)−1) — zero is exact, which integer kernels need.
//! - symmetric 2-bit: four levels {−3, −1, 1, 3}·α/3 (mid-rise).
//! - asymmetric b-bit: value = (code − z)·s.
//!
//! How a unit's parameters are chosen is `quantize::unit_params`'s matter.

use super::unit_stats::lane_sum;
use crate::base::Bits;

/// The parameters of one quantization unit: its scale (α for symmetric,
/// binary and ternary quantizers, the step for asymmetric ones), its zero
/// point (asymmetric only) and its ternary threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitParams {
    pub scale: f32,
    pub zero: f32,
    pub threshold: f32,
}

impl UnitParams {
    /// Ternary with threshold `delta`: the weights above it take ±α, α
    /// their mean magnitude (the least-squares scale of that support).
    pub fn ternary_above(m: &[f32], delta: f32) -> UnitParams {
        let n = m.iter().filter(|x| x.abs() > delta).count();
        let sum = lane_sum(m, |x| if x.abs() > delta { x.abs() } else { 0.0 });
        UnitParams {
            scale: if n == 0 { 0.0 } else { sum / n as f32 },
            zero: 0.0,
            threshold: delta,
        }
    }

    /// The step and zero point of an asymmetric `bits`-bit unit spanning
    /// `[lo, hi]` (with zero in it).
    pub fn spanning(lo: f32, hi: f32, bits: u8) -> UnitParams {
        let step = (hi - lo) / ((1u32 << bits) - 1) as f32;
        UnitParams {
            scale: step,
            zero: if step > 0.0 {
                (-lo / step).round()
            } else {
                0.0
            },
            threshold: 0.0,
        }
    }
}

/// The code of weight `x` in a unit with parameters `p`.
#[inline(always)]
pub fn encode(x: f32, bits: Bits, asymmetric: bool, p: &UnitParams) -> u8 {
    let a = p.scale;
    match bits {
        Bits::Binary => u8::from(x >= 0.0),
        // Ternary codes: value = (code - 1)·α, so 2 = +α and 0 = -α.
        Bits::Ternary => {
            if x > p.threshold {
                2
            } else if x < -p.threshold {
                0
            } else {
                1
            }
        }
        Bits::Int(b) if asymmetric => {
            let levels = ((1u32 << b) - 1) as f32;
            if a > 0.0 {
                ((x / a).round() + p.zero).clamp(0.0, levels) as u8
            } else {
                p.zero.clamp(0.0, levels) as u8
            }
        }
        Bits::Int(2) => {
            // Mid-rise levels {-3, -1, 1, 3}·α/3 → codes 0..4.
            if a > 0.0 {
                // Level k sits at t = k; decision boundaries at k + 0.5.
                let t = (x / a).clamp(-1.0, 1.0) * 1.5 + 1.5;
                t.round() as u8
            } else {
                2
            }
        }
        Bits::Int(b) => {
            let qmax = ((1i32 << (b - 1)) - 1) as f32;
            let q = if a > 0.0 {
                (x / a * qmax).round().clamp(-qmax, qmax)
            } else {
                0.0
            };
            (q as i32 + (1i32 << (b - 1))) as u8
        }
    }
}

/// The value `code` stands for in a unit of scale `scale` and zero point `zero`.
#[inline(always)]
pub fn decode(code: u8, bits: Bits, asymmetric: bool, scale: f32, zero: f32) -> f32 {
    let a = scale;
    match bits {
        Bits::Binary => {
            if code == 1 {
                a
            } else {
                -a
            }
        }
        Bits::Ternary => (code as f32 - 1.0) * a,
        Bits::Int(_) if asymmetric => (code as f32 - zero) * a,
        Bits::Int(2) => (2.0 * code as f32 - 3.0) * a / 3.0,
        Bits::Int(b) => {
            let qmax = ((1i32 << (b - 1)) - 1) as f32;
            (code as i32 - (1i32 << (b - 1))) as f32 * a / qmax
        }
    }
}
