//! Recipe text → generic syntax tree with spans (pest grammar in
//! `grammar/recipe.pest`), and the canonical formatter.

mod span;

pub use span::{Span, Spanned};
