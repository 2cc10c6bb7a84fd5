//! `plcc plan RECIPE [--json] [--dump-after PASS|all]`: shows what a build
//! would do before any weight is touched: every module's shape before →
//! after with its quantizers, the per-layer widths, the vocabulary before →
//! after with the bytes it saves, the exits, the
//! distillation timeline, and estimated parameters / bytes / FLOPs per token
//! of teacher and student. `--json` prints the same as a stable document.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::compile::compile;
use crate::diag::Diag;
use crate::ir;
use crate::pass::{DumpAfter, DumpSelect, PassRegistry};

/// Show what a build would do: shapes before → after, bits, exits, the
/// distillation timeline, estimated parameters / bytes / FLOPs.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The recipe file (`.pc`) to plan.
    pub recipe: PathBuf,
    /// Print the plan as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the IR after the named pass (see `plcc passes`), or after
    /// every pass with `all`.
    #[arg(long, value_name = "PASS|all")]
    pub dump_after: Option<String>,
}

/// Runs `plcc plan`.
pub fn run(args: &PlanArgs, registry: &PassRegistry) -> Result<ExitCode, Diag> {
    let json = args.json;
    let select = args
        .dump_after
        .as_deref()
        .map(DumpSelect::parse)
        .unwrap_or(DumpSelect::Nothing);
    let dump = DumpAfter::new(select, |pass, program| {
        let text = format!("// IR after {pass}\n{}\n", ir::print(program));
        if json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    });
    let (_, program) = compile(&args.recipe, registry, dump)?;
    if json {
        let doc = ir::plan_document(&program);
        let text = serde_json::to_string_pretty(&doc).map_err(|e| {
            Diag::new(
                "plcc::internal::json",
                format!("cannot serialize the plan: {e}"),
            )
        })?;
        println!("{text}");
    } else {
        print!("{}", ir::plan_table(&program));
    }
    Ok(ExitCode::SUCCESS)
}
