//! The statistics a unit's quantization parameters are computed from: sums
//! kept in fixed lanes (so they vectorize and do not depend on threads),
//! the mean and the largest magnitude.

/// Lanes of the sums over a unit: a sum kept in this many partial sums
/// (added in a fixed order at the end) vectorizes, where one running sum is
/// a chain of dependent additions. The order does not depend on threads.
const SUM_LANES: usize = 16;

/// The sum of `term(x)` over `v`, in [`SUM_LANES`] partial sums.
#[inline(always)]
pub fn lane_sum(v: &[f32], term: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; SUM_LANES];
    let mut chunks = v.chunks_exact(SUM_LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += term(x);
        }
    }
    for (lane, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += term(x);
    }
    lanes.iter().sum()
}

/// The mean magnitude of `v` (0 when empty).
pub fn mean_abs(v: &[f32]) -> f32 {
    if v.is_empty() {
        0.0
    } else {
        lane_sum(v, f32::abs) / v.len() as f32
    }
}

/// The largest magnitude of `v` (0 when empty).
pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}
