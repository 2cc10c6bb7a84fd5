//! The command-line interface: the `plcc` command and its subcommands, each
//! declared with its arguments and run in its own file, the options several
//! share in `options`. `main_with` is the entry point both for the `plcc`
//! binary and for user programs that register custom passes
//! (`examples/custom_pass.rs`); the commands themselves are internal.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diag::Diag;
use crate::pass::PassRegistry;

mod allocator;
pub(crate) mod bench;
pub(crate) mod build;
pub(crate) mod calibrate;
pub(crate) mod calibration_data;
pub(crate) mod check;
pub(crate) mod eval;
pub(crate) mod eval_exits;
pub(crate) mod export;
pub(crate) mod fmt;
pub(crate) mod options;
pub(crate) mod output;
pub(crate) mod passes;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod run;
pub(crate) mod teacher;
pub(crate) mod vocab_warning;

#[derive(Parser, Debug)]
#[command(
    name = "plcc",
    version,
    about = "A declarative model-compression compiler for Transformer language models"
)]
pub(crate) struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

// The subcommands: each one's help text is the doc of its arguments (a doc
// comment here would become the help text of `plcc` itself).
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    Check(check::CheckArgs),
    Plan(plan::PlanArgs),
    Fmt(fmt::FmtArgs),
    /// List built-in and registered passes.
    Passes,
    Build(build::BuildArgs),
    Run(run::RunArgs),
    Calibrate(calibrate::CalibrateArgs),
    Bench(bench::BenchArgs),
    Eval(eval::EvalArgs),
    Export(export::ExportArgs),
}

/// Parses the command line, runs the command with `registry`, renders any
/// diagnostic to stderr. Exit code 0 on success, 1 on a diagnostic, 2 on bad usage.
pub fn main_with(registry: PassRegistry) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run_command(&cli.command, &registry) {
        Ok(code) => code,
        Err(diag) => {
            output::render(&diag);
            ExitCode::from(1)
        }
    }
}

/// Runs one parsed command.
pub(crate) fn run_command(command: &Command, registry: &PassRegistry) -> Result<ExitCode, Diag> {
    match command {
        Command::Check(args) => check::run(args, registry),
        Command::Plan(args) => plan::run(args, registry),
        Command::Fmt(args) => fmt::run(args),
        Command::Passes => passes::run(registry),
        Command::Build(args) => build::run(args, registry),
        Command::Run(args) => run::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Export(args) => export::run(args),
    }
}

#[cfg(test)]
mod tests;
