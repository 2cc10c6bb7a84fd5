//! plcc: a declarative model-compression compiler for pre-trained Transformer
//! language models.
//!
//! The library reads as its pipeline:
//! `syntax::parse` → `recipe::from_ast` → `ir::resolve` → `pass::run_passes`
//! → `ir::verify` → lowering and execution (`model`, build stages).

pub mod artifact;
pub mod base;
pub mod build;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod exits;
pub mod fault;
pub mod fsio;
pub mod ir;
pub mod kernels;
pub mod linalg;
pub mod model;
pub mod pass;
#[path = "../passes/mod.rs"]
pub mod passes;
pub mod quant;
pub mod recipe;
pub mod syntax;
pub mod train;
pub mod vocab;

pub use compile::{compile, compile_recipe};
pub use diag::{Diag, Result};
