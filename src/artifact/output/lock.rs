//! One build per output: `plcc build` holds an exclusive lock on a hidden
//! file beside its output (`.<name>.lock`) for as long as it runs, so a second
//! build writing the same output stops with a diagnostic instead of wiping the
//! first one's training checkpoints (`<output>.training`). The lock is the
//! operating system's, so a killed build releases it; the file is removed
//! when the build ends.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};

use crate::diag::Diag;

/// An exclusive lock on an output path, released (and its file removed) on drop.
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    path: PathBuf,
}

/// The lock file of `output`: `.<name>.lock` in the same directory.
pub fn lock_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    output.with_file_name(format!(".{name}.lock"))
}

impl OutputLock {
    /// Takes the lock of `output`, or says which build holds it.
    pub fn acquire(output: &Path) -> Result<Self, Diag> {
        let path = lock_path(output);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|e| Diag::io("plcc::io::write", "create the directory", parent, &e))?;
        }
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Diag::io("plcc::io::write", "create the lock file", &path, &e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Diag::new(
                        "plcc::build::output-busy",
                        format!(
                            "another plcc build is writing `{}` (it holds `{}`)",
                            output.display(),
                            path.display()
                        ),
                    )
                    .help("wait for that build to finish, or write this one elsewhere with -o"))
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Diag::io("plcc::io::write", "lock", &path, &e))
                }
            }
            // A build that finished removes its lock file; if that happened
            // between our open and our lock, we hold a lock on a removed
            // file: open the path again.
            if same_file(&file, &path) {
                return Ok(OutputLock { file, path });
            }
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked, so no other build can be holding it.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_output_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("plcc-lock-{}", std::process::id()));
        let output = dir.join("model");
        let first = OutputLock::acquire(&output).unwrap();
        let err = OutputLock::acquire(&output).unwrap_err();
        assert_eq!(err.code, "plcc::build::output-busy");
        drop(first);
        assert!(!lock_path(&output).exists());
        let again = OutputLock::acquire(&output).unwrap();
        drop(again);
        let _ = fs::remove_dir_all(&dir);
    }
}
