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

/// Runs the `plcc` binary with `args`; fails the test (after killing the
/// child) when it runs past `deadline`, so a blocked read cannot hang the suite.
pub fn plcc_within(args: &[&str], deadline: std::time::Duration) -> Output {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_plcc"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`plcc {}` ran past {deadline:?}", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The process's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A rendered diagnostic as one line of text: miette wraps messages at a
/// width, so where a line breaks depends on the lengths around it (a
/// temporary path with the process id in it, say). The gutter (`│`) and
/// every run of white space become one space.
pub fn unwrapped(rendered: &str) -> String {
    rendered
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
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

/// Runs `plcc run MODEL` on `lines` (written to `dir/input.txt`), checks
/// that it succeeded, and returns its JSON records, one per line.
pub fn run_lines(
    model: &std::path::Path,
    dir: &std::path::Path,
    lines: &str,
) -> Vec<serde_json::Value> {
    let input = dir.join("input.txt");
    std::fs::write(&input, lines).unwrap();
    let o = plcc(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Writes `text` as `dir/recipe.pc` and returns its path.
pub fn write_recipe(dir: &std::path::Path, text: &str) -> PathBuf {
    let path = dir.join("recipe.pc");
    std::fs::write(&path, text).unwrap();
    path
}

/// `plcc build RECIPE --max-steps STEPS -o OUT`.
pub fn build(recipe: &std::path::Path, out: &std::path::Path, steps: &str) -> Output {
    plcc(&[
        "build",
        recipe.to_str().unwrap(),
        "--max-steps",
        steps,
        "-o",
        out.to_str().unwrap(),
    ])
}

/// `plcc export ARTIFACT --format FORMAT -o OUT`.
pub fn export(artifact: &std::path::Path, format: &str, out: &std::path::Path) -> Output {
    plcc(&[
        "export",
        artifact.to_str().unwrap(),
        "--format",
        format,
        "-o",
        out.to_str().unwrap(),
    ])
}
