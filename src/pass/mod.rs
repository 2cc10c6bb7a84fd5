//! The pass manager and the registry of built-in and custom passes.

/// Registry of passes by name (built-ins plus user passes).
#[derive(Default)]
pub struct PassRegistry {}

impl PassRegistry {
    pub fn with_builtins() -> Self {
        PassRegistry::default()
    }
}
