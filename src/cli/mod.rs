//! The command-line interface. `main_with` is the entry point both for the
//! `plcc` binary and for user programs that register custom passes
//! (`examples/custom_pass.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::base::{DataFormat, Pooling};
use crate::diag::Diag;
use crate::eval::gold_data::{parse_column, DataOptions};
use crate::pass::PassRegistry;

pub mod bench;
pub mod bench_against;
pub mod build;
pub mod calibrate;
pub mod check;
pub mod eval;
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
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU (every build of plcc).
    Cpu,
    /// The first CUDA GPU (plcc built with `--features cuda`).
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

/// How an embedding model pools its token states into one vector.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    /// The mean over real (non-padding) tokens.
    Mean,
    /// The first token (`[CLS]`).
    Cls,
}

impl From<PoolingArg> for Pooling {
    fn from(p: PoolingArg) -> Pooling {
        match p {
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Cls => Pooling::Cls,
        }
    }
}

/// The layout of a data file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Tab-separated values, one example per line.
    Tsv,
    /// JSON Lines: one object per line.
    Jsonl,
    /// Plain text, one text per line (language models).
    Text,
}

impl From<FormatArg> for DataFormat {
    fn from(f: FormatArg) -> DataFormat {
        match f {
            FormatArg::Tsv => DataFormat::Tsv,
            FormatArg::Jsonl => DataFormat::Jsonl,
            FormatArg::Text => DataFormat::Text,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse, resolve and verify a recipe; report every problem.
    Check {
        /// The recipe file (`.pc`) to check.
        recipe: PathBuf,
    },
    /// Show what a build would do: shapes before → after, bits, exits, the
    /// distillation timeline, estimated parameters / bytes / FLOPs.
    Plan {
        /// The recipe file (`.pc`) to plan.
        recipe: PathBuf,
        /// Print the plan as one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Print the IR after the named pass (see `plcc passes`), or after
        /// every pass with `all`.
        #[arg(long, value_name = "PASS|all")]
        dump_after: Option<String>,
    },
    /// Print the recipe in canonical form.
    Fmt {
        /// The recipe file (`.pc`) to format.
        recipe: PathBuf,
        /// Rewrite the file in place instead of printing it.
        #[arg(long, conflicts_with = "check")]
        write: bool,
        /// Print nothing; exit 1 when the file is not in canonical form.
        #[arg(long)]
        check: bool,
    },
    /// List built-in and registered passes.
    Passes,
    /// Compress: run the recipe on its checkpoint and write the artifact.
    Build {
        /// The recipe file (`.pc`) to build.
        recipe: PathBuf,
        /// The artifact directory to write (default: the recipe's `output`).
        #[arg(short = 'o', long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Where training runs (default: the recipe's `device`, else cpu).
        #[arg(long, value_enum)]
        device: Option<DeviceArg>,
        /// Cap every training stage at N steps (0: compress without training;
        /// default: the steps the recipe asks for).
        #[arg(long, value_name = "N")]
        max_steps: Option<usize>,
        /// Continue from the last training checkpoint in the output directory.
        #[arg(long)]
        resume: bool,
        /// Let the recipe's `output:` write outside the recipe's folder.
        #[arg(long)]
        allow_outside: bool,
        /// CPU threads for training and measuring (default: every core).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
    /// Run a model on one input per line; JSON Lines out.
    Run {
        /// Checkpoint directory, `builtin:NAME`, or plcc artifact directory.
        model: String,
        /// The input texts, one per line; for an encoder-decoder (BART) each
        /// line is `source` or `source<TAB>target`, and the logits are the
        /// next-token logits after the target.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Write the JSON Lines here (default: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Inputs per forward pass (sorted by length first).
        #[arg(long, default_value_t = 32, value_name = "N")]
        batch_size: usize,
        /// Cut each input to its first N tokens (default: the model's maximum
        /// positions).
        #[arg(long, value_name = "N")]
        max_len: Option<usize>,
        /// Where the model runs.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// CPU threads (default: every core).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Embeddings as the plain mean of the final hidden states, without
        /// the checkpoint's pipeline (its pooling and normalization).
        #[arg(long)]
        raw: bool,
        /// Encoder-decoder models: also continue each target greedily by up
        /// to N tokens, stopping at the end-of-sequence token (`tokens` and
        /// their `text` in the output).
        #[arg(long, value_name = "N")]
        generate: Option<usize>,
    },
    /// Choose exit thresholds for a target and write them into the artifact.
    Calibrate {
        /// The artifact directory.
        artifact: PathBuf,
        /// Calibration text, one input per line.
        #[arg(long, value_name = "FILE")]
        data: PathBuf,
        /// What to reach: `avg_layer=N` (mean exit layer), `speedup=X`
        /// (estimated, over running every layer) or `max_loss=P%` (largest
        /// fidelity loss allowed).
        #[arg(long)]
        target: String,
        /// Inputs per forward pass while calibrating.
        #[arg(long, default_value_t = 32, value_name = "N")]
        batch_size: usize,
        /// Cut each input to its first N tokens (default: the model's maximum
        /// positions).
        #[arg(long, value_name = "N")]
        max_len: Option<usize>,
        /// Where the model runs.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// CPU threads (default: every core).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Print the thresholds and their estimates as JSON instead of text.
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
        /// Checkpoint directory, `builtin:NAME`, or plcc artifact directory.
        model: String,
        /// The input texts, one per line; every pass runs all of them.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// The model to compare with (checkpoint directory, `builtin:NAME`
        /// or artifact); default for an artifact: its teacher.
        #[arg(long, conflicts_with = "alone", value_name = "MODEL")]
        against: Option<String>,
        /// Measure the model alone (no comparison with the teacher).
        #[arg(long)]
        alone: bool,
        /// Make exactly N timed passes per model (alternating between the
        /// two) and report the fastest. Default: repeat until the timings
        /// settle (at least 3 passes, until the last 3 are within 3% of each
        /// other; at most 10, or 60 s of timed passes).
        #[arg(long, value_name = "N")]
        repeat: Option<usize>,
        /// CPU threads (default: every core).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Inputs per forward pass (sorted by length first).
        #[arg(long, default_value_t = 32, value_name = "N")]
        batch_size: usize,
        /// Cut each input to its first N tokens (default: the model's maximum
        /// positions).
        #[arg(long, value_name = "N")]
        max_len: Option<usize>,
        /// Where the models run.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// Print the measurements as one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Score a model on labelled data: the Spearman correlation of an
    /// embedding model's pair similarities with gold scores, a classifier's
    /// accuracy and macro F1, or a language model's perplexity.
    Eval {
        /// Checkpoint directory, `builtin:NAME`, or plcc artifact directory.
        model: String,
        /// The labelled data: TSV (`text<TAB>text_pair<TAB>score` for
        /// embedding models, `text[<TAB>text_pair]<TAB>label` for
        /// classifiers; a header row is skipped) or JSON Lines (`text`,
        /// `text_pair`, `score` or `label`); plain text lines for language
        /// models.
        #[arg(long, value_name = "FILE")]
        data: PathBuf,
        /// Score a second model on the same data and show both with the
        /// difference (checkpoint directory, `builtin:NAME` or artifact).
        #[arg(long, value_name = "MODEL")]
        against: Option<String>,
        /// Pooling of an embedding model (default: the pooling an artifact's
        /// manifest records; mean for a checkpoint).
        #[arg(long, value_enum)]
        pooling: Option<PoolingArg>,
        /// The data file's layout (default: from its extension, else from its
        /// first line).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// The column of the first text: a TSV column number (from 0) or a
        /// JSONL key (default: 0 or `text`).
        #[arg(long, value_name = "COLUMN")]
        text_column: Option<String>,
        /// The column of the second text (default: 1 or `text_pair`).
        #[arg(long, value_name = "COLUMN")]
        pair_column: Option<String>,
        /// The column of the gold score or class label (default: 2 for
        /// pairs, the last of two or three columns for a classifier, or the
        /// key `score` (else `label`) in JSON Lines).
        #[arg(long, value_name = "COLUMN")]
        label_column: Option<String>,
        /// CPU threads (default: every core).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Where the models run.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// Print the scores as one JSON object (`spearman`, `pearson`, `n`,
        /// `model`, `against`, ...) instead of text.
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
            generate,
        } => run::run(
            &model,
            &input,
            output.as_deref(),
            run::RunOptions {
                batch_size,
                max_len,
                device,
                threads,
                raw,
                generate,
            },
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
        Command::Eval {
            model,
            data,
            against,
            pooling,
            format,
            text_column,
            pair_column,
            label_column,
            threads,
            device,
            json,
        } => eval::run(&eval::EvalArgs {
            model: &model,
            data: &data,
            against: against.as_deref(),
            pooling: pooling.map(Pooling::from),
            options: DataOptions {
                format: format.map(DataFormat::from),
                text: text_column.as_deref().map(parse_column),
                text_pair: pair_column.as_deref().map(parse_column),
                label: label_column.as_deref().map(parse_column),
            },
            threads,
            device,
            json,
        }),
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
