//! Exporting an artifact for other runtimes. `onnx` writes a `model.onnx`
//! that ONNX Runtime runs, `hf` a float checkpoint that transformers and
//! sentence-transformers load; the artifact's tokenizer goes beside both. An export
//! directory is marked by its `export.json`, so a later export may replace
//! it and nothing else.

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
