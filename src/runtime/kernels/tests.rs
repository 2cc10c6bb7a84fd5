//! Exactness of every kernel at every dispatch level this CPU runs: integer
//! accumulators equal the plain i32 reference, f32 outputs the shared formula.

use candle_core::{Device, Tensor};

use super::*;
use crate::base::{Bits, Granularity, ScaleMethod};
use crate::quant::{quantize, QuantSpec, Quantized};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn uniform(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32 * 2.0 - 1.0
    }
}

/// Activations with varied row magnitudes, one all-zero row when `m > 2`.
fn activations(m: usize, k: usize, rng: &mut Lcg) -> Vec<f32> {
    let mut x = Vec::with_capacity(m * k);
    for r in 0..m {
        let magnitude = [0.01f32, 1.0, 30.0][r % 3];
        for _ in 0..k {
            x.push(if m > 2 && r == 1 {
                0.0
            } else {
                rng.uniform() * magnitude
            });
        }
    }
    x
}

/// Whether `level` takes weights `w` (the narrow AVX2 level: within ±8).
fn fits(level: SimdLevel, w: &[i8]) -> bool {
    level != SimdLevel::Avx2Narrow || w.iter().all(|&v| (v as i16).abs() <= NARROW_MAX)
}

fn close(got: f32, want: f32) -> bool {
    (got - want).abs() <= 1e-6 * want.abs().max(f32::MIN_POSITIVE)
}

/// Checks one level on one product: exact accumulators, f32 within 1e-6.
fn check_level(level: SimdLevel, x: &[f32], m: usize, w: &[i8], sw: &[f32], bias: &[f32]) {
    if !fits(level, w) {
        return;
    }
    let (n, k) = (sw.len(), x.len() / m.max(1));
    let a = quantize_activations(x, m, k, level);
    let weights = IntegerWeights::new(w, n, k, sw.to_vec(), level);
    assert_eq!(weights.values(), w, "{level:?}: repacking round trip");
    let want_acc = reference_i32(&a, w, n);
    let acc = int_gemm_i32(&a, &weights);
    assert_eq!(acc, want_acc, "{level:?} accumulators m={m} k={k} n={n}");
    let want = reference_f32(&want_acc, &a.scales, sw, Some(bias));
    let mut got = vec![f32::NAN; m * n];
    int_gemm_f32(&a, &weights, Some(bias), &mut got);
    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
        assert!(
            close(g, e),
            "{level:?} m={m} k={k} n={n} at {i}: {g} vs {e}"
        );
    }
}

/// Checks one level on weights with scale groups: the repacking round trip
/// and the f32 outputs against the grouped reference.
fn check_grouped(
    level: SimdLevel,
    x: &[f32],
    m: usize,
    w: &[i8],
    row_scales: &[f32],
    group_len: usize,
    bias: &[f32],
) {
    if !fits(level, w) {
        return;
    }
    let (n, k) = (bias.len(), x.len() / m.max(1));
    let a = quantize_activations(x, m, k, level);
    let weights = IntegerWeights::new_grouped(w, n, k, row_scales, group_len, level)
        .expect("groups a multiple of 4");
    assert_eq!(weights.values(), w, "{level:?}: repacking round trip");
    assert_eq!(weights.row_scales(), row_scales);
    let want = reference_grouped_f32(&a, w, n, row_scales, group_len, Some(bias));
    let mut got = vec![f32::NAN; m * n];
    int_gemm_f32(&a, &weights, Some(bias), &mut got);
    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
        assert!(
            close(g, e),
            "{level:?} groups of {group_len} m={m} k={k} n={n} at {i}: {g} vs {e}"
        );
    }
}

#[test]
fn grouped_gemm_is_exact_at_every_level_and_odd_shape() {
    let mut rng = Lcg(17);
    for &group_len in &[4usize, 8, 64] {
        for &k in &[1usize, 3, 17, 63, 65, 385] {
            for &(m, n) in &[(1usize, 1usize), (7, 5), (64, 33), (9, 97)] {
                let x = activations(m, k, &mut rng);
                let w: Vec<i8> = (0..n * k).map(|_| rng.next() as u8 as i8).collect();
                let groups = k.div_ceil(group_len);
                let sw: Vec<f32> = (0..n * groups)
                    .map(|_| rng.uniform().abs() + 0.01)
                    .collect();
                let bias: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
                for level in SimdLevel::available() {
                    check_grouped(level, &x, m, &w, &sw, group_len, &bias);
                }
            }
        }
    }
    assert!(
        IntegerWeights::new_grouped(&[1; 12], 1, 12, &[1.0; 2], 6, SimdLevel::Scalar).is_none()
    );
}

#[test]
fn int8_gemm_is_exact_at_every_level_and_odd_shape() {
    let levels = SimdLevel::available();
    let mut rng = Lcg(42);
    for &k in &[1usize, 3, 17, 63, 65, 385] {
        for &n in &[1usize, 5, 33, 1537] {
            for &m in &[1usize, 7, 64] {
                if n == 1537 && m == 64 && k > 65 {
                    continue; // the largest product, covered at m = 7
                }
                let x = activations(m, k, &mut rng);
                // Full int8 range, −128 included.
                let w: Vec<i8> = (0..n * k).map(|_| rng.next() as u8 as i8).collect();
                let sw: Vec<f32> = (0..n).map(|_| rng.uniform().abs() + 0.01).collect();
                let bias: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
                for &level in &levels {
                    check_level(level, &x, m, &w, &sw, &bias);
                }
            }
        }
    }
}

#[test]
fn two_bit_code_kernel_is_exact_on_odd_shapes() {
    if !codes2_available() {
        return;
    }
    let mut rng = Lcg(99);
    let all_levels: [[i8; 4]; 3] = [[-1, 1, 1, 1], [-1, 0, 1, 0], [-3, -1, 1, 3]];
    for levels in all_levels {
        for &k in &[1usize, 3, 17, 63, 65, 385] {
            for &(m, n) in &[(1usize, 1usize), (7, 5), (64, 33), (7, 1537)] {
                let x = activations(m, k, &mut rng);
                let w: Vec<i8> = (0..n * k)
                    .map(|_| levels[rng.next() as usize % 4])
                    .collect();
                let sw: Vec<f32> = (0..n).map(|_| rng.uniform().abs() + 0.01).collect();
                let a = quantize_activations(&x, m, k, SimdLevel::Avx512Vnni);
                let weights = IntegerWeights::new_codes2(&w, n, k, sw.clone(), levels)
                    .expect("values are among the levels");
                assert_eq!(weights.values(), w);
                let want = reference_i32(&a, &w, n);
                assert_eq!(
                    int_gemm_i32(&a, &weights),
                    want,
                    "{levels:?} m={m} k={k} n={n}"
                );
                let mut got = vec![0.0; m * n];
                int_gemm_f32(&a, &weights, None, &mut got);
                assert_eq!(got, reference_f32(&want, &a.scales, &sw, None));
            }
        }
    }
    assert!(IntegerWeights::new_codes2(&[2], 1, 1, vec![1.0], [-1, 0, 1, 0]).is_none());
}

#[test]
fn extreme_values_do_not_overflow() {
    // Every product at its largest magnitude, k long enough to matter.
    // Alternating signs, and all at the largest positive value (the largest
    // shifted u8 activations, 255, which the narrow kernel sums in i16).
    let (m, k, n) = (9, 1031, 37);
    let alternating: Vec<f32> = (0..m * k)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    for x in [alternating, vec![1.0; m * k]] {
        for w_value in [-128i8, 127, -8, 8, -7, 3, -1, 1] {
            let w = vec![w_value; n * k];
            for level in SimdLevel::available() {
                check_level(level, &x, m, &w, &vec![1.0; n], &vec![0.0; n]);
            }
        }
    }
}

fn quantized(bits: Bits, granularity: Granularity, n: usize, k: usize, rng: &mut Lcg) -> Quantized {
    let w: Vec<f32> = (0..n * k).map(|_| rng.uniform() * 0.1).collect();
    let spec = QuantSpec {
        bits,
        symmetric: true,
        granularity,
        scale: if matches!(bits, Bits::Binary | Bits::Ternary) {
            ScaleMethod::MeanAbs
        } else {
            ScaleMethod::Max
        },
        learned: None,
    };
    quantize(&w, n, k, &spec).expect("valid quantization request")
}

#[test]
fn low_bit_kernels_are_exact_and_match_dequantized_weights() {
    let mut rng = Lcg(7);
    let all_bits = [
        Bits::Binary,
        Bits::Ternary,
        Bits::Int(2),
        Bits::Int(4),
        Bits::Int(8),
    ];
    for bits in all_bits {
        for granularity in [
            Granularity::Row,
            Granularity::Tensor,
            Granularity::Group(8),
            Granularity::Group(32),
        ] {
            for &(m, k, n) in &[
                (1usize, 1usize, 1usize),
                (7, 63, 33),
                (64, 385, 5),
                (7, 65, 97),
            ] {
                let q = quantized(bits, granularity, n, k, &mut rng);
                let bias: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
                let x = activations(m, k, &mut rng);
                let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
                let want = dequantized_linear_reference(&xt, &q, Some(&bias))
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let scale = want.iter().fold(1e-3f32, |s, v| s.max(v.abs()));
                let integer = levels::integer_levels(&q).unwrap();
                let mut layers: Vec<PackedLinear> = SimdLevel::available()
                    .into_iter()
                    .filter(|&level| fits(level, &integer.values))
                    .map(|level| {
                        let (values, sw) = (&integer.values, &integer.scales);
                        match integer.group_len {
                            None => check_level(level, &x, m, values, sw, &bias),
                            Some(len) => check_grouped(level, &x, m, values, sw, len, &bias),
                        }
                        PackedLinear::with_level(&q, Some(bias.clone()), level).unwrap()
                    })
                    .collect();
                layers.extend(PackedLinear::with_codes2(&q, Some(bias.clone())).unwrap());
                for layer in &layers {
                    let level = (layer.level(), layer.weights().form);
                    let got = layer.forward_slice(&x, m);
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - e).abs() <= 1e-4 * scale,
                            "{bits:?} {level:?} m={m} k={k} n={n} at {i}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn integer_levels_follow_the_quantizer_mappings() {
    let mut rng = Lcg(3);
    for bits in [
        Bits::Binary,
        Bits::Ternary,
        Bits::Int(2),
        Bits::Int(4),
        Bits::Int(8),
    ] {
        let q = quantized(bits, Granularity::Row, 6, 40, &mut rng);
        let levels::IntegerLevels {
            values, scales: sw, ..
        } = levels::integer_levels(&q).unwrap();
        let deq = crate::quant::dequantize(&q);
        for (i, (&v, &d)) in values.iter().zip(&deq).enumerate() {
            let got = v as f32 * sw[i / 40];
            assert!(
                (got - d).abs() <= 1e-6 * d.abs().max(1e-6),
                "{bits:?} at {i}"
            );
        }
    }
}

#[test]
fn packed_linear_takes_any_leading_dims_and_strides() {
    let mut rng = Lcg(11);
    let q = quantized(Bits::Ternary, Granularity::Row, 10, 24, &mut rng);
    let layer = PackedLinear::new(&q, None).unwrap();
    let x: Vec<f32> = (0..2 * 3 * 24).map(|_| rng.uniform()).collect();
    let xt = Tensor::from_vec(x.clone(), (2, 3, 24), &Device::Cpu).unwrap();
    let y = layer.forward(&xt).unwrap();
    assert_eq!(y.dims(), &[2, 3, 10]);
    let flat = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat, layer.forward_slice(&x, 6));
    // A transposed (non-contiguous) input gives the same as its copy.
    let xt_t = Tensor::from_vec(x, (24, 6), &Device::Cpu)
        .unwrap()
        .t()
        .unwrap();
    let a = layer.forward(&xt_t).unwrap();
    let b = layer.forward(&xt_t.contiguous().unwrap()).unwrap();
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
}

#[test]
fn unsupported_weights_and_inputs_are_errors() {
    let mut rng = Lcg(5);
    let grouped = quantized(Bits::Int(4), Granularity::Group(6), 4, 32, &mut rng);
    assert_eq!(
        PackedLinear::new(&grouped, None).unwrap_err(),
        KernelError::GroupScales {
            unit_len: 6,
            cols: 32
        }
    );
    let mut asym = quantized(Bits::Int(8), Granularity::Row, 4, 32, &mut rng);
    asym.symmetric = false;
    assert_eq!(
        PackedLinear::new(&asym, None).unwrap_err(),
        KernelError::Asymmetric
    );
    let q = quantized(Bits::Int(8), Granularity::Row, 4, 32, &mut rng);
    assert!(matches!(
        PackedLinear::new(&q, Some(vec![0.0; 3])),
        Err(KernelError::BiasLength {
            expected: 4,
            found: 3
        })
    ));
    let mut bad = quantized(Bits::Ternary, Granularity::Row, 4, 32, &mut rng);
    bad.codes[5] = 3;
    assert!(matches!(
        PackedLinear::new(&bad, None),
        Err(KernelError::Malformed(_))
    ));
    let layer = PackedLinear::new(&q, None).unwrap();
    let wrong = Tensor::zeros((2, 31), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = layer.forward(&wrong).unwrap_err().to_string();
    assert!(err.contains("…×32, got 2×31"), "{err}");
}

#[test]
fn zero_rows_and_empty_inputs() {
    let level = SimdLevel::detect();
    let w = vec![3i8; 5 * 4];
    let weights = IntegerWeights::new(&w, 5, 4, vec![1.0; 5], level);
    let a = quantize_activations(&[], 0, 4, level);
    assert!(int_gemm_i32(&a, &weights).is_empty());
    let a = quantize_activations(&[0.0; 8], 2, 4, level);
    let mut out = vec![f32::NAN; 10];
    int_gemm_f32(&a, &weights, Some(&[0.5; 5]), &mut out);
    assert_eq!(out, vec![0.5; 10]);
    // A fresh output is written whole, without being zeroed first.
    assert_eq!(int_gemm_f32_vec(&a, &weights, Some(&[0.5; 5])), out);
    let none = quantize_activations(&[], 0, 4, level);
    assert!(int_gemm_f32_vec(&none, &weights, None).is_empty());
}

#[test]
fn narrow_avx2_kernel_is_exact_on_low_bit_weights_and_chosen_for_them() {
    if !SimdLevel::Avx2Narrow.is_available() {
        return;
    }
    let mut rng = Lcg(23);
    for &k in &[1usize, 3, 17, 63, 65, 385, 1031] {
        for &(m, n) in &[(1usize, 1usize), (7, 5), (64, 33), (9, 97)] {
            let x = activations(m, k, &mut rng);
            let w: Vec<i8> = (0..n * k).map(|_| (rng.next() % 17) as i8 - 8).collect();
            let sw: Vec<f32> = (0..n).map(|_| rng.uniform().abs() + 0.01).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
            check_level(SimdLevel::Avx2Narrow, &x, m, &w, &sw, &bias);
            let groups = k.div_ceil(8);
            let gs: Vec<f32> = (0..n * groups)
                .map(|_| rng.uniform().abs() + 0.01)
                .collect();
            check_grouped(SimdLevel::Avx2Narrow, &x, m, &w, &gs, 8, &bias);
        }
    }
    let q = quantized(Bits::Int(8), Granularity::Row, 4, 32, &mut rng);
    assert_eq!(
        PackedLinear::with_level(&q, None, SimdLevel::Avx2Narrow).unwrap_err(),
        KernelError::Bits(Bits::Int(8))
    );
    if SimdLevel::detect() == SimdLevel::Avx2 {
        assert_eq!(SimdLevel::detect_for(8), SimdLevel::Avx2Narrow);
    }
    assert_ne!(SimdLevel::detect_for(128), SimdLevel::Avx2Narrow);
}

#[test]
fn vectorized_group_folds_match_the_portable_one_bit_for_bit() {
    use super::int_gemm::fold_tile_portable;
    use super::tile::TILE_MAX;
    let mut rng = Lcg(5);
    for (rows, width, cols) in [
        (6usize, 16usize, 16usize),
        (6, 16, 13),
        (16, 48, 48),
        (3, 48, 37),
    ] {
        let acc: Vec<i32> = (0..TILE_MAX).map(|_| rng.next() as i32 >> 8).collect();
        let acc: [i32; TILE_MAX] = acc.try_into().unwrap();
        let shift: Vec<i32> = (0..cols).map(|_| rng.next() as i32 >> 12).collect();
        let sw: Vec<f32> = (0..cols).map(|_| rng.uniform()).collect();
        let start: Vec<f32> = (0..TILE_MAX).map(|_| rng.uniform()).collect();
        let start: [f32; TILE_MAX] = start.try_into().unwrap();
        for shift in [None, Some(&shift[..])] {
            let mut want = start;
            fold_tile_portable(&mut want, &acc, shift, &sw, rows, width);
            #[cfg(target_arch = "x86_64")]
            {
                if SimdLevel::Avx2.is_available() {
                    let mut got = start;
                    // SAFETY: AVX2 is available; shapes as documented.
                    unsafe { super::x86::avx2::fold_tile(&mut got, &acc, shift, &sw, rows, width) };
                    assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "AVX2");
                }
                if SimdLevel::Avx512Vnni.is_available() {
                    let mut got = start;
                    // SAFETY: AVX-512F is available; shapes as documented.
                    unsafe {
                        super::x86::avx512::fold_tile(&mut got, &acc, shift, &sw, rows, width)
                    };
                    assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "AVX-512");
                }
            }
        }
    }
}
