//! The front half of the compiler as one call: load the recipe, resolve it
//! against its teacher, run the passes, verify. `plcc check`, `plcc plan` and
//! `plcc build` all start here.

use std::path::Path;

use crate::diag::Diag;
use crate::ir::{resolve, verify, Program};
use crate::pass::{run_passes, DumpAfter, PassRegistry};
use crate::recipe::{load, Recipe};

/// Loads, resolves, compiles and verifies the recipe at `path`. Diagnostics
/// come back with the recipe text attached, ready to render.
pub fn compile(
    path: &Path,
    registry: &PassRegistry,
    dump: DumpAfter<'_>,
) -> Result<(Recipe, Program), Diag> {
    let (recipe, source) = load(path)?;
    let program = compile_recipe(&recipe, registry, dump).map_err(|d| source.attach(d))?;
    Ok((recipe, program))
}

/// Resolves, compiles and verifies an already loaded recipe.
pub fn compile_recipe(
    recipe: &Recipe,
    registry: &PassRegistry,
    dump: DumpAfter<'_>,
) -> Result<Program, Diag> {
    let program = resolve(recipe)?;
    verify(&program)?;
    let program = run_passes(program, registry, recipe, dump)?;
    verify(&program)?;
    Ok(program)
}
