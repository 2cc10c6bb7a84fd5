//! Plain references the kernels are checked against: the i32 product by
//! triple loop, the f32 outputs by the shared [`finish`] formula (and its
//! grouped form), and the
//! float product of dequantized weights and fake-quantized activations.

use candle_core::{Device, Tensor};

use super::activations::{quantize_activations, QuantizedActivations};
use super::simd_level::SimdLevel;
use super::tile::finish;
use crate::quant::{dequantize, Quantized};

/// `acc[i, j] = Σ_k q[i, k] · w[j, k]` for `w` `n × k` row-major.
pub fn reference_i32(a: &QuantizedActivations, w: &[i8], n: usize) -> Vec<i32> {
    let k = a.k;
    assert_eq!(w.len(), n * k, "weight length does not match n × k");
    let mut out = Vec::with_capacity(a.m * n);
    for i in 0..a.m {
        let row: Vec<i32> = (0..k).map(|c| a.value(i, c) as i32).collect();
        for wj in w.chunks_exact(k.max(1)).take(n) {
            out.push(row.iter().zip(wj).map(|(&x, &v)| x * v as i32).sum());
        }
        if k == 0 {
            out.extend(std::iter::repeat_n(0, n));
        }
    }
    out
}

/// `(acc · sx) · sw + bias` elementwise over an `m × n` accumulator matrix.
pub fn reference_f32(acc: &[i32], sx: &[f32], sw: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let n = sw.len();
    acc.iter()
        .enumerate()
        .map(|(idx, &v)| {
            let (i, j) = (idx / n, idx % n);
            finish(v, sx[i], sw[j], bias.map_or(0.0, |b| b[j]))
        })
        .collect()
}

/// The grouped epilogue by plain loops: per output, the exact i32 sum of
/// each group of `group_len` k, `(Σ_g acc_g · sw[j, g]) · sx + bias`, the
/// groups in order (with a single group, the per-row [`finish`]).
/// `row_scales` is `n × groups` row-major.
pub fn reference_grouped_f32(
    a: &QuantizedActivations,
    w: &[i8],
    n: usize,
    row_scales: &[f32],
    group_len: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let k = a.k;
    let groups = k.div_ceil(group_len.max(1)).max(1);
    let mut out = Vec::with_capacity(a.m * n);
    for i in 0..a.m {
        for j in 0..n {
            let b = bias.map_or(0.0, |b| b[j]);
            if groups == 1 {
                let acc: i32 = (0..k)
                    .map(|c| a.value(i, c) as i32 * w[j * k + c] as i32)
                    .sum();
                out.push(finish(acc, a.scales[i], row_scales[j], b));
                continue;
            }
            let mut sum = 0f32;
            for g in 0..groups {
                let span = (g * group_len).min(k)..((g + 1) * group_len).min(k);
                let acc: i32 = span
                    .map(|c| a.value(i, c) as i32 * w[j * k + c] as i32)
                    .sum();
                sum += acc as f32 * row_scales[j * groups + g];
            }
            out.push(sum * a.scales[i] + b);
        }
    }
    out
}

/// The float computation the packed kernels stand for: `x` quantized per
/// token and dequantized (`q · sx`), times the dequantized weights
/// transposed, plus the bias, by candle's f32 matmul. `x` is `[.., k]`.
pub fn dequantized_linear_reference(
    x: &Tensor,
    q: &Quantized,
    bias: Option<&[f32]>,
) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some((&k, lead)) = dims.split_last() else {
        candle_core::bail!("input of rank 0");
    };
    if k != q.cols {
        candle_core::bail!("input width {k} does not match the weight's {}", q.cols);
    }
    let m: usize = lead.iter().product();
    let values = x
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let a = quantize_activations(&values, m, k, SimdLevel::Scalar);
    let fake: Vec<f32> = (0..m * k)
        .map(|idx| a.value(idx / k, idx % k) as f32 * a.scales[idx / k])
        .collect();
    let device = Device::Cpu;
    let xq = Tensor::from_vec(fake, (m, k), &device)?;
    let w = Tensor::from_vec(dequantize(q), (q.rows, k), &device)?;
    let mut y = xq.matmul(&w.t()?)?;
    if let Some(b) = bias {
        y = y.broadcast_add(&Tensor::from_slice(b, q.rows, &device)?)?;
    }
    let mut out_dims = lead.to_vec();
    out_dims.push(q.rows);
    y.reshape(out_dims)
}
