//! Storing one weight matrix in a `TensorSet`, float or packed at its real bit
//! width, and reading it back exactly.

use std::path::Path;

use safetensors::tensor::Dtype;

use super::manifest::{Storage, WeightRecord};
use super::tensors::{RawTensor, TensorSet};
use crate::base::Bits;
use crate::diag::Diag;
use crate::quant::{dequantize, pack_rows, packed_row_bytes, unpack_rows, Quantized};

/// A weight as read back from an artifact.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredWeight {
    Float { shape: Vec<usize>, values: Vec<f32> },
    Packed(Quantized),
}

impl StoredWeight {
    /// The values the weight stands for, row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            StoredWeight::Float { values, .. } => values.clone(),
            StoredWeight::Packed(q) => dequantize(q),
        }
    }
}

/// Stores a float tensor of any shape.
pub fn store_float(
    set: &mut TensorSet,
    name: &str,
    shape: Vec<usize>,
    values: &[f32],
) -> WeightRecord {
    set.insert(name, RawTensor::f32(shape.clone(), values));
    WeightRecord {
        shape,
        storage: Storage::Float,
    }
}

/// Whether units of `unit_len` weights of a `rows × cols` matrix are groups
/// within rows, whose scales and zero points are stored as F16.
pub fn half_precision_units(unit_len: usize, rows: usize, cols: usize) -> bool {
    unit_len < cols && unit_len != rows * cols
}

/// Stores a weight: packed when `quantized` is given, else float.
pub fn store_weight(
    set: &mut TensorSet,
    name: &str,
    shape: Vec<usize>,
    values: &[f32],
    quantized: Option<&Quantized>,
) -> WeightRecord {
    let Some(q) = quantized else {
        return store_float(set, name, shape, values);
    };
    let bits = q.storage_bits();
    let packed = pack_rows(&q.codes, q.rows, q.cols, bits);
    set.insert(
        format!("{name}.codes"),
        RawTensor::u8(vec![q.rows, packed_row_bytes(q.cols, bits)], packed),
    );
    let per_unit = |v: &[f32]| {
        if half_precision_units(q.unit_len, q.rows, q.cols) {
            RawTensor::f16(vec![v.len()], v)
        } else {
            RawTensor::f32(vec![v.len()], v)
        }
    };
    set.insert(format!("{name}.scales"), per_unit(&q.scales));
    if let Some(z) = &q.zero_points {
        set.insert(format!("{name}.zeros"), per_unit(z));
    }
    WeightRecord {
        shape: vec![q.rows, q.cols],
        storage: Storage::Packed {
            bits: q.bits,
            symmetric: q.symmetric,
            granularity: granularity_of(q),
            unit_len: q.unit_len,
            inputs: Default::default(),
        },
    }
}

fn granularity_of(q: &Quantized) -> crate::base::Granularity {
    use crate::base::Granularity;
    if q.unit_len == q.rows * q.cols && q.rows != 1 {
        Granularity::Tensor
    } else if q.unit_len == q.cols {
        Granularity::Row
    } else {
        Granularity::Group(q.unit_len)
    }
}

fn units(shape: &[usize], unit_len: usize) -> usize {
    let (rows, cols) = (shape[0], shape[1]);
    if unit_len == 0 {
        0
    } else if unit_len == rows * cols {
        1
    } else {
        rows * cols.div_ceil(unit_len)
    }
}

fn bad_record(name: &str, path: &Path, why: &str) -> Diag {
    Diag::new(
        "plcc::artifact::corrupt",
        format!("weight `{name}` in `{}`: {why}", path.display()),
    )
}

/// Checks that the tensors of `name` exist with the dtypes and shapes its record says.
pub fn check_weight(
    set: &TensorSet,
    name: &str,
    record: &WeightRecord,
    path: &Path,
) -> Result<(), Diag> {
    read_weight(set, name, record, path).map(|_| ())
}

/// Reads weight `name` back.
pub fn read_weight(
    set: &TensorSet,
    name: &str,
    record: &WeightRecord,
    path: &Path,
) -> Result<StoredWeight, Diag> {
    match &record.storage {
        Storage::Float => {
            let t = set.get(name, Dtype::F32, &record.shape, path)?;
            Ok(StoredWeight::Float {
                shape: record.shape.clone(),
                values: t.to_f32().unwrap_or_default(),
            })
        }
        Storage::Packed {
            bits,
            symmetric,
            unit_len,
            ..
        } => {
            if record.shape.len() != 2 {
                return Err(bad_record(name, path, "a packed weight must be a matrix"));
            }
            if let Bits::Int(b) = bits {
                if !matches!(b, 2 | 4 | 8) {
                    return Err(bad_record(name, path, "unsupported bit width"));
                }
            }
            let (rows, cols) = (record.shape[0], record.shape[1]);
            let storage_bits = bits.storage_bits();
            let n_units = units(&record.shape, *unit_len);
            if n_units == 0 {
                return Err(bad_record(name, path, "scale unit length is zero"));
            }
            let codes_t = set.get(
                &format!("{name}.codes"),
                Dtype::U8,
                &[rows, packed_row_bytes(cols, storage_bits)],
                path,
            )?;
            let unit_dtype = if half_precision_units(*unit_len, rows, cols) {
                Dtype::F16
            } else {
                Dtype::F32
            };
            let scales = set
                .get(&format!("{name}.scales"), unit_dtype, &[n_units], path)?
                .to_f32()
                .unwrap_or_default();
            let asymmetric = !symmetric && matches!(bits, Bits::Int(_));
            let zero_points = if asymmetric {
                Some(
                    set.get(&format!("{name}.zeros"), unit_dtype, &[n_units], path)?
                        .to_f32()
                        .unwrap_or_default(),
                )
            } else {
                None
            };
            let codes = unpack_rows(&codes_t.bytes, rows, cols, storage_bits);
            Ok(StoredWeight::Packed(Quantized {
                bits: *bits,
                symmetric: !asymmetric,
                rows,
                cols,
                unit_len: *unit_len,
                codes,
                scales,
                zero_points,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::{Granularity, ScaleMethod};
    use crate::quant::{quantize, QuantSpec};

    #[test]
    fn packed_weights_round_trip_exactly_at_their_bit_width() {
        let w: Vec<f32> = (0..6 * 37)
            .map(|i| ((i * 7919) % 113) as f32 / 113.0 - 0.5)
            .collect();
        let p = Path::new("m.safetensors");
        for (bits, symmetric, granularity) in [
            (Bits::Binary, true, Granularity::Row),
            (Bits::Ternary, true, Granularity::Row),
            (Bits::Int(2), true, Granularity::Tensor),
            (Bits::Int(4), false, Granularity::Group(16)),
            (Bits::Int(8), true, Granularity::Row),
        ] {
            let spec = QuantSpec {
                bits,
                symmetric,
                granularity,
                scale: ScaleMethod::Max,
                learned: None,
            };
            let q = quantize(&w, 6, 37, &spec).unwrap();
            let mut set = TensorSet::default();
            let record = store_weight(&mut set, "l.weight", vec![6, 37], &w, Some(&q));
            let bytes = set.to_bytes().unwrap();
            let back = TensorSet::from_bytes(&bytes, p).unwrap();
            let read = read_weight(&back, "l.weight", &record, p).unwrap();
            assert_eq!(read, StoredWeight::Packed(q.clone()), "{bits:?}");
            let codes = back.tensors["l.weight.codes"].bytes.len();
            assert_eq!(codes, 6 * packed_row_bytes(37, bits.storage_bits()));
        }
    }

    #[test]
    fn a_missing_scale_tensor_is_a_diagnostic() {
        let w = vec![0.5f32; 8];
        let spec = QuantSpec {
            bits: Bits::Ternary,
            symmetric: true,
            granularity: Granularity::Row,
            scale: ScaleMethod::MeanAbs,
            learned: None,
        };
        let q = quantize(&w, 2, 4, &spec).unwrap();
        let mut set = TensorSet::default();
        let record = store_weight(&mut set, "x", vec![2, 4], &w, Some(&q));
        set.tensors.remove("x.scales");
        let e = read_weight(&set, "x", &record, Path::new("m")).unwrap_err();
        assert_eq!(e.code, "plcc::artifact::missing-tensor");
    }
}
