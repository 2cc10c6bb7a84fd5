//! The per-token int8 quantization rule every activation quantizer (the
//! portable one, the AVX2 and AVX-512 ones, the training's fake
//! quantization) reproduces: a row's scale from its largest magnitude, and
//! each value rounded to nearest even and clamped to ±127.

/// The scale of a row with largest magnitude `max`, and its inverse (both
/// zero for an all-zero or non-finite row).
#[inline(always)]
pub(super) fn scale_and_inverse(max: f32) -> (f32, f32) {
    if max > 0.0 && max.is_finite() {
        (max / 127.0, 127.0 / max)
    } else {
        (0.0, 0.0)
    }
}

/// The largest magnitude among `values`, NaN ignored (0 for none).
#[inline(always)]
pub(super) fn max_magnitude(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// `q` of one value given its row's inverse scale: rounded to nearest even
/// and clamped to ±127 (a NaN product gives 0).
#[inline(always)]
pub(super) fn quantize_value(v: f32, inv: f32) -> i8 {
    (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8
}
