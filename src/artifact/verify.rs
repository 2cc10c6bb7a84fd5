//! Reading one artifact file checked against its manifest record: a missing
//! file, a file of another size (truncated or grown) and a file with other
//! contents are each a diagnostic naming the file and the artifact. The
//! file is read once; the hash is taken over the bytes that are then used.

use std::path::Path;

use super::manifest::FileRecord;
use super::manifest_file::REBUILD_HELP;
use crate::base::sha256_hex;
use crate::diag::Diag;
use crate::fsio::{read_regular, FileKind};

/// The contents of file `name` of the artifact in `dir`, which must match
/// `record` and be a regular file within `kind`'s limit.
pub fn read_verified(
    dir: &Path,
    name: &str,
    kind: &FileKind,
    record: &FileRecord,
) -> Result<Vec<u8>, Diag> {
    let path = dir.join(name);
    let in_artifact = format!("`{name}` in `{}`", dir.display());
    if !path.exists() {
        return Err(Diag::new(
            "plcc::artifact::missing-file",
            format!("{in_artifact} is missing; the manifest lists it"),
        )
        .help(REBUILD_HELP));
    }
    let bytes = read_regular(&path, kind)?;
    if bytes.len() as u64 != record.bytes {
        return Err(Diag::new(
            "plcc::artifact::file-changed",
            format!(
                "{in_artifact} does not match its manifest ({} bytes, expected {}: truncated or replaced)",
                bytes.len(),
                record.bytes
            ),
        )
        .help(REBUILD_HELP));
    }
    let actual = sha256_hex(&bytes);
    if actual != record.sha256 {
        return Err(Diag::new(
            "plcc::artifact::file-changed",
            format!(
                "{in_artifact} does not match its manifest (sha256 {actual}, expected {})",
                record.sha256
            ),
        )
        .note("the file is corrupt or was replaced")
        .help(REBUILD_HELP));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_truncated_or_missing_file_is_named() {
        let dir = std::env::temp_dir().join(format!("plcc-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record = FileRecord::of(b"weights");
        std::fs::write(dir.join("w.bin"), b"weights").unwrap();
        assert_eq!(
            read_verified(&dir, "w.bin", &crate::fsio::ARTIFACT_WEIGHTS, &record).unwrap(),
            b"weights"
        );

        std::fs::write(dir.join("w.bin"), b"weighTs").unwrap();
        let e = read_verified(&dir, "w.bin", &crate::fsio::ARTIFACT_WEIGHTS, &record).unwrap_err();
        assert_eq!(e.code, "plcc::artifact::file-changed");
        assert!(e.message.contains("`w.bin`") && e.message.contains("sha256"));

        std::fs::write(dir.join("w.bin"), b"weig").unwrap();
        let e = read_verified(&dir, "w.bin", &crate::fsio::ARTIFACT_WEIGHTS, &record).unwrap_err();
        assert!(e.message.contains("4 bytes, expected 7"), "{}", e.message);

        std::fs::remove_file(dir.join("w.bin")).unwrap();
        let e = read_verified(&dir, "w.bin", &crate::fsio::ARTIFACT_WEIGHTS, &record).unwrap_err();
        assert_eq!(e.code, "plcc::artifact::missing-file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
