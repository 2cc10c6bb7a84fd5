//! What each linear module of an artifact runs with ([`Manifest::input_quant`],
//! [`Manifest::linear_kernel`]): read from the manifest's activation
//! quantizers and weight records with the kernel rule the plan and the
//! packer share (`base::linear_kernel`), so artifacts that do not record the
//! integer kernel's input quantization read the same as those that do.

use crate::base::{linear_kernel, LinearKernelKind, WeightInputs};

use super::{ActivationQuant, Manifest, Storage};

impl Manifest {
    /// The kernel the linear `module` runs on: the integer kernel, the
    /// weight-only kernel, or the float kernel (a float weight, a packed form
    /// the kernels do not take, an embedding table or a GPT-2 `Conv1D`).
    pub fn linear_kernel(&self, module: &str) -> LinearKernelKind {
        let Some(record) = self.weights.get(&format!("{module}.weight")) else {
            return LinearKernelKind::Float;
        };
        let (packed, inputs) = match record.storage {
            Storage::Float => (None, WeightInputs::Kernel),
            Storage::Packed {
                bits,
                symmetric,
                granularity,
                inputs,
                ..
            } => (Some((bits, symmetric, granularity)), inputs),
        };
        let cols = record.shape.get(1).copied().unwrap_or(0);
        let family = self.config.arch.family();
        linear_kernel(family, module, packed, cols, inputs)
    }

    /// How the input of the linear `module` is quantized at run time: its
    /// recorded activation quantizer, else the integer kernel's int8 per
    /// token on a linear that kernel runs, else none (float inputs).
    pub fn input_quant(&self, module: &str) -> Option<ActivationQuant> {
        if let Some(q) = self.activation_quant.get(module) {
            return Some(*q);
        }
        (self.linear_kernel(module) == LinearKernelKind::Integer).then_some(ActivationQuant::KERNEL)
    }

    /// Whether `module` is quantized weight-only: float inputs, its packed
    /// weight decoded in the product.
    pub fn weight_only(&self, module: &str) -> bool {
        self.linear_kernel(module) == LinearKernelKind::Decoding
    }
}
