//! The artifact's weight file: float tensors and packed low-bit weights in one
//! safetensors file, written from owned buffers and read back with every
//! name, dtype and shape checked.
//!
//! A packed weight `NAME` of shape `[rows, cols]` is stored as
//! `NAME.codes` (U8, `[rows, packed_row_bytes]`), `NAME.scales` (one per
//! unit) and, when asymmetric, `NAME.zeros` (one per unit). Scales and zero
//! points are F32 for tensor and row units and F16 for groups, where they
//! are numerous (one per 32 or 64 weights) and the quantizer rounds them to
//! F16 before choosing codes, so the stored values are the ones used.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::diag::{shape_text, Diag};

/// One owned tensor: dtype, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    pub fn f32(shape: Vec<usize>, values: &[f32]) -> Self {
        RawTensor {
            dtype: Dtype::F32,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// Half-precision values (each rounded to the nearest F16).
    pub fn f16(shape: Vec<usize>, values: &[f32]) -> Self {
        RawTensor {
            dtype: Dtype::F16,
            shape,
            bytes: values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        }
    }

    pub fn u8(shape: Vec<usize>, bytes: Vec<u8>) -> Self {
        RawTensor {
            dtype: Dtype::U8,
            shape,
            bytes,
        }
    }

    /// The values of an F32 tensor.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self.dtype {
            Dtype::F32 => Some(
                self.bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F16 => Some(
                self.bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            _ => None,
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// An ordered set of named tensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorSet {
    pub tensors: BTreeMap<String, RawTensor>,
}

impl TensorSet {
    pub fn insert(&mut self, name: impl Into<String>, tensor: RawTensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// Serialized safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Diag> {
        safetensors::serialize(self.tensors.iter().map(|(k, v)| (k.as_str(), v)), None).map_err(
            |e| {
                Diag::new(
                    "plcc::artifact::write",
                    "cannot serialize the artifact's tensors",
                )
                .note(e.to_string())
            },
        )
    }

    /// Parses safetensors bytes; `path` is only used in messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, Diag> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            Diag::new(
                "plcc::artifact::corrupt",
                format!("`{}` is not a readable safetensors file", path.display()),
            )
            .note(e.to_string())
        })?;
        let mut set = TensorSet::default();
        for (name, view) in st.tensors() {
            set.insert(
                name,
                RawTensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    bytes: view.data().to_vec(),
                },
            );
        }
        Ok(set)
    }

    /// The tensor `name` with the expected dtype and shape.
    pub fn get(
        &self,
        name: &str,
        dtype: Dtype,
        shape: &[usize],
        path: &Path,
    ) -> Result<&RawTensor, Diag> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Diag::new(
                "plcc::artifact::missing-tensor",
                format!("tensor `{name}` is missing from `{}`", path.display()),
            )
        })?;
        if t.dtype != dtype || t.shape != shape {
            return Err(Diag::new(
                "plcc::artifact::shape-mismatch",
                format!(
                    "tensor `{name}` in `{}` is {} {}, expected {} {}",
                    path.display(),
                    t.dtype,
                    shape_text(&t.shape),
                    dtype,
                    shape_text(shape)
                ),
            ));
        }
        Ok(t)
    }

    /// Total bytes of tensor data (what the weights really take).
    pub fn data_bytes(&self) -> usize {
        self.tensors.values().map(|t| t.bytes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_shapes() {
        let mut set = TensorSet::default();
        set.insert(
            "a.weight",
            RawTensor::f32(vec![2, 2], &[1.0, -2.0, 3.5, 0.0]),
        );
        set.insert("b.weight.codes", RawTensor::u8(vec![3, 1], vec![1, 2, 3]));
        let bytes = set.to_bytes().unwrap();
        let p = Path::new("model.safetensors");
        let back = TensorSet::from_bytes(&bytes, p).unwrap();
        assert_eq!(back, set);
        assert_eq!(
            back.get("a.weight", Dtype::F32, &[2, 2], p)
                .unwrap()
                .to_f32()
                .unwrap()[2],
            3.5
        );
        let e = back.get("a.weight", Dtype::F32, &[4], p).unwrap_err();
        assert_eq!(e.code, "plcc::artifact::shape-mismatch");
        assert_eq!(
            back.get("c", Dtype::F32, &[1], p).unwrap_err().code,
            "plcc::artifact::missing-tensor"
        );
        assert_eq!(
            TensorSet::from_bytes(&bytes[..bytes.len() - 3], p)
                .unwrap_err()
                .code,
            "plcc::artifact::corrupt"
        );
        assert_eq!(back.data_bytes(), 16 + 3);
    }
}
