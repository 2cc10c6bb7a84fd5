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
//! - [`join_outputs`]: several linears of one input as one product.
//! - [`quantize_input`]: the fake quantization (quantize, then dequantize in
//!   f32) of a layer's input as an artifact's activation quantizer describes
//!   it, with the same quantizer the weights use (`crate::quant`).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};

use crate::artifact::ActivationQuant;
use crate::base::{Bits, Granularity, ScaleMethod};
use crate::quant::{fake_quantize, QuantSpec};
use crate::runtime::kernels::f32_gemm::PackedWeight;
use crate::runtime::kernels::{IntegerWeights, PackedLinear};
use crate::runtime::model::linear::Linear;

/// The input quantization the integer kernel applies: symmetric int8, one
/// scale per token.
pub const PER_TOKEN_INT8: ActivationQuant = ActivationQuant {
    bits: 8,
    symmetric: true,
    granularity: Granularity::Token,
};

/// True when `q` is exactly what the integer kernel does to its input.
pub fn is_per_token_int8(q: &ActivationQuant) -> bool {
    q.bits == 8 && q.symmetric && matches!(q.granularity, Granularity::Token | Granularity::Row)
}

/// A weight packed for one kernel (a snapshot: training does not reach it).
#[derive(Debug, Clone)]
pub enum LinearKernel {
    F32(PackedWeight),
    Int8(PackedLinear),
}

impl LinearKernel {
    pub fn in_features(&self) -> usize {
        match self {
            LinearKernel::F32(p) => p.k,
            LinearKernel::Int8(p) => p.in_features(),
        }
    }

    pub fn out_features(&self) -> usize {
        match self {
            LinearKernel::F32(p) => p.n,
            LinearKernel::Int8(p) => p.out_features(),
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
        }
    }

    /// Whether the kernel runs on tensors of `device`: the CPU, or for the
    /// integer kernel the GPU its weights were placed on.
    pub fn runs_on(&self, device: &Device) -> bool {
        match self {
            LinearKernel::F32(_) => device.is_cpu(),
            LinearKernel::Int8(p) => p.runs_on(device),
        }
    }

    /// `x` `[.., in]` → `[.., out]` (bias included), or `None` where the
    /// kernel does not apply (not an f32 tensor of the right width on a
    /// device the kernel runs on).
    pub fn forward(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if !self.runs_on(x.device())
            || x.dtype() != DType::F32
            || x.dims().last() != Some(&self.in_features())
        {
            return Ok(None);
        }
        x.contiguous()?.apply_op1_no_bwd(self).map(Some)
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
            LinearKernel::F32(_) => {
                candle_core::bail!("the f32 linear kernel runs on the CPU only")
            }
        }
    }
}

/// One inference layer computing the outputs of `parts` (linears of the same
/// input) side by side: their rows joined, on the same kind of kernel, with
/// the same input quantization, so the input is read (and quantized) once.
/// `None` when the parts differ in kernel kind, input quantization or input
/// width, or have no kernel.
pub fn join_outputs(parts: &[&Linear]) -> Result<Option<Linear>> {
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    let quant = first.input_quant();
    let kernels: Option<Vec<&LinearKernel>> = parts.iter().map(|p| p.kernel()).collect();
    let Some(kernels) = kernels else {
        return Ok(None);
    };
    let k = kernels[0].in_features();
    if parts.iter().any(|p| p.input_quant() != quant)
        || kernels.iter().any(|kl| kl.in_features() != k)
    {
        return Ok(None);
    }
    let weights: Vec<Tensor> = parts
        .iter()
        .map(|p| p.float_weight())
        .collect::<Result<_>>()?;
    let weight = Tensor::cat(&weights, 0)?;
    let biases = parts
        .iter()
        .zip(&kernels)
        .map(|(p, kl)| match &p.bias {
            Some(b) => Ok(b.clone()),
            None => Tensor::zeros(kl.out_features(), DType::F32, weight.device()),
        })
        .collect::<Result<Vec<_>>>()?;
    let bias = Tensor::cat(&biases, 0)?;
    let mut joined = Linear::from_weights(weight, Some(bias.clone()));
    if let Some(q) = quant {
        joined.quantize_inputs(q);
    }
    let int8: Option<Vec<&PackedLinear>> = kernels
        .iter()
        .map(|kl| match kl {
            LinearKernel::Int8(p) => Some(p),
            LinearKernel::F32(_) => None,
        })
        .collect();
    match int8 {
        Some(packed) => {
            let (level, group_len) = (packed[0].level(), packed[0].weights().group_len);
            if packed
                .iter()
                .any(|p| p.level() != level || p.weights().group_len != group_len)
            {
                return Ok(None);
            }
            let n = packed.iter().map(|p| p.out_features()).sum();
            let values: Vec<i8> = packed.iter().flat_map(|p| p.weights().values()).collect();
            let scales: Vec<f32> = packed
                .iter()
                .flat_map(|p| p.weights().row_scales())
                .collect();
            let weights = if packed[0].weights().groups == 1 {
                IntegerWeights::new(&values, n, k, scales, level)
            } else {
                match IntegerWeights::new_grouped(&values, n, k, &scales, group_len, level) {
                    Some(w) => w,
                    None => return Ok(None),
                }
            };
            let joined_kernel = PackedLinear::from_integer_weights(weights, Some(bias.to_vec1()?))
                .and_then(|p| p.to_device(bias.device()))
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            joined.set_kernel(LinearKernel::Int8(joined_kernel));
        }
        None if kernels.iter().all(|kl| !kl.is_int8()) => joined.prepare_inference()?,
        None => return Ok(None),
    }
    Ok(joined.kernel().is_some().then_some(joined))
}

/// `x` `[.., in]` quantized as `q` says and mapped back to f32: per token
/// (`token` or `row`), per group of a token's values, or one range over the
/// whole tensor; symmetric or with a zero point; clipped at the observed
/// range (dynamic quantization).
pub fn quantize_input(x: &Tensor, q: &ActivationQuant) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let cols = dims.last().copied().unwrap_or(1);
    if x.elem_count() == 0 || cols == 0 {
        return Ok(x.clone());
    }
    let rows = x.elem_count() / cols;
    let values = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
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
    let quantized = fake_quantize(&values, rows, cols, &spec)
        .map_err(|e| candle_core::Error::Msg(format!("activation quantizer: {e}")))?;
    Tensor::from_vec(quantized, dims, x.device())?.to_dtype(x.dtype())
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
