//! Recipe text → generic syntax tree with spans (pest grammar in
//! `grammar/recipe.pest`), reading recipe files, and the canonical formatter.

mod ast;
mod fmt;
mod lex;
mod parse;
mod source;

pub use ast::{
    Block, Comment, Document, Item, Name, Property, Statement, TimeUnit, Value, ValueKind,
};
pub use fmt::{format, format_value};
pub use parse::parse;
pub use source::{decode, read_recipe, SourceText};
