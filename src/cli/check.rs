//! `plcc check RECIPE`: loads, resolves, compiles and verifies a recipe and
//! prints a one-line summary, or the first diagnostic.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::plan::human;
use crate::compile::compile;
use crate::diag::Diag;
use crate::pass::{DumpAfter, PassRegistry};

/// Runs `plcc check`.
pub fn run(recipe: &Path, registry: &PassRegistry) -> Result<ExitCode, Diag> {
    let (_, program) = compile(recipe, registry, DumpAfter::none())?;
    println!("{}", summary(recipe, &program));
    Ok(ExitCode::SUCCESS)
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
