//! `plcc export ARTIFACT --format onnx|hf -o DIR`: writes the artifact in a
//! form other runtimes load and says what the files hold.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::artifact::{Artifact, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::diag::Diag;
use crate::export::{hf, onnx, write_export, ExportRecord};
use crate::ir::human;

/// The ONNX model's file name.
const ONNX_FILE: &str = "model.onnx";

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
    let (artifact_dir, output) = (args.artifact.as_path(), args.output.as_path());
    let artifact = Artifact::open(artifact_dir)?;
    let (format_name, files, weight_bytes, inputs, outputs, notes) = match args.format {
        ExportFormat::Onnx => {
            let model = onnx::export(&artifact)?;
            let files = vec![(ONNX_FILE.to_string(), model.bytes)];
            (
                "onnx",
                files,
                model.weight_bytes,
                model.inputs,
                model.outputs,
                model.notes,
            )
        }
        ExportFormat::Hf => {
            let model = hf::export(&artifact)?;
            (
                "hf",
                model.files,
                model.weight_bytes,
                Vec::new(),
                Vec::new(),
                model.notes,
            )
        }
    };
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    names.push(TOKENIZER_FILE.to_string());
    let record = ExportRecord {
        format: format_name.to_string(),
        artifact: artifact_dir.display().to_string(),
        artifact_manifest_sha256: artifact.manifest.manifest_sha256.clone(),
        files: names.clone(),
        inputs: inputs.clone(),
        outputs: outputs.clone(),
        weight_bytes,
        artifact_weight_bytes: artifact.weights_file_bytes,
        notes: notes.clone(),
    };
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    write_export(output, &artifact, &borrowed, &record)?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    println!(
        "wrote {} ({format_name}): {}; weights {} (the artifact's {WEIGHTS_FILE}: {})",
        output.display(),
        names.join(", "),
        human(weight_bytes as f64, "B"),
        human(artifact.weights_file_bytes as f64, "B"),
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
