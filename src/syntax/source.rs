//! Reading a recipe file: its text (which must be UTF-8) and the name the
//! diagnostics show for it.

use std::path::{Path, PathBuf};

use crate::diag::Diag;
use crate::fsio;

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

/// Reads a recipe file (a regular file of at most 1 MiB). A missing file or
/// bytes that are not UTF-8 are diagnostics (the latter with the byte offset
/// and line of the first bad byte).
pub fn read_recipe(path: &Path) -> Result<SourceText, Diag> {
    decode(path, fsio::read_regular(path, &fsio::RECIPE)?)
}

/// Decodes the bytes of the recipe at `path`.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<SourceText, Diag> {
    Ok(SourceText {
        path: path.to_path_buf(),
        text: fsio::decode_utf8(path, &fsio::RECIPE, bytes)?,
    })
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
