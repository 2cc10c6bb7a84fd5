//! `plcc passes`: lists the built-in passes (in run order) and the custom
//! passes registered by this program, one line each.

use std::process::ExitCode;

use crate::diag::Diag;
use crate::pass::PassRegistry;

/// Runs `plcc passes`.
pub fn run(registry: &PassRegistry) -> Result<ExitCode, Diag> {
    print!("{}", listing(registry));
    Ok(ExitCode::SUCCESS)
}

/// The listing `plcc passes` prints.
pub fn listing(registry: &PassRegistry) -> String {
    let width = registry.names().iter().map(|n| n.len()).max().unwrap_or(0);
    let mut out = String::from("built-in passes (run in this order):\n");
    for p in registry.builtins() {
        out.push_str(&format!("  {:width$}  {}\n", p.name(), p.description()));
    }
    let custom: Vec<_> = registry.custom().collect();
    if custom.is_empty() {
        out.push_str("custom passes: none registered\n");
    } else {
        out.push_str("custom passes (run by `pass \"NAME\" { ... }`):\n");
        for p in custom {
            out.push_str(&format!("  {:width$}  {}\n", p.name(), p.description()));
        }
    }
    out
}
