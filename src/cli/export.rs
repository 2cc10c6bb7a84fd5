//! `plcc export ARTIFACT --format onnx|hf -o DIR`: writes the artifact in a
//! form other runtimes load and says what the files hold.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::artifact::WEIGHTS_FILE;
use crate::diag::Diag;
use crate::export::onnx::{Int4Linears, OnnxOptions};
use crate::export::{self, ExportRecord};
use crate::ir::human;

/// What `plcc export` writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `model.onnx` (opset 21) and the tokenizer.
    Onnx,
    /// A Hugging Face checkpoint with sentence-transformers' files.
    Hf,
}

/// How `--format onnx` writes linear weights of 4 bits and fewer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnnxInt4 {
    /// ONNX Runtime's `MatMulNBits` (com.microsoft) computing in f32
    /// (accuracy_level 1): plcc's arithmetic.
    Nbits,
    /// `MatMulNBits` multiplying int8 where plcc quantizes the input to
    /// int8 (accuracy_level 4): faster, slightly different.
    NbitsInt8,
    /// INT4 with `DequantizeLinear` and a float `MatMul`: ONNX's own
    /// operators only, for runtimes without `MatMulNBits`.
    Dequantize,
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
    /// With `--format onnx`: how linear weights of 4 bits and fewer are
    /// written (default `nbits`).
    #[arg(long, value_enum)]
    pub onnx_int4: Option<OnnxInt4>,
}

/// Runs `plcc export`.
pub fn run(args: &ExportArgs) -> Result<ExitCode, Diag> {
    let output = args.output.as_path();
    let format = match args.format {
        ExportFormat::Onnx => export::ExportFormat::Onnx(OnnxOptions {
            int4: match args.onnx_int4 {
                None | Some(OnnxInt4::Nbits) => Int4Linears::NBits,
                Some(OnnxInt4::NbitsInt8) => Int4Linears::NBitsInt8,
                Some(OnnxInt4::Dequantize) => Int4Linears::Dequantize,
            },
        }),
        ExportFormat::Hf if args.onnx_int4.is_some() => {
            return Err(Diag::new(
                "plcc::export::option",
                "`--onnx-int4` applies to `--format onnx` only",
            )
            .help("a Hugging Face export holds float weights; leave `--onnx-int4` out"))
        }
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
