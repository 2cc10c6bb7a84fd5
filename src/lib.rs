//! plcc: a declarative model-compression compiler for pre-trained Transformer
//! language models.
//!
//! The library reads as its pipeline:
//! `syntax::parse` → `recipe::from_ast` → `ir::resolve` → `pass::run_passes`
//! → `ir::verify` → lowering and execution (`model`, build stages).

pub mod artifact;
pub mod base;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod eval;
pub mod fault;
pub mod fsio;
pub mod ir;
pub mod linalg;
pub mod lower;
pub mod pass;
#[path = "../passes/mod.rs"]
pub mod passes;
pub mod quant;
pub mod recipe;
pub mod runtime;
pub mod syntax;
pub mod text;

pub use compile::{compile, compile_recipe};
pub use diag::{Diag, Result};
