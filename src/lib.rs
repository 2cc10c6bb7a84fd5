//! plcc: a declarative model-compression compiler for pre-trained Transformer
//! language models.
//!
//! The library reads as its pipeline (`docs/architecture.md` draws it):
//!
//! 1. **Front** — [`syntax`] parses a recipe's text into a syntax tree;
//!    [`recipe`] checks it against the recipe schema into a typed `Recipe`.
//! 2. **IR** — [`ir::resolve`] turns the recipe into the teacher's
//!    `Program`: a model graph and the plan beside it.
//! 3. **Passes** — [`pass`] runs the passes of [`builtin_passes`], in that
//!    order, then the recipe's custom passes; [`ir::verified`] checks the
//!    result and returns the `Verified` program, the only thing lowering
//!    takes. [`compile`] is the whole front half in one call.
//! 4. **Lowering** — [`lower`] executes the verified program on the
//!    teacher's weights: load, score, slice, prune the vocabulary, distill,
//!    quantize and pack, and writes the artifact.
//! 5. **Runtime** — [`runtime`]: the model code and every CPU/CUDA kernel
//!    that runs teachers, students and artifacts.
//! 6. **Artifact** — [`artifact`]: the on-disk format, written atomically
//!    and verified on load.
//! 7. **Evaluation** — [`eval`]: fidelity to the teacher, the report, exit
//!    calibration.
//!
//! On top: [`api`] (open a model, embed or score strings, build a recipe,
//! without the command line) and [`cli`].
//!
//! Beneath them all: [`base`] (the shared vocabulary: configurations, bit
//! widths, tasks, exit kinds), [`diag`] (diagnostics and spans), [`fsio`],
//! [`fault`], [`linalg`], [`quant`] (quantizer arithmetic) and [`text`]
//! (tokenizers, data files). [`cli`] is the only part that prints.

pub mod api;
pub mod artifact;
pub mod base;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod eval;
pub mod export;
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

#[cfg(test)]
mod testing;

use std::path::Path;

pub use compile::{compile, compile_recipe};
pub use diag::{Diag, Result};

use lower::reporter::Reporter;
use lower::{BuildOptions, Built};
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
