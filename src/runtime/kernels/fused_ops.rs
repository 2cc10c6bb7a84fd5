//! Fused element-wise CPU kernels: multi-threaded erf GELU (differentiable:
//! its backward pass is one fused kernel too, so training runs the GELU
//! inference runs) and tanh (no gradient), each checked against candle's
//! differentiable op in the tests. Other devices use the plain candle ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fastmath;

/// Elements per parallel work item of element-wise kernels.
const CHUNK: usize = 4096;

/// erf(x) for f32 by a rational approximation on [-4, 4] (beyond which erf
/// is ±1 in f32); absolute error below 1e-6, branch-free so it vectorizes.
#[inline(always)]
fn erf_fast(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// The erf GELU of `x`: `x · Φ(x)`.
#[inline(always)]
fn gelu_erf_of(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `1 / √(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// An element-wise function with a fused, multi-threaded CPU kernel.
#[derive(Debug, Clone, Copy)]
enum Unary {
    GeluErf,
    Tanh,
    /// The erf GELU's derivative times an incoming gradient (two inputs:
    /// `x`, then the gradient; see `GeluErfGrad`).
    GeluErfGrad,
}

impl Unary {
    /// `out = f(xs)`; for `GeluErfGrad`, `out` holds the incoming gradient
    /// on entry.
    #[inline(always)]
    fn apply(self, xs: &[f32], out: &mut [f32]) {
        match self {
            Unary::GeluErfGrad => {
                for (o, &x) in out.iter_mut().zip(xs) {
                    let cdf = 0.5 * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
                    let pdf = fastmath::exp(-0.5 * x * x) * INV_SQRT_2PI;
                    *o *= cdf + x * pdf;
                }
            }
            Unary::GeluErf => {
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = gelu_erf_of(x);
                }
            }
            Unary::Tanh => {
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = fastmath::tanh(x);
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(self, xs: &[f32], out: &mut [f32]) {
        self.apply(xs, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn apply_avx2(self, xs: &[f32], out: &mut [f32]) {
        self.apply(xs, out)
    }

    fn apply_chunk(self, xs: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if super::simd_override::avx512f_enabled() {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { self.apply_avx512(xs, out) };
            }
            if super::simd_override::avx2_fma_enabled() {
                // SAFETY: as above.
                return unsafe { self.apply_avx2(xs, out) };
            }
        }
        self.apply(xs, out)
    }

    /// Applies the function to `x`: fused for f32 on the CPU (the GELU with
    /// its fused backward pass where a gradient flows through `x`), candle's
    /// (differentiable) op otherwise.
    fn run(self, x: &Tensor) -> Result<Tensor> {
        let cpu_f32 = x.device().is_cpu() && x.dtype() == candle_core::DType::F32;
        match (self, cpu_f32, x.track_op()) {
            (_, true, false) => x.contiguous()?.apply_op1_no_bwd(&self),
            (Unary::GeluErf, true, true) => x.contiguous()?.apply_op1(self),
            (Unary::GeluErf, ..) => x.gelu_erf(),
            (Unary::Tanh, ..) => x.tanh(),
            (Unary::GeluErfGrad, ..) => candle_core::bail!("the GELU's gradient takes two inputs"),
        }
    }

    /// `out = f(xs)` in parallel chunks (`out` as `apply` reads it).
    fn apply_all(self, xs: &[f32], out: &mut [f32]) {
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(o, x)| self.apply_chunk(x, o));
    }
}

/// The f32 values of a contiguous CPU operand.
fn values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input must be contiguous")))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

impl CustomOp1 for Unary {
    fn name(&self) -> &'static str {
        match self {
            Unary::GeluErf => "plcc-gelu-erf",
            Unary::Tanh => "plcc-tanh",
            Unary::GeluErfGrad => "plcc-gelu-erf-grad",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = values(storage, layout, self.name())?;
        let mut out = vec![0f32; xs.len()];
        self.apply_all(xs, &mut out);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        match self {
            Unary::GeluErf => arg
                .contiguous()?
                .apply_op2_no_bwd(&grad_res.contiguous()?, &GeluErfGrad)
                .map(Some),
            _ => candle_core::bail!("{} has no gradient", self.name()),
        }
    }
}

/// The erf GELU's backward pass: `grad · (Φ(x) + x·φ(x))` in one pass.
struct GeluErfGrad;

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        Unary::GeluErfGrad.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = values(s1, l1, self.name())?;
        let grad = values(s2, l2, self.name())?;
        if xs.len() != grad.len() {
            candle_core::bail!(
                "{}: gradient {:?} does not fit {:?}",
                self.name(),
                l2.shape(),
                l1.shape()
            )
        }
        let mut out = grad.to_vec();
        Unary::GeluErfGrad.apply_all(xs, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Exact (erf) GELU; fused and multi-threaded for f32 on the CPU.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    Unary::GeluErf.run(x)
}

/// The erf GELU of every value, in place (the values [`gelu_erf`] gives on
/// the CPU), in parallel chunks: for a product's fresh output, without a
/// second tensor.
pub fn gelu_erf_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(|chunk| {
        let mut xs = [0f32; CHUNK];
        let xs = &mut xs[..chunk.len()];
        xs.copy_from_slice(chunk);
        Unary::GeluErf.apply_chunk(xs, chunk);
    });
}

/// `out = GELU(xs)` (the values [`gelu_erf`] gives on the CPU), in
/// parallel chunks.
pub fn gelu_erf_into(xs: &[f32], out: &mut [f32]) {
    Unary::GeluErf.apply_all(xs, out);
}

/// `grad ⊙ GELU′(xs)` into `grad`, in parallel chunks: the gradient of the
/// GELU's input from its output's (the values [`gelu_erf`]'s backward
/// pass gives).
pub fn gelu_erf_grad_in_place(xs: &[f32], grad: &mut [f32]) {
    Unary::GeluErfGrad.apply_all(xs, grad);
}

/// `tanh`; fused and multi-threaded for f32 on the CPU without gradient
/// (`fastmath::tanh`, absolute error below 3e-7).
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    Unary::Tanh.run(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::Device;

    #[test]
    fn fast_erf_matches_libm() {
        let worst = (-6000..=6000)
            .map(|i| i as f32 * 1e-3)
            .map(|x| (erf_fast(x) - candle_core::cpu::erf::erf_f32(x)).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "max error {worst}");
    }

    #[test]
    fn fused_gelu_and_tanh_match_candle_and_keep_gradients() {
        let x = Tensor::randn(0f32, 3.0, (7, 1000), &Device::Cpu).unwrap();
        assert!(max_diff(&gelu_erf(&x).unwrap(), &x.gelu_erf().unwrap()) < 1e-5);
        assert!(max_diff(&tanh(&x).unwrap(), &x.tanh().unwrap()) < 1e-6);
        let v = candle_core::Var::from_tensor(&x).unwrap();
        let y = tanh(v.as_tensor()).unwrap().sum_all().unwrap();
        let grads = y.backward().unwrap();
        assert!(grads.get(v.as_tensor()).is_some());
    }

    #[test]
    fn the_fused_gelu_gradient_matches_candles() {
        let x = Tensor::randn(0f32, 3.0, (7, 1000), &Device::Cpu).unwrap();
        let weights = Tensor::randn(0f32, 1.0, (7, 1000), &Device::Cpu).unwrap();
        let gradient = |f: &dyn Fn(&Tensor) -> Result<Tensor>| {
            let v = candle_core::Var::from_tensor(&x).unwrap();
            let y = f(v.as_tensor()).unwrap();
            let loss = (y * &weights).unwrap().sum_all().unwrap();
            loss.backward().unwrap().get(v.as_tensor()).unwrap().clone()
        };
        let ours = gradient(&|t| gelu_erf(t));
        let candle = gradient(&|t| t.gelu_erf());
        assert!(
            max_diff(&ours, &candle) < 1e-5,
            "{}",
            max_diff(&ours, &candle)
        );
    }
}
