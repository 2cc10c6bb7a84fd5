//! Helpers shared by the integration tests that drive the `plcc` binary:
//! running it, reading its stderr, and a fresh working folder with data files.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `plcc` binary with `args` and waits for it.
pub fn plcc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plcc"))
        .args(args)
        .output()
        .unwrap()
}

/// The process's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh temporary folder `plcc-{tag}-{pid}` holding `files`
/// (`(relative path, contents)`), their folders created.
pub fn workdir(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plcc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, contents) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, contents).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
