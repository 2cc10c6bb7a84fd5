//! How commands write what is not their own table: diagnostics to stderr,
//! reports as pretty JSON to stdout.

use serde::Serialize;

use crate::diag::Diag;

/// Renders every problem of `diag` (and its count line) to stderr.
pub fn render(diag: &Diag) {
    for problem in diag.problems() {
        eprintln!("{:?}", miette::Report::new(problem.clone()));
    }
    if let Some(count) = diag.count_line() {
        eprintln!("{count}");
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl Serialize) -> Result<(), Diag> {
    let text = serde_json::to_string_pretty(value).map_err(|e| {
        Diag::new("plcc::bench::output", "cannot serialise the report").note(e.to_string())
    })?;
    println!("{text}");
    Ok(())
}
