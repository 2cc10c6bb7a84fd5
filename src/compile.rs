//! The front half of the compiler as one call: load the recipe, resolve it
//! against its teacher, run the passes, verify. `plcc check`, `plcc plan` and
//! `plcc build` all start here.

use std::path::Path;

use crate::diag::Diag;
use crate::ir::{resolve, verified, verify, Verified};
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
