//! Quantizer vocabulary: bit widths, scale granularities and how scales are
//! chosen.

use serde::Serialize;

use crate::diag::Spanned;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Bits {
    /// 1 bit: sign × scale.
    Binary,
    /// {-1, 0, +1} × scale, stored in 2 bits.
    Ternary,
    /// 2, 4 or 8-bit integers.
    Int(u8),
}

impl std::fmt::Display for Bits {
    /// `binary`, `ternary`, `int4`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bits::Binary => f.write_str("binary"),
            Bits::Ternary => f.write_str("ternary"),
            Bits::Int(n) => write!(f, "int{n}"),
        }
    }
}

impl Bits {
    /// Bits per stored weight in a packed artifact.
    pub fn storage_bits(self) -> u32 {
        match self {
            Bits::Binary => 1,
            Bits::Ternary => 2,
            Bits::Int(b) => b as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Granularity {
    Tensor,
    Row,
    Group(usize),
    /// Per token (activations only).
    Token,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ScaleMethod {
    Max,
    MeanAbs,
    /// A learned clipping scale per module (module-wise dynamic scaling).
    Learned,
    /// Per unit, the clipping value (or ternary threshold) with the least
    /// squared error, searched (`quant::clip_search`).
    Mse,
}

/// How a weight quantizer chooses its codes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum QuantMethod {
    /// Round to nearest: each weight independently.
    Rtn,
    /// GPTQ: column by column, each column's rounding error compensated on
    /// the columns not yet quantized through the inverse Hessian of the
    /// layer's inputs on calibration text.
    Gptq(GptqSpec),
}

impl QuantMethod {
    pub fn is_rtn(&self) -> bool {
        matches!(self, QuantMethod::Rtn)
    }
}

/// The calibration of a `method: gptq` quantizer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GptqSpec {
    /// The data set whose text calibrates the quantizer.
    pub data: Spanned<String>,
    /// How many of its examples (the first ones) are run.
    pub samples: Spanned<usize>,
    /// Damping added to the Hessian's diagonal, as a fraction of its mean.
    pub damp: f64,
    /// Quantize columns in order of decreasing Hessian diagonal.
    pub act_order: bool,
}

/// What a packed linear's input is when no activation quantizer is placed
/// on it (`activations` of a `quantize weights` block).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightInputs {
    /// What the packed integer kernel does: int8, symmetric, one scale per
    /// token.
    #[default]
    Kernel,
    /// Weight-only quantization: float inputs, the packed weight decoded
    /// inside the product.
    Float,
}

impl WeightInputs {
    pub fn is_kernel(&self) -> bool {
        *self == WeightInputs::Kernel
    }
}

/// How the packed integer kernel quantizes its input, in words (`plcc plan`,
/// the report).
pub const KERNEL_INPUT_TEXT: &str = "int8 sym token (kernel)";

/// How a weight-only linear's input runs, in words.
pub const WEIGHT_ONLY_INPUT_TEXT: &str = "float (weight-only)";

/// The kernel a linear module runs on at inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearKernelKind {
    /// A float (or dequantized) weight on the f32 kernel: float inputs.
    Float,
    /// The packed integer kernel: inputs quantized to int8 per token.
    Integer,
    /// The weight-only kernel: float inputs, the packed weight decoded in
    /// the product.
    Decoding,
}

/// The kernel a linear module runs on, the one rule the plan, the packer,
/// the loader and the exporter share. `packed` is its weight's packed form
/// (`None`: a float weight); `cols` its row length. A module of `family`
/// runs packed when it is a linear the loader multiplies (not an embedding
/// table or its projection, not a GPT-2 `Conv1D`), and its weight is
/// symmetric with one scale per tensor, per row or per group of a multiple of
/// 4 values; then `inputs` picks the integer or the weight-only kernel.
pub fn linear_kernel(
    family: &crate::base::Family,
    module: &str,
    packed: Option<(Bits, bool, Granularity)>,
    cols: usize,
    inputs: WeightInputs,
) -> LinearKernelKind {
    let Some((_, symmetric, granularity)) = packed else {
        return LinearKernelKind::Float;
    };
    let weight = format!("{module}.weight");
    let multiplied =
        !crate::base::family::is_embedding_tensor(&weight) && !family.is_transposed(&weight);
    let groups_fit = match granularity {
        Granularity::Group(n) => n >= cols || (n > 0 && n % 4 == 0),
        _ => true,
    };
    if !(multiplied && symmetric && groups_fit) {
        return LinearKernelKind::Float;
    }
    match inputs {
        WeightInputs::Kernel => LinearKernelKind::Integer,
        WeightInputs::Float => LinearKernelKind::Decoding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::Arch;

    fn kind(
        arch: Arch,
        module: &str,
        packed: Option<(Bits, bool, Granularity)>,
    ) -> LinearKernelKind {
        linear_kernel(arch.family(), module, packed, 384, WeightInputs::Kernel)
    }

    #[test]
    fn packed_symmetric_linears_run_on_the_integer_kernel() {
        let query = "encoder.layer.0.attention.self.query";
        for (bits, granularity) in [
            (Bits::Binary, Granularity::Row),
            (Bits::Ternary, Granularity::Tensor),
            (Bits::Int(2), Granularity::Group(64)),
            (Bits::Int(4), Granularity::Group(384)),
            (Bits::Int(8), Granularity::Row),
        ] {
            let packed = Some((bits, true, granularity));
            assert_eq!(kind(Arch::Bert, query, packed), LinearKernelKind::Integer);
            let float = linear_kernel(Arch::Bert.family(), query, packed, 384, WeightInputs::Float);
            assert_eq!(float, LinearKernelKind::Decoding);
        }
        assert_eq!(
            kind(
                Arch::Bart,
                "model.decoder.layers.1.fc2",
                Some((Bits::Int(4), true, Granularity::Row))
            ),
            LinearKernelKind::Integer
        );
    }

    #[test]
    fn everything_else_runs_the_float_product() {
        let int4 = Some((Bits::Int(4), true, Granularity::Row));
        let query = "encoder.layer.0.attention.self.query";
        // A float weight; asymmetric weights; groups the kernels do not take.
        assert_eq!(kind(Arch::Bert, query, None), LinearKernelKind::Float);
        let asymmetric = Some((Bits::Int(4), false, Granularity::Row));
        assert_eq!(kind(Arch::Bert, query, asymmetric), LinearKernelKind::Float);
        let groups_of_6 = Some((Bits::Int(4), true, Granularity::Group(6)));
        assert_eq!(
            kind(Arch::Bert, query, groups_of_6),
            LinearKernelKind::Float
        );
        // Tables and a factorized table's projection; GPT-2's `Conv1D`s.
        for module in [
            "embeddings.word_embeddings",
            "embeddings.word_embeddings_proj",
        ] {
            assert_eq!(
                kind(Arch::Bert, module, int4),
                LinearKernelKind::Float,
                "{module}"
            );
        }
        assert_eq!(
            kind(Arch::Gpt2, "h.0.mlp.c_fc", int4),
            LinearKernelKind::Float
        );
    }
}
