//! Packing of small unsigned integer codes into bytes, row-aligned.
//!
//! Codes of `bits` bits (1, 2, 4 or 8) are stored little-end first: code `i`
//! of a row lives in byte `i * bits / 8` at bit offset `(i * bits) % 8`.

/// Bytes one packed row of `cols` codes takes at `bits` bits per code.
pub fn packed_row_bytes(cols: usize, bits: u32) -> usize {
    (cols * bits as usize).div_ceil(8)
}

/// Packs `codes` (`rows × cols`, each `< 2^bits`) row by row.
///
/// Panics only on a programming error: `bits` not in {1, 2, 4, 8} or a length
/// mismatch, which the callers in this crate rule out.
pub fn pack_rows(codes: &[u8], rows: usize, cols: usize, bits: u32) -> Vec<u8> {
    assert!(
        matches!(bits, 1 | 2 | 4 | 8),
        "unsupported packing width {bits}"
    );
    assert_eq!(
        codes.len(),
        rows * cols,
        "code count does not match the shape"
    );
    if bits == 8 {
        return codes.to_vec();
    }
    let row_bytes = packed_row_bytes(cols, bits);
    let per_byte = 8 / bits as usize;
    let mask = ((1u16 << bits) - 1) as u8;
    let mut out = vec![0u8; rows * row_bytes];
    for (row_codes, row_out) in codes
        .chunks_exact(cols.max(1))
        .zip(out.chunks_exact_mut(row_bytes.max(1)))
    {
        for (i, &c) in row_codes.iter().enumerate() {
            row_out[i / per_byte] |= (c & mask) << ((i % per_byte) as u32 * bits);
        }
    }
    out
}

/// Inverse of [`pack_rows`].
pub fn unpack_rows(packed: &[u8], rows: usize, cols: usize, bits: u32) -> Vec<u8> {
    assert!(
        matches!(bits, 1 | 2 | 4 | 8),
        "unsupported packing width {bits}"
    );
    let row_bytes = packed_row_bytes(cols, bits);
    assert_eq!(
        packed.len(),
        rows * row_bytes,
        "packed length does not match the shape"
    );
    if bits == 8 {
        return packed.to_vec();
    }
    let per_byte = 8 / bits as usize;
    let mask = ((1u16 << bits) - 1) as u8;
    let mut out = Vec::with_capacity(rows * cols);
    for row in packed.chunks_exact(row_bytes.max(1)).take(rows) {
        for i in 0..cols {
            out.push((row[i / per_byte] >> ((i % per_byte) as u32 * bits)) & mask);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn round_trips_every_width_and_odd_shapes() {
        let mut seed = 7;
        for bits in [1u32, 2, 4, 8] {
            for (rows, cols) in [(1, 1), (3, 5), (7, 33), (2, 64), (5, 127)] {
                let codes: Vec<u8> = (0..rows * cols)
                    .map(|_| (lcg(&mut seed) % (1 << bits)) as u8)
                    .collect();
                let packed = pack_rows(&codes, rows, cols, bits);
                assert_eq!(packed.len(), rows * packed_row_bytes(cols, bits));
                assert_eq!(
                    unpack_rows(&packed, rows, cols, bits),
                    codes,
                    "bits {bits} shape {rows}x{cols}"
                );
            }
        }
    }

    #[test]
    fn sizes_are_the_real_bit_widths() {
        assert_eq!(packed_row_bytes(384, 1), 48);
        assert_eq!(packed_row_bytes(384, 2), 96);
        assert_eq!(packed_row_bytes(384, 4), 192);
        assert_eq!(packed_row_bytes(385, 2), 97);
    }
}
