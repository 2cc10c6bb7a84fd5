//! Reading a recipe file: its text (which must be UTF-8) and the name the
//! diagnostics show for it.

use std::path::{Path, PathBuf};

use crate::diag::Diag;

/// A recipe file's path and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

impl SourceText {
    /// The name shown above rendered diagnostics.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Attaches this text to `diag` so its labels render.
    pub fn attach(&self, diag: Diag) -> Diag {
        diag.with_source(self.name(), self.text.clone())
    }
}

/// Reads a recipe file. A missing file or bytes that are not UTF-8 are
/// diagnostics (the latter with the byte offset and line of the first bad byte).
pub fn read_recipe(path: &Path) -> Result<SourceText, Diag> {
    let bytes = std::fs::read(path)
        .map_err(|e| Diag::io("plcc::recipe::unreadable", "read recipe", path, &e))?;
    decode(path, bytes)
}

/// Decodes the bytes of the recipe at `path`.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<SourceText, Diag> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceText {
            path: path.to_path_buf(),
            text,
        }),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
            let column = offset
                - bytes[..offset]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1)
                + 1;
            Err(Diag::new(
                "plcc::syntax::invalid-utf8",
                format!(
                    "`{}` is not valid UTF-8: bad byte 0x{:02X} at offset {offset} (line {line}, column {column})",
                    path.display(),
                    bytes.get(offset).copied().unwrap_or(0)
                ),
            )
            .help("save the recipe as UTF-8"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_the_offset() {
        let d = decode(Path::new("r.pc"), b"a: 1\nb: \"\xff\"".to_vec()).unwrap_err();
        assert_eq!(d.code, "plcc::syntax::invalid-utf8");
        assert!(
            d.message.contains("offset 9 (line 2, column 5)"),
            "{}",
            d.message
        );
    }
}
