//! Exactness of the weight-only kernel: at every f32 level this CPU runs, on
//! odd shapes, every width and scale layout, its output is the f32 kernel's
//! on the dequantized weight bit for bit, and within rounding of an f64
//! reference; the weight decodes to `crate::quant::dequantize`'s values.

use super::*;
use crate::base::{Bits, Granularity, ScaleMethod};
use crate::quant::{dequantize, quantize, QuantSpec};
use crate::runtime::kernels::f32_gemm::PackedWeight;

/// Deterministic values in (-scale, scale).
fn values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn quantized(bits: Bits, granularity: Granularity, n: usize, k: usize) -> Quantized {
    let spec = QuantSpec {
        bits,
        symmetric: true,
        granularity,
        scale: match bits {
            Bits::Binary | Bits::Ternary => ScaleMethod::MeanAbs,
            Bits::Int(_) => ScaleMethod::Max,
        },
        learned: None,
    };
    quantize(&values(n * k, 11, 0.1), n, k, &spec).expect("valid quantization request")
}

const BITS: [Bits; 5] = [
    Bits::Binary,
    Bits::Ternary,
    Bits::Int(2),
    Bits::Int(4),
    Bits::Int(8),
];

/// (m, k, n): tails in every dimension, k across several `K_BLOCK`s.
const SHAPES: [(usize, usize, usize); 6] = [
    (1, 8, 1),
    (13, 24, 45),
    (5, 64, 33),
    (37, 72, 17),
    (97, 600, 70),
    (12, 264, 32),
];

fn granularities(k: usize) -> Vec<Granularity> {
    let mut g = vec![Granularity::Row, Granularity::Tensor, Granularity::Group(8)];
    if k.is_multiple_of(24) {
        g.push(Granularity::Group(24));
    }
    g
}

#[test]
fn matches_the_f32_kernel_on_the_dequantized_weight_bit_for_bit() {
    let levels = F32Level::supported();
    if levels.is_empty() {
        eprintln!("SKIPPED: no f32 SIMD level on this CPU");
    }
    for level in levels {
        for (m, k, n) in SHAPES {
            let x = values(m * k, 3, 2.0);
            let bias = values(n, 5, 0.5);
            for bits in BITS {
                for granularity in granularities(k) {
                    let q = quantized(bits, granularity, n, k);
                    let l = integer_levels(&q).unwrap();
                    let layer = WeightOnlyLinear::from_levels(
                        &l.values,
                        n,
                        k,
                        &l.scales,
                        l.group_len,
                        Some(bias.clone()),
                        level,
                    )
                    .unwrap();
                    let w = layer.dequantized();
                    let want = dequantize(&q);
                    let what = format!("{bits} {granularity:?} {m}x{k}x{n} on {level:?}");
                    for (a, b) in w.iter().zip(&want) {
                        assert!(
                            (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                            "{what}: {a} vs {b}"
                        );
                    }
                    let reference = PackedWeight::with_level(&w, Some(&bias), n, k, level)
                        .unwrap()
                        .matmul(&x, m);
                    let y = layer.matmul(&x, m);
                    assert_eq!(y, reference, "{what}");
                    check_f64(&y, &x, &w, &bias, (m, k, n), &what);
                }
            }
        }
    }
}

/// `y` against `x · wᵀ + bias` in f64, to 1e-5 of the summed magnitudes.
fn check_f64(
    y: &[f32],
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    (m, k, n): (usize, usize, usize),
    what: &str,
) {
    for i in 0..m {
        for j in 0..n {
            let terms = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64);
            let want = bias[j] as f64 + terms.clone().sum::<f64>();
            let scale = 1.0 + terms.map(f64::abs).sum::<f64>();
            let got = y[i * n + j] as f64;
            assert!(
                (got - want).abs() <= 1e-5 * scale,
                "{what} ({i}, {j}): {got} vs {want}"
            );
        }
    }
}

#[test]
fn levels_and_scales_round_trip_and_the_weight_stays_a_byte_a_value() {
    let Some(level) = F32Level::detect() else {
        eprintln!("SKIPPED: no f32 SIMD level on this CPU");
        return;
    };
    let (n, k) = (45, 64);
    let q = quantized(Bits::Int(4), Granularity::Group(16), n, k);
    let l = integer_levels(&q).unwrap();
    let layer = WeightOnlyLinear::from_levels(&l.values, n, k, &l.scales, l.group_len, None, level)
        .unwrap();
    assert_eq!(layer.values(), l.values);
    assert_eq!(layer.row_scales(), l.scales);
    assert_eq!(layer.group_len(), 16);
    assert!(layer.bias().is_none());
    let padded = n.div_ceil(level.panel_cols()) * level.panel_cols();
    assert_eq!(layer.packed_bytes(), padded * k + 4 * padded * (k / 16));
    // Less than half of an f32 copy, even with a padded panel.
    assert!(layer.packed_bytes() < n * k * 4 / 2);
}

#[test]
fn bad_shapes_are_errors_and_empty_products_work() {
    let Some(level) = F32Level::detect() else {
        eprintln!("SKIPPED: no f32 SIMD level on this CPU");
        return;
    };
    let short = WeightOnlyLinear::from_levels(&[1; 5], 2, 3, &[1.0; 2], None, None, level);
    assert!(matches!(short, Err(KernelError::Malformed(_))));
    let bias =
        WeightOnlyLinear::from_levels(&[1; 6], 2, 3, &[1.0; 2], None, Some(vec![0.0]), level);
    assert!(matches!(bias, Err(KernelError::BiasLength { .. })));
    let layer = WeightOnlyLinear::from_levels(
        &[1, -1],
        2,
        1,
        &[0.5, 2.0],
        None,
        Some(vec![1.0, 2.0]),
        level,
    )
    .unwrap();
    assert_eq!(layer.matmul(&[2.0, 4.0], 2), vec![2.0, -2.0, 3.0, -6.0]);
    assert!(layer.matmul(&[], 0).is_empty());
}

#[test]
fn asymmetric_weights_are_refused() {
    let spec = QuantSpec {
        bits: Bits::Int(4),
        symmetric: false,
        granularity: Granularity::Row,
        scale: ScaleMethod::Max,
        learned: None,
    };
    let q = quantize(&values(32, 1, 1.0), 4, 8, &spec).unwrap();
    assert!(matches!(
        WeightOnlyLinear::new(&q, None),
        Err(KernelError::Asymmetric)
    ));
}

#[test]
fn the_kernels_take_exactly_the_forms_the_shared_rule_names() {
    use crate::base::{linear_kernel, Arch, LinearKernelKind, WeightInputs};
    use crate::runtime::kernels::PackedLinear;
    let (n, k) = (6, 48);
    for symmetric in [true, false] {
        for granularity in [
            Granularity::Row,
            Granularity::Tensor,
            Granularity::Group(8),
            Granularity::Group(6),
            Granularity::Group(48),
        ] {
            for bits in BITS {
                if !symmetric && matches!(bits, Bits::Binary | Bits::Ternary) {
                    continue;
                }
                let spec = QuantSpec {
                    bits,
                    symmetric,
                    granularity,
                    scale: ScaleMethod::Max,
                    learned: None,
                };
                let q = quantize(&values(n * k, 2, 1.0), n, k, &spec).unwrap();
                let rule = linear_kernel(
                    Arch::Bert.family(),
                    "a.linear",
                    Some((bits, symmetric, granularity)),
                    k,
                    WeightInputs::Float,
                );
                let what = format!("{bits} {granularity:?} symmetric {symmetric}");
                let taken = rule == LinearKernelKind::Decoding;
                assert_eq!(PackedLinear::new(&q, None).is_ok(), taken, "{what}");
                if F32Level::detect().is_some() {
                    assert_eq!(WeightOnlyLinear::new(&q, None).is_ok(), taken, "{what}");
                }
            }
        }
    }
}
