//! One inference layer for several linears of the same input
//! ([`join_outputs`]): their rows joined on one kernel, so the input is read
//! and quantized once (BERT's query, key and value projections).

use candle_core::{DType, Result, Tensor};

use crate::runtime::kernels::{IntegerWeights, PackedLinear};
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
