//! Two builds of one output: the second waits for the first to release the
//! output's lock (`.NAME.lock`), saying so once, then builds; with
//! `--no-wait` it stops at once with `plcc::build::output-busy`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::plcc::{plcc, stderr, write_recipe};

const TEXTS: &str = "the cat sleeps\nthe train leaves\nit rains today\n";

const RECIPE: &str = r#"
teacher: "builtin:tiny-bert"
task: embedding
pooling: mean
keep_layers: [0, 3]

data texts "data/texts.txt" {}
"#;

/// A working folder with the recipe, and the lock of its output `out`
/// taken by this process, as a running build holds it.
fn held_output(tag: &str) -> (PathBuf, PathBuf, File) {
    let dir = support::plcc::workdir(&format!("lock-{tag}"), &[("data/texts.txt", TEXTS)]);
    let recipe = write_recipe(&dir, RECIPE);
    let lock = File::create(dir.join(".out.lock")).unwrap();
    lock.lock().unwrap();
    (dir, recipe, lock)
}

fn build_args<'a>(recipe: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "build",
        recipe.to_str().unwrap(),
        "--max-steps",
        "0",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn with_no_wait_a_busy_output_is_refused_at_once() {
    let (dir, recipe, _lock) = held_output("nowait");
    let out = dir.join("out");
    let o = plcc(&build_args(&recipe, &out, &["--no-wait"]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("plcc::build::output-busy"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_build_waits_for_the_build_holding_its_output_then_runs() {
    let (dir, recipe, lock) = held_output("wait");
    let out = dir.join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_plcc"))
        .args(build_args(&recipe, &out, &[]))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Still waiting after a while: the lock is held.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build did not wait"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The holder ends as a build does: its lock file removed, then unlocked.
    std::fs::remove_file(dir.join(".out.lock")).unwrap();
    drop(lock);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        err.matches("waiting for the build that holds").count(),
        1,
        "{err}"
    );
    assert!(err.contains(".out.lock"), "{err}");
    assert!(out.join("manifest.json").exists());
    assert!(!dir.join(".out.lock").exists());
}
