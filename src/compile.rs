//! The front half of the compiler as one call: load the recipe, resolve it
//! against its teacher, run the passes, verify. `plcc check`, `plcc plan` and
//! `plcc build` all start here.

use crate::diag::Diag;
use crate::ir::{resolve, verify, Program};
use crate::pass::{run_passes, DumpAfter, PassRegistry};
use crate::recipe::Recipe;

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
