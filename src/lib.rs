//! plcc: a declarative model-compression compiler for pre-trained Transformer
//! language models. This page is the library's promise: the modules and
//! items below are what a program built on plcc may use.
//!
//! **Start with [`api`]**: open a model (a checkpoint, a built-in or an
//! artifact), embed or score strings, build a recipe into an artifact, all
//! without the command line and without printing.
//!
//! **Build a recipe.** [`build`] runs the whole pipeline on a recipe file
//! with [`BuildOptions`], reporting progress to a [`Reporter`] ([`Silent`]
//! reports nothing), and returns what it [`Built`]: the artifact's folder,
//! its [`Report`] ([`report`] holds the report's sections) and the exit
//! [`Calibration`]. [`compile`] and [`compile_recipe`] stop after the front
//! half (parse, check, resolve, run the passes, verify) and return the
//! verified program. [`builtin_passes`] and [`pass_registry`] give the
//! built-in passes, in the order they run. Failures are [`Diag`]nostics.
//!
//! **Write a custom pass.** A pass implements [`pass::Pass`]: it reads the
//! [`recipe`] (the typed recipe and its arguments), rewrites the [`ir`]
//! program (the model graph and the plan) through [`pass::PassCx`], and
//! reports problems as [`diag`] diagnostics pointing at recipe spans; the
//! shared vocabulary (configurations, bit widths, tasks, exit kinds) is in
//! [`base`]. Register it on a [`pass::PassRegistry`] and hand the registry
//! to [`build`], or to [`cli::main_with`] for a `plcc` binary that knows the
//! pass. The built-in passes use nothing more than these modules.
//!
//! **Run a model.** [`runtime`] loads teachers, students and artifacts and
//! runs them (its `kernels` are the CPU/CUDA kernels); [`artifact`] reads
//! the on-disk format; [`text`] holds the tokenizers and reads data files;
//! [`quant`] is the quantizer arithmetic; [`export`] writes ONNX.
//!
//! **Recipes as text.** [`syntax`] parses and formats a recipe's text.
//!
//! Everything else (lowering, evaluation, the built-in passes' code, file
//! and fault handling, linear algebra) is internal; `docs/architecture.md` draws the whole pipeline.

pub mod api;
pub mod artifact;
pub mod base;
pub mod cli;
pub mod diag;
pub mod export;
pub mod ir;
pub mod pass;
pub mod quant;
pub mod recipe;
pub mod report;
pub mod runtime;
pub mod syntax;
pub mod text;

pub(crate) mod compile;
pub(crate) mod eval;
pub(crate) mod fault;
pub(crate) mod fsio;
pub(crate) mod linalg;
pub(crate) mod lower;
#[path = "../passes/mod.rs"]
pub(crate) mod passes;

#[cfg(test)]
mod testing;

use std::path::Path;

pub use compile::{compile, compile_recipe};
pub use diag::{Diag, Result};
pub use lower::reporter::{Reporter, Silent};
pub use lower::{BuildOptions, Built};
pub use report::{Calibration, Report};

use pass::{DumpAfter, Pass, PassRegistry};

/// The built-in passes, in the order they run: drop layers, then narrow
/// heads and FFNs, prune the vocabulary, place exits, place quantizers, and
/// lay out the distillation timeline.
pub fn builtin_passes() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(passes::LayerReduce),
        Box::new(passes::WidthPrune),
        Box::new(passes::VocabPrune),
        Box::new(passes::ExitInsert),
        Box::new(passes::QuantPlace),
        Box::new(passes::DistillSchedule),
    ]
}

/// A registry of the built-in passes; register custom passes on it.
pub fn pass_registry() -> PassRegistry {
    PassRegistry::new(builtin_passes())
}

/// The whole pipeline on the recipe at `recipe`: compile it (front, IR,
/// passes, verification), then lower the verified program, write its
/// artifact and calibrate its exits when the plan gives a target.
/// Diagnostics come back with the recipe text attached.
pub fn build(
    recipe: &Path,
    opts: &BuildOptions,
    registry: &PassRegistry,
    reporter: &dyn Reporter,
) -> Result<Built> {
    let (source, program) = compile(recipe, registry, DumpAfter::none())?;
    let mut built =
        lower::build(&program, &source, opts, reporter).map_err(|d| source.attach(d))?;
    built.warnings = std::mem::take(&mut built.warnings)
        .into_iter()
        .map(|w| source.attach(w))
        .collect();
    Ok(built)
}
