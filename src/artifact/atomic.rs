//! Atomic outputs: a file is written beside its destination and renamed into
//! place; a directory is assembled under a temporary sibling name and renamed
//! into place on `commit`, so a crash never leaves half an output and a failed
//! build leaves any earlier output intact.

use std::fs;
use std::path::{Path, PathBuf};

use crate::diag::Diag;

/// The tag of a directory being assembled: `.<name>.staging-<pid>`.
pub const STAGING: &str = "staging";
/// The tag of an earlier output moved aside while the new one is renamed
/// into place: `.<name>.old-<pid>`.
pub const MOVED_ASIDE: &str = "old";

/// The sibling name `.<name>.<tag>-<pid>` a directory write uses for `name`.
pub fn leftover_name(name: &str, tag: &str, pid: u32) -> String {
    format!(".{name}.{tag}-{pid}")
}

/// Writes `bytes` to `path` through a temporary sibling and a rename. An
/// existing file keeps its permissions.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), Diag> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if let Ok(meta) = fs::metadata(path) {
            fs::set_permissions(&tmp, meta.permissions())?;
        }
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Diag::io("plcc::io::write", "write", path, &e)
    })
}

/// A directory being assembled. Dropped without `commit`, it is removed.
pub struct StagedDir {
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Starts assembling what will become `target`.
    pub fn begin(target: &Path) -> Result<Self, Diag> {
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent)
            .map_err(|e| Diag::io("plcc::io::write", "create the directory", parent, &e))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                Diag::new(
                    "plcc::io::write",
                    format!("`{}` is not a directory name", target.display()),
                )
            })?;
        let staging = parent.join(leftover_name(&name, STAGING, std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging)
                .map_err(|e| Diag::io("plcc::io::write", "clear", &staging, &e))?;
        }
        fs::create_dir(&staging)
            .map_err(|e| Diag::io("plcc::io::write", "create the directory", &staging, &e))?;
        Ok(StagedDir {
            staging,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where files go until `commit`.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Writes one file into the staged directory.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Diag> {
        let path = self.staging.join(name);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| Diag::io("plcc::io::write", "create the directory", dir, &e))?;
        }
        fs::write(&path, bytes).map_err(|e| Diag::io("plcc::io::write", "write", &path, &e))
    }

    /// Moves the staged directory into place, replacing any earlier one.
    pub fn commit(mut self) -> Result<PathBuf, Diag> {
        let old = self.target.with_file_name(leftover_name(
            &self
                .target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            MOVED_ASIDE,
            std::process::id(),
        ));
        let had_old = self.target.exists();
        if had_old {
            fs::rename(&self.target, &old)
                .map_err(|e| Diag::io("plcc::io::write", "move aside", &self.target, &e))?;
        }
        if let Err(e) = fs::rename(&self.staging, &self.target) {
            if had_old {
                let _ = fs::rename(&old, &self.target);
            }
            return Err(Diag::io(
                "plcc::io::write",
                "move into place",
                &self.target,
                &e,
            ));
        }
        self.committed = true;
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(self.target.clone())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plcc-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn uncommitted_directory_leaves_the_old_one_intact() {
        let root = scratch("keep");
        let target = root.join("artifact");
        let first = StagedDir::begin(&target).unwrap();
        first.write("a.txt", b"one").unwrap();
        first.commit().unwrap();
        {
            let second = StagedDir::begin(&target).unwrap();
            second.write("a.txt", b"two").unwrap();
            // dropped: a failed build
        }
        assert_eq!(fs::read(target.join("a.txt")).unwrap(), b"one");
        assert_eq!(
            fs::read_dir(&root).unwrap().count(),
            1,
            "no staging left behind"
        );
        let third = StagedDir::begin(&target).unwrap();
        third.write("b/c.txt", b"three").unwrap();
        third.commit().unwrap();
        assert!(!target.join("a.txt").exists());
        assert_eq!(fs::read(target.join("b/c.txt")).unwrap(), b"three");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn file_write_replaces_atomically() {
        let root = scratch("file");
        let p = root.join("x.pc");
        write_file_atomic(&p, b"a").unwrap();
        write_file_atomic(&p, b"b").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"b");
        assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
        assert!(write_file_atomic(&root.join("missing/dir/x"), b"a").is_err());
        let _ = fs::remove_dir_all(&root);
    }
}
