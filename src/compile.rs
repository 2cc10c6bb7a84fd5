//! The front half of the compiler as one call: load the recipe, resolve it
//! against its teacher, run the passes, verify. `plcc check`, `plcc plan` and
//! `plcc build` all start here; `check` adds the build's preflight (the
//! device, data sets, teacher files and head, checked without reading
//! weights).

use std::path::Path;

use crate::diag::Diag;
use crate::ir::{resolve, verified, verify, Verified};
use crate::lower::preflight::{inputs, preflight};
use crate::pass::{run_passes, DumpAfter, PassRegistry};
use crate::recipe::{load, Recipe};
use crate::syntax::SourceText;

/// Loads, resolves, compiles and verifies the recipe at `path`: the recipe's
/// text (lowering records it in the artifact and attaches it to later
/// diagnostics) and the verified program. Diagnostics come back with the
/// recipe text attached, ready to render.
pub fn compile(
    path: &Path,
    registry: &PassRegistry,
    dump: DumpAfter<'_>,
) -> Result<(SourceText, Verified), Diag> {
    let (recipe, source) = load(path)?;
    let program = compile_recipe(&recipe, registry, dump).map_err(|d| source.attach(d))?;
    Ok((source, program))
}

/// Resolves, compiles and verifies an already loaded recipe.
pub fn compile_recipe(
    recipe: &Recipe,
    registry: &PassRegistry,
    dump: DumpAfter<'_>,
) -> Result<Verified, Diag> {
    let program = resolve(recipe)?;
    verify(&program)?;
    verified(run_passes(program, registry, recipe, dump)?)
}

/// Everything `plcc check` finds in the recipe at `path` (the front half,
/// then what a build needs checked without reading weights:
/// `lower::preflight`): the verified
/// program and its warnings, or every problem (warnings among them), with
/// the recipe text attached.
pub fn check(path: &Path, registry: &PassRegistry) -> Result<(Verified, Option<Diag>), Diag> {
    let (recipe, source) = load(path)?;
    let resolved = resolve(&recipe).map_err(|d| source.attach(d))?;
    let program = match compile_recipe(&recipe, registry, DumpAfter::none()) {
        Ok(program) => program,
        // What the passes refused does not hide the data and files.
        Err(failed) => return Err(source.attach(failed.and(inputs(&resolved, None).errors))),
    };
    let checked = preflight(&program, None, true);
    let failed = !checked.errors.is_empty();
    let mut found = checked.errors;
    found.extend(checked.warnings);
    let found = Diag::gather(found).map(|d| source.attach(d));
    match found {
        Some(problems) if failed => Err(problems),
        warnings => Ok((program, warnings)),
    }
}
