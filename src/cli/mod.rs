//! The command-line interface. `main_with` is the entry point both for the
//! `plcc` binary and for user programs that register custom passes
//! (`examples/custom_pass.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diag::Diag;
use crate::pass::PassRegistry;

pub mod bench;
pub mod bench_against;
pub mod build;
pub mod calibrate;
pub mod check;
pub mod export;
pub mod fmt;
pub mod passes;
pub mod plan;
pub mod progress;
pub mod run;

#[derive(Parser, Debug)]
#[command(
    name = "plcc",
    version,
    about = "A declarative model-compression compiler for Transformer language models"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

impl DeviceArg {
    /// The device this flag names.
    pub fn device(self) -> crate::base::Device {
        match self {
            DeviceArg::Cpu => crate::base::Device::Cpu,
            DeviceArg::Cuda => crate::base::Device::Cuda,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse, resolve and verify a recipe; report every problem.
    Check { recipe: PathBuf },
    /// Show what a build would do: shapes before → after, bits, exits, the
    /// distillation timeline, estimated parameters / bytes / FLOPs.
    Plan {
        recipe: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Print the IR after the named pass (or `all`).
        #[arg(long, value_name = "PASS|all")]
        dump_after: Option<String>,
    },
    /// Print the recipe in canonical form.
    Fmt {
        recipe: PathBuf,
        /// Rewrite the file in place.
        #[arg(long, conflicts_with = "check")]
        write: bool,
        /// Exit 1 when the file is not in canonical form.
        #[arg(long)]
        check: bool,
    },
    /// List built-in and registered passes.
    Passes,
    /// Compress: run the recipe on its checkpoint and write the artifact.
    Build {
        recipe: PathBuf,
        /// Output directory (overrides the recipe's `output`).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        #[arg(long, value_enum)]
        device: Option<DeviceArg>,
        /// Cap every training stage at N steps (0 = compress without training).
        #[arg(long, value_name = "N")]
        max_steps: Option<usize>,
        /// Continue from the last training checkpoint.
        #[arg(long)]
        resume: bool,
        /// Let the recipe's `output:` write outside the recipe's folder.
        #[arg(long)]
        allow_outside: bool,
        /// CPU threads for training and measuring (default: every core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Run a model on one input per line; JSON Lines out.
    Run {
        /// Checkpoint directory, `builtin:NAME`, or plcc artifact directory.
        model: String,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long)]
        max_len: Option<usize>,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        #[arg(long)]
        threads: Option<usize>,
        /// Embeddings as the plain mean of the final hidden states, without
        /// the checkpoint's pipeline (its pooling and normalization).
        #[arg(long)]
        raw: bool,
    },
    /// Choose exit thresholds for a target and write them into the artifact.
    Calibrate {
        /// The artifact directory.
        artifact: PathBuf,
        /// Calibration text, one input per line.
        #[arg(long)]
        data: PathBuf,
        /// `avg_layer=N`, `speedup=X` or `max_loss=P%`.
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long)]
        max_len: Option<usize>,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        #[arg(long)]
        threads: Option<usize>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Show the thresholds without writing them (nothing is written).
        #[arg(long)]
        dry_run: bool,
        /// Held-out data to measure the report's fidelity with exits on (laid
        /// out as the build's evaluation data; default: that data, when it is
        /// unchanged since the build).
        #[arg(long)]
        eval: Option<PathBuf>,
    },
    /// Measure throughput, latency, memory and average exit layer of a model;
    /// with `--against` (by default, for an artifact: its teacher) compare two.
    Bench {
        model: String,
        #[arg(long)]
        input: PathBuf,
        /// The model to compare with (checkpoint directory, `builtin:NAME`
        /// or artifact); default for an artifact: its teacher.
        #[arg(long, conflicts_with = "alone")]
        against: Option<String>,
        /// Measure the model alone (no comparison with the teacher).
        #[arg(long)]
        alone: bool,
        /// Timed passes per model (alternating between the two); the fastest is reported.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long)]
        max_len: Option<usize>,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        #[arg(long)]
        json: bool,
    },
    /// Write an artifact in a form other runtimes load.
    Export {
        /// The artifact directory.
        artifact: PathBuf,
        /// The form to write: `onnx` (model.onnx for ONNX Runtime) or `hf`
        /// (a float checkpoint for transformers and sentence-transformers).
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The directory to write: absent, empty or an earlier export.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
}

/// What `plcc export` writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `model.onnx` (opset 17) and the tokenizer.
    Onnx,
    /// A Hugging Face checkpoint with sentence-transformers' files.
    Hf,
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
    match run_command(cli.command, &registry) {
        Ok(code) => code,
        Err(diag) => {
            render(&diag);
            ExitCode::from(1)
        }
    }
}

/// Renders every problem of `diag` (and its count line) to stderr.
pub fn render(diag: &Diag) {
    for problem in diag.problems() {
        eprintln!("{:?}", miette::Report::new(problem.clone()));
    }
    if let Some(count) = diag.count_line() {
        eprintln!("{count}");
    }
}

/// Runs one parsed command.
pub fn run_command(command: Command, registry: &PassRegistry) -> Result<ExitCode, Diag> {
    match command {
        Command::Fmt {
            recipe,
            write,
            check,
        } => {
            let mode = if write {
                fmt::FmtMode::Write
            } else if check {
                fmt::FmtMode::Check
            } else {
                fmt::FmtMode::Print
            };
            fmt::run(&recipe, mode)
        }
        Command::Check { recipe } => check::run(&recipe, registry),
        Command::Plan {
            recipe,
            json,
            dump_after,
        } => plan::run(&recipe, json, dump_after.as_deref(), registry),
        Command::Passes => passes::run(registry),
        Command::Run {
            model,
            input,
            output,
            batch_size,
            max_len,
            device,
            threads,
            raw,
        } => run::run(
            &model,
            &input,
            output.as_deref(),
            batch_size,
            max_len,
            device,
            threads,
            raw,
        ),
        Command::Calibrate {
            artifact,
            data,
            target,
            batch_size,
            max_len,
            device,
            threads,
            json,
            dry_run,
            eval,
        } => calibrate::run(
            &artifact,
            &data,
            &target,
            batch_size,
            max_len,
            device,
            threads,
            json,
            dry_run,
            eval.as_deref(),
        ),
        Command::Bench {
            model,
            input,
            against,
            alone,
            repeat,
            threads,
            batch_size,
            max_len,
            device,
            json,
        } => bench::run(&bench::BenchArgs {
            model: &model,
            input: &input,
            against: against.as_deref(),
            alone,
            threads,
            batch_size,
            max_len,
            device,
            json,
            repeat,
        }),
        Command::Export {
            artifact,
            format,
            output,
        } => export::run(&artifact, format, &output),
        Command::Build {
            recipe,
            output,
            device,
            max_steps,
            resume,
            allow_outside,
            threads,
        } => build::run(
            &recipe,
            build::Where {
                output,
                allow_outside,
            },
            threads,
            device,
            max_steps,
            resume,
            registry,
        ),
    }
}
