//! The compressed-model artifact: one directory holding `model.safetensors`
//! (float and packed low-bit weights), `manifest.json`, `tokenizer.json` and the
//! build report. It is assembled in a staging directory and renamed into place
//! by the build's claim on its output folder (`output`).
//! `Artifact::open` loads it back: the manifest's seal, format version and
//! fields (`manifest_file`, `validate`), the size and hash of every file it
//! lists (`verify`), and every tensor's presence, dtype and shape.

mod atomic;
mod manifest;
mod manifest_build;
mod manifest_file;
mod manifest_inputs;
pub mod output;
mod packed;
mod tensors;
mod validate;
mod verify;

use std::path::{Path, PathBuf};

pub use atomic::{leftover_name, write_file_atomic, StagedDir, MOVED_ASIDE, STAGING};
pub use manifest::{
    ActivationQuant, ExitRecord, FileRecord, Manifest, RecipeRecord, SourceRecord, Storage,
    WeightRecord, FORMAT, FORMAT_VERSION,
};
pub use manifest_build::BuiltStudent;
pub use manifest_file::{encode as encode_manifest, read_manifest, REBUILD_HELP};
pub use packed::{read_weight, store_weight, StoredWeight};
pub use tensors::{RawTensor, TensorSet};
pub use verify::read_verified;

use crate::diag::Diag;
use crate::fsio;

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A loaded artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub tensors: TensorSet,
    /// Size of `model.safetensors` on disk.
    pub weights_file_bytes: u64,
    /// The contents of `tokenizer.json`, checked against the manifest.
    pub tokenizer_json: Vec<u8>,
}

/// True when `dir` looks like a plcc artifact (has a manifest).
pub fn is_artifact_dir(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

/// Writes a complete artifact to `staged`: weights, tokenizer and the sealed
/// manifest, which records both files' sizes and hashes. The caller adds
/// report files and commits.
pub fn write_into(
    staged: &StagedDir,
    mut manifest: Manifest,
    tensors: &TensorSet,
    tokenizer_json: &[u8],
) -> Result<Manifest, Diag> {
    let bytes = tensors.to_bytes()?;
    manifest.files = [
        (WEIGHTS_FILE, bytes.as_slice()),
        (TOKENIZER_FILE, tokenizer_json),
    ]
    .into_iter()
    .map(|(name, contents)| (name.to_string(), FileRecord::of(contents)))
    .collect();
    staged.write(WEIGHTS_FILE, &bytes)?;
    staged.write(TOKENIZER_FILE, tokenizer_json)?;
    staged.write(MANIFEST_FILE, &encode_manifest(&manifest)?)?;
    Ok(manifest)
}

impl Artifact {
    /// Loads and checks the artifact in `dir`.
    pub fn open(dir: &Path) -> Result<Self, Diag> {
        let manifest = read_manifest(dir)?;
        let read = |name: &str, kind: &fsio::FileKind| {
            read_verified(
                dir,
                name,
                kind,
                validate::file_record(&manifest, dir, name)?,
            )
        };
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = read(WEIGHTS_FILE, &fsio::ARTIFACT_WEIGHTS)?;
        let tokenizer_json = read(TOKENIZER_FILE, &fsio::ARTIFACT_TOKENIZER)?;
        let tensors = TensorSet::from_bytes(&bytes, &weights_path)?;
        for (name, record) in &manifest.weights {
            packed::check_weight(&tensors, name, record, &weights_path)?;
        }
        Ok(Artifact {
            dir: dir.to_path_buf(),
            manifest,
            tensors,
            weights_file_bytes: bytes.len() as u64,
            tokenizer_json,
        })
    }

    /// The dequantized (or float) values of weight `name`, row-major.
    pub fn weight_f32(&self, name: &str) -> Result<Vec<f32>, Diag> {
        let record = self.manifest.weights.get(name).ok_or_else(|| {
            Diag::new(
                "plcc::artifact::missing-tensor",
                format!("the artifact has no weight `{name}`"),
            )
        })?;
        Ok(read_weight(&self.tensors, name, record, &self.dir.join(WEIGHTS_FILE))?.to_f32())
    }
}
