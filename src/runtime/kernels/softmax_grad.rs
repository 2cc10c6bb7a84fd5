//! Softmax over the last dimension as one differentiable CPU operation for
//! training: the forward pass makes one pass per row (maximum, `exp`, sum,
//! scale) into one output; the backward pass gives
//! `dx = y ⊙ (g − Σ g ⊙ y)` per row in one pass over the output and the
//! incoming gradient, where the composite form (maximum, subtract, `exp`,
//! sum, divide) keeps a tensor and a gradient per step.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::values::contiguous;

/// Rows per parallel work item.
const ROWS_PER_TASK: usize = 64;

/// Softmax over the last dimension of `x`, differentiable; `None` where the
/// operation does not apply (not f32 on the CPU).
pub fn softmax_last_dim(x: &Tensor) -> Result<Option<Tensor>> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.rank() == 0 {
        return Ok(None);
    }
    x.contiguous()?.apply_op1(Softmax).map(Some)
}

struct Softmax;

/// The width of the rows a layout holds.
fn row_width(layout: &Layout) -> usize {
    layout.dims().last().copied().unwrap_or(1).max(1)
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "plcc-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout)?;
        let width = row_width(layout);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(width * ROWS_PER_TASK)
            .zip(x.par_chunks(width * ROWS_PER_TASK))
            .for_each(|(out, x)| {
                for (o, x) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for (o, &v) in o.iter_mut().zip(x) {
                        *o = (v - max).exp();
                        sum += *o;
                    }
                    let inv = 1.0 / sum;
                    o.iter_mut().for_each(|o| *o *= inv);
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        res.contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxGrad)
            .map(Some)
    }
}

/// `y ⊙ (g − Σ g ⊙ y)` per row, for softmax output `y` and gradient `g`.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "plcc-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (contiguous(ys, yl)?, contiguous(gs, gl)?);
        if y.len() != g.len() {
            candle_core::bail!(
                "plcc-softmax-grad: gradient {:?} does not fit {:?}",
                gl.shape(),
                yl.shape()
            )
        }
        let width = row_width(yl);
        let mut dx = vec![0f32; y.len()];
        let block = width * ROWS_PER_TASK;
        dx.par_chunks_mut(block)
            .zip(y.par_chunks(block).zip(g.par_chunks(block)))
            .for_each(|(dx, (y, g))| {
                let rows = y.chunks_exact(width).zip(g.chunks_exact(width));
                for (dx, (y, g)) in dx.chunks_exact_mut(width).zip(rows) {
                    let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                    for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
                        *d = y * (g - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(dx), yl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{Device, Var, D};

    #[test]
    fn the_fused_softmax_and_its_gradient_match_the_composite_form() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (2, 3, 70, 29), &dev).unwrap();
        // A masked key, as the attention bias makes it.
        let x = x
            .slice_assign(
                &[0..2, 0..3, 0..70, 5..6],
                &Tensor::full(-1e9f32, (2, 3, 70, 1), &dev).unwrap(),
            )
            .unwrap();
        let upstream = Tensor::randn(0f32, 1.0, (2, 3, 70, 29), &dev).unwrap();
        let run = |fused: bool| {
            let v = Var::from_tensor(&x).unwrap();
            let t = v.as_tensor();
            let y = if fused {
                softmax_last_dim(t).unwrap().unwrap()
            } else {
                let max = t.max_keepdim(D::Minus1).unwrap().detach();
                let e = t.broadcast_sub(&max).unwrap().exp().unwrap();
                e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
            };
            let grads = (&y * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            (y, grads.get(t).unwrap().clone())
        };
        let (fused, composite) = (run(true), run(false));
        assert!(max_diff(&fused.0, &composite.0) < 1e-6, "values");
        assert!(max_diff(&fused.1, &composite.1) < 1e-5, "gradient");
    }
}
