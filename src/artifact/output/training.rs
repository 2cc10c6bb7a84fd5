//! The training folder beside the output, `<output>.training`: where
//! training keeps its checkpoints (`checkpoints/`, with `latest` and the
//! `step-*` folders) and loss log (`loss.jsonl`) until the artifact is
//! written. A build that does not resume clears it, and it is removed once
//! the artifact is in place; so a folder of that name is refused unless it
//! holds only what training writes there (and the hidden leftovers of
//! interrupted writes).

use std::fs;
use std::path::{Path, PathBuf};

use super::check::absent;
use crate::diag::Diag;

/// The file in `checkpoints/` naming the newest complete checkpoint.
pub const LATEST: &str = "latest";
/// The prefix of every checkpoint folder's name.
pub const STEP_PREFIX: &str = "step-";
const CHECKPOINTS: &str = "checkpoints";
const LOSS_LOG: &str = "loss.jsonl";

/// The training folder of one output.
#[derive(Debug, Clone)]
pub struct TrainingFolder {
    dir: PathBuf,
}

impl TrainingFolder {
    /// The training folder of `output`: beside it, `<output>.training`.
    pub fn of(output: &Path) -> Self {
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        TrainingFolder {
            dir: output.with_file_name(format!("{name}.training")),
        }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the checkpoints are: `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join(CHECKPOINTS)
    }

    /// The loss log: `loss.jsonl`.
    pub fn loss_log(&self) -> PathBuf {
        self.dir.join(LOSS_LOG)
    }

    /// Creates the folder (and the folders above it).
    pub fn create(&self) -> Result<(), Diag> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| Diag::io("plcc::io::write", "create", &self.dir, &e))
    }

    /// Removes the folder and everything in it, if it exists.
    pub fn clear(&self) -> Result<(), Diag> {
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir)
                .map_err(|e| Diag::io("plcc::io::write", "clear", &self.dir, &e))?;
        }
        Ok(())
    }

    /// Whether the folder is plcc's to clear and remove: absent, or a
    /// directory holding only what training writes there.
    pub fn check(&self) -> Result<(), Diag> {
        check_training_dir(&self.dir)
    }
}

/// Whether the training folder `dir` is plcc's to clear and remove: absent,
/// or a directory holding only what training writes there.
fn check_training_dir(dir: &Path) -> Result<(), Diag> {
    let refuse = |what: String| {
        Diag::new(
            "plcc::build::training-dir-not-ours",
            format!(
                "`{}` {what}; plcc keeps its training checkpoints in a folder of that name and clears it",
                dir.display()
            ),
        )
        .help("move or rename that folder, or write the artifact to another output with `-o`; plcc never deletes what it did not write")
    };
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if absent(&e) => return Ok(()),
        Err(e) => return Err(Diag::io("plcc::io::read", "inspect", dir, &e)),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(refuse("is a file, not a training folder".into()));
    }
    if let Some(foreign) = first_foreign(dir, &TRAINING_ENTRIES)? {
        return Err(refuse(format!(
            "holds `{foreign}`, which plcc's training does not write"
        )));
    }
    let checkpoints = dir.join(CHECKPOINTS);
    if fs::symlink_metadata(&checkpoints).is_ok_and(|m| m.is_dir()) {
        if let Some(foreign) = first_foreign(&checkpoints, &CHECKPOINT_ENTRIES)? {
            return Err(refuse(format!(
                "holds `{CHECKPOINTS}/{foreign}`, which plcc's training does not write"
            )));
        }
    }
    Ok(())
}

/// The training folder's own entries: the name, and whether it is a folder.
const TRAINING_ENTRIES: [(&str, bool); 2] = [(LOSS_LOG, false), (CHECKPOINTS, true)];
/// The checkpoints folder's entries: `latest` and the `step-` folders.
const CHECKPOINT_ENTRIES: [(&str, bool); 2] = [(LATEST, false), (STEP_PREFIX, true)];

/// The first entry of `dir` that is none of `expected` (`(name, is a
/// folder)`; a name ending in `-` is a prefix) nor the hidden leftover of an
/// interrupted write of one of them (`.<name>…`).
fn first_foreign(dir: &Path, expected: &[(&str, bool)]) -> Result<Option<String>, Diag> {
    let entries = fs::read_dir(dir).map_err(|e| Diag::io("plcc::io::read", "list", dir, &e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let matches = |pattern: &str, n: &str| {
            if pattern.ends_with('-') {
                n.starts_with(pattern)
            } else {
                n == pattern
            }
        };
        let leftover_of = |pattern: &str| {
            name.strip_prefix('.').is_some_and(|rest| {
                rest.strip_prefix(pattern)
                    .is_some_and(|tail| pattern.ends_with('-') || tail.starts_with('.'))
            })
        };
        let ours = expected.iter().any(|(pattern, folder)| {
            (matches(pattern, &name) && *folder == is_dir) || leftover_of(pattern)
        });
        if !ours {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_training_folder_is_ours_only_with_what_training_writes() {
        let dir = std::env::temp_dir().join(format!("plcc-training-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(check_training_dir(&dir).is_ok(), "absent");
        fs::create_dir_all(dir.join("checkpoints/step-00000004-0")).unwrap();
        fs::create_dir_all(dir.join("checkpoints/.step-00000005-0.staging-12")).unwrap();
        for file in [
            "loss.jsonl",
            ".loss.jsonl.tmp-12",
            "checkpoints/latest",
            "checkpoints/.latest.tmp-12",
        ] {
            fs::write(dir.join(file), "").unwrap();
        }
        assert!(check_training_dir(&dir).is_ok());
        for foreign in [
            "notes.txt",
            ".loss.jsonlx",
            "checkpoints/step-1",
            "checkpoints/mine",
        ] {
            fs::write(dir.join(foreign), "").unwrap();
            let d = check_training_dir(&dir).unwrap_err();
            assert_eq!(d.code, "plcc::build::training-dir-not-ours", "{foreign}");
            assert!(d.message.contains(foreign), "{foreign}: {}", d.message);
            fs::remove_file(dir.join(foreign)).unwrap();
        }
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, "").unwrap();
        assert!(check_training_dir(&dir).is_err(), "a file");
        fs::remove_file(&dir).unwrap();
    }
}
