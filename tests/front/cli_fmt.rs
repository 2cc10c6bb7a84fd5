//! `plcc fmt` end to end: printing, `--check` and `--write`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn plcc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plcc"))
}

/// A scratch copy of `text` named `name` in a fresh folder under the target dir.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli_fmt_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const MESSY: &str = "teacher:\"builtin:tiny-bert\" # t\nprune{heads:50%}\n";
const CANONICAL: &str = "teacher: \"builtin:tiny-bert\" # t\n\nprune {\n    heads: 50%\n}\n";

#[test]
fn prints_the_canonical_form() {
    let path = scratch("print.pc", MESSY);
    let out = plcc().arg("fmt").arg(&path).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), CANONICAL);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        MESSY,
        "printing must not touch the file"
    );
}

#[test]
fn check_fails_on_non_canonical_files_and_names_them() {
    let path = scratch("check.pc", MESSY);
    let out = plcc().args(["fmt", "--check"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check.pc"));
    let path = scratch("check_ok.pc", CANONICAL);
    let out = plcc().args(["fmt", "--check"]).arg(&path).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn write_rewrites_in_place() {
    let path = scratch("write.pc", MESSY);
    let out = plcc().args(["fmt", "--write"]).arg(&path).output().unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), CANONICAL);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "the temporary file must be gone");
}

#[test]
fn syntax_errors_exit_1_with_a_rendered_diagnostic() {
    let path = scratch("bad.pc", "prune {\n  heads: \n}\n");
    let out = plcc().arg("fmt").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected a value"), "{stderr}");
    assert!(
        stderr.contains("plcc::syntax::unexpected-token"),
        "{stderr}"
    );
}

#[test]
fn invalid_utf8_is_a_diagnostic() {
    let path = scratch("latin1.pc", "");
    std::fs::write(&path, b"teacher: \"caf\xe9\"\n").unwrap();
    let out = plcc().arg("fmt").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("offset 13"));
}
