//! Quantization of a `[rows, cols]` f32 matrix to integer codes and scales, and
//! the exact inverse mapping (`dequantize`).
//!
//! The levels are `levels.rs`'s. Each unit's parameters come from the scale
//! method:
//! - binary: α = mean |w| (sign × mean-abs).
//! - ternary: with mean-abs scaling the threshold is Δ = 0.7·mean |w| and α
//!   the mean of the |w| above it (TWN, XTC); with a max or learned scale,
//!   Δ = α/2.
//! - symmetric integers: the clipping value α is `max` = max |w|, `mean_abs`
//!   = min(max |w|, 3·mean |w|) or `learned` = given; asymmetric ones span
//!   [min, max] of the unit (with zero in it).
//! - `mse`, any of them: the least-squares choice (`clip_search.rs`).

use super::clip_search::least_squares_params;
use super::levels::{decode, encode, UnitParams};
use super::unit_stats::{max_abs, mean_abs};
use super::widest::widest;
use crate::base::{Bits, Granularity, ScaleMethod};

/// What to quantize to.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantSpec {
    pub bits: Bits,
    pub symmetric: bool,
    pub granularity: Granularity,
    pub scale: ScaleMethod,
    /// Learned clipping values, one per unit (tensor, row or group), required
    /// when `scale` is `Learned`.
    pub learned: Option<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QuantError {
    /// `Granularity::Token` applies to activations only.
    TokenGranularityOnWeights,
    BadGroupSize(usize),
    /// Learned scales missing or of the wrong count.
    LearnedScales {
        expected: usize,
        found: usize,
    },
    UnsupportedBits(u8),
    ShapeMismatch {
        rows: usize,
        cols: usize,
        len: usize,
    },
}

impl std::fmt::Display for QuantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuantError::TokenGranularityOnWeights => {
                write!(f, "per-token granularity applies to activations only")
            }
            QuantError::BadGroupSize(n) => write!(f, "group size {n} must be at least 1"),
            QuantError::LearnedScales { expected, found } => {
                write!(f, "expected {expected} learned scales, found {found}")
            }
            QuantError::UnsupportedBits(b) => {
                write!(f, "{b}-bit weights are not supported (1, ternary, 2, 4, 8)")
            }
            QuantError::ShapeMismatch { rows, cols, len } => {
                write!(f, "{len} values do not form a {rows}x{cols} matrix")
            }
        }
    }
}

impl std::error::Error for QuantError {}

/// A quantized matrix: one unsigned code per weight (unpacked) plus per-unit
/// scales. Pack `codes` with [`super::pack_rows`] at `storage_bits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub bits: Bits,
    pub symmetric: bool,
    pub rows: usize,
    pub cols: usize,
    /// Weights per unit along a row (`cols` for row granularity, the group size
    /// for groups, `rows * cols` for a whole tensor).
    pub unit_len: usize,
    pub codes: Vec<u8>,
    pub scales: Vec<f32>,
    /// Asymmetric quantizers only.
    pub zero_points: Option<Vec<f32>>,
}

impl Quantized {
    pub fn storage_bits(&self) -> u32 {
        self.bits.storage_bits()
    }

    /// Index of the unit that weight `(r, c)` belongs to.
    fn unit_of(&self, r: usize, c: usize) -> usize {
        unit_index(self.rows, self.cols, self.unit_len, r, c)
    }

    /// The value `code` stands for at `(r, c)` (its unit's scale and zero
    /// point); `codes` need not be present.
    pub fn value_of(&self, code: u8, r: usize, c: usize) -> f32 {
        code_value(self, code, self.unit_of(r, c))
    }
}

fn unit_index(rows: usize, cols: usize, unit_len: usize, r: usize, c: usize) -> usize {
    if unit_len == rows * cols {
        0
    } else {
        r * cols.div_ceil(unit_len) + c / unit_len
    }
}

/// The unit length along a row and the number of units.
fn units(rows: usize, cols: usize, granularity: Granularity) -> Result<(usize, usize), QuantError> {
    match granularity {
        Granularity::Tensor => Ok(((rows * cols).max(1), 1)),
        Granularity::Row => Ok((cols.max(1), rows)),
        Granularity::Group(0) => Err(QuantError::BadGroupSize(0)),
        Granularity::Group(n) => Ok((n, rows * cols.div_ceil(n))),
        Granularity::Token => Err(QuantError::TokenGranularityOnWeights),
    }
}

/// How a spec lays out a `rows × cols` matrix, checked: the unit length along
/// a row, the number of units, and whether the quantizer is asymmetric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub rows: usize,
    pub cols: usize,
    pub unit_len: usize,
    pub units: usize,
    pub asymmetric: bool,
}

impl Layout {
    /// Checks `spec` against a matrix of `len` values.
    pub fn new(len: usize, rows: usize, cols: usize, spec: &QuantSpec) -> Result<Self, QuantError> {
        if len != rows * cols {
            return Err(QuantError::ShapeMismatch { rows, cols, len });
        }
        if let Bits::Int(b) = spec.bits {
            if !matches!(b, 2 | 4 | 8) {
                return Err(QuantError::UnsupportedBits(b));
            }
        }
        let (unit_len, units) = units(rows, cols, spec.granularity)?;
        if spec.scale == ScaleMethod::Learned {
            let found = spec.learned.as_deref().map_or(0, <[f32]>::len);
            if found != units {
                return Err(QuantError::LearnedScales {
                    expected: units,
                    found,
                });
            }
        }
        let binary_or_ternary = matches!(spec.bits, Bits::Binary | Bits::Ternary);
        Ok(Layout {
            rows,
            cols,
            unit_len,
            units,
            asymmetric: !spec.symmetric && !binary_or_ternary,
        })
    }

    /// Index of the unit that weight `(r, c)` belongs to.
    pub fn unit_of(&self, r: usize, c: usize) -> usize {
        unit_index(self.rows, self.cols, self.unit_len, r, c)
    }

    /// Where each unit's weights lie in the row-major matrix, in unit
    /// order: a unit is always one contiguous run (the whole matrix, a row,
    /// or a group within a row; a row's last group may be shorter).
    pub fn unit_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let len = self.rows * self.cols;
        if self.units == 1 {
            return vec![0..len];
        }
        let per_row = self.cols.div_ceil(self.unit_len);
        (0..self.rows)
            .flat_map(|r| {
                (0..per_row).map(move |g| {
                    let start = r * self.cols + g * self.unit_len;
                    start..(start + self.unit_len).min((r + 1) * self.cols)
                })
            })
            .collect()
    }

    /// The parameters of every unit of `w` (`rows × cols`, row-major),
    /// units in parallel.
    pub fn params(&self, w: &[f32], spec: &QuantSpec) -> Vec<UnitParams> {
        use rayon::prelude::*;
        self.unit_ranges()
            .into_par_iter()
            .enumerate()
            .map(|(u, range)| unit_params(&w[range], u, spec, self))
            .collect()
    }

    /// The quantized matrix of `codes` and per-unit `params`.
    pub fn assemble(&self, spec: &QuantSpec, codes: Vec<u8>, params: &[UnitParams]) -> Quantized {
        Quantized {
            bits: spec.bits,
            symmetric: !self.asymmetric,
            rows: self.rows,
            cols: self.cols,
            unit_len: self.unit_len,
            codes,
            scales: params.iter().map(|p| p.scale).collect(),
            zero_points: self
                .asymmetric
                .then(|| params.iter().map(|p| p.zero).collect()),
        }
    }
}

/// The parameters of unit `unit` whose weights are `m`, as `spec` says.
/// Group scales and zero points are rounded to F16, as they are stored.
pub fn unit_params(m: &[f32], unit: usize, spec: &QuantSpec, layout: &Layout) -> UnitParams {
    let p = widest!(unit_params_exact(m, unit, spec, layout));
    if let Granularity::Group(_) = spec.granularity {
        let half = |x: f32| half::f16::from_f32(x).to_f32();
        return UnitParams {
            scale: half(p.scale),
            zero: half(p.zero),
            threshold: p.threshold,
        };
    }
    p
}

#[inline(always)]
fn unit_params_exact(m: &[f32], unit: usize, spec: &QuantSpec, layout: &Layout) -> UnitParams {
    if spec.scale == ScaleMethod::Mse {
        return least_squares_params(m, spec.bits, layout.asymmetric);
    }
    let binary_or_ternary = matches!(spec.bits, Bits::Binary | Bits::Ternary);
    let learned = spec
        .learned
        .as_deref()
        .filter(|_| spec.scale == ScaleMethod::Learned)
        .map(|l| l[unit].abs());
    let clip = match (spec.scale, learned) {
        (_, Some(l)) => l,
        (ScaleMethod::MeanAbs, _) if binary_or_ternary => mean_abs(m),
        (ScaleMethod::MeanAbs, _) => max_abs(m).min(3.0 * mean_abs(m)),
        // `Learned` without values is rejected by `Layout::new`.
        (ScaleMethod::Max | ScaleMethod::Learned | ScaleMethod::Mse, _) => max_abs(m),
    };
    let plain = |scale| UnitParams {
        scale,
        zero: 0.0,
        threshold: 0.0,
    };
    match spec.bits {
        Bits::Ternary if spec.scale == ScaleMethod::MeanAbs && learned.is_none() => {
            UnitParams::ternary_above(m, 0.7 * clip)
        }
        Bits::Ternary => UnitParams {
            scale: clip,
            zero: 0.0,
            threshold: clip / 2.0,
        },
        Bits::Int(b) if layout.asymmetric => {
            let (lo, hi) = if learned.is_some() {
                (-clip, clip)
            } else {
                let lo = m.iter().cloned().fold(f32::INFINITY, f32::min).min(0.0);
                let hi = m.iter().cloned().fold(f32::NEG_INFINITY, f32::max).max(0.0);
                (lo, hi)
            };
            UnitParams::spanning(lo, hi, b)
        }
        Bits::Binary | Bits::Int(_) => plain(clip),
    }
}

/// Quantizes `w` (`rows × cols`, row-major) to the nearest level of each
/// unit (round to nearest).
pub fn quantize(
    w: &[f32],
    rows: usize,
    cols: usize,
    spec: &QuantSpec,
) -> Result<Quantized, QuantError> {
    let layout = Layout::new(w.len(), rows, cols, spec)?;
    let params = layout.params(w, spec);
    let mut codes = Vec::with_capacity(w.len());
    for r in 0..rows {
        for c in 0..cols {
            let p = &params[layout.unit_of(r, c)];
            codes.push(encode(w[r * cols + c], spec.bits, layout.asymmetric, p));
        }
    }
    Ok(layout.assemble(spec, codes, &params))
}

/// The value a code stands for.
fn code_value(q: &Quantized, code: u8, unit: usize) -> f32 {
    let zero = q.zero_points.as_ref().map_or(0.0, |z| z[unit]);
    decode(code, q.bits, !q.symmetric, q.scales[unit], zero)
}

/// The f32 matrix a quantized matrix stands for.
pub fn dequantize(q: &Quantized) -> Vec<f32> {
    let mut out = Vec::with_capacity(q.rows * q.cols);
    for r in 0..q.rows {
        for c in 0..q.cols {
            out.push(q.value_of(q.codes[r * q.cols + c], r, c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::fake_quantize;

    #[test]
    fn fake_quantization_equals_quantize_then_dequantize() {
        let (rows, cols) = (7, 45);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 13) as f32))
            .collect();
        for bits in [
            Bits::Binary,
            Bits::Ternary,
            Bits::Int(2),
            Bits::Int(4),
            Bits::Int(8),
        ] {
            for granularity in [
                Granularity::Tensor,
                Granularity::Row,
                Granularity::Group(16),
            ] {
                for symmetric in [true, false] {
                    for scale in [ScaleMethod::Max, ScaleMethod::MeanAbs] {
                        let s = spec(bits, symmetric, granularity, scale);
                        let q = quantize(&w, rows, cols, &s).unwrap();
                        let fake = fake_quantize(&w, rows, cols, &s).unwrap();
                        assert_eq!(fake, dequantize(&q), "{bits:?} {granularity:?} {symmetric}");
                    }
                }
            }
        }
    }

    fn spec(
        bits: Bits,
        symmetric: bool,
        granularity: Granularity,
        scale: ScaleMethod,
    ) -> QuantSpec {
        QuantSpec {
            bits,
            symmetric,
            granularity,
            scale,
            learned: None,
        }
    }

    fn sample(n: usize) -> Vec<f32> {
        let mut s = 12345u64;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect()
    }

    #[test]
    fn ternary_follows_twn_rule() {
        let w = [0.9f32, -0.1, 0.05, -0.8, 0.4, 0.0];
        let q = quantize(
            &w,
            1,
            6,
            &spec(Bits::Ternary, true, Granularity::Row, ScaleMethod::MeanAbs),
        )
        .unwrap();
        let mean = w.iter().map(|x| x.abs()).sum::<f32>() / 6.0; // 0.375
        let delta = 0.7 * mean; // 0.2625
        let kept = [0.9f32, 0.8, 0.4];
        let alpha = kept.iter().sum::<f32>() / 3.0;
        assert!((q.scales[0] - alpha).abs() < 1e-6);
        assert!(delta > 0.1 && delta < 0.4);
        assert_eq!(q.codes, vec![2, 1, 1, 0, 2, 1]);
        let d = dequantize(&q);
        assert_eq!(d, vec![alpha, 0.0, 0.0, -alpha, alpha, 0.0]);
    }

    #[test]
    fn binary_is_sign_times_mean_abs() {
        let w = [0.5f32, -0.25, 0.25, -1.0];
        let q = quantize(
            &w,
            2,
            2,
            &spec(Bits::Binary, true, Granularity::Row, ScaleMethod::MeanAbs),
        )
        .unwrap();
        assert_eq!(dequantize(&q), vec![0.375, -0.375, 0.625, -0.625]);
    }

    #[test]
    fn symmetric_int8_error_is_within_half_a_step() {
        let w = sample(7 * 45);
        let q = quantize(
            &w,
            7,
            45,
            &spec(Bits::Int(8), true, Granularity::Row, ScaleMethod::Max),
        )
        .unwrap();
        let d = dequantize(&q);
        for r in 0..7 {
            let step = q.scales[r] / 127.0;
            for c in 0..45 {
                assert!((d[r * 45 + c] - w[r * 45 + c]).abs() <= step / 2.0 + 1e-7);
            }
        }
        // zero is exact
        let z = quantize(
            &[0.0, 1.0],
            1,
            2,
            &spec(Bits::Int(8), true, Granularity::Row, ScaleMethod::Max),
        )
        .unwrap();
        assert_eq!(dequantize(&z)[0], 0.0);
    }

    #[test]
    fn asymmetric_int4_groups_cover_their_range() {
        let w = sample(3 * 20);
        let q = quantize(
            &w,
            3,
            20,
            &spec(Bits::Int(4), false, Granularity::Group(8), ScaleMethod::Max),
        )
        .unwrap();
        assert_eq!(q.scales.len(), 3 * 3);
        assert!(q.codes.iter().all(|&c| c < 16));
        let d = dequantize(&q);
        for (i, (a, b)) in d.iter().zip(&w).enumerate() {
            let unit = (i / 20) * 3 + (i % 20) / 8;
            assert!((a - b).abs() <= q.scales[unit] / 2.0 + 1e-6, "weight {i}");
        }
    }

    #[test]
    fn two_bit_uses_four_levels_and_learned_clip() {
        let w = [-1.0f32, -0.2, 0.2, 1.0, 5.0];
        let mut s = spec(
            Bits::Int(2),
            true,
            Granularity::Tensor,
            ScaleMethod::Learned,
        );
        s.learned = Some(vec![0.9]);
        let q = quantize(&w, 1, 5, &s).unwrap();
        assert_eq!(q.codes, vec![0, 1, 2, 3, 3]);
        let d = dequantize(&q);
        assert!(
            (d[0] + 0.9).abs() < 1e-6 && (d[1] + 0.3).abs() < 1e-6 && (d[4] - 0.9).abs() < 1e-6
        );
    }

    #[test]
    fn bad_requests_are_errors() {
        let w = [1.0f32; 4];
        assert_eq!(
            quantize(
                &w,
                2,
                2,
                &spec(Bits::Int(8), true, Granularity::Token, ScaleMethod::Max)
            ),
            Err(QuantError::TokenGranularityOnWeights)
        );
        assert_eq!(
            quantize(
                &w,
                2,
                2,
                &spec(Bits::Int(3), true, Granularity::Row, ScaleMethod::Max)
            ),
            Err(QuantError::UnsupportedBits(3))
        );
        assert!(matches!(
            quantize(
                &w,
                2,
                2,
                &spec(Bits::Int(4), true, Granularity::Row, ScaleMethod::Learned)
            ),
            Err(QuantError::LearnedScales {
                expected: 2,
                found: 0
            })
        ));
        assert!(matches!(
            quantize(
                &w,
                3,
                2,
                &spec(Bits::Binary, true, Granularity::Row, ScaleMethod::Max)
            ),
            Err(QuantError::ShapeMismatch { .. })
        ));
    }
}
