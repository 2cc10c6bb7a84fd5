//! One inference layer for several linears of the same input
//! ([`join_outputs`]): their rows joined on one kernel (f32, integer or
//! weight-only), so the input is read and quantized once (BERT's query, key
//! and value projections).

use candle_core::{DType, Result, Tensor};

use crate::runtime::kernels::{IntegerWeights, PackedLinear, WeightOnlyLinear};
use crate::runtime::model::linear::Linear;
use crate::runtime::model::linear_kernel::LinearKernel;

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
    let device = weight.device().clone();
    let mut joined = Linear::from_weights(weight, Some(bias.clone()));
    if let Some(q) = quant {
        joined.quantize_inputs(q);
    }
    let bias = bias.to_vec1::<f32>()?;
    let kernel = match kernels[0] {
        LinearKernel::Int8(_) => join_int8(&kernels, k, bias, &device)?,
        LinearKernel::WeightOnly(_) => join_weight_only(&kernels, k, bias)?,
        LinearKernel::F32(_) if kernels.iter().all(|kl| matches!(kl, LinearKernel::F32(_))) => {
            joined.prepare_inference()?;
            None
        }
        LinearKernel::F32(_) => return Ok(None),
    };
    if let Some(kernel) = kernel {
        joined.set_kernel(kernel);
    }
    Ok(joined.kernel().is_some().then_some(joined))
}

/// Integer kernels joined into one (`None` unless every part is one, on the
/// same level and scale groups).
fn join_int8(
    kernels: &[&LinearKernel],
    k: usize,
    bias: Vec<f32>,
    device: &candle_core::Device,
) -> Result<Option<LinearKernel>> {
    let packed: Option<Vec<&PackedLinear>> = kernels
        .iter()
        .map(|kl| match kl {
            LinearKernel::Int8(p) => Some(p),
            _ => None,
        })
        .collect();
    let Some(packed) = packed else {
        return Ok(None);
    };
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
    let joined = PackedLinear::from_integer_weights(weights, Some(bias))
        .and_then(|p| p.to_device(device))
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    Ok(Some(LinearKernel::Int8(joined)))
}

/// Weight-only kernels joined into one (`None` unless every part is one, on
/// the same level and scale groups).
fn join_weight_only(
    kernels: &[&LinearKernel],
    k: usize,
    bias: Vec<f32>,
) -> Result<Option<LinearKernel>> {
    let parts: Option<Vec<&WeightOnlyLinear>> = kernels
        .iter()
        .map(|kl| match kl {
            LinearKernel::WeightOnly(p) => Some(p),
            _ => None,
        })
        .collect();
    let Some(parts) = parts else {
        return Ok(None);
    };
    let (level, group_len) = (parts[0].level(), parts[0].group_len());
    if parts
        .iter()
        .any(|p| p.level() != level || p.group_len() != group_len)
    {
        return Ok(None);
    }
    let n = parts.iter().map(|p| p.out_features()).sum();
    let values: Vec<i8> = parts.iter().flat_map(|p| p.values()).collect();
    let scales: Vec<f32> = parts.iter().flat_map(|p| p.row_scales()).collect();
    let joined =
        WeightOnlyLinear::from_levels(&values, n, k, &scales, Some(group_len), Some(bias), level)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    Ok(Some(LinearKernel::WeightOnly(joined)))
}
