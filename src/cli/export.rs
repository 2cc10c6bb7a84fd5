//! `plcc export ARTIFACT --format onnx|hf -o DIR`: writes the artifact in a
//! form other runtimes load and says what the files hold.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::artifact::WEIGHTS_FILE;
use crate::diag::Diag;
use crate::export::{self, ExportRecord};
use crate::ir::human;

/// What `plcc export` writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `model.onnx` (opset 17) and the tokenizer.
    Onnx,
    /// A Hugging Face checkpoint with sentence-transformers' files.
    Hf,
}

/// Write an artifact in a form other runtimes load.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The artifact directory.
    pub artifact: PathBuf,
    /// The form to write: `onnx` (model.onnx for ONNX Runtime) or `hf`
    /// (a float checkpoint for transformers and sentence-transformers).
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The directory to write: absent, empty or an earlier export.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

/// Runs `plcc export`.
pub fn run(args: &ExportArgs) -> Result<ExitCode, Diag> {
    let output = args.output.as_path();
    let format = match args.format {
        ExportFormat::Onnx => export::ExportFormat::Onnx,
        ExportFormat::Hf => export::ExportFormat::Hf,
    };
    let record = export::export_to(&args.artifact, output, format, Vec::new())?;
    let ExportRecord {
        format: format_name,
        files: names,
        inputs,
        outputs,
        notes,
        weight_bytes,
        artifact_weight_bytes,
        ..
    } = record;
    for note in &notes {
        eprintln!("note: {note}");
    }
    println!(
        "wrote {} ({format_name}): {}; weights {} (the artifact's {WEIGHTS_FILE}: {})",
        output.display(),
        names.join(", "),
        human(weight_bytes as f64, "B"),
        human(artifact_weight_bytes as f64, "B"),
    );
    if !inputs.is_empty() {
        println!(
            "inputs {}; outputs {}",
            inputs.join(", "),
            outputs.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
