//! Where a build writes, and whether it may: the output folder chosen from
//! `-o`, the plan's `output:` or the default, refused when it is not plcc's
//! to replace (see [`crate::artifact::output_check`]); when the path came
//! from the recipe's `output:`, the diagnostic points at it.

use std::path::{Path, PathBuf};

use super::BuildOptions;
use crate::artifact::output_check::{self, Input};
use crate::base::TeacherRef;
use crate::diag::{Diag, Span};
use crate::ir::Plan;

/// The artifact folder: `-o`, else the recipe's `output:`, else `out`.
pub fn output_dir(opts: &BuildOptions, plan: &Plan) -> PathBuf {
    opts.output
        .clone()
        .or_else(|| plan.output.as_ref().map(|o| o.value.clone()))
        .unwrap_or_else(|| PathBuf::from("out"))
}

/// Refuses `output` when it would overwrite an input of the build (the
/// recipe at `recipe`, the teacher's checkpoint, a data file) or something
/// plcc did not write, and a recipe `output:` outside the recipe's folder
/// unless `--allow-outside`.
pub fn check_output(
    opts: &BuildOptions,
    plan: &Plan,
    recipe: &Path,
    output: &Path,
) -> Result<(), Diag> {
    let mut inputs = vec![Input {
        what: "the recipe",
        path: recipe,
    }];
    if let TeacherRef::Dir(d) = &plan.teacher.reference {
        inputs.push(Input {
            what: "the teacher's checkpoint folder",
            path: d,
        });
    }
    for spec in &plan.datasets {
        inputs.push(Input {
            what: "a data file of the recipe",
            path: &spec.path.value,
        });
    }
    let from_recipe = plan
        .output
        .as_ref()
        .filter(|o| opts.output.is_none() && o.span != Span::default());
    let located = |d: Diag| match from_recipe {
        Some(o) => d.label(o.span, "the output directory named here"),
        None => d,
    };
    if from_recipe.is_some() && !opts.allow_outside {
        let recipe_dir = match recipe.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        output_check::confine(output, recipe_dir).map_err(located)?;
    }
    output_check::check_output(output, &inputs).map_err(located)
}
