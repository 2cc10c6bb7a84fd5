//! Inference-only forms of a linear layer: the weight packed once for a fast
//! kernel, and the quantization of a layer's input.
//!
//! - [`LinearKernel::F32`]: a float weight for the f32 GEMM (`kernels::f32_gemm`,
//!   AVX-512 or AVX2 + FMA).
//! - [`LinearKernel::Int8`]: a packed artifact weight (binary, ternary,
//!   symmetric 2/4/8-bit, one scale per row or per tensor) for the integer
//!   GEMM of `crate::runtime::kernels`, which quantizes every input row (token) to int8
//!   with its own scale on the fly; on the CPU, or on the GPU its weights were
//!   placed on (`cuda` feature).
//! - [`LinearKernel::WeightOnly`]: a packed artifact weight kept as its
//!   integer levels and scales, decoded inside the f32 GEMM, on float inputs
//!   (weight-only quantization; CPU only).
//! - [`quantize_input`]: the fake quantization (quantize, then dequantize in
//!   f32) of a layer's input as an artifact's activation quantizer describes
//!   it, with the same quantizer the weights use (`crate::quant`).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};

use crate::artifact::ActivationQuant;
use crate::base::{Bits, Granularity, ScaleMethod};
use crate::quant::{fake_quantize, QuantSpec};
use crate::runtime::kernels::f32_gemm::PackedWeight;
use crate::runtime::kernels::{dequantized_activations, fused_ops, PackedLinear, WeightOnlyLinear};

/// The input quantization the integer kernel applies: symmetric int8, one
/// scale per token.
pub const PER_TOKEN_INT8: ActivationQuant = ActivationQuant::KERNEL;

/// True when `q` is exactly what the integer kernel does to its input.
pub fn is_per_token_int8(q: &ActivationQuant) -> bool {
    q.bits == 8 && q.symmetric && matches!(q.granularity, Granularity::Token | Granularity::Row)
}

/// A weight packed for one kernel (a snapshot: training does not reach it).
#[derive(Debug, Clone)]
pub enum LinearKernel {
    F32(PackedWeight),
    Int8(PackedLinear),
    WeightOnly(WeightOnlyLinear),
}

impl LinearKernel {
    pub fn in_features(&self) -> usize {
        match self {
            LinearKernel::F32(p) => p.k,
            LinearKernel::Int8(p) => p.in_features(),
            LinearKernel::WeightOnly(p) => p.in_features(),
        }
    }

    pub fn out_features(&self) -> usize {
        match self {
            LinearKernel::F32(p) => p.n,
            LinearKernel::Int8(p) => p.out_features(),
            LinearKernel::WeightOnly(p) => p.out_features(),
        }
    }

    pub fn is_int8(&self) -> bool {
        matches!(self, LinearKernel::Int8(_))
    }

    /// The weight `[out, in]` row-major as the kernel multiplies by it: the
    /// f32 values, or the integer levels times their scales.
    pub fn dequantized_weight(&self) -> Vec<f32> {
        match self {
            LinearKernel::F32(p) => p.unpacked(),
            LinearKernel::Int8(p) => p.weights().dequantized(),
            LinearKernel::WeightOnly(p) => p.dequantized(),
        }
    }

    /// Whether the kernel runs on tensors of `device`: the CPU, or for the
    /// integer kernel the GPU its weights were placed on.
    pub fn runs_on(&self, device: &Device) -> bool {
        match self {
            LinearKernel::F32(_) | LinearKernel::WeightOnly(_) => device.is_cpu(),
            LinearKernel::Int8(p) => p.runs_on(device),
        }
    }

    /// `x` `[.., in]` → `[.., out]` (bias included), or `None` where the
    /// kernel does not apply (not an f32 tensor of the right width on a
    /// device the kernel runs on).
    pub fn forward(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.forward_then(x, false)
    }

    /// [`Self::forward`], then with `gelu` the erf GELU: on the CPU applied
    /// to the product's output in place, in the same operation.
    pub fn forward_then(&self, x: &Tensor, gelu: bool) -> Result<Option<Tensor>> {
        if !self.runs_on(x.device())
            || x.dtype() != DType::F32
            || x.dims().last() != Some(&self.in_features())
        {
            return Ok(None);
        }
        let x = x.contiguous()?;
        match (gelu, x.device().is_cpu()) {
            (false, _) => x.apply_op1_no_bwd(self).map(Some),
            (true, true) => x.apply_op1_no_bwd(&ThenGelu(self)).map(Some),
            (true, false) => fused_ops::gelu_erf(&x.apply_op1_no_bwd(self)?).map(Some),
        }
    }
}

/// A CPU kernel's product followed by the erf GELU on its output, in place.
struct ThenGelu<'a>(&'a LinearKernel);

impl CustomOp1 for ThenGelu<'_> {
    fn name(&self) -> &'static str {
        "plcc-linear-kernel-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (mut out, shape) = self.0.cpu_fwd(storage, layout)?;
        if let CpuStorage::F32(values) = &mut out {
            fused_ops::gelu_erf_in_place(values);
        }
        Ok((out, shape))
    }
}

impl CustomOp1 for LinearKernel {
    fn name(&self) -> &'static str {
        "plcc-linear-kernel"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("linear kernel: input not contiguous".into()))?;
        let x = &storage.as_slice::<f32>()?[start..end];
        let k = self.in_features();
        let m = x.len() / k.max(1);
        let y = match self {
            LinearKernel::F32(p) => p.matmul(x, m),
            LinearKernel::Int8(p) => p.forward_slice(x, m),
            LinearKernel::WeightOnly(p) => p.matmul(x, m),
        };
        let mut dims = layout.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.out_features();
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        match self {
            LinearKernel::Int8(p) => p.cuda_fwd(storage, layout),
            LinearKernel::F32(_) | LinearKernel::WeightOnly(_) => {
                candle_core::bail!("the f32 and weight-only linear kernels run on the CPU only")
            }
        }
    }
}

/// `x` `[.., in]` quantized as `q` says and mapped back to f32: per token
/// (`token` or `row`), per group of a token's values, or one range over the
/// whole tensor; symmetric or with a zero point; clipped at the observed
/// range (dynamic quantization). Symmetric int8 per token gives exactly the
/// values the integer kernel multiplies (`dequantized_activations`).
pub fn quantize_input(x: &Tensor, q: &ActivationQuant) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let cols = dims.last().copied().unwrap_or(1);
    if x.elem_count() == 0 || cols == 0 {
        return Ok(x.clone());
    }
    let rows = x.elem_count() / cols;
    let values = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let quantized = quantize_input_values(&values, rows, cols, q)?;
    Tensor::from_vec(quantized, dims, x.device())?.to_dtype(x.dtype())
}

/// [`quantize_input`] on the values of a row-major `[rows, cols]` matrix
/// (one token a row).
pub fn quantize_input_values(
    values: &[f32],
    rows: usize,
    cols: usize,
    q: &ActivationQuant,
) -> Result<Vec<f32>> {
    if is_per_token_int8(q) && values.len() == rows * cols {
        // Exactly the integer kernel's levels and scales.
        return Ok(dequantized_activations(values, cols));
    }
    let spec = QuantSpec {
        bits: Bits::Int(q.bits),
        symmetric: q.symmetric,
        granularity: match q.granularity {
            Granularity::Token => Granularity::Row,
            g => g,
        },
        scale: ScaleMethod::Max,
        learned: None,
    };
    fake_quantize(values, rows, cols, &spec)
        .map_err(|e| candle_core::Error::Msg(format!("activation quantizer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn per_token_int8_keeps_each_rows_range_and_127_levels() {
        let x = Tensor::new(&[[1.0f32, -0.5, 0.3], [100.0, 1.0, -50.0]], &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = quantize_input(&x, &PER_TOKEN_INT8)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(y[0][0], 1.0);
        assert_eq!(y[1][0], 100.0);
        // 0.3 → round(0.3 · 127) / 127; 1.0 in a row of range 100 → 1 step.
        assert!((y[0][2] - 38.0 / 127.0).abs() < 1e-6, "{}", y[0][2]);
        assert!((y[1][1] - 100.0 / 127.0).abs() < 1e-5, "{}", y[1][1]);
    }

    #[test]
    fn four_bit_per_tensor_asymmetric_has_sixteen_levels() {
        let x = Tensor::arange(0f32, 64.0, &Device::Cpu)
            .unwrap()
            .reshape((4, 16))
            .unwrap();
        let q = ActivationQuant {
            bits: 4,
            symmetric: false,
            granularity: Granularity::Tensor,
            kernel: false,
        };
        let y: Vec<f32> = quantize_input(&x, &q)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut levels: Vec<i64> = y.iter().map(|v| (v * 1000.0).round() as i64).collect();
        levels.dedup();
        assert_eq!(levels.len(), 16);
        assert!((y[63] - 63.0).abs() < 1e-4 && y[0].abs() < 1e-4);
    }
}
