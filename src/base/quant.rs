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
