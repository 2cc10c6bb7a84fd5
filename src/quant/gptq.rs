//! GPTQ (Frantar et al., 2022): data-aware rounding of a weight matrix.
//!
//! For a linear layer `y = W x` with calibration inputs `X` (one row per
//! token), GPTQ minimises `‖W Xᵀ − Q Xᵀ‖²` one input column at a time: after
//! column `j` of every row is rounded, its error is spread over the columns
//! not yet rounded through the inverse Hessian `H⁻¹`, `H = 2 XᵀX` (damped by
//! a fraction of its mean diagonal). With `U` the upper Cholesky factor of
//! `H⁻¹`, row `r` is processed as
//!
//! ```text
//! for j in columns:  q = Q(w[j]);  e = (w[j] − q) / U[j][j];
//!                    w[k] −= e · U[j][k]  for every later column k
//! ```
//!
//! The rows share `U` and nothing else, so they run in parallel. Columns go
//! in their natural order, or by decreasing Hessian diagonal with
//! `act_order` (the columns that matter most are rounded first, while the
//! most freedom is left to compensate them).
//!
//! The codes and scales are those of plcc's round-to-nearest quantizer
//! (`quantize::encode`, `unit_params`), so every bit width and granularity
//! packs and runs as before. Tensor and row scales are chosen from the
//! original weights; group scales from the weights as they are when the
//! group's first column is reached (the error-compensated values), except
//! with `act_order`, where a group's columns are visited out of order and its
//! scale is chosen from the original weights.
//!
//! Columns that no calibration token uses (zero Hessian diagonal) carry no
//! signal: their weights are rounded to zero.

use rayon::prelude::*;

use super::levels::{decode, encode, UnitParams};
use super::quantize::{unit_params, Layout, QuantError, QuantSpec};
use super::Quantized;
use crate::base::Granularity;
use crate::linalg::inverse_upper_factor;

/// How GPTQ runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GptqOptions {
    /// Added to the Hessian's diagonal, as a fraction of its mean.
    pub damp: f64,
    /// Visit columns by decreasing Hessian diagonal.
    pub act_order: bool,
}

/// Why GPTQ could not run.
#[derive(Debug, Clone, PartialEq)]
pub enum GptqError {
    Quant(QuantError),
    /// The Hessian is not `cols × cols`.
    HessianShape {
        cols: usize,
        len: usize,
    },
    /// No calibration token reached the layer (an all-zero Hessian).
    NoData,
    /// The damped Hessian stayed indefinite even with ten times the damping.
    Indefinite {
        damp: f64,
    },
}

impl std::fmt::Display for GptqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GptqError::Quant(e) => write!(f, "{e}"),
            GptqError::HessianShape { cols, len } => {
                write!(
                    f,
                    "a {cols}-column weight needs a {cols}×{cols} Hessian, got {len} values"
                )
            }
            GptqError::NoData => write!(f, "no calibration token reached the layer"),
            GptqError::Indefinite { damp } => write!(
                f,
                "the layer's Hessian is not positive definite even with {:.0}% damping",
                damp * 100.0
            ),
        }
    }
}

impl std::error::Error for GptqError {}

impl From<QuantError> for GptqError {
    fn from(e: QuantError) -> Self {
        GptqError::Quant(e)
    }
}

/// Quantizes `w` (`rows × cols`, row-major, `[out, in]`) with GPTQ, given
/// `gram = XᵀX` (`cols × cols`, row-major) of the layer's calibration inputs.
pub fn gptq(
    w: &[f32],
    rows: usize,
    cols: usize,
    gram: &[f64],
    spec: &QuantSpec,
    opts: GptqOptions,
) -> Result<Quantized, GptqError> {
    let layout = Layout::new(w.len(), rows, cols, spec)?;
    if gram.len() != cols * cols {
        return Err(GptqError::HessianShape {
            cols,
            len: gram.len(),
        });
    }
    let mut h = gram.to_vec();
    let diag: Vec<f64> = (0..cols).map(|i| h[i * cols + i]).collect();
    if diag.iter().all(|&d| d <= 0.0) {
        return Err(GptqError::NoData);
    }
    let dead: Vec<bool> = diag.iter().map(|&d| d <= 0.0).collect();
    for (i, _) in dead.iter().enumerate().filter(|(_, &d)| d) {
        h[i * cols + i] = 1.0;
    }
    let order: Vec<usize> = if opts.act_order {
        let mut o: Vec<usize> = (0..cols).collect();
        o.sort_by(|&a, &b| diag[b].total_cmp(&diag[a]).then(a.cmp(&b)));
        o
    } else {
        (0..cols).collect()
    };
    let permuted: Vec<f64> = (0..cols * cols)
        .map(|x| h[order[x / cols] * cols + order[x % cols]])
        .collect();
    let u = damped_factor(&permuted, cols, opts.damp)?;

    // Weights with unused columns zeroed, then the fixed unit parameters.
    let w: Vec<f32> = w
        .iter()
        .enumerate()
        .map(|(i, &x)| if dead[i % cols] { 0.0 } else { x })
        .collect();
    let lazy_groups = matches!(spec.granularity, Granularity::Group(_)) && !opts.act_order;
    // Lazy groups overwrite these with the values they reach.
    let mut params = layout.params(&w, spec);

    // Each row independently: its codes and, for lazy groups, its units'
    // parameters.
    let per_row: Vec<RowResult> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let mut row: Vec<f64> = order.iter().map(|&c| w[r * cols + c] as f64).collect();
            let mut codes = vec![0u8; cols];
            let mut own: Vec<(usize, UnitParams)> = Vec::new();
            for p in 0..cols {
                let c = order[p];
                let unit = layout.unit_of(r, c);
                if lazy_groups && c.is_multiple_of(layout.unit_len) {
                    // Without act_order, order is the identity: the group's
                    // columns are positions p..p + unit_len.
                    let end = (p + layout.unit_len).min(cols);
                    let m: Vec<f32> = row[p..end].iter().map(|&x| x as f32).collect();
                    own.push((unit, unit_params(&m, unit, spec, &layout)));
                }
                let up = if lazy_groups {
                    own.last().map(|x| x.1).unwrap_or(params[unit])
                } else {
                    params[unit]
                };
                let x = row[p] as f32;
                let code = encode(x, spec.bits, layout.asymmetric, &up);
                let q = decode(code, spec.bits, layout.asymmetric, up.scale, up.zero) as f64;
                codes[c] = code;
                let err = (row[p] - q) / u[p * cols + p];
                let u_row = &u[p * cols..(p + 1) * cols];
                for k in p + 1..cols {
                    row[k] -= err * u_row[k];
                }
            }
            (codes, own)
        })
        .collect();
    let mut codes = Vec::with_capacity(rows * cols);
    for (row_codes, own) in per_row {
        codes.extend(row_codes);
        for (unit, p) in own {
            params[unit] = p;
        }
    }
    Ok(layout.assemble(spec, codes, &params))
}

/// One row's codes and, for lazy groups, the parameters of its units.
type RowResult = (Vec<u8>, Vec<(usize, UnitParams)>);

/// The upper factor of the inverse of `h` damped by `damp` × its mean
/// diagonal, retrying with ten times the damping if `h` is indefinite.
fn damped_factor(h: &[f64], n: usize, damp: f64) -> Result<Vec<f64>, GptqError> {
    let mean_diag = (0..n).map(|i| h[i * n + i]).sum::<f64>() / n as f64;
    let mut tried = damp;
    for _ in 0..2 {
        let mut a = h.to_vec();
        for i in 0..n {
            a[i * n + i] += tried * mean_diag;
        }
        if let Ok(u) = inverse_upper_factor(&a, n) {
            return Ok(u);
        }
        tried *= 10.0;
    }
    Err(GptqError::Indefinite { damp: tried / 10.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::{Bits, ScaleMethod};
    use crate::quant::{dequantize, quantize};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        }
    }

    /// Calibration inputs with strongly correlated features (as real
    /// activations are), `tokens × cols`.
    fn inputs(tokens: usize, cols: usize, rng: &mut Rng) -> Vec<f64> {
        let basis: Vec<f64> = (0..4 * cols).map(|_| rng.next()).collect();
        let mut x = Vec::with_capacity(tokens * cols);
        for _ in 0..tokens {
            let z: Vec<f64> = (0..4).map(|_| rng.next() * 3.0).collect();
            for c in 0..cols {
                let v: f64 = (0..4).map(|k| z[k] * basis[k * cols + c]).sum::<f64>();
                x.push(v + 0.1 * rng.next() + if c % 5 == 0 { 1.0 } else { 0.0 });
            }
        }
        x
    }

    fn gram(x: &[f64], tokens: usize, cols: usize) -> Vec<f64> {
        let mut g = vec![0.0; cols * cols];
        for t in 0..tokens {
            let row = &x[t * cols..(t + 1) * cols];
            for i in 0..cols {
                for j in 0..cols {
                    g[i * cols + j] += row[i] * row[j];
                }
            }
        }
        g
    }

    /// ‖(W − Q) Xᵀ‖² over the calibration inputs.
    fn output_error(w: &[f32], q: &[f32], x: &[f64], rows: usize, cols: usize) -> f64 {
        let tokens = x.len() / cols;
        let mut e = 0.0;
        for r in 0..rows {
            for t in 0..tokens {
                let d: f64 = (0..cols)
                    .map(|c| (w[r * cols + c] - q[r * cols + c]) as f64 * x[t * cols + c])
                    .sum();
                e += d * d;
            }
        }
        e
    }

    fn spec(bits: Bits, granularity: Granularity, scale: ScaleMethod) -> QuantSpec {
        QuantSpec {
            bits,
            symmetric: true,
            granularity,
            scale,
            learned: None,
        }
    }

    /// The textbook formulation: the full inverse Hessian, updated by
    /// eliminating each column once it is quantized (Optimal Brain
    /// Quantization's update), natural column order, fixed unit scales.
    fn reference(w: &[f32], rows: usize, cols: usize, g: &[f64], spec: &QuantSpec) -> Vec<u8> {
        let layout = Layout::new(w.len(), rows, cols, spec).unwrap();
        let rtn = quantize(w, rows, cols, spec).unwrap();
        let mut h = g.to_vec();
        let mean = (0..cols).map(|i| h[i * cols + i]).sum::<f64>() / cols as f64;
        for i in 0..cols {
            h[i * cols + i] += 0.01 * mean;
        }
        let mut hinv = crate::linalg::spd_inverse(&h, cols).unwrap();
        let mut w: Vec<f64> = w.iter().map(|&x| x as f64).collect();
        let mut codes = vec![0u8; rows * cols];
        for j in 0..cols {
            for r in 0..rows {
                let unit = layout.unit_of(r, j);
                let p = UnitParams {
                    scale: rtn.scales[unit],
                    zero: 0.0,
                    threshold: 0.0,
                };
                let code = encode(w[r * cols + j] as f32, spec.bits, false, &p);
                let q = decode(code, spec.bits, false, p.scale, 0.0) as f64;
                codes[r * cols + j] = code;
                let err = (w[r * cols + j] - q) / hinv[j * cols + j];
                for k in j + 1..cols {
                    w[r * cols + k] -= err * hinv[j * cols + k];
                }
            }
            let pivot = hinv[j * cols + j];
            let col: Vec<f64> = (0..cols).map(|i| hinv[i * cols + j]).collect();
            for a in 0..cols {
                for b in 0..cols {
                    hinv[a * cols + b] -= col[a] * col[b] / pivot;
                }
            }
        }
        codes
    }

    #[test]
    fn matches_the_textbook_algorithm() {
        let (rows, cols, tokens) = (6, 24, 200);
        let mut rng = Rng(3);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.next() as f32).collect();
        let x = inputs(tokens, cols, &mut rng);
        let g = gram(&x, tokens, cols);
        let s = spec(Bits::Int(4), Granularity::Row, ScaleMethod::Max);
        let opts = GptqOptions {
            damp: 0.01,
            act_order: false,
        };
        let fast = gptq(&w, rows, cols, &g, &s, opts).unwrap();
        let slow = reference(&w, rows, cols, &g, &s);
        let differ = fast.codes.iter().zip(&slow).filter(|(a, b)| a != b).count();
        // Equal up to rounding ties caused by floating-point order.
        assert!(differ <= 1, "{differ} codes differ");
    }

    #[test]
    fn lowers_the_output_error_against_round_to_nearest_at_every_width() {
        let (rows, cols, tokens) = (16, 64, 400);
        let mut rng = Rng(11);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.next() as f32 * 0.2).collect();
        let x = inputs(tokens, cols, &mut rng);
        let g = gram(&x, tokens, cols);
        let cases = [
            spec(Bits::Int(8), Granularity::Row, ScaleMethod::Max),
            spec(Bits::Int(4), Granularity::Row, ScaleMethod::Max),
            spec(Bits::Int(4), Granularity::Group(16), ScaleMethod::Max),
            spec(Bits::Int(4), Granularity::Tensor, ScaleMethod::Max),
            spec(Bits::Int(2), Granularity::Row, ScaleMethod::MeanAbs),
            spec(Bits::Ternary, Granularity::Row, ScaleMethod::MeanAbs),
            spec(Bits::Binary, Granularity::Row, ScaleMethod::MeanAbs),
            QuantSpec {
                symmetric: false,
                ..spec(Bits::Int(4), Granularity::Group(32), ScaleMethod::Max)
            },
        ];
        for s in cases {
            for act_order in [false, true] {
                let opts = GptqOptions {
                    damp: 0.01,
                    act_order,
                };
                let q = gptq(&w, rows, cols, &g, &s, opts).unwrap();
                let r = quantize(&w, rows, cols, &s).unwrap();
                let (eq, er) = (
                    output_error(&w, &dequantize(&q), &x, rows, cols),
                    output_error(&w, &dequantize(&r), &x, rows, cols),
                );
                assert!(
                    eq < 0.8 * er,
                    "{:?} {:?} act_order {act_order}: gptq {eq} vs rtn {er}",
                    s.bits,
                    s.granularity
                );
            }
        }
    }

    #[test]
    fn unused_columns_are_zero_and_bad_hessians_are_errors() {
        let (rows, cols) = (3, 8);
        let mut rng = Rng(5);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.next() as f32).collect();
        let mut x = inputs(50, cols, &mut rng);
        for t in 0..50 {
            x[t * cols + 2] = 0.0;
        }
        let g = gram(&x, 50, cols);
        let s = spec(Bits::Int(8), Granularity::Row, ScaleMethod::Max);
        let opts = GptqOptions {
            damp: 0.01,
            act_order: true,
        };
        let q = dequantize(&gptq(&w, rows, cols, &g, &s, opts).unwrap());
        assert!((0..rows).all(|r| q[r * cols + 2] == 0.0));
        assert_eq!(
            gptq(&w, rows, cols, &vec![0.0; cols * cols], &s, opts),
            Err(GptqError::NoData)
        );
        assert!(matches!(
            gptq(&w, rows, cols, &[1.0], &s, opts),
            Err(GptqError::HessianShape { .. })
        ));
    }
}
