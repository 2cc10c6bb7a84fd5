//! One build per output: `plcc build` holds an exclusive lock on a hidden
//! file beside its output (`.<name>.lock`) for as long as it runs, so a second
//! build writing the same output waits for the first to end (saying so once)
//! or, asked not to wait, stops with a diagnostic; it never wipes the first
//! one's training checkpoints (`<output>.training`). The lock is the
//! operating system's, so a killed build releases it; the file is removed
//! when the build ends.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};

use crate::diag::Diag;

/// What a build does when another build holds its output's lock.
#[derive(Clone, Copy)]
pub enum WhenBusy<'a> {
    /// Stop with `plcc::build::output-busy`.
    Fail,
    /// Tell `waiting` the lock file's path once, then wait for the lock.
    Wait(&'a dyn Fn(&Path)),
}

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
    /// Takes the lock of `output`; when another build holds it, waits for
    /// it or says which build holds it, as `when_busy` asks.
    pub fn acquire(output: &Path, when_busy: WhenBusy<'_>) -> Result<Self, Diag> {
        let path = lock_path(output);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|e| Diag::io("plcc::io::write", "create the directory", parent, &e))?;
        }
        let mut told = false;
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Diag::io("plcc::io::write", "create the lock file", &path, &e))?;
            match (file.try_lock(), when_busy) {
                (Ok(()), _) => {}
                (Err(TryLockError::WouldBlock), WhenBusy::Fail) => {
                    return Err(busy(output, &path));
                }
                (Err(TryLockError::WouldBlock), WhenBusy::Wait(waiting)) => {
                    if !told {
                        waiting(&path);
                        told = true;
                    }
                    file.lock()
                        .map_err(|e| Diag::io("plcc::io::write", "lock", &path, &e))?;
                }
                (Err(TryLockError::Error(e)), _) => {
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

/// The refusal of a build that does not wait for the one holding `lock`.
fn busy(output: &Path, lock: &Path) -> Diag {
    Diag::new(
        "plcc::build::output-busy",
        format!(
            "another plcc build is writing `{}` (it holds `{}`)",
            output.display(),
            lock.display()
        ),
    )
    .help("wait for that build to finish (plcc build waits unless given --no-wait), or write this one elsewhere with -o")
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
        let first = OutputLock::acquire(&output, WhenBusy::Fail).unwrap();
        let err = OutputLock::acquire(&output, WhenBusy::Fail).unwrap_err();
        assert_eq!(err.code, "plcc::build::output-busy");
        drop(first);
        assert!(!lock_path(&output).exists());
        let again = OutputLock::acquire(&output, WhenBusy::Fail).unwrap();
        drop(again);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_waiting_lock_says_so_once_and_is_taken_when_the_first_is_dropped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let dir = std::env::temp_dir().join(format!("plcc-lock-wait-{}", std::process::id()));
        let output = dir.join("model");
        let first = OutputLock::acquire(&output, WhenBusy::Fail).unwrap();
        let told = Arc::new(AtomicUsize::new(0));
        let (told_in, output_in) = (told.clone(), output.clone());
        let waiter = std::thread::spawn(move || {
            let tell = |lock: &Path| {
                assert!(lock.ends_with(".model.lock"), "{}", lock.display());
                told_in.fetch_add(1, Ordering::SeqCst);
            };
            OutputLock::acquire(&output_in, WhenBusy::Wait(&tell)).map(|_| ())
        });
        while told.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!waiter.is_finished());
        drop(first);
        waiter.join().unwrap().unwrap();
        assert_eq!(told.load(Ordering::SeqCst), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
