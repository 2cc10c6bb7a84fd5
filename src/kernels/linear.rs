//! `PackedLinear`: a linear layer on packed integer weights, run on candle
//! CPU tensors through a `CustomOp1`.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use super::levels::{integer_weights, integer_weights_codes2, KernelError};
use super::{gemm_f32, quantize_activations, IntegerWeights, SimdLevel};
use crate::quant::Quantized;

/// `y = x · Wᵀ + b` with `W` quantized (binary, ternary, 2/4/8-bit symmetric,
/// one scale per row or tensor) and `x` quantized to int8 per token on the
/// fly. Inputs `[.., in_features]` give `[.., out_features]`.
#[derive(Debug, Clone)]
pub struct PackedLinear {
    weights: IntegerWeights,
    bias: Option<Vec<f32>>,
}

impl PackedLinear {
    /// Packs `q` (`[out_features, in_features]`) for the fastest kernel this
    /// CPU runs.
    pub fn new(q: &Quantized, bias: Option<Vec<f32>>) -> Result<Self, KernelError> {
        Self::with_level(q, bias, SimdLevel::detect())
    }

    /// Packs `q` for a given kernel (which must be available to run).
    pub fn with_level(
        q: &Quantized,
        bias: Option<Vec<f32>>,
        level: SimdLevel,
    ) -> Result<Self, KernelError> {
        check_bias(q, &bias)?;
        Ok(PackedLinear {
            weights: integer_weights(q, level)?,
            bias,
        })
    }

    /// A layer on integer weights already packed (for instance the rows of
    /// several layers joined).
    pub fn from_integer_weights(
        weights: IntegerWeights,
        bias: Option<Vec<f32>>,
    ) -> Result<Self, KernelError> {
        match &bias {
            Some(b) if b.len() != weights.n => Err(KernelError::BiasLength {
                expected: weights.n,
                found: b.len(),
            }),
            _ => Ok(PackedLinear { weights, bias }),
        }
    }

    /// Packs binary, ternary or 2-bit `q` as 2-bit codes decoded in
    /// registers by the AVX-512 kernel; `None` for other widths or CPUs.
    pub fn with_codes2(q: &Quantized, bias: Option<Vec<f32>>) -> Result<Option<Self>, KernelError> {
        check_bias(q, &bias)?;
        Ok(integer_weights_codes2(q)?.map(|weights| PackedLinear { weights, bias }))
    }

    pub fn in_features(&self) -> usize {
        self.weights.k
    }

    pub fn out_features(&self) -> usize {
        self.weights.n
    }

    pub fn level(&self) -> SimdLevel {
        self.weights.level
    }

    pub fn weights(&self) -> &IntegerWeights {
        &self.weights
    }

    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// Applies the layer to a CPU tensor of shape `[.., in_features]` (any
    /// float dtype; computed in f32, returned as f32).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !x.device().is_cpu() {
            candle_core::bail!(
                "PackedLinear runs on the CPU only (this build has no GPU kernel for \
                 packed weights); move the input to the CPU or use a float layer"
            );
        }
        match x.dims().last() {
            Some(&k) if k == self.in_features() => {}
            _ => candle_core::bail!(
                "PackedLinear expects inputs of shape [.., {}], got {:?}",
                self.in_features(),
                x.dims()
            ),
        }
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        x.apply_op1_no_bwd(self)
    }

    /// The product on a plain `m × in_features` row-major slice.
    pub fn forward_slice(&self, x: &[f32], m: usize) -> Vec<f32> {
        let a = quantize_activations(x, m, self.in_features(), self.level());
        let mut out = vec![0.0f32; m * self.out_features()];
        gemm_f32(&a, &self.weights, self.bias.as_deref(), &mut out);
        out
    }
}

fn check_bias(q: &Quantized, bias: &Option<Vec<f32>>) -> Result<(), KernelError> {
    match bias {
        Some(b) if b.len() != q.rows => Err(KernelError::BiasLength {
            expected: q.rows,
            found: b.len(),
        }),
        _ => Ok(()),
    }
}

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "plcc-packed-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("PackedLinear takes f32 input");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("PackedLinear takes a contiguous input");
        };
        let dims = layout.shape().dims();
        let (&k, lead) = match dims.split_last() {
            Some(split) => split,
            None => candle_core::bail!("PackedLinear takes an input of rank at least 1"),
        };
        if k != self.in_features() {
            candle_core::bail!(
                "PackedLinear expects inputs of shape [.., {}], got {dims:?}",
                self.in_features()
            );
        }
        let m: usize = lead.iter().product();
        let out = self.forward_slice(&values[start..end], m);
        let mut out_dims = lead.to_vec();
        out_dims.push(self.out_features());
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}
