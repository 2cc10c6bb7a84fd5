//! Quantizer vocabulary: bit widths, scale granularities and how scales are
//! chosen.

use serde::Serialize;

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
