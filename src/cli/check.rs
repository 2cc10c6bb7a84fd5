//! `plcc check RECIPE`: loads, resolves, compiles and verifies a recipe,
//! checks that a checkpoint teacher's weights and tokenizer files are there,
//! and prints a one-line summary, or the first diagnostic.

use std::path::Path;
use std::process::ExitCode;

use crate::base::TeacherRef;
use crate::compile::compile_recipe;
use crate::diag::Diag;
use crate::fsio;
use crate::ir::human;
use crate::pass::{DumpAfter, PassRegistry};
use crate::recipe::{load, Recipe};

/// Runs `plcc check`.
pub fn run(path: &Path, registry: &PassRegistry) -> Result<ExitCode, Diag> {
    let (recipe, source) = load(path)?;
    let program = compile_recipe(&recipe, registry, DumpAfter::none())
        .and_then(|program| teacher_files_present(&recipe).map(|()| program))
        .map_err(|d| source.attach(d))?;
    println!("{}", summary(path, &program));
    Ok(ExitCode::SUCCESS)
}

/// Checks that a checkpoint teacher's weights and tokenizer are regular files
/// within their size limits (without reading them), so `plcc check` fails
/// where `plcc build` would.
fn teacher_files_present(recipe: &Recipe) -> Result<(), Diag> {
    let TeacherRef::Dir(dir) = &recipe.teacher.value else {
        return Ok(());
    };
    for (file, kind) in [
        ("model.safetensors", &fsio::WEIGHTS),
        ("tokenizer.json", &fsio::TOKENIZER),
    ] {
        fsio::check_regular(&dir.join(file), kind).map_err(|d| {
            let d = d.label(recipe.teacher.span, format!("this checkpoint needs {file}"));
            match d.help {
                Some(_) => d,
                None => d.help(
                    "a checkpoint folder holds config.json, model.safetensors and tokenizer.json",
                ),
            }
        })?;
    }
    Ok(())
}

/// `OK path: builtin:tiny-bert, 4 → 2 layers, 2 exits, 12 quantized modules, 2 distill stages, 1.1 MB → 120.3 kB`.
pub fn summary(recipe: &Path, program: &crate::ir::Program) -> String {
    let plan = &program.plan;
    let quantized: usize = program
        .model
        .graph
        .node_weights()
        .map(|n| n.quant.values().filter(|q| q.weights.is_some()).count())
        .sum();
    format!(
        "OK {}: {}, {} → {} layers, {}, {}, {}, {} → {}",
        recipe.display(),
        plan.teacher.source,
        plan.teacher.config.num_layers(),
        program.model.num_layers(),
        count(plan.exits.as_ref().map_or(0, |e| e.after.len()), "exit"),
        count(quantized, "quantized module"),
        count(plan.stages.len(), "distill stage"),
        human(plan.cost.teacher.bytes as f64, "B"),
        human(plan.cost.student.bytes as f64, "B"),
    )
}

/// `1 exit`, `2 exits`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
