//! `plcc run` on a model: its JSON records for lines of input.

use std::path::Path;

use super::plcc::{plcc, stderr};

/// Runs `plcc run MODEL` on `lines` (written to `dir/input.txt`), checks
/// that it succeeded, and returns its JSON records, one per line.
pub fn run_lines(model: &Path, dir: &Path, lines: &str) -> Vec<serde_json::Value> {
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
