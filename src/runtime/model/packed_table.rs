//! Embedding tables kept in their packed form: the codes bit-packed row by
//! row as the artifact stores them, with their scales (and zero points).
//! A lookup dequantizes only the rows a batch uses, with the quantizer's own
//! mapping (`Quantized::value_of`), so the values equal the dequantized
//! table's exactly.

use candle_core::{Device, Result, Tensor};

use crate::quant::{pack_rows, packed_row_bytes, unpack_rows, Quantized};

/// A `rows × cols` table of quantized rows.
#[derive(Debug, Clone)]
pub struct PackedRows {
    /// Scales, zero points and shape (its `codes` are empty).
    meta: Quantized,
    /// Bits per stored code.
    bits: u32,
    row_bytes: usize,
    data: Vec<u8>,
}

impl PackedRows {
    /// Packs the codes of `q`.
    pub fn new(q: &Quantized) -> Self {
        let bits = q.storage_bits();
        let data = pack_rows(&q.codes, q.rows, q.cols, bits);
        PackedRows {
            meta: Quantized {
                bits: q.bits,
                symmetric: q.symmetric,
                rows: q.rows,
                cols: q.cols,
                unit_len: q.unit_len,
                codes: Vec::new(),
                scales: q.scales.clone(),
                zero_points: q.zero_points.clone(),
            },
            bits,
            row_bytes: packed_row_bytes(q.cols, bits),
            data,
        }
    }

    pub fn rows(&self) -> usize {
        self.meta.rows
    }

    pub fn cols(&self) -> usize {
        self.meta.cols
    }

    /// Bytes held: codes, scales and zero points.
    pub fn bytes(&self) -> usize {
        let params = self.meta.scales.len() + self.meta.zero_points.as_ref().map_or(0, Vec::len);
        self.data.len() + 4 * params
    }

    /// Rows `ids` dequantized, `[ids.len(), cols]` on `device`; an id past
    /// the table is an error.
    pub fn gather(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        let cols = self.cols();
        let mut out = Vec::with_capacity(ids.len() * cols);
        for &id in ids {
            let r = id as usize;
            if r >= self.rows() {
                candle_core::bail!(
                    "token id {id} is past the {}-row embedding table",
                    self.rows()
                );
            }
            let bytes = &self.data[r * self.row_bytes..(r + 1) * self.row_bytes];
            let codes = unpack_rows(bytes, 1, cols, self.bits);
            out.extend(
                codes
                    .iter()
                    .enumerate()
                    .map(|(c, &code)| self.meta.value_of(code, r, c)),
            );
        }
        Tensor::from_vec(out, (ids.len(), cols), device)
    }

    /// The whole table dequantized `[rows, cols]`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let ids: Vec<u32> = (0..self.rows() as u32).collect();
        self.gather(&ids, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::{Bits, Granularity, ScaleMethod};
    use crate::quant::{dequantize, quantize, QuantSpec};

    #[test]
    fn gathered_rows_equal_the_dequantized_table() {
        let (rows, cols) = (13, 37);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 7) as f32))
            .collect();
        for bits in [
            Bits::Binary,
            Bits::Ternary,
            Bits::Int(2),
            Bits::Int(4),
            Bits::Int(8),
        ] {
            for (granularity, symmetric) in [
                (Granularity::Row, true),
                (Granularity::Group(8), true),
                (Granularity::Group(16), false),
                (Granularity::Tensor, true),
            ] {
                let spec = QuantSpec {
                    bits,
                    symmetric: symmetric || matches!(bits, Bits::Binary | Bits::Ternary),
                    granularity,
                    scale: ScaleMethod::Max,
                    learned: None,
                };
                let q = quantize(&w, rows, cols, &spec).unwrap();
                let table = PackedRows::new(&q);
                let full = dequantize(&q);
                let ids = [12u32, 0, 5, 5];
                let got: Vec<f32> = table
                    .gather(&ids, &Device::Cpu)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let want: Vec<f32> = ids
                    .iter()
                    .flat_map(|&r| full[r as usize * cols..(r as usize + 1) * cols].to_vec())
                    .collect();
                assert_eq!(got, want, "{bits:?} {granularity:?}");
                assert!(table.bytes() < rows * cols * 4, "smaller than f32");
                assert!(table.gather(&[13], &Device::Cpu).is_err());
            }
        }
    }
}
