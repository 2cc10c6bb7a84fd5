//! Turning a failed tensor operation into a diagnostic.

use crate::diag::Diag;

/// A tensor operation that failed inside the build (a bug, not bad input).
pub fn tensor_error(e: candle_core::Error) -> Diag {
    Diag::new(
        "plcc::build::tensor",
        "a tensor operation failed during the build",
    )
    .note(e.to_string())
}
