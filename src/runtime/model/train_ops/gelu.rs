//! The exact GELU, `x·Φ(x)` with `Φ(x) = (1 + erf(x/√2)) / 2`, as one
//! differentiable CPU operation: the forward pass is the inference kernel's
//! formula (`fused_ops::erf_fast`), the backward pass gives
//! `g·(Φ(x) + x·φ(x))` (φ the normal density) in one pass over the input.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{operand, simd_fn, with_values};
use crate::runtime::kernels::fastmath;
use crate::runtime::kernels::fused_ops::erf_fast;

/// Elements per parallel work item.
const CHUNK: usize = 4096;

/// `1 / √(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// The exact GELU of `x`, differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluOp)
}

struct GeluOp;

/// `Φ(x)`, the standard normal distribution function.
#[inline(always)]
fn phi(x: f32) -> f32 {
    0.5 * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2))
}

simd_fn! {
    fn forward(x: &[f32], out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = x * phi(x);
        }
    }
}

simd_fn! {
    fn backward(x: &[f32], g: &[f32], out: &mut [f32]) {
        for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
            let density = INV_SQRT_2PI * fastmath::exp(-0.5 * x * x);
            *o = g * (phi(x) + x * density);
        }
    }
}

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "plcc-gelu-erf-train"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = operand(storage, layout, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| forward(x, o));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let mut dx = vec![0f32; x.elem_count()];
        with_values(x, self.name(), |xv| {
            with_values(grad, self.name(), |g| {
                dx.par_chunks_mut(CHUNK)
                    .zip(xv.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
                    .for_each(|(o, (x, g))| backward(x, g, o));
                Ok(())
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}
