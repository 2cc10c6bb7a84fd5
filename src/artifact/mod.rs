//! The compressed-model artifact: one directory holding `model.safetensors`
//! (float and packed low-bit weights), `manifest.json`, `tokenizer.json` and the
//! build report. It is assembled in a staging directory and renamed into place.
//! `Artifact::open` loads it back, checking the format version, the weights'
//! hash and every tensor's presence, dtype and shape.

mod atomic;
mod manifest;
mod packed;
mod tensors;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use atomic::{leftover_name, write_file_atomic, StagedDir, MOVED_ASIDE, STAGING};
pub use manifest::{
    ActivationQuant, ExitRecord, Manifest, RecipeRecord, SourceRecord, Storage, WeightRecord,
    FORMAT, FORMAT_VERSION,
};
pub use packed::{read_weight, store_weight, StoredWeight};
pub use tensors::{RawTensor, TensorSet};

use crate::diag::Diag;
use crate::fsio;

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loaded artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub tensors: TensorSet,
    /// Size of `model.safetensors` on disk.
    pub weights_file_bytes: u64,
}

/// True when `dir` looks like a plcc artifact (has a manifest).
pub fn is_artifact_dir(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

/// Writes a complete artifact to `staged`: weights, manifest (with the weights'
/// hash filled in) and tokenizer. The caller adds report files and commits.
pub fn write_into(
    staged: &StagedDir,
    mut manifest: Manifest,
    tensors: &TensorSet,
    tokenizer_json: &[u8],
) -> Result<Manifest, Diag> {
    let bytes = tensors.to_bytes()?;
    manifest.weights_sha256 = sha256_hex(&bytes);
    staged.write(WEIGHTS_FILE, &bytes)?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| {
        Diag::new("plcc::artifact::write", "cannot encode the manifest").note(e.to_string())
    })?;
    staged.write(MANIFEST_FILE, &json)?;
    staged.write(TOKENIZER_FILE, tokenizer_json)?;
    Ok(manifest)
}

impl Artifact {
    /// Loads and validates the artifact in `dir`.
    pub fn open(dir: &Path) -> Result<Self, Diag> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = fsio::read_text(&manifest_path, &fsio::MANIFEST)?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Diag::new(
                "plcc::artifact::corrupt",
                format!("`{}` is not a valid plcc manifest", manifest_path.display()),
            )
            .note(e.to_string())
        })?;
        if manifest.format != FORMAT || manifest.format_version != FORMAT_VERSION {
            return Err(Diag::new(
                "plcc::artifact::version",
                format!(
                    "`{}` is format `{}` version {}, this plcc reads `{FORMAT}` version {FORMAT_VERSION}",
                    manifest_path.display(),
                    manifest.format,
                    manifest.format_version
                ),
            ));
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = fsio::read_regular(&weights_path, &fsio::ARTIFACT_WEIGHTS)?;
        let hash = sha256_hex(&bytes);
        if hash != manifest.weights_sha256 {
            return Err(Diag::new(
                "plcc::artifact::hash-mismatch",
                format!(
                    "`{}` does not match its manifest (the file is corrupt or was replaced)",
                    weights_path.display()
                ),
            )
            .note(format!(
                "expected sha256 {}, found {hash}",
                manifest.weights_sha256
            )));
        }
        let tensors = TensorSet::from_bytes(&bytes, &weights_path)?;
        for (name, record) in &manifest.weights {
            packed::check_weight(&tensors, name, record, &weights_path)?;
        }
        Ok(Artifact {
            dir: dir.to_path_buf(),
            manifest,
            tensors,
            weights_file_bytes: bytes.len() as u64,
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
