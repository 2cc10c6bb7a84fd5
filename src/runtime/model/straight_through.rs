//! The straight-through estimator as one operation: the forward pass maps a
//! tensor's values through a quantizer (quantize, then dequantize), the
//! backward pass hands the gradient on unchanged. On the CPU this is a single
//! custom operation with one pass over the values and one output tensor,
//! where the textbook form `x + (q(x) − x).detach()` builds three; other
//! devices use the textbook form, which gives the same values and gradient.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use crate::runtime::kernels::values::is_cpu_f32;

/// Maps the values of a row-major `[rows, cols]` matrix (the tensor's last
/// dimension is `cols`) to their quantized-then-dequantized values.
pub type ValueMap = dyn Fn(&[f32], usize, usize) -> Result<Vec<f32>> + Send + Sync;

/// `map(x)` in the forward pass; the gradient passes straight through to `x`.
pub fn straight_through(x: &Tensor, map: Arc<ValueMap>) -> Result<Tensor> {
    if is_cpu_f32(x) {
        return x.contiguous()?.apply_op1(StraightThrough { map });
    }
    let cols = x.dims().last().copied().unwrap_or(1).max(1);
    let values = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mapped = map(&values, values.len() / cols, cols)?;
    let q = Tensor::from_vec(mapped, x.dims(), x.device())?.to_dtype(x.dtype())?;
    x + (q - x)?.detach()
}

struct StraightThrough {
    map: Arc<ValueMap>,
}

impl CustomOp1 for StraightThrough {
    fn name(&self) -> &'static str {
        "plcc-straight-through"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = layout.shape().clone();
        let cols = shape.dims().last().copied().unwrap_or(1).max(1);
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("straight-through: input not contiguous".into())
        })?;
        let values = &storage.as_slice::<f32>()?[start..end];
        let mapped = (self.map)(values, values.len() / cols, cols)?;
        Ok((CpuStorage::F32(mapped), shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn round_to_halves() -> Arc<ValueMap> {
        Arc::new(|v: &[f32], _, _| Ok(v.iter().map(|x| (x * 2.0).round() / 2.0).collect()))
    }

    #[test]
    fn forward_maps_values_and_gradient_passes_through() {
        let x = Var::new(&[[0.2f32, 0.7], [-0.3, 1.1]], &Device::Cpu).unwrap();
        let y = straight_through(x.as_tensor(), round_to_halves()).unwrap();
        assert_eq!(
            y.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, 0.5], vec![-0.5, 1.0]]
        );
        let loss = (y * Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(g, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    }

    #[test]
    fn transposed_input_is_read_in_row_major_order() {
        let x = Tensor::new(&[[0.2f32, 0.7], [-0.3, 1.1]], &Device::Cpu).unwrap();
        let t = x.t().unwrap();
        let y = straight_through(&t, round_to_halves()).unwrap();
        assert_eq!(
            y.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, -0.5], vec![0.5, 1.0]]
        );
    }
}
