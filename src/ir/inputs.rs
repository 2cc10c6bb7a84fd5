//! What each linear module's input goes through at run time
//! ([`Program::linear_input`]): the activation quantizer the recipe placed,
//! the packed integer kernel's int8 per token, or float (a float weight, a
//! weight the kernels do not take, or weight-only quantization). The kernel
//! choice is `base::linear_kernel`, the rule the packer and the loader share.

use crate::base::{linear_kernel, LinearKernelKind, WeightInputs};
use crate::base::{KERNEL_INPUT_TEXT, WEIGHT_ONLY_INPUT_TEXT};

use super::{print_act_quant, ActQuant, Linear, NodeIndex, Program};

/// The input of one linear module at run time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinearInput<'a> {
    /// Float inputs on a float (or dequantized) weight.
    Float,
    /// The activation quantizer the recipe placed.
    Quantizer(&'a ActQuant),
    /// Quantized to int8 per token by the packed integer kernel.
    Kernel,
    /// Float inputs, the packed weight decoded in the product.
    WeightOnly,
}

impl LinearInput<'_> {
    /// How `plcc plan` shows it; `None` for float inputs on a float weight.
    pub fn text(&self) -> Option<String> {
        match self {
            LinearInput::Float => None,
            LinearInput::Quantizer(a) => Some(print_act_quant(a)),
            LinearInput::Kernel => Some(KERNEL_INPUT_TEXT.to_string()),
            LinearInput::WeightOnly => Some(WEIGHT_ONLY_INPUT_TEXT.to_string()),
        }
    }
}

impl Program {
    /// What the input of `linear` (a module of node `ix`) goes through when
    /// the built model runs.
    pub fn linear_input(&self, ix: NodeIndex, linear: &Linear) -> LinearInput<'_> {
        let q = self.model.node(ix).quant.get(&linear.name);
        if let Some(a) = q.and_then(|q| q.activations.as_ref()) {
            return LinearInput::Quantizer(a);
        }
        let weights = q.and_then(|q| q.weights.as_ref());
        let family = self.plan.teacher.config.arch.family();
        let kind = linear_kernel(
            family,
            &linear.name,
            weights.map(|w| (w.bits, w.symmetric, w.granularity)),
            linear.inp,
            weights.map_or(WeightInputs::Kernel, |w| w.inputs),
        );
        match kind {
            LinearKernelKind::Float => LinearInput::Float,
            LinearKernelKind::Integer => LinearInput::Kernel,
            LinearKernelKind::Decoding => LinearInput::WeightOnly,
        }
    }
}
