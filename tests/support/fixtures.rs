//! The checked-in test fixtures under `tests/fixtures/`.

use std::path::{Path, PathBuf};

/// `tests/fixtures/{path}`.
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}
