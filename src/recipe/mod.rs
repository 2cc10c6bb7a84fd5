//! The typed recipe and the schema check that builds it from the syntax tree.

mod types;

pub use types::*;
