//! `plcc fmt RECIPE [--write | --check]`: prints the recipe in canonical form,
//! rewrites it in place (atomically: a temporary file renamed over it), or
//! checks that it already is canonical.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::artifact::write_file_atomic;
use crate::diag::Diag;
use crate::syntax::{format, parse, read_recipe};

/// Print the recipe in canonical form.
#[derive(Args, Debug)]
pub struct FmtArgs {
    /// The recipe file (`.pc`) to format.
    pub recipe: PathBuf,
    /// Rewrite the file in place instead of printing it.
    #[arg(long, conflicts_with = "check")]
    pub write: bool,
    /// Print nothing; exit 1 when the file is not in canonical form.
    #[arg(long)]
    pub check: bool,
}

/// What `plcc fmt` does with the canonical text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FmtMode {
    Print,
    Write,
    Check,
}

impl FmtArgs {
    fn mode(&self) -> FmtMode {
        if self.write {
            FmtMode::Write
        } else if self.check {
            FmtMode::Check
        } else {
            FmtMode::Print
        }
    }
}

/// Runs `plcc fmt`.
pub fn run(args: &FmtArgs) -> Result<ExitCode, Diag> {
    let recipe = args.recipe.as_path();
    let source = read_recipe(recipe)?;
    let doc = parse(&source.text).map_err(|d| source.attach(d))?;
    let canonical = format(&doc);
    match args.mode() {
        FmtMode::Print => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(canonical.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| {
                    Diag::new("plcc::fmt::write", "cannot write to standard output")
                        .note(e.to_string())
                })?;
            Ok(ExitCode::SUCCESS)
        }
        FmtMode::Check if canonical == source.text => Ok(ExitCode::SUCCESS),
        FmtMode::Check => {
            eprintln!(
                "{} is not in canonical form (run `plcc fmt --write {}`)",
                recipe.display(),
                recipe.display()
            );
            Ok(ExitCode::from(1))
        }
        FmtMode::Write if canonical == source.text => Ok(ExitCode::SUCCESS),
        FmtMode::Write => {
            write_file_atomic(recipe, canonical.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
