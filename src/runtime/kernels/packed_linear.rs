//! `PackedLinear`: a linear layer on packed integer weights, run on candle
//! tensors through a `CustomOp1`: on the CPU kernels, or with the `cuda`
//! feature on the GPU kernel for a layer whose weights were placed on that
//! GPU ([`PackedLinear::to_device`]).

#[cfg(feature = "cuda")]
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

#[cfg(feature = "cuda")]
use super::cuda::GpuWeights;

use super::activations::quantize_activations;
use super::int_gemm::int_gemm_f32_vec;
use super::levels::{integer_weights, integer_weights_codes2, max_level, KernelError};
use super::simd_level::SimdLevel;
use super::weights::IntegerWeights;
use crate::quant::Quantized;

/// `y = x · Wᵀ + b` with `W` quantized (binary, ternary, 2/4/8-bit symmetric,
/// one scale per row or tensor, or per group of k within a row; the GPU
/// kernel takes one per row) and `x` quantized to int8 per token on the
/// fly. Inputs `[.., in_features]` give `[.., out_features]`.
#[derive(Debug, Clone)]
pub struct PackedLinear {
    weights: IntegerWeights,
    bias: Option<Vec<f32>>,
    /// A copy of the weights on a GPU, shared by clones.
    #[cfg(feature = "cuda")]
    gpu: Option<Arc<GpuWeights>>,
}

impl PackedLinear {
    /// Packs `q` (`[out_features, in_features]`) for the fastest kernel this
    /// CPU runs.
    pub fn new(q: &Quantized, bias: Option<Vec<f32>>) -> Result<Self, KernelError> {
        Self::with_level(q, bias, SimdLevel::detect_for(max_level(q.bits)))
    }

    /// Packs `q` for a given kernel (which must be available to run).
    pub fn with_level(
        q: &Quantized,
        bias: Option<Vec<f32>>,
        level: SimdLevel,
    ) -> Result<Self, KernelError> {
        check_bias(q, &bias)?;
        Ok(Self::assemble(integer_weights(q, level)?, bias))
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
            _ => Ok(Self::assemble(weights, bias)),
        }
    }

    fn assemble(weights: IntegerWeights, bias: Option<Vec<f32>>) -> Self {
        PackedLinear {
            weights,
            bias,
            #[cfg(feature = "cuda")]
            gpu: None,
        }
    }

    /// The layer with its weights also placed on `device`, uploaded once,
    /// when that is a CUDA GPU (`cuda` feature): its forward pass then runs
    /// on CUDA inputs too. On the CPU, the layer unchanged.
    pub fn to_device(self, device: &Device) -> Result<Self, KernelError> {
        match device {
            #[cfg(feature = "cuda")]
            Device::Cuda(gpu) => {
                let w = &self.weights;
                if w.groups > 1 {
                    // The GPU kernel takes one scale per row.
                    return Err(KernelError::GroupScales {
                        unit_len: w.group_len,
                        cols: w.k,
                    });
                }
                let weights =
                    GpuWeights::upload(&w.values(), w.n, w.k, &w.scales, self.bias.as_deref(), gpu)
                        .map_err(|e| KernelError::Device(e.to_string()))?;
                Ok(PackedLinear {
                    gpu: Some(Arc::new(weights)),
                    ..self
                })
            }
            Device::Cpu => Ok(self),
            other => Err(KernelError::Device(format!(
                "no packed kernel for {} in this build",
                device_name(other)
            ))),
        }
    }

    /// Whether the forward pass runs on tensors of `device`.
    pub fn runs_on(&self, device: &Device) -> bool {
        match device {
            Device::Cpu => true,
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => self.gpu.as_ref().is_some_and(|g| g.device().id() == d.id()),
            _ => false,
        }
    }

    /// Packs binary, ternary or 2-bit `q` as 2-bit codes decoded in
    /// registers by the AVX-512 kernel; `None` for other widths or CPUs.
    pub fn with_codes2(q: &Quantized, bias: Option<Vec<f32>>) -> Result<Option<Self>, KernelError> {
        check_bias(q, &bias)?;
        Ok(integer_weights_codes2(q)?.map(|weights| Self::assemble(weights, bias)))
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

    /// Applies the layer to a tensor of shape `[.., in_features]` (any float
    /// dtype; computed in f32, returned as f32) on the CPU, or on the GPU the
    /// weights were placed on ([`PackedLinear::to_device`]).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !self.runs_on(x.device()) {
            candle_core::bail!(
                "PackedLinear has no copy of its weights on {} (build with the `cuda` \
                 feature and place them there with `to_device`, or move the input to the CPU)",
                device_name(x.device())
            );
        }
        match x.dims().last() {
            Some(&k) if k == self.in_features() => {}
            _ => candle_core::bail!(
                "PackedLinear expects inputs of shape …×{}, got {}",
                self.in_features(),
                crate::diag::shape_text(x.dims())
            ),
        }
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        x.apply_op1_no_bwd(self)
    }

    /// The product on a plain `m × in_features` row-major slice.
    pub fn forward_slice(&self, x: &[f32], m: usize) -> Vec<f32> {
        let a = quantize_activations(x, m, self.in_features(), self.level());
        int_gemm_f32_vec(&a, &self.weights, self.bias.as_deref())
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        match &self.gpu {
            Some(gpu) => gpu.forward(storage, layout),
            None => candle_core::bail!("PackedLinear: weights not placed on the GPU (to_device)"),
        }
    }
}
/// `the CPU`, `CUDA GPU 0`, `Metal GPU 0`.
fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "the CPU".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("CUDA GPU {gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("Metal GPU {gpu_id}"),
    }
}
