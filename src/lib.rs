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
//! verified program; [`check`] adds what `plcc check` finds without reading
//! weights (the device, the data sets, the teacher's files). [`builtin_passes`] and [`pass_registry`] give the
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
//! **The pipeline inside**, in the order a build runs it: the front
//! ([`syntax`] → [`recipe`], one call in `compile`) → [`ir`] (the teacher's
//! program) → the passes of [`builtin_passes`] and the custom ones, run by
//! [`pass`] → `ir::verified` → lowering (internal: teacher, pruning and
//! slicing, training, GPTQ, packing; `lower::build` lists its stages) →
//! [`artifact`] → evaluation (internal: fidelity, exit calibration, the
//! report), with [`runtime`] beneath lowering and evaluation.
//!
//! Everything else (lowering, evaluation, the built-in passes' code, file
//! and fault handling, linear algebra) is internal; `docs/architecture.md`
//! draws the whole pipeline.

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

pub use compile::{check, compile, compile_recipe};
pub use diag::{Diag, Result};
pub use lower::reporter::{Reporter, Silent};
pub use lower::{BuildOptions, Built};
pub use report::{Calibration, Report};

use pass::{DumpAfter, Pass, PassRegistry};

/// The Hugging Face checkpoint folder of a recipe with `output "DIR" {
/// format: hf }` (`-o` names it instead), checked before the build: kept
/// inside the recipe's folder as `output:` is, and free to be written.
fn checkpoint_output(
    plan: &ir::Plan,
    recipe: &Path,
    opts: &BuildOptions,
) -> Result<Option<std::path::PathBuf>, Diag> {
    if plan.output_format.is_artifact() {
        return Ok(None);
    }
    let dir = match (&opts.output, &plan.output) {
        (Some(dir), _) => dir.clone(),
        (None, Some(o)) => {
            if !opts.allow_outside {
                let recipe_dir = recipe.parent().unwrap_or(Path::new("."));
                artifact::output::check::confine(&o.value, recipe_dir)
                    .map_err(|d| d.label(o.span, "the recipe's output"))?;
            }
            o.value.clone()
        }
        (None, None) => return Ok(None),
    };
    let mut inputs = Vec::new();
    if let base::TeacherRef::Dir(d) = &plan.teacher.reference {
        inputs.push(artifact::output::check::Input {
            what: "the teacher's checkpoint folder",
            path: d,
        });
    }
    for spec in &plan.datasets {
        inputs.push(artifact::output::check::Input {
            what: "a data file of the recipe",
            path: &spec.path.value,
        });
    }
    export::checkpoint::claim_checkpoint(&dir, &inputs)?;
    Ok(Some(dir))
}

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
    let checkpoint = checkpoint_output(&program.plan, &source.path, opts);
    let checkpoint = checkpoint.map_err(|d| source.attach(d))?;
    let artifact_opts = match &checkpoint {
        Some(dir) => BuildOptions {
            output: Some(export::checkpoint::artifact_beside(dir)),
            max_steps: opts.max_steps,
            resume: opts.resume,
            allow_outside: opts.allow_outside,
            no_wait: opts.no_wait,
            device: opts.device.clone(),
        },
        None => BuildOptions {
            output: opts.output.clone(),
            device: opts.device.clone(),
            ..*opts
        },
    };
    // Lowering (training, GPTQ, fidelity) runs its kernels from a thread of
    // their own pool (`runtime::pool`).
    let lowered =
        runtime::pool::on_pool(|| lower::build(&program, &source, &artifact_opts, reporter));
    let mut built = lowered.map_err(|d| source.attach(d))?;
    if let Some(dir) = checkpoint {
        export::checkpoint::write_checkpoint(&built.dir, &dir)?;
        built.checkpoint = Some(dir);
    }
    built.warnings = std::mem::take(&mut built.warnings)
        .into_iter()
        .map(|w| source.attach(w))
        .collect();
    Ok(built)
}
