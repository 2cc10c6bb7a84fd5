//! `plcc export ARTIFACT --format onnx -o DIR`: writes the artifact as an
//! ONNX model with its tokenizer and says what the file holds.

use std::path::Path;
use std::process::ExitCode;

use super::ExportFormat;
use crate::artifact::{Artifact, WEIGHTS_FILE};
use crate::diag::Diag;
use crate::export::{onnx, write_export, ExportRecord};
use crate::ir::human;

/// The ONNX model's file name.
const ONNX_FILE: &str = "model.onnx";

/// Runs `plcc export`.
pub fn run(artifact_dir: &Path, format: ExportFormat, output: &Path) -> Result<ExitCode, Diag> {
    let artifact = Artifact::open(artifact_dir)?;
    match format {
        ExportFormat::Onnx => {
            let model = onnx::export(&artifact)?;
            let record = ExportRecord {
                format: "onnx".to_string(),
                artifact: artifact_dir.display().to_string(),
                artifact_manifest_sha256: artifact.manifest.manifest_sha256.clone(),
                files: vec![
                    ONNX_FILE.to_string(),
                    crate::artifact::TOKENIZER_FILE.to_string(),
                ],
                inputs: model.inputs.clone(),
                outputs: model.outputs.clone(),
                weight_bytes: model.weight_bytes,
                artifact_weight_bytes: artifact.weights_file_bytes,
                notes: model.notes.clone(),
            };
            write_export(output, &artifact, &[(ONNX_FILE, &model.bytes)], &record)?;
            for note in &model.notes {
                eprintln!("note: {note}");
            }
            println!(
                "wrote {}: {ONNX_FILE} {} (weights {}, the artifact's {WEIGHTS_FILE} {}), inputs {}, outputs {}",
                output.display(),
                human(model.bytes.len() as f64, "B"),
                human(model.weight_bytes as f64, "B"),
                human(artifact.weights_file_bytes as f64, "B"),
                model.inputs.join(", "),
                model.outputs.join(", "),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
