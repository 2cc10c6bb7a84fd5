//! Fake quantization: the values `dequantize(quantize(w))` holds, computed
//! without storing codes, for training's forward pass (weights, and
//! activations quantized per token). Units in parallel; each unit's loop is
//! compiled for the widest vector instructions the CPU has ([`widest`]), so
//! its comparisons and roundings vectorize.

use super::levels::{decode, encode, UnitParams};
use super::quantize::{Layout, QuantError, QuantSpec};
use super::widest::widest;
use crate::base::Bits;

/// The values `dequantize(quantize(w))` holds, without storing codes: the
/// forward pass of training's fake quantization. Rows in parallel.
pub fn fake_quantize(
    w: &[f32],
    rows: usize,
    cols: usize,
    spec: &QuantSpec,
) -> Result<Vec<f32>, QuantError> {
    use rayon::prelude::*;
    let layout = Layout::new(w.len(), rows, cols, spec)?;
    let params = layout.params(w, spec);
    let mut out = vec![0f32; w.len()];
    let ranges = layout.unit_ranges();
    let bits = spec.bits;
    let chunk = ranges
        .len()
        .div_ceil(4 * rayon::current_num_threads())
        .max(1);
    let mut rest: &mut [f32] = &mut out;
    let mut jobs = Vec::with_capacity(ranges.len());
    for (range, p) in ranges.iter().zip(&params) {
        let (unit_out, tail) = std::mem::take(&mut rest).split_at_mut(range.len());
        rest = tail;
        jobs.push((unit_out, &w[range.clone()], p));
    }
    jobs.par_chunks_mut(chunk).for_each(|units| {
        for (unit_out, unit_in, p) in units.iter_mut() {
            widest!(fake_unit(unit_out, unit_in, bits, layout.asymmetric, p));
        }
    });
    Ok(out)
}

/// `decode(encode(x))` of each weight of one unit, the match on the
/// quantizer hoisted out of the loop so that each arm's loop is specialised.
#[inline(always)]
fn fake_unit(out: &mut [f32], w: &[f32], bits: Bits, asymmetric: bool, p: &UnitParams) {
    macro_rules! each {
        ($bits:expr, $asym:expr) => {
            for (o, &x) in out.iter_mut().zip(w) {
                *o = decode(encode(x, $bits, $asym, p), $bits, $asym, p.scale, p.zero);
            }
        };
    }
    // Binary and ternary values written as selects (the same values as
    // `decode(encode(x))`), which vectorize.
    let (a, t) = (p.scale, p.threshold);
    match (bits, asymmetric) {
        (Bits::Binary, _) => {
            for (o, &x) in out.iter_mut().zip(w) {
                *o = if x >= 0.0 { a } else { -a };
            }
        }
        (Bits::Ternary, _) => {
            for (o, &x) in out.iter_mut().zip(w) {
                *o = if x > t {
                    a
                } else if x < -t {
                    -a
                } else {
                    0.0
                };
            }
        }
        (Bits::Int(2), false) => each!(Bits::Int(2), false),
        (Bits::Int(4), false) => each!(Bits::Int(4), false),
        (Bits::Int(8), false) => each!(Bits::Int(8), false),
        (Bits::Int(b), a) => each!(Bits::Int(b), a),
    }
}
