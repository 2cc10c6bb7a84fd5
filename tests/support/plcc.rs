//! Running the `plcc` binary: a fresh working folder with a recipe and its
//! data files, `plcc` with any arguments or as `plcc build`, and its stderr.
//! Every test binary uses all of these.

use std::path::{Path, PathBuf};
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
/// (`(relative path, contents)`), their folders created. The process id is
/// padded to 7 digits (Linux's largest), so the path's length, and with it
/// where a rendered diagnostic that names it wraps, is the same in every run.
pub fn workdir(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plcc-{tag}-{:07}", std::process::id()));
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

/// Writes `text` as `dir/recipe.pc` and returns its path.
pub fn write_recipe(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("recipe.pc");
    std::fs::write(&path, text).unwrap();
    path
}

/// `plcc build RECIPE --max-steps STEPS -o OUT`.
pub fn build(recipe: &Path, out: &Path, steps: &str) -> Output {
    plcc(&[
        "build",
        recipe.to_str().unwrap(),
        "--max-steps",
        steps,
        "-o",
        out.to_str().unwrap(),
    ])
}
