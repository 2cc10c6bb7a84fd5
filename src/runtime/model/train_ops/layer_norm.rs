//! Layer norm over the last dimension with a gain and a bias as one
//! differentiable CPU operation: the forward pass normalizes each row in one
//! pass; the backward pass recomputes each row's mean and deviation from the
//! input (nothing is kept between the passes but the input) and gives the
//! input's, the gain's and the bias's gradients in one pass more, the last
//! two summed over the rows in parallel.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{operand, simd_fn, with_values};

/// Rows per parallel work item of the backward pass.
const ROWS_PER_TASK: usize = 64;

/// `(x − mean) / √(var + eps) · weight + bias` over the last dimension of
/// `x`, differentiable in all three.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps: eps as f32 },
    )
}

struct LayerNormOp {
    eps: f32,
}

impl LayerNormOp {
    /// The row width of `x`, checked against the gain and the bias.
    fn width(&self, x: &Shape, weight: &Shape, bias: &Shape) -> Result<usize> {
        let width = x.dims().last().copied().unwrap_or(0);
        if width == 0 || weight.elem_count() != width || bias.elem_count() != width {
            candle_core::bail!("layer norm: gain {weight:?} and bias {bias:?} do not fit {x:?}")
        }
        Ok(width)
    }
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "plcc-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let width = self.width(l1.shape(), l2.shape(), l3.shape())?;
        let name = self.name();
        let (x, w, b) = (
            operand(s1, l1, name)?,
            operand(s2, l2, name)?,
            operand(s3, l3, name)?,
        );
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(width * ROWS_PER_TASK)
            .zip(x.par_chunks(width * ROWS_PER_TASK))
            .for_each(|(out, x)| forward_rows(x, w, b, self.eps, width, out));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let width = self.width(x.shape(), weight.shape(), bias.shape())?;
        let name = self.name();
        let mut dx = vec![0f32; x.elem_count()];
        let sums = with_values(x, name, |xv| {
            with_values(weight, name, |w| {
                with_values(grad, name, |g| {
                    let block = width * ROWS_PER_TASK;
                    let sums = dx
                        .par_chunks_mut(block)
                        .zip(xv.par_chunks(block).zip(g.par_chunks(block)))
                        .map(|(dx, (x, g))| {
                            let mut sums = vec![0f32; 2 * width];
                            backward_rows(x, w, g, self.eps, width, dx, &mut sums);
                            sums
                        })
                        .reduce_with(|mut a, b| {
                            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                            a
                        });
                    Ok(sums.unwrap_or_else(|| vec![0f32; 2 * width]))
                })
            })
        })?;
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        let dw = Tensor::from_slice(&sums[..width], weight.shape(), weight.device())?;
        let db = Tensor::from_slice(&sums[width..], bias.shape(), bias.device())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// A row's mean and `1 / √(var + eps)`.
#[inline(always)]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

simd_fn! {
    /// Normalizes each row of `x` into `out`.
    fn forward_rows(x: &[f32], w: &[f32], b: &[f32], eps: f32, width: usize, out: &mut [f32]) {
        for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let (mean, inv) = moments(x, eps);
            for (((o, &x), &w), &b) in out.iter_mut().zip(x).zip(w).zip(b) {
                *o = (x - mean) * inv * w + b;
            }
        }
    }
}

simd_fn! {
    /// The rows' input gradient into `dx` and, added to `sums`, the gain's
    /// gradient (first `width` values) and the bias's (last `width`):
    /// with `x̂` the normalized row and `gx̂ = g·w`,
    /// `dx = (gx̂ − mean(gx̂) − x̂·mean(gx̂·x̂)) / √(var + eps)`.
    fn backward_rows(x: &[f32], w: &[f32], g: &[f32], eps: f32, width: usize, dx: &mut [f32], sums: &mut [f32]) {
        let (dw, db) = sums.split_at_mut(width);
        let n = width as f32;
        for ((x, g), dx) in x.chunks_exact(width).zip(g.chunks_exact(width)).zip(dx.chunks_exact_mut(width)) {
            let (mean, inv) = moments(x, eps);
            let (mut mean_gx, mut mean_gx_x) = (0f32, 0f32);
            for (((&x, &g), &w), (dw, db)) in x.iter().zip(g).zip(w).zip(dw.iter_mut().zip(db.iter_mut())) {
                let xhat = (x - mean) * inv;
                *dw += g * xhat;
                *db += g;
                mean_gx += g * w;
                mean_gx_x += g * w * xhat;
            }
            let (mean_gx, mean_gx_x) = (mean_gx / n, mean_gx_x / n);
            for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                let xhat = (x - mean) * inv;
                *dx = (g * w - mean_gx - xhat * mean_gx_x) * inv;
            }
        }
    }
}
