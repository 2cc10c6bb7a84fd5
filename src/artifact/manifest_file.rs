//! Writing and reading `manifest.json`. The written text is sealed: its first
//! field, `manifest_sha256`, is the SHA-256 of the same text with that value
//! left empty. Reading checks the seal over the bytes as they are on disk
//! (before parsing, so a changed byte anywhere is reported as a changed
//! file, not as whatever the parser makes of it), then the format version,
//! then parses and validates every field (`validate`).

use std::path::Path;

use serde::Deserialize;

use super::manifest::{Manifest, FORMAT, FORMAT_VERSION};
use super::{validate, MANIFEST_FILE};
use crate::base::sha256_hex;
use crate::diag::Diag;

/// How the seal's key opens in the written text.
const SEAL_KEY: &[u8] = b"{\n  \"manifest_sha256\": \"";

/// The help of every diagnostic about an artifact whose files changed.
pub const REBUILD_HELP: &str = "rebuild the artifact with `plcc build RECIPE`";

/// The sealed JSON text of `manifest`.
pub fn encode(manifest: &Manifest) -> Result<Vec<u8>, Diag> {
    let mut unsealed = manifest.clone();
    unsealed.manifest_sha256 = String::new();
    let text = to_json(&unsealed)?;
    unsealed.manifest_sha256 = sha256_hex(&text);
    to_json(&unsealed)
}

fn to_json(manifest: &Manifest) -> Result<Vec<u8>, Diag> {
    serde_json::to_vec_pretty(manifest).map_err(|e| {
        Diag::new("plcc::artifact::write", "cannot encode the manifest").note(e.to_string())
    })
}

/// The hash recorded in the seal of `text` and the hash of `text` with that
/// value left empty; `None` when `text` does not open with a seal.
fn seal_of(text: &[u8]) -> Option<(String, String)> {
    let rest = text.strip_prefix(SEAL_KEY)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let recorded = String::from_utf8_lossy(&rest[..end]).into_owned();
    let mut unsealed = SEAL_KEY.to_vec();
    unsealed.extend_from_slice(&rest[end..]);
    Some((recorded, sha256_hex(&unsealed)))
}

/// The fields every manifest version has, and the seal.
#[derive(Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    manifest_sha256: Option<String>,
}

/// The manifest of `dir` differs from what plcc wrote.
fn changed(dir: &Path) -> Diag {
    Diag::new(
        "plcc::artifact::file-changed",
        manifest_message(
            dir,
            "does not match its seal (the file is corrupt or was edited)",
        ),
    )
    .note("exit thresholds are changed with `plcc calibrate`, which seals the manifest again")
    .help(REBUILD_HELP)
}

/// `what` of the manifest of `dir`, as a message.
fn manifest_message(dir: &Path, what: &str) -> String {
    format!("`{MANIFEST_FILE}` in `{}` {what}", dir.display())
}

/// Reads, checks and validates the manifest of the artifact in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, Diag> {
    let path = dir.join(MANIFEST_FILE);
    if !path.exists() {
        return Err(Diag::new(
            "plcc::artifact::missing-manifest",
            format!(
                "`{}` has no `{MANIFEST_FILE}`, so it is not a plcc artifact",
                dir.display()
            ),
        )
        .note("every directory `plcc build` writes has a manifest; without it nothing in the folder can be checked")
        .help(format!("give the directory `plcc build` wrote, or {REBUILD_HELP}")));
    }
    let text = crate::fsio::read_regular(&path, &crate::fsio::MANIFEST)?;
    let seal = seal_of(&text);
    if let Some((recorded, actual)) = &seal {
        if recorded != actual {
            return Err(changed(dir).note(format!("sha256 {actual}, expected {recorded}")));
        }
    }
    let not_valid = |e: serde_json::Error| {
        Diag::new(
            "plcc::artifact::corrupt",
            manifest_message(dir, "is not a valid plcc manifest"),
        )
        .note(e.to_string())
        .help(REBUILD_HELP)
    };
    let header: Header = serde_json::from_slice(&text).map_err(not_valid)?;
    if header.format != FORMAT || header.format_version != FORMAT_VERSION {
        let mut d = Diag::new(
            "plcc::artifact::version",
            manifest_message(
                dir,
                &format!(
                    "is format `{}` version {}, this plcc reads `{FORMAT}` version {FORMAT_VERSION}",
                    header.format, header.format_version
                ),
            ),
        );
        if header.format == FORMAT && header.format_version < FORMAT_VERSION {
            d = d.note("artifacts before version 2 do not record the hashes of their files, so they cannot be checked");
        }
        return Err(d.help(REBUILD_HELP));
    }
    if seal.is_none() && header.manifest_sha256.is_some() {
        return Err(
            changed(dir).note("its seal is no longer the first field: the file was rewritten")
        );
    }
    if seal.is_none() {
        return Err(Diag::new(
            "plcc::artifact::corrupt",
            manifest_message(dir, "does not open with its seal (`manifest_sha256`)"),
        )
        .note("the file was rewritten by something other than plcc")
        .help(REBUILD_HELP));
    }
    let manifest: Manifest = serde_json::from_slice(&text).map_err(not_valid)?;
    validate::validate(&manifest, dir)?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{RecipeRecord, SourceRecord};
    use crate::base::Task;

    fn manifest() -> Manifest {
        let config = crate::base::builtin::config("tiny-bert").unwrap();
        Manifest {
            manifest_sha256: String::new(),
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            plcc_version: "test".into(),
            recipe: RecipeRecord {
                file: None,
                text: "teacher: \"manifest_sha256\": \"x\"".into(),
                sha256: String::new(),
            },
            source: SourceRecord {
                teacher: "builtin:tiny-bert".into(),
                checkpoint_sha256: String::new(),
                layers: config.num_layers(),
            },
            task: Task::CausalLm,
            pipeline: None,
            layer_map: (0..config.num_layers()).collect(),
            config,
            weights: Default::default(),
            activation_quant: Default::default(),
            kept: Default::default(),
            exits: Vec::new(),
            files: Default::default(),
        }
    }

    #[test]
    fn the_seal_holds_for_the_written_text_and_breaks_at_any_changed_byte() {
        let text = encode(&manifest()).unwrap();
        let (recorded, actual) = seal_of(&text).unwrap();
        assert_eq!(recorded, actual);
        let parsed: Manifest = serde_json::from_slice(&text).unwrap();
        assert_eq!(parsed.manifest_sha256, recorded);
        for i in (0..text.len()).step_by(7) {
            let mut changed = text.clone();
            changed[i] ^= 0x04;
            if let Some((recorded, actual)) = seal_of(&changed) {
                assert_ne!(recorded, actual, "byte {i}");
            }
        }
    }
}
