//! Linear layers whose weight is float or fake-quantized. A fake-quantized
//! weight is used as `w + (q(w) - w).detach()` (the straight-through
//! estimator): the forward sees the quantized values, the gradient reaches the
//! float weight unchanged. Quantizers plug in through the `Quantizer` trait.
//!
//! For inference a layer may also carry a [`LinearKernel`] (its weight packed
//! for a fast kernel: f32 on the CPU, the integer kernel of a packed
//! artifact weight, on the CPU or the GPU, or the weight-only kernel that
//! decodes a packed weight for float inputs) and an input quantizer (an
//! artifact's activation quantization). A layer given a kernel keeps its
//! weight only in the kernel's packed form ([`LinearWeight::InKernel`]), so
//! a model is held in memory once, at its packed size; the float weight is
//! rebuilt from the kernel where something asks for it.

use std::fmt::Debug;
use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::artifact::ActivationQuant;
use crate::base::Activation;
use crate::quant::Quantized;
use crate::runtime::kernels::f32_gemm::{self, PackedWeight};
use crate::runtime::kernels::{KernelError, PackedLinear};
use crate::runtime::model::grad_sink::GradSink;
use crate::runtime::model::input_tap::InputTap;
use crate::runtime::model::layers::activate;
use crate::runtime::model::linear_grad;
use crate::runtime::model::linear_kernel::{
    is_per_token_int8, quantize_input, quantize_input_values, LinearKernel, PER_TOKEN_INT8,
};
use crate::runtime::model::straight_through::{straight_through, ValueMap};

/// Maps a float weight `[out, in]` to its quantized-then-dequantized values
/// (same shape, f32). Implementations: binary, ternary, int-b, learned scales.
pub trait Quantizer: Debug + Send + Sync {
    /// A short description (`int8-per-row`) for plans and reports.
    fn name(&self) -> String;
    fn quantize(&self, weight: &Tensor) -> Result<Tensor>;

    /// The weight the forward pass uses while training: by default the
    /// straight-through form `w + (q(w) − w).detach()`. Quantizers with
    /// trainable parameters override it so that those receive gradients.
    fn fake_quant(&self, weight: &Tensor) -> Result<Tensor> {
        let q = self.quantize(&weight.detach())?;
        weight + (q - weight)?.detach()
    }

    /// The quantized values (no gradient) when [`Self::fake_quant`] is the
    /// plain straight-through form, whose gradient reaches the float weight
    /// unchanged: the linear layer's product then reads them and hands its
    /// weight gradient to the float weight directly. `None` (the default)
    /// keeps [`Self::fake_quant`]'s own differentiable form, which is always
    /// right; quantizers with trainable parameters must keep it.
    fn straight_through_values(&self, _weight: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// Symmetric signed `bits`-bit quantization with one scale per output row:
/// `scale = max|w_row| / (2^(bits-1) - 1)`, `q = clamp(round(w / scale)) * scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymmetricIntPerRow {
    pub bits: u8,
}

impl Quantizer for SymmetricIntPerRow {
    fn name(&self) -> String {
        format!("int{}-per-row", self.bits)
    }

    fn quantize(&self, weight: &Tensor) -> Result<Tensor> {
        if !(2..=16).contains(&self.bits) {
            candle_core::bail!(
                "symmetric int quantization needs 2..=16 bits, got {}",
                self.bits
            )
        }
        let qmax = ((1u32 << (self.bits - 1)) - 1) as f64;
        let scale = (weight.abs()?.max_keepdim(D::Minus1)? / qmax)?;
        // All-zero rows keep scale 1 so they stay zero instead of NaN.
        let scale = scale.eq(0.0)?.where_cond(&scale.ones_like()?, &scale)?;
        let q = weight.broadcast_div(&scale)?.round()?.clamp(-qmax, qmax)?;
        q.broadcast_mul(&scale)
    }

    fn straight_through_values(&self, weight: &Tensor) -> Result<Option<Tensor>> {
        self.quantize(&weight.detach()).map(Some)
    }
}

/// The state of a linear layer's weight.
#[derive(Debug, Clone)]
pub enum LinearWeight {
    /// A plain f32 weight `[out, in]`.
    Float(Tensor),
    /// A float weight `[out, in]` seen through a quantizer with a
    /// straight-through gradient.
    FakeQuant {
        weight: Tensor,
        quantizer: Arc<dyn Quantizer>,
        /// The quantized weight computed once for the forward passes of one
        /// training step ([`Linear::freeze_quantized`]).
        frozen: Option<FrozenWeight>,
    },
    /// Held only in the layer's kernel (inference); `device` is where the
    /// float weight would live.
    InKernel { device: Device },
}

/// A fake-quantized weight as the forward passes of one step read it.
#[derive(Debug, Clone)]
pub enum FrozenWeight {
    /// Quantized values; the gradient passes straight through to the weight.
    Values(Tensor),
    /// The quantizer's own differentiable form (trainable parameters).
    Graph(Tensor),
}

impl FrozenWeight {
    /// `weight` as `quantizer` has the forward pass read it.
    fn of(weight: &Tensor, quantizer: &dyn Quantizer) -> Result<FrozenWeight> {
        Ok(match quantizer.straight_through_values(weight)? {
            Some(values) => FrozenWeight::Values(values),
            None => FrozenWeight::Graph(quantizer.fake_quant(weight)?),
        })
    }
}

/// `y = x Wᵀ + b` with `W` `[out, in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: LinearWeight,
    pub bias: Option<Tensor>,
    /// A packed snapshot of the weight for a fast CPU kernel
    /// (`prepare_inference`, `use_packed`); dropped when the weight changes
    /// state.
    kernel: Option<Arc<LinearKernel>>,
    /// How the input is quantized before the product (`quantize_inputs`).
    input_quant: Option<ActivationQuant>,
    /// Records the inputs (calibration), when attached.
    tap: Option<Arc<InputTap>>,
    /// Takes the weight's and the bias's gradients while training, when
    /// attached (`set_grad_sink`).
    grad_sink: Option<Arc<GradSink>>,
}

impl Linear {
    /// Loads `weight` `[out, in]` and `bias` `[out]` (PyTorch `nn.Linear` layout).
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let bias = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
        Ok(Linear {
            weight: LinearWeight::Float(weight),
            bias: Some(bias),
            kernel: None,
            input_quant: None,
            tap: None,
            grad_sink: None,
        })
    }

    /// Loads a GPT-2 `Conv1D`: `weight` stored `[in, out]`, used transposed.
    pub fn load_conv1d(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let weight = vb.get_with_hints(
            (in_dim, out_dim),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let bias = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
        Ok(Linear {
            weight: LinearWeight::Float(weight.t()?.contiguous()?),
            bias: Some(bias),
            kernel: None,
            input_quant: None,
            tap: None,
            grad_sink: None,
        })
    }

    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight: LinearWeight::Float(weight),
            bias,
            kernel: None,
            input_quant: None,
            tap: None,
            grad_sink: None,
        }
    }

    /// `(out, in)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        match (&self.weight, self.kernel.as_deref()) {
            (LinearWeight::InKernel { .. }, Some(k)) => Ok((k.out_features(), k.in_features())),
            _ => self.float_weight()?.dims2(),
        }
    }

    /// The underlying float weight (before any quantizer); for a weight held
    /// only in its kernel, rebuilt from the packed form (the dequantized
    /// values an artifact stores, or the exact f32 values).
    pub fn float_weight(&self) -> Result<Tensor> {
        match (&self.weight, self.kernel.as_deref()) {
            (LinearWeight::Float(w) | LinearWeight::FakeQuant { weight: w, .. }, _) => {
                Ok(w.clone())
            }
            (LinearWeight::InKernel { device }, Some(k)) => {
                let (n, in_features) = (k.out_features(), k.in_features());
                Tensor::from_vec(k.dequantized_weight(), (n, in_features), &Device::Cpu)?
                    .to_device(device)
            }
            (LinearWeight::InKernel { .. }, None) => {
                candle_core::bail!("a linear layer's weight is held in a kernel it no longer has")
            }
        }
    }

    /// Switches the weight to fake quantization with `quantizer`.
    pub fn fake_quantize(&mut self, quantizer: Arc<dyn Quantizer>) -> Result<()> {
        let weight = self.float_weight()?;
        self.weight = LinearWeight::FakeQuant {
            weight,
            quantizer,
            frozen: None,
        };
        self.kernel = None;
        Ok(())
    }

    /// Switches the layer back to a float product: the weight no longer seen
    /// through its quantizer and the input no longer quantized (the float
    /// phase of training; `fake_quantize` and `quantize_inputs` switch back).
    pub fn stop_quantizing(&mut self) -> Result<()> {
        let weight = self.float_weight()?;
        self.weight = LinearWeight::Float(weight);
        self.kernel = None;
        self.input_quant = None;
        Ok(())
    }

    /// Computes a fake-quantized weight once, for every forward pass until
    /// the next call: the shards of a training step share it. Call it again
    /// whenever the weight has changed (after every optimizer step).
    pub fn freeze_quantized(&mut self) -> Result<()> {
        if let LinearWeight::FakeQuant {
            weight,
            quantizer,
            frozen,
        } = &mut self.weight
        {
            *frozen = Some(FrozenWeight::of(weight, quantizer.as_ref())?);
        }
        Ok(())
    }

    /// The weight the product takes as its argument, and the values it
    /// reads instead where the weight is seen through a straight-through
    /// quantizer.
    fn product_weight(&self) -> Result<(Tensor, Option<Tensor>)> {
        let LinearWeight::FakeQuant {
            weight,
            quantizer,
            frozen,
        } = &self.weight
        else {
            return Ok((self.effective_weight()?, None));
        };
        let frozen = match frozen {
            Some(f) => f.clone(),
            None => FrozenWeight::of(weight, quantizer.as_ref())?,
        };
        Ok(match frozen {
            FrozenWeight::Values(values) => (weight.clone(), Some(values)),
            FrozenWeight::Graph(w) => (w, None),
        })
    }

    /// Keeps the weight only in the kernel just set.
    fn hold_in_kernel(&mut self, device: Device) {
        self.weight = LinearWeight::InKernel { device };
    }

    /// Packs a float CPU weight for the fast inference kernel (where the CPU
    /// has one and no kernel is set yet). The packed copy is a snapshot: call
    /// this only on weights that will not be trained afterwards.
    pub fn prepare_inference(&mut self) -> Result<()> {
        let LinearWeight::Float(w) = &self.weight else {
            return Ok(());
        };
        if self.kernel.is_some()
            || !w.device().is_cpu()
            || w.dtype() != DType::F32
            || !f32_gemm::available()
        {
            return Ok(());
        }
        let (n, k) = w.dims2()?;
        let data = w.flatten_all()?.to_vec1::<f32>()?;
        let bias = self.bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        if let Some(packed) = PackedWeight::new(&data, bias.as_deref(), n, k) {
            self.kernel = Some(Arc::new(LinearKernel::F32(packed)));
            self.hold_in_kernel(Device::Cpu);
        }
        Ok(())
    }

    /// Runs the layer through the integer kernel on `q`, the quantized form
    /// of its (float, dequantized) weight: inputs are then quantized to int8
    /// per token. The packed weights go where the float weight is (a copy
    /// uploaded to the GPU for a CUDA weight). An error (asymmetric weights,
    /// scales per group, a bias of the wrong length, a failed upload) leaves
    /// the layer unchanged.
    pub fn use_packed(&mut self, q: &Quantized) -> std::result::Result<(), KernelError> {
        let bias = match &self.bias {
            Some(b) => Some(
                b.to_dtype(DType::F32)
                    .and_then(|b| b.to_vec1::<f32>())
                    .map_err(|e| KernelError::Malformed(e.to_string()))?,
            ),
            None => None,
        };
        let device = self.device();
        let packed = PackedLinear::new(q, bias)?.to_device(&device)?;
        self.kernel = Some(Arc::new(LinearKernel::Int8(packed)));
        self.hold_in_kernel(device);
        Ok(())
    }

    /// Where the layer's weight lives.
    pub fn device(&self) -> Device {
        match &self.weight {
            LinearWeight::Float(w) | LinearWeight::FakeQuant { weight: w, .. } => {
                w.device().clone()
            }
            LinearWeight::InKernel { device } => device.clone(),
        }
    }

    /// Replaces the weight by a plain float one (same shape), dropping any
    /// quantizer and kernel snapshot of the old one.
    pub fn set_weight(&mut self, weight: Tensor) {
        self.weight = LinearWeight::Float(weight);
        self.kernel = None;
    }

    /// Whether a tap records the layer's inputs.
    pub fn has_tap(&self) -> bool {
        self.tap.is_some()
    }

    /// Attaches (or with `None` removes) a tap that records every input.
    /// Sends the gradients of the weight and the bias, where they are
    /// parameters, to `sink` instead of the backward pass's store (CPU
    /// training; other devices keep the store).
    pub fn set_grad_sink(&mut self, sink: Option<Arc<GradSink>>) {
        self.grad_sink = sink;
    }

    pub fn set_tap(&mut self, tap: Option<Arc<InputTap>>) {
        self.tap = tap;
    }

    /// Sets the kernel the layer runs on; the weight is then held only there.
    pub(crate) fn set_kernel(&mut self, kernel: LinearKernel) {
        let device = self.device();
        self.kernel = Some(Arc::new(kernel));
        self.hold_in_kernel(device);
    }

    /// Quantizes the input as `q` says before every product (inference).
    pub fn quantize_inputs(&mut self, q: ActivationQuant) {
        self.input_quant = Some(q);
    }

    /// The kernel the layer runs on, if any.
    pub fn kernel(&self) -> Option<&LinearKernel> {
        self.kernel.as_deref()
    }

    /// How the input is quantized: as set by `quantize_inputs`, else per
    /// token to int8 when the integer kernel is attached.
    pub fn input_quant(&self) -> Option<ActivationQuant> {
        let int8 = self.kernel.as_deref().is_some_and(LinearKernel::is_int8);
        self.input_quant.or(int8.then_some(PER_TOKEN_INT8))
    }

    /// The weight the forward pass multiplies by.
    pub fn effective_weight(&self) -> Result<Tensor> {
        match &self.weight {
            LinearWeight::Float(w) => Ok(w.clone()),
            LinearWeight::FakeQuant {
                weight, quantizer, ..
            } => quantizer.fake_quant(weight),
            LinearWeight::InKernel { .. } => self.float_weight(),
        }
    }

    /// `x` `[..., in]` → `[..., out]`. With an input quantizer the input is
    /// quantized first (by the integer kernel itself when it does exactly
    /// that, else fake-quantized in f32 before the float product).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_then(x, false)
    }

    /// `act(self.forward(x))`. The erf GELU of an inference kernel's product
    /// is applied to its output in the same operation (no second tensor);
    /// the values are those of the separate GELU.
    pub fn forward_activated(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        match act {
            Activation::Gelu => self.forward_then(x, true),
            _ => activate(&self.forward(x)?, act),
        }
    }

    /// [`Self::forward`], then with `gelu` the erf GELU.
    fn forward_then(&self, x: &Tensor, gelu: bool) -> Result<Tensor> {
        let quant = self.input_quant();
        if let Some(tap) = &self.tap {
            match &quant {
                Some(q) => tap.record(&quantize_input(&x.detach(), q)?)?,
                None => tap.record(x)?,
            }
        }
        if let Some(k) = self.kernel.as_deref().filter(|k| k.is_int8()) {
            if quant.as_ref().is_some_and(is_per_token_int8) {
                if let Some(y) = k.forward_then(x, gelu)? {
                    return Ok(y);
                }
            }
        }
        if let Some(k) = self.kernel.as_deref().filter(|k| !k.is_int8()) {
            let xq = match &quant {
                Some(q) => quantize_input(x, q)?,
                None => x.clone(),
            };
            if let Some(y) = k.forward_then(&xq, gelu)? {
                return Ok(y);
            }
        }
        let (w, values) = self.product_weight()?;
        let bias = self.bias.as_ref();
        let sink = self.grad_sink.as_ref();
        let (input, read) = (quant.map(input_map), values.as_ref());
        let product = linear_grad::linear(x, &w, bias, input, read, sink, gelu)?;
        let y = match product {
            // The operation applied the GELU itself.
            Some(y) => return Ok(y),
            None => {
                let w = match values {
                    Some(v) => (&w + (v - &w)?.detach())?,
                    None => w,
                };
                self.candle_product(x, &w, quant)?
            }
        };
        if gelu {
            return activate(&y, Activation::Gelu);
        }
        Ok(y)
    }

    /// [`linear_grad::linear`] in candle's operations, for other devices
    /// and dtypes.
    fn candle_product(
        &self,
        x: &Tensor,
        w: &Tensor,
        quant: Option<ActivationQuant>,
    ) -> Result<Tensor> {
        let x = match quant {
            // While training, the quantized input passes the gradient
            // straight through to the float input.
            Some(q) if x.track_op() => straight_through(x, input_map(q))?,
            Some(q) => quantize_input(x, &q)?,
            None => x.clone(),
        };
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let flat = x.reshape((rows, in_dim))?;
        let y = flat.matmul(&w.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        let last = out_dims.len() - 1;
        out_dims[last] = y.dim(1)?;
        y.reshape(out_dims)
    }
}

/// An input quantizer as the map of values a product reads.
fn input_map(q: ActivationQuant) -> Arc<ValueMap> {
    Arc::new(move |v: &[f32], rows, cols| quantize_input_values(v, rows, cols, &q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{Device, Var};

    #[test]
    fn int_quantizer_rounds_to_levels_per_row() {
        let w = Tensor::new(&[[1.0f32, -0.5, 0.26], [0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        let q = SymmetricIntPerRow { bits: 2 }.quantize(&w).unwrap();
        let v: Vec<Vec<f32>> = q.to_vec2().unwrap();
        // bits 2: levels {-1, 0, 1} × max|row|.
        assert_eq!(v, vec![vec![1.0, -1.0, 0.0], vec![0.0, 0.0, 0.0]]);
    }

    #[test]
    fn fake_quant_forward_is_quantized_and_gradient_passes_through() {
        let dev = Device::Cpu;
        let w =
            Var::from_tensor(&Tensor::new(&[[0.3f32, -0.7], [0.05, 0.9]], &dev).unwrap()).unwrap();
        let mut lin = Linear::from_weights(w.as_tensor().clone(), None);
        lin.fake_quantize(Arc::new(SymmetricIntPerRow { bits: 2 }))
            .unwrap();
        let x = Tensor::new(&[[1.0f32, 2.0]], &dev).unwrap();
        let y = lin.forward(&x).unwrap();
        let v: Vec<Vec<f32>> = y.to_vec2().unwrap();
        // Row 0 quantizes to [0, -0.7], row 1 to [0, 0.9].
        assert!(
            (v[0][0] + 1.4).abs() < 1e-6 && (v[0][1] - 1.8).abs() < 1e-6,
            "{v:?}"
        );
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<Vec<f32>> = grads.get(w.as_tensor()).unwrap().to_vec2().unwrap();
        assert_eq!(g, vec![vec![1.0, 2.0], vec![1.0, 2.0]]);
        // Frozen for a step: the same values and gradient, until the weight
        // changes and the layer is frozen again.
        lin.freeze_quantized().unwrap();
        let frozen = lin.forward(&x).unwrap();
        assert_eq!(frozen.to_vec2::<f32>().unwrap(), v);
        let grads = frozen.sum_all().unwrap().backward().unwrap();
        let g2: Vec<Vec<f32>> = grads.get(w.as_tensor()).unwrap().to_vec2().unwrap();
        assert_eq!(g2, g);
        w.set(&Tensor::new(&[[0.9f32, 0.0], [0.0, -0.9]], &dev).unwrap())
            .unwrap();
        lin.freeze_quantized().unwrap();
        let changed: Vec<Vec<f32>> = lin.forward(&x).unwrap().to_vec2().unwrap();
        assert_eq!(changed, vec![vec![0.9, -1.8]]);
    }

    /// A 37 → 45 linear with a bias and an input `[2, 5, 37]`, random.
    fn random_linear_and_input() -> (Linear, Tensor) {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (45, 37), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 45, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 37), &dev).unwrap();
        (Linear::from_weights(w, Some(b)), x)
    }

    #[test]
    fn a_kernels_gelu_gives_the_separate_gelus_values() {
        let (mut packed, x) = random_linear_and_input();
        packed.prepare_inference().unwrap();
        let separate = activate(&packed.forward(&x).unwrap(), Activation::Gelu).unwrap();
        let fused = packed.forward_activated(&x, Activation::Gelu).unwrap();
        assert_eq!(fused.dims(), &[2, 5, 45]);
        assert_eq!(max_diff(&separate, &fused), 0.0);
    }

    #[test]
    fn packed_forward_matches_and_fake_quant_drops_the_pack() {
        let (plain, x) = random_linear_and_input();
        let mut packed = plain.clone();
        packed.prepare_inference().unwrap();
        assert!(max_diff(&plain.forward(&x).unwrap(), &packed.forward(&x).unwrap()) < 1e-4);
        let q = Arc::new(SymmetricIntPerRow { bits: 2 });
        let mut quantized = plain.clone();
        quantized.fake_quantize(q.clone()).unwrap();
        packed.fake_quantize(q).unwrap();
        assert_eq!(
            max_diff(
                &quantized.forward(&x).unwrap(),
                &packed.forward(&x).unwrap()
            ),
            0.0
        );
    }
}
