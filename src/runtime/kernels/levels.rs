//! From a quantizer's codes to the integer levels and scales (per row, or
//! per group of k values within a row) the integer GEMM multiplies: the
//! 4- and 8-bit symmetric weights (mappings of `crate::quant`).

use super::int_gemm::codes2_available;
use super::simd_level::{SimdLevel, NARROW_MAX};
use super::weights::IntegerWeights;
use crate::base::Bits;
use crate::quant::Quantized;

/// Why a quantized weight cannot run on the integer kernels.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelError {
    /// Asymmetric (zero-point) weights have no integer-only product here.
    Asymmetric,
    /// Scales per group within a row of a length the kernels do not take
    /// (not a multiple of 4).
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
                "packed kernels need scale groups a multiple of 4 long, \
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

/// The integer value of each code and the weight scales `sw` (one per row,
/// or `rows × groups` row-major with one per group of `group_len` k values
/// of a row), such that weight = value · sw exactly as
/// `crate::quant::dequantize` maps it.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegerLevels {
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
    /// `Some(len)` for scales per group of `len` k values within a row.
    pub group_len: Option<usize>,
}

/// `q`'s integer levels and scales; groups within a row must be a multiple
/// of 4 long (the kernels' k group).
pub fn integer_levels(q: &Quantized) -> Result<IntegerLevels, KernelError> {
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
    let groups_per_row = q.cols.div_ceil(q.unit_len.max(1));
    let (alphas, group_len): (Vec<f32>, Option<usize>) =
        if q.scales.len() == 1 && q.unit_len == (q.rows * q.cols).max(1) {
            (vec![q.scales[0]; q.rows], None)
        } else if q.unit_len >= q.cols && q.scales.len() == q.rows {
            (q.scales.clone(), None)
        } else if q.unit_len < q.cols && !q.unit_len.is_multiple_of(4) {
            return Err(KernelError::GroupScales {
                unit_len: q.unit_len,
                cols: q.cols,
            });
        } else if q.unit_len < q.cols && q.scales.len() == q.rows * groups_per_row {
            (q.scales.clone(), Some(q.unit_len))
        } else {
            return Err(KernelError::Malformed(format!(
                "{} scales for {} rows in groups of {}",
                q.scales.len(),
                q.rows,
                q.unit_len
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
    Ok(IntegerLevels {
        values: q.codes.iter().map(|&c| value(c)).collect(),
        scales: alphas.iter().map(|a| a / divisor).collect(),
        group_len,
    })
}

/// The largest magnitude an integer level of `bits` weights takes.
pub fn max_level(bits: Bits) -> i16 {
    match bits {
        Bits::Binary | Bits::Ternary => 1,
        Bits::Int(2) => 3,
        Bits::Int(4) => 8,
        _ => 128,
    }
}

/// `q` as integer weights packed for `level` (the narrow AVX2 level only
/// for widths of 4 bits and fewer).
pub fn integer_weights(q: &Quantized, level: SimdLevel) -> Result<IntegerWeights, KernelError> {
    if level == SimdLevel::Avx2Narrow && max_level(q.bits) > NARROW_MAX {
        return Err(KernelError::Bits(q.bits));
    }
    let levels = integer_levels(q)?;
    match levels.group_len {
        None => Ok(IntegerWeights::new(
            &levels.values,
            q.rows,
            q.cols,
            levels.scales,
            level,
        )),
        Some(len) => {
            IntegerWeights::new_grouped(&levels.values, q.rows, q.cols, &levels.scales, len, level)
                .ok_or(KernelError::GroupScales {
                    unit_len: len,
                    cols: q.cols,
                })
        }
    }
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
    if !codes2_available() {
        return Ok(None);
    }
    let integer = integer_levels(q)?;
    if integer.group_len.is_some() {
        return Ok(None);
    }
    Ok(IntegerWeights::new_codes2(
        &integer.values,
        q.rows,
        q.cols,
        integer.scales,
        levels,
    ))
}
