//! A build whose recipe says `output "DIR" { format: hf }`: the artifact is
//! built beside the checkpoint folder, as `DIR.artifact`, then exported as
//! a Hugging Face checkpoint into `DIR` with the build's report, so the
//! folder is a teacher another recipe can name. The checkpoint folder is
//! checked before the build starts (absent, empty or an earlier export,
//! and none of the build's inputs).

use std::path::{Path, PathBuf};

use super::{export_to, ExportFormat, ExportRecord};
use crate::artifact::output::check::{check_output_for, Input};
use crate::diag::Diag;

/// The report files copied from the artifact into the checkpoint.
const REPORT_FILES: [&str; 3] = ["report.md", "report.json", "report.svg"];

/// Where the artifact of checkpoint folder `dir` is built: `DIR.artifact`.
pub fn artifact_beside(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".artifact");
    dir.with_file_name(name)
}

/// Checks, before any work, that `dir` may receive the checkpoint: absent,
/// empty or an earlier export, and not one of `inputs`.
pub fn claim_checkpoint(dir: &Path, inputs: &[Input<'_>]) -> Result<(), Diag> {
    check_output_for(dir, inputs, &super::EXPORT)
}

/// Exports the built artifact in `artifact_dir` into `dir` as a Hugging
/// Face checkpoint with the artifact's report files.
pub fn write_checkpoint(artifact_dir: &Path, dir: &Path) -> Result<ExportRecord, Diag> {
    let mut extra = Vec::new();
    for name in REPORT_FILES {
        let path = artifact_dir.join(name);
        if path.is_file() {
            let bytes =
                std::fs::read(&path).map_err(|e| Diag::io("plcc::io::read", "read", &path, &e))?;
            extra.push((name.to_string(), bytes));
        }
    }
    export_to(artifact_dir, dir, ExportFormat::Hf, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_sits_beside_the_checkpoint() {
        assert_eq!(
            artifact_beside(Path::new("models/minilm-sections")),
            PathBuf::from("models/minilm-sections.artifact")
        );
    }
}
