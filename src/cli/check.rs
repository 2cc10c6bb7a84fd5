//! `plcc check RECIPE`: loads, resolves, compiles and verifies a recipe,
//! then checks what a build needs without reading weights (the device, every
//! data set read as the build reads it, the teacher's files, a classifier
//! head for a classification task: `lower::preflight`). Prints a one-line
//! summary after any warnings, or every problem found and their count.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::output::render;
use crate::compile::check as findings;
use crate::diag::Diag;
use crate::ir::human;
use crate::pass::PassRegistry;

/// Parse, resolve and verify a recipe; report every problem.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The recipe file (`.pc`) to check.
    pub recipe: PathBuf,
}

/// Runs `plcc check`.
pub fn run(args: &CheckArgs, registry: &PassRegistry) -> Result<ExitCode, Diag> {
    let (program, warnings) = findings(&args.recipe, registry)?;
    if let Some(warnings) = warnings {
        render(&warnings);
    }
    println!("{}", summary(&args.recipe, &program));
    Ok(ExitCode::SUCCESS)
}

/// `OK path: builtin:tiny-bert, 4 → 2 layers, 2 exits, 12 quantized modules, 2 distill stages, 1.1 MB → 120.3 kB`;
/// an encoder-decoder's layers as `2 + 2 → 2 + 2` (encoder + decoder).
pub fn summary(recipe: &Path, program: &crate::ir::Program) -> String {
    let plan = &program.plan;
    let quantized: usize = program
        .model
        .graph
        .node_weights()
        .map(|n| n.quant.values().filter(|q| q.weights.is_some()).count())
        .sum();
    let layers = |encoder: usize, decoder: usize| match plan.teacher.config.seq2seq {
        Some(_) => format!("{encoder} + {decoder}"),
        None => decoder.to_string(),
    };
    format!(
        "OK {}: {}, {} → {} layers, {}, {}, {}, {} → {}",
        recipe.display(),
        plan.teacher.source,
        layers(
            plan.teacher.config.encoder_layers().len(),
            plan.teacher.config.num_layers()
        ),
        layers(
            program.model.encoder_layers().len(),
            program.model.num_layers()
        ),
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
