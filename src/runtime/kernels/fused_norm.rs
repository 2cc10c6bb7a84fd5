//! Fused CPU kernels for inference (no gradient) around the linear layers
//! (training's differentiable layer norm, `layer_norm_grad`, shares the
//! row normalization):
//! layer norm with its residual add (`LN(x + r)` in one pass over each row,
//! instead of an add, a layer norm and two tensors), and the mean of a
//! hidden state over the real tokens of each sequence. Each is checked
//! against the differentiable formulation in the tests; other devices and
//! dtypes use the plain candle ops (the callers get `None`).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::simd_override::widest_simd;
use super::values::{contiguous, is_cpu_f32};

/// Rows per parallel work item.
pub(super) const ROWS_PER_TASK: usize = 32;

/// Sum of a slice with sixteen independent partial sums (vectorizes).
#[inline(always)]
fn sum16(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A row's mean and `1 / √(var + eps)`, the variance in two passes.
#[inline(always)]
pub(super) fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum16(row) / n;
    let mut acc = [0f32; 16];
    let chunks = row.chunks_exact(16);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += (v - mean) * (v - mean);
        }
    }
    let var = (acc.iter().sum::<f32>() + tail) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `out = LN(x + r)` for one row (`r` optional).
#[inline(always)]
fn norm_row(x: &[f32], r: Option<&[f32]>, gain: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    match r {
        Some(r) => {
            for ((o, a), b) in out.iter_mut().zip(x).zip(r) {
                *o = a + b;
            }
        }
        None => out.copy_from_slice(x),
    }
    let (mean, inv) = moments(out, eps);
    for ((o, g), b) in out.iter_mut().zip(gain).zip(bias) {
        *o = (*o - mean) * inv * g + b;
    }
}

widest_simd! {
    /// `LN(x + r)` of each row of `x` into `out`.
    fn norm_rows(x: &[f32], r: Option<&[f32]>, gain: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
        let h = gain.len();
        for (i, o) in out.chunks_exact_mut(h).enumerate() {
            let row = &x[i * h..][..h];
            norm_row(row, r.map(|r| &r[i * h..][..h]), gain, bias, eps, o);
        }
    }
}

/// The contiguous f32 values of a CPU tensor (copied only if strided).
fn cpu_values(t: &Tensor) -> Result<Vec<f32>> {
    t.contiguous()?.flatten_all()?.to_vec1::<f32>()
}

/// `LN(x)` (`CustomOp1`) or `LN(x + r)` (`CustomOp2`).
struct AddLayerNorm {
    gain: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl AddLayerNorm {
    fn run(&self, x: &[f32], r: Option<&[f32]>, shape: &Shape) -> (CpuStorage, Shape) {
        let out = normalize(x, r, &self.gain, &self.bias, self.eps);
        (CpuStorage::F32(out), shape.clone())
    }
}

/// `LN(x + r)` of every row of `x`, rows in parallel blocks.
pub(super) fn normalize(
    x: &[f32],
    r: Option<&[f32]>,
    gain: &[f32],
    bias: &[f32],
    eps: f32,
) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let block = ROWS_PER_TASK * gain.len();
    out.par_chunks_mut(block).enumerate().for_each(|(i, o)| {
        let range = i * block..i * block + o.len();
        let r = r.map(|r| &r[range.clone()]);
        norm_rows(&x[range], r, gain, bias, eps, o);
    });
    out
}

impl CustomOp1 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "plcc-layer-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok(self.run(contiguous(storage, layout)?, None, layout.shape()))
    }
}

impl CustomOp2 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "plcc-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, r) = (contiguous(xs, xl)?, contiguous(rs, rl)?);
        Ok(self.run(x, Some(r), xl.shape()))
    }
}

/// `LN(x + residual)` over the last dimension with `gain` and `bias`, fused
/// for f32 CPU tensors of the same shape; `None` where it does not apply.
pub fn add_layer_norm(
    x: &Tensor,
    residual: Option<&Tensor>,
    gain: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Option<Tensor>> {
    let h = gain.elem_count();
    let applies = is_cpu_f32;
    if !applies(x)
        || !applies(gain)
        || !applies(bias)
        || x.dims().last() != Some(&h)
        || bias.elem_count() != h
        || residual.is_some_and(|r| !applies(r) || r.dims() != x.dims())
    {
        return Ok(None);
    }
    let op = AddLayerNorm {
        gain: cpu_values(gain)?,
        bias: cpu_values(bias)?,
        eps: eps as f32,
    };
    let x = x.contiguous()?;
    match residual {
        Some(r) => x.apply_op2_no_bwd(&r.contiguous()?, &op).map(Some),
        None => x.apply_op1_no_bwd(&op).map(Some),
    }
}

struct MaskedMean {
    /// Mask value of each (sequence, token), row-major.
    weights: Vec<f32>,
}

impl CustomOp1 for MaskedMean {
    fn name(&self) -> &'static str {
        "plcc-masked-mean"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout)?;
        let (b, s, h) = layout.shape().dims3()?;
        let mut out = vec![0f32; b * h];
        out.par_chunks_mut(h).enumerate().for_each(|(bi, o)| {
            let weights = &self.weights[bi * s..][..s];
            for (t, &w) in weights.iter().enumerate() {
                if w != 0.0 {
                    for (acc, v) in o.iter_mut().zip(&x[(bi * s + t) * h..][..h]) {
                        *acc += w * v;
                    }
                }
            }
            let count = weights.iter().sum::<f32>().max(1.0);
            o.iter_mut().for_each(|v| *v /= count);
        });
        Ok((CpuStorage::F32(out), Shape::from((b, h))))
    }
}

/// The mean of `hidden` `[batch, seq, h]` over the tokens where `mask`
/// `[batch, seq]` is nonzero (weighted by the mask), as `[batch, h]`; `None`
/// where the fused kernel does not apply (not f32 on the CPU, or a gradient
/// flows through `hidden`).
pub fn masked_mean(hidden: &Tensor, mask: &Tensor) -> Result<Option<Tensor>> {
    if !hidden.device().is_cpu() || hidden.dtype() != DType::F32 || hidden.track_op() {
        return Ok(None);
    }
    let (b, s, _) = hidden.dims3()?;
    if mask.dims() != [b, s] {
        candle_core::bail!(
            "mean pool: mask {} for hidden {}",
            crate::diag::shape_text(mask.dims()),
            crate::diag::shape_text(hidden.dims())
        )
    }
    let weights = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let op = MaskedMean { weights };
    hidden.contiguous()?.apply_op1_no_bwd(&op).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::Pooling;
    use crate::runtime::model::heads::pool;
    use crate::runtime::model::layers::{LayerNorm, Mode};
    use crate::testing::max_diff;
    use candle_core::Device;

    #[test]
    fn fused_add_layer_norm_matches_the_differentiable_form() {
        let dev = Device::Cpu;
        for h in [1usize, 7, 16, 37, 384] {
            let x = Tensor::randn(0f32, 3.0, (3, 35, h), &dev).unwrap();
            let r = Tensor::randn(1f32, 2.0, (3, 35, h), &dev).unwrap();
            let ln = LayerNorm {
                weight: Tensor::randn(1f32, 0.5, h, &dev).unwrap(),
                bias: Tensor::randn(0f32, 0.5, h, &dev).unwrap(),
                eps: 1e-12,
            };
            let want = ln.forward(&(&x + &r).unwrap(), Mode::Training).unwrap();
            let got = add_layer_norm(&x, Some(&r), &ln.weight, &ln.bias, ln.eps)
                .unwrap()
                .unwrap();
            assert!(max_diff(&want, &got) < 1e-4, "h {h}");
            let want = ln.forward(&x, Mode::Training).unwrap();
            let got = add_layer_norm(&x, None, &ln.weight, &ln.bias, ln.eps)
                .unwrap()
                .unwrap();
            assert!(max_diff(&want, &got) < 1e-4, "h {h}");
        }
    }

    #[test]
    fn masked_mean_matches_the_tensor_formulation() {
        let dev = Device::Cpu;
        let hidden = Tensor::randn(0f32, 1.0, (3, 5, 37), &dev).unwrap();
        let mask = Tensor::new(
            &[[1u32, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]],
            &dev,
        )
        .unwrap();
        let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
        let summed = hidden.broadcast_mul(&m).unwrap().sum(1).unwrap();
        let counts = m.sum(1).unwrap().clamp(1.0, f64::MAX).unwrap();
        let want = summed.broadcast_div(&counts).unwrap();
        let got = masked_mean(&hidden, &mask).unwrap().unwrap();
        assert!(max_diff(&want, &got) < 1e-6);
        let via_pool = pool(&hidden, &mask, Pooling::Mean).unwrap();
        assert!(max_diff(&want, &via_pool) < 1e-6);
        // With a gradient to carry, pooling stays differentiable.
        let v = candle_core::Var::from_tensor(&hidden).unwrap();
        let loss = pool(v.as_tensor(), &mask, Pooling::Mean)
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(loss.backward().unwrap().get(v.as_tensor()).is_some());
    }
}
