//! `plcc plan RECIPE [--json] [--dump-after PASS|all]`: shows what a build
//! would do before any weight is touched: every module's shape before →
//! after with its quantizers, the per-layer widths, the vocabulary before →
//! after with the bytes it saves, the exits, the
//! distillation timeline, and estimated parameters / bytes / FLOPs per token
//! of teacher and student. `--json` prints the same as a stable document.

use std::path::Path;
use std::process::ExitCode;

use crate::compile::compile;
use crate::diag::Diag;
use crate::ir;
use crate::pass::{DumpAfter, DumpSelect, PassRegistry};

/// Runs `plcc plan`.
pub fn run(
    recipe: &Path,
    json: bool,
    dump_after: Option<&str>,
    registry: &PassRegistry,
) -> Result<ExitCode, Diag> {
    let select = dump_after
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
    let (_, program) = compile(recipe, registry, dump)?;
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
