//! From a quantizer's codes to the integer levels and per-row scales the
//! integer GEMM multiplies: the load-time expansion of binary, ternary, 2-,
//! 4- and 8-bit symmetric weights (mappings of `crate::quant`).

use super::weights::IntegerWeights;
use super::SimdLevel;
use crate::base::Bits;
use crate::quant::Quantized;

/// Why a quantized weight cannot run on the integer kernels.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelError {
    /// Asymmetric (zero-point) weights have no integer-only product here.
    Asymmetric,
    /// Scales per group within a row; the kernels take one scale per row.
    GroupScales { unit_len: usize, cols: usize },
    /// Unsupported width.
    Bits(Bits),
    /// The codes or scales do not match the stated shape.
    Malformed(String),
    /// The bias length is not the number of outputs.
    BiasLength { expected: usize, found: usize },
    /// The weights cannot be placed on the device (no kernel for it in this
    /// build, or the upload failed).
    Device(String),
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelError::Asymmetric => {
                write!(f, "packed kernels need symmetric weights (no zero point)")
            }
            KernelError::GroupScales { unit_len, cols } => write!(
                f,
                "packed kernels need one scale per row or per tensor, \
                 not groups of {unit_len} in rows of {cols}"
            ),
            KernelError::Bits(b) => write!(f, "no packed kernel for {b} weights"),
            KernelError::Malformed(m) => write!(f, "malformed quantized weight: {m}"),
            KernelError::BiasLength { expected, found } => {
                write!(
                    f,
                    "bias has {found} values, the layer has {expected} outputs"
                )
            }
            KernelError::Device(m) => write!(f, "cannot place packed weights on the device: {m}"),
        }
    }
}

impl std::error::Error for KernelError {}

/// The integer value of each code and the weight scale `sw` per row, such
/// that weight = value · sw exactly as `crate::quant::dequantize` maps it.
pub fn integer_levels(q: &Quantized) -> Result<(Vec<i8>, Vec<f32>), KernelError> {
    if !q.symmetric || q.zero_points.is_some() {
        return Err(KernelError::Asymmetric);
    }
    if q.codes.len() != q.rows * q.cols {
        return Err(KernelError::Malformed(format!(
            "{} codes for a {}x{} matrix",
            q.codes.len(),
            q.rows,
            q.cols
        )));
    }
    let alphas: Vec<f32> = if q.scales.len() == 1 && q.unit_len == (q.rows * q.cols).max(1) {
        vec![q.scales[0]; q.rows]
    } else if q.unit_len >= q.cols && q.scales.len() == q.rows {
        q.scales.clone()
    } else if q.unit_len < q.cols {
        return Err(KernelError::GroupScales {
            unit_len: q.unit_len,
            cols: q.cols,
        });
    } else {
        return Err(KernelError::Malformed(format!(
            "{} scales for {} rows",
            q.scales.len(),
            q.rows
        )));
    };
    let (value, divisor): (fn(u8) -> i8, f32) = match q.bits {
        Bits::Binary => (|c| if c == 1 { 1 } else { -1 }, 1.0),
        Bits::Ternary => (|c| c as i8 - 1, 1.0),
        Bits::Int(2) => (|c| 2 * c as i8 - 3, 3.0),
        Bits::Int(4) => (|c| c as i8 - 8, 7.0),
        Bits::Int(8) => (|c| (c ^ 0x80) as i8, 127.0),
        other => return Err(KernelError::Bits(other)),
    };
    let code_limit: u16 = match q.bits {
        Bits::Ternary => 3,
        b => 1 << b.storage_bits(),
    };
    if let Some(bad) = q.codes.iter().find(|&&c| c as u16 >= code_limit) {
        return Err(KernelError::Malformed(format!(
            "code {bad} out of range for {}",
            q.bits
        )));
    }
    let values = q.codes.iter().map(|&c| value(c)).collect();
    let scales = alphas.iter().map(|a| a / divisor).collect();
    Ok((values, scales))
}

/// `q` as integer weights packed for `level`.
pub fn integer_weights(q: &Quantized, level: SimdLevel) -> Result<IntegerWeights, KernelError> {
    let (values, scales) = integer_levels(q)?;
    Ok(IntegerWeights::new(&values, q.rows, q.cols, scales, level))
}

/// `q` as 2-bit codes for the in-register decoding kernel, when `q` has at
/// most four levels (binary, ternary, 2-bit) and this CPU runs that kernel.
pub fn integer_weights_codes2(q: &Quantized) -> Result<Option<IntegerWeights>, KernelError> {
    let levels = match q.bits {
        Bits::Binary => [-1, 1, 1, 1],
        Bits::Ternary => [-1, 0, 1, 0],
        Bits::Int(2) => [-3, -1, 1, 3],
        _ => return Ok(None),
    };
    if !super::codes2_available() {
        return Ok(None);
    }
    let (values, scales) = integer_levels(q)?;
    Ok(IntegerWeights::new_codes2(
        &values, q.rows, q.cols, scales, levels,
    ))
}
