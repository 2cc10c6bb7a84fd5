//! Fused element-wise CPU kernels for inference (no gradient): multi-threaded
//! erf GELU and tanh, each checked against candle's differentiable op in the
//! tests. Other devices use the plain candle ops.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
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

/// An element-wise function with a fused, multi-threaded CPU kernel.
#[derive(Debug, Clone, Copy)]
enum Unary {
    GeluErf,
    Tanh,
}

impl Unary {
    #[inline(always)]
    fn apply(self, xs: &[f32], out: &mut [f32]) {
        match self {
            Unary::GeluErf => {
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = 0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
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

    /// Applies the function to `x`: fused for f32 on the CPU when no
    /// gradient flows through `x`, candle's (differentiable) op otherwise.
    fn run(self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && !x.track_op() {
            return x.contiguous()?.apply_op1_no_bwd(&self);
        }
        match self {
            Unary::GeluErf => x.gelu_erf(),
            Unary::Tanh => x.tanh(),
        }
    }
}

impl CustomOp1 for Unary {
    fn name(&self) -> &'static str {
        match self {
            Unary::GeluErf => "plcc-gelu-erf",
            Unary::Tanh => "plcc-tanh",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: input must be contiguous", self.name()))
        })?;
        let xs = &storage.as_slice::<f32>()?[start..end];
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(o, x)| self.apply_chunk(x, o));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Exact (erf) GELU; fused and multi-threaded for f32 on the CPU.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    Unary::GeluErf.run(x)
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
}
