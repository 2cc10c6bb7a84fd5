//! Fused differentiable operations for training on the CPU: each is one
//! candle custom operation whose forward pass makes one pass over its inputs
//! and whose backward pass is written by hand (one pass again), where the
//! composite forms of `layers` build a chain of candle operations, each with
//! its own output tensor and gradient. The composite forms stay for other
//! devices; `applies` says which form a tensor gets.
//!
//! - `attention`: the attention probabilities `softmax(q·kᵀ/√d + mask)` and
//!   the context `probs·v`, per sequence and head, read from and written to
//!   the projections' `[batch, seq, heads * head_dim]` layout;
//! - `layer_norm`: layer norm over the last dimension with gain and bias;
//! - `gelu`: the exact (erf) GELU.

pub mod attention;
pub mod gelu;
pub mod layer_norm;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};

/// Whether the fused operations run on `x`: an f32 tensor on the CPU.
pub fn applies(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The values of a contiguous CPU f32 operand of a custom operation.
fn operand<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: operand not contiguous")))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Calls `f` on the values of `t` (an f32 CPU tensor), made contiguous.
fn with_values<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(operand(cpu, layout, op)?),
        _ => candle_core::bail!("{op}: the fused training operations run on the CPU"),
    }
}

/// Defines `fn $name(args)` that runs its body compiled for AVX-512F or
/// AVX2 + FMA where the CPU has them and `PLCC_SIMD` allows, so the
/// element loops vectorize at the widest width the machine has.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) { body($($arg),*) }
                if crate::runtime::kernels::avx512f_enabled() {
                    // SAFETY: the CPU has the features `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if crate::runtime::kernels::avx2_fma_enabled() {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// `y[i] += a · x[i]`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

#[cfg(test)]
mod tests;
