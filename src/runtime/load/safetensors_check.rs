//! Validation of a `model.safetensors` file before its tensors are built:
//! the header length and JSON against the file size, each tensor's dtype,
//! shape and data offsets (a weight must be floating point; only `*_ids`
//! buffers may hold integers), and, once the tensors are read, that no
//! weight holds NaN or infinity. Every failure names the tensor.

use std::path::Path;

use safetensors::Dtype;

use crate::diag::{shape_text, Diag};

/// The code of a file that is not valid safetensors.
pub const CORRUPT: &str = "plcc::checkpoint::corrupt-weights";
/// The code of a weight stored with a non-float dtype.
pub const BAD_DTYPE: &str = "plcc::checkpoint::bad-dtype";
/// The code of a weight holding NaN or infinity.
pub const NON_FINITE: &str = "plcc::checkpoint::non-finite";

/// A diagnostic for a `path` that is not valid safetensors.
pub fn corrupt(path: &Path, detail: String) -> Diag {
    Diag::new(
        CORRUPT,
        format!("`{}` is not a valid safetensors file", path.display()),
    )
    .note(detail)
}

/// True for tensors that hold ids rather than weights (`position_ids`).
pub fn is_id_buffer(name: &str) -> bool {
    name.ends_with("_ids")
}

/// Checks the 8-byte header length, the JSON header, and every tensor's
/// dtype, shape and data offsets against the file size.
pub fn check_header(bytes: &[u8], path: &Path) -> Result<(), Diag> {
    check_header_in_file(bytes, bytes.len() as u64, path)
}

/// As [`check_header`] for a file of `file_len` bytes of which `start` holds
/// the beginning: at least the 8-byte length and, when that length fits the
/// file, the whole JSON header after it.
pub fn check_header_in_file(start: &[u8], file_len: u64, path: &Path) -> Result<(), Diag> {
    let bytes = start;
    let Some(len_bytes) = bytes.get(..8).filter(|_| file_len >= 8) else {
        return Err(corrupt(
            path,
            format!("the file has {file_len} bytes, fewer than the 8-byte header length"),
        ));
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(len_bytes);
    let header_len = u64::from_le_bytes(le);
    let available = file_len - 8;
    if header_len > available {
        return Err(corrupt(
            path,
            format!("the header claims {header_len} bytes but only {available} follow: the file is truncated or not safetensors"),
        ));
    }
    let Some(header) = bytes.get(8..8 + header_len as usize) else {
        return Err(corrupt(path, "the header could not be read whole".into()));
    };
    let meta: serde_json::Value = serde_json::from_slice(header)
        .map_err(|e| corrupt(path, format!("the header is not valid JSON: {e}")))?;
    let Some(map) = meta.as_object() else {
        return Err(corrupt(path, "the header is not a JSON object".into()));
    };
    let data_len = available - header_len;
    for (name, info) in map.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        check_entry(path, name, info, data_len)?;
    }
    Ok(())
}

/// Checks one header entry: `{"dtype": .., "shape": [..], "data_offsets": [a, b]}`.
fn check_entry(
    path: &Path,
    name: &str,
    info: &serde_json::Value,
    data_len: u64,
) -> Result<(), Diag> {
    let bad = |what: String| corrupt(path, format!("tensor `{name}`: {what}"));
    let dtype = info
        .get("dtype")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("the header gives no dtype".into()))?;
    let Some((size, float)) = dtype_size(dtype) else {
        return Err(bad(format!("unknown dtype `{dtype}`")));
    };
    if !float && !is_id_buffer(name) {
        return Err(Diag::new(
            BAD_DTYPE,
            format!(
                "tensor `{name}` in `{}` is stored as {dtype}, but model weights are floating point",
                path.display()
            ),
        )
        .help("weights must be F16, BF16, F32 or F64; the file's header is damaged or was edited"));
    }
    let dims: Vec<u64> = info
        .get("shape")
        .and_then(|s| s.as_array())
        .and_then(|a| a.iter().map(|d| d.as_u64()).collect::<Option<_>>())
        .ok_or_else(|| bad("the header gives no shape of whole numbers".into()))?;
    let offsets: Vec<u64> = info
        .get("data_offsets")
        .and_then(|o| o.as_array())
        .and_then(|a| a.iter().map(|d| d.as_u64()).collect::<Option<_>>())
        .filter(|o: &Vec<u64>| o.len() == 2)
        .ok_or_else(|| bad("the header gives no data_offsets [start, end]".into()))?;
    let (start, end) = (offsets[0], offsets[1]);
    if end > data_len {
        return Err(bad(format!(
            "its data ends at byte {end} but the file holds {data_len} data bytes: the file is truncated"
        )));
    }
    let needed = dims
        .iter()
        .try_fold(size, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad("its shape is too large".into()))?;
    if start > end || end - start != needed {
        let shown: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        return Err(bad(format!(
            "shape {} of {dtype} needs {needed} bytes, but its data_offsets [{start}, {end}] do not span that",
            shape_text(&shown)
        )));
    }
    Ok(())
}

/// The element size of a safetensors dtype name, and whether it is floating point.
fn dtype_size(dtype: &str) -> Option<(u64, bool)> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" => (1, false),
        "F8_E5M2" | "F8_E4M3" => (1, true),
        "I16" | "U16" => (2, false),
        "F16" | "BF16" => (2, true),
        "I32" | "U32" => (4, false),
        "F32" => (4, true),
        "I64" | "U64" => (8, false),
        "F64" => (8, true),
        _ => return None,
    })
}

/// Refuses a float tensor whose raw little-endian `data` holds NaN or infinity,
/// naming the tensor, the count and the first position.
pub fn check_finite(path: &Path, name: &str, dtype: Dtype, data: &[u8]) -> Result<(), Diag> {
    let (width, exponent): (usize, u64) = match dtype {
        Dtype::F16 => (2, 0x7c00),
        Dtype::BF16 => (2, 0x7f80),
        Dtype::F32 => (4, 0x7f80_0000),
        Dtype::F64 => (8, 0x7ff0_0000_0000_0000),
        _ => return Ok(()),
    };
    let mut count = 0usize;
    let mut first = None;
    for (i, chunk) in data.chunks_exact(width).enumerate() {
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(chunk);
        if u64::from_le_bytes(le) & exponent == exponent {
            count += 1;
            first.get_or_insert(i);
        }
    }
    match first {
        None => Ok(()),
        Some(first) => Err(Diag::new(
            NON_FINITE,
            format!(
                "tensor `{name}` in `{}` holds {count} non-finite value{} (NaN or infinity), the first at element {first}",
                path.display(),
                if count == 1 { "" } else { "s" }
            ),
        )
        .help("the checkpoint is damaged (often a training run that diverged); use a checkpoint whose weights are all finite")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinity_are_found_in_every_float_width() {
        let p = Path::new("m.safetensors");
        let f32s: Vec<u8> = [1.0f32, f32::NAN, f32::INFINITY]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let d = check_finite(p, "w", Dtype::F32, &f32s).unwrap_err();
        assert_eq!(d.code, NON_FINITE);
        assert!(d.message.contains("2 non-finite values"), "{}", d.message);
        assert!(
            d.message.contains("the first at element 1"),
            "{}",
            d.message
        );
        assert!(check_finite(p, "w", Dtype::F16, &[0x00, 0x7c]).is_err());
        assert!(check_finite(p, "w", Dtype::BF16, &[0xc0, 0x7f]).is_err());
        assert!(check_finite(p, "w", Dtype::F64, &f64::NAN.to_le_bytes()).is_err());
        assert!(check_finite(p, "w", Dtype::F32, &65504f32.to_le_bytes()).is_ok());
    }

    #[test]
    fn integer_weights_are_refused_but_id_buffers_pass() {
        let entry = serde_json::json!({"dtype": "I32", "shape": [2], "data_offsets": [0, 8]});
        let d = check_entry(Path::new("m"), "encoder.weight", &entry, 8).unwrap_err();
        assert_eq!(d.code, BAD_DTYPE);
        assert!(check_entry(Path::new("m"), "embeddings.position_ids", &entry, 8).is_ok());
    }

    #[test]
    fn offsets_that_disagree_with_the_shape_name_the_tensor() {
        let entry = serde_json::json!({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]});
        let d = check_entry(Path::new("m"), "w", &entry, 8).unwrap_err();
        assert_eq!(d.code, CORRUPT);
        assert!(d.notes[0].starts_with("tensor `w`"), "{:?}", d.notes);
    }
}
