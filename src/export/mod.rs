//! Exporting an artifact for other runtimes. `onnx` writes a `model.onnx`
//! that ONNX Runtime runs, `hf` a float checkpoint that transformers and
//! sentence-transformers load; the artifact's tokenizer goes beside both. An export
//! directory is marked by its `export.json`, so a later export may replace
//! it and nothing else.

pub mod checkpoint;
pub mod hf;
pub mod onnx;

use std::path::Path;

use serde::Serialize;

use crate::artifact::output::check::{check_output_for, Input, OwnOutput};
use crate::artifact::{Artifact, StagedDir, TOKENIZER_FILE};
use crate::diag::Diag;

/// The file that marks an export directory.
pub const EXPORT_RECORD: &str = "export.json";

/// What an export directory may replace: an earlier export.
pub const EXPORT: OwnOutput = OwnOutput {
    is_ours: is_export_dir,
    what: "a plcc export",
    mark: "it has no `export.json`",
    noun: "export",
};

/// Whether `dir` holds a plcc export.
pub fn is_export_dir(dir: &Path) -> bool {
    dir.join(EXPORT_RECORD).is_file()
}

/// The record written as `export.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRecord {
    pub format: String,
    /// The artifact directory exported.
    pub artifact: String,
    /// Its manifest's seal, naming exactly what was exported.
    pub artifact_manifest_sha256: String,
    pub files: Vec<String>,
    /// Graph inputs and outputs by name.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Bytes of the weights in the exported file and in the artifact's
    /// weight file.
    pub weight_bytes: u64,
    pub artifact_weight_bytes: u64,
    pub notes: Vec<String>,
}

/// Writes `files` (name, bytes) and `record` into `dir` atomically, after
/// checking that `dir` is absent, empty or an earlier export, and not the
/// artifact itself.
pub fn write_export(
    dir: &Path,
    artifact: &Artifact,
    files: &[(&str, &[u8])],
    record: &ExportRecord,
) -> Result<(), Diag> {
    let inputs = [Input {
        what: "the artifact being exported",
        path: &artifact.dir,
    }];
    check_output_for(dir, &inputs, &EXPORT)?;
    let staged = StagedDir::begin(dir)?;
    for (name, bytes) in files {
        staged.write(name, bytes)?;
    }
    staged.write(TOKENIZER_FILE, &artifact.tokenizer_json)?;
    let json = serde_json::to_vec_pretty(record).map_err(|e| {
        Diag::new("plcc::export::write", "cannot encode the export record").note(e.to_string())
    })?;
    staged.write(EXPORT_RECORD, &json)?;
    staged.commit()?;
    Ok(())
}

/// The forms an artifact exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `model.onnx` for ONNX Runtime, written as the options say.
    Onnx(onnx::OnnxOptions),
    /// A float Hugging Face checkpoint.
    Hf,
}

/// The ONNX model's file name.
pub const ONNX_FILE: &str = "model.onnx";

/// Exports the artifact in `artifact_dir` as `format` into `output` (absent,
/// empty or an earlier export), with `extra` files (name, bytes) beside
/// the model; returns what `export.json` records.
pub fn export_to(
    artifact_dir: &Path,
    output: &Path,
    format: ExportFormat,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<ExportRecord, Diag> {
    let artifact = Artifact::open(artifact_dir)?;
    let (name, mut files, weight_bytes, inputs, outputs, notes) = match format {
        ExportFormat::Onnx(options) => {
            let model = onnx::export(&artifact, options)?;
            let files = vec![(ONNX_FILE.to_string(), model.bytes)];
            let (i, o) = (model.inputs, model.outputs);
            ("onnx", files, model.weight_bytes, i, o, model.notes)
        }
        ExportFormat::Hf => {
            let model = hf::export(&artifact)?;
            let (files, bytes) = (model.files, model.weight_bytes);
            ("hf", files, bytes, Vec::new(), Vec::new(), model.notes)
        }
    };
    files.extend(extra);
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    names.push(TOKENIZER_FILE.to_string());
    let record = ExportRecord {
        format: name.to_string(),
        artifact: artifact_dir.display().to_string(),
        artifact_manifest_sha256: artifact.manifest.manifest_sha256.clone(),
        files: names,
        inputs,
        outputs,
        weight_bytes,
        artifact_weight_bytes: artifact.weights_file_bytes,
        notes,
    };
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    write_export(output, &artifact, &borrowed, &record)?;
    Ok(record)
}
