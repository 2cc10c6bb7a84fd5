//! Quantizers seen through the straight-through estimator while training.
//!
//! - `SpecQuantizer` runs the very quantizer that packs the artifact
//!   (`quant::fake_quantize`: `quantize` then `dequantize`, without storing
//!   the codes) on the detached weight, so the
//!   forward pass during training sees exactly the values the artifact will
//!   hold. The gradient reaches the float weight unchanged.
//! - `LearnedScaleQuantizer` is module-wise dynamic scaling (Tao et al.):
//!   the clipping value α of each unit (row or whole tensor) is a trainable
//!   variable. With `u = clamp(w/α, −1, 1)` and `L` the quantizer's levels on
//!   [−1, 1], the forward is `α·(u + (L(u) − u).detach())`: the weight's
//!   gradient passes inside the clipping range, and α receives `L(u) − u`
//!   inside it and `±1` outside (the LSQ/PACT gradient). The levels match
//!   `quant::quantize` with learned scales, so packing the trained α gives
//!   the same values.

use std::sync::Arc;

use candle_core::{Result, Tensor, Var, D};

use crate::base::{Bits, Granularity};
use crate::quant::{fake_quantize, QuantSpec};
use crate::runtime::kernels::values::{is_cpu_f32, with_values};
use crate::runtime::model::straight_through::straight_through;
use crate::runtime::Quantizer;

/// The packing quantizer, applied to detached values.
#[derive(Debug, Clone)]
pub struct SpecQuantizer {
    pub spec: QuantSpec,
}

impl Quantizer for SpecQuantizer {
    fn name(&self) -> String {
        format!("{:?}-{:?}", self.spec.bits, self.spec.granularity).to_lowercase()
    }

    fn quantize(&self, weight: &Tensor) -> Result<Tensor> {
        let (rows, cols) = weight.dims2()?;
        let q = if is_cpu_f32(weight) {
            with_values(weight, |v| self.values(v, rows, cols))?
        } else {
            self.values(&weight.flatten_all()?.to_vec1::<f32>()?, rows, cols)?
        };
        Tensor::from_vec(q, (rows, cols), weight.device())
    }

    fn fake_quant(&self, weight: &Tensor) -> Result<Tensor> {
        weight.dims2()?;
        let quantizer = self.clone();
        straight_through(
            weight,
            Arc::new(move |v: &[f32], rows, cols| quantizer.values(v, rows, cols)),
        )
    }

    fn straight_through_values(&self, weight: &Tensor) -> Result<Option<Tensor>> {
        self.quantize(weight).map(Some)
    }
}

impl SpecQuantizer {
    /// The quantized-then-dequantized values of a `[rows, cols]` matrix.
    fn values(&self, values: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
        fake_quantize(values, rows, cols, &self.spec)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

/// Symmetric quantization with a trainable clipping value per unit.
#[derive(Debug, Clone)]
pub struct LearnedScaleQuantizer {
    pub bits: Bits,
    /// `[rows, 1]` for row granularity, `[1, 1]` for a whole tensor.
    pub scale: Var,
}

impl LearnedScaleQuantizer {
    /// The levels `L(u)` for `u` in [−1, 1] (no gradient).
    fn levels(&self, u: &Tensor) -> Result<Tensor> {
        match self.bits {
            Bits::Binary => {
                // Sign with 0 → +1, as the packer's `x >= 0`.
                let pos = u.ge(0.0)?.to_dtype(u.dtype())?;
                (pos * 2.0)? - 1.0
            }
            // Threshold α/2 on |w|: round u to {−1, 0, 1}.
            Bits::Ternary => u.round(),
            // Mid-rise {−3, −1, 1, 3}/3.
            Bits::Int(2) => ((((u * 1.5)? + 1.5)?.round()? * 2.0)? - 3.0)? / 3.0,
            Bits::Int(b) => {
                let qmax = ((1u32 << (b - 1)) - 1) as f64;
                (u * qmax)?.round()? / qmax
            }
        }
    }

    /// The current clipping values (absolute, as the packer reads them).
    pub fn values(&self) -> Result<Vec<f32>> {
        self.scale
            .as_tensor()
            .abs()?
            .flatten_all()?
            .to_vec1::<f32>()
    }
}

impl Quantizer for LearnedScaleQuantizer {
    fn name(&self) -> String {
        format!("{:?}-learned-scale", self.bits).to_lowercase()
    }

    fn quantize(&self, weight: &Tensor) -> Result<Tensor> {
        self.fake_quant(&weight.detach())?.detach().contiguous()
    }

    fn fake_quant(&self, weight: &Tensor) -> Result<Tensor> {
        // A floor keeps α away from zero (division) without changing
        // trained values of any useful size.
        let alpha = self.scale.as_tensor().abs()?.clamp(1e-8, f64::MAX)?;
        let u = weight.broadcast_div(&alpha)?.clamp(-1.0, 1.0)?;
        let step = (self.levels(&u.detach())? - u.detach())?;
        (u + step)?.broadcast_mul(&alpha)
    }
}

/// The initial clipping value of each unit: min(max |w|, 3·mean |w|), the
/// packer's rule for a learned scale without training.
pub fn initial_scales(weight: &Tensor, granularity: Granularity) -> Result<Tensor> {
    let abs = weight.abs()?;
    let (max, mean) = match granularity {
        Granularity::Tensor => (
            abs.flatten_all()?.max_keepdim(0)?.reshape((1, 1))?,
            abs.flatten_all()?.mean_keepdim(0)?.reshape((1, 1))?,
        ),
        _ => (abs.max_keepdim(D::Minus1)?, abs.mean_keepdim(D::Minus1)?),
    };
    max.minimum(&(mean * 3.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::ScaleMethod;
    use crate::testing::max_diff;
    use candle_core::Device;

    fn spec(bits: Bits, learned: Vec<f32>) -> QuantSpec {
        QuantSpec {
            bits,
            symmetric: true,
            granularity: Granularity::Row,
            scale: ScaleMethod::Learned,
            learned: Some(learned),
        }
    }

    #[test]
    fn learned_levels_match_the_packer() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (6, 40), &dev).unwrap();
        for bits in [
            Bits::Binary,
            Bits::Ternary,
            Bits::Int(2),
            Bits::Int(4),
            Bits::Int(8),
        ] {
            let scale = initial_scales(&w, Granularity::Row).unwrap();
            let q = LearnedScaleQuantizer {
                bits,
                scale: Var::from_tensor(&scale).unwrap(),
            };
            let ours = q.quantize(&w).unwrap();
            let packer = SpecQuantizer {
                spec: spec(bits, q.values().unwrap()),
            }
            .quantize(&w)
            .unwrap();
            let diff = max_diff(&ours, &packer);
            assert!(diff < 1e-5, "{bits:?}: {diff}");
        }
    }

    #[test]
    fn learned_scale_gets_the_lsq_gradient() {
        let dev = Device::Cpu;
        // One row, α = 1: 0.2 → level 1/3 (2-bit), 3.0 is clipped.
        let w = Var::from_tensor(&Tensor::new(&[[0.2f32, 3.0]], &dev).unwrap()).unwrap();
        let scale = Var::from_tensor(&Tensor::new(&[[1.0f32]], &dev).unwrap()).unwrap();
        let q = LearnedScaleQuantizer {
            bits: Bits::Int(2),
            scale: scale.clone(),
        };
        let y = q.fake_quant(w.as_tensor()).unwrap();
        let v: Vec<Vec<f32>> = y.to_vec2().unwrap();
        assert!((v[0][0] - 1.0 / 3.0).abs() < 1e-6 && (v[0][1] - 1.0).abs() < 1e-6);
        let grads = y.sum_all().unwrap().backward().unwrap();
        let gs = grads
            .get(scale.as_tensor())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // (L(0.2) − 0.2) + 1 = 1/3 − 0.2 + 1.
        assert!((gs[0][0] - (1.0 / 3.0 - 0.2 + 1.0)).abs() < 1e-5, "{gs:?}");
        let gw = grads.get(w.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert!(
            (gw[0][0] - 1.0).abs() < 1e-6 && gw[0][1].abs() < 1e-6,
            "{gw:?}"
        );
    }
}
