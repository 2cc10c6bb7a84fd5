//! The typed recipe and the schema check that builds it from the syntax tree.

mod blocks;
mod fields;
mod load;
mod output;
mod quantize;
mod schema;
mod stages;
mod types;
mod values;
mod vocab;

pub use load::{load, parse_str};
pub use schema::from_ast;
pub use types::*;
