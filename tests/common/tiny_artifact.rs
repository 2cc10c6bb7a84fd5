//! Test helper shared by the artifact kernel tests (CPU and CUDA): builds the
//! built-in tiny-bert embedding model, layers 0 and 2 kept, with the given
//! `quantize` blocks, by running the `plcc` binary without training.

use std::path::PathBuf;
use std::process::Command;

/// Builds the artifact in a fresh temporary folder named after `tag`, with
/// `sentences` (one per line) as its evaluation data; returns its directory.
pub fn build_tiny_bert(tag: &str, sentences: &str, quantize: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plcc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/sentences.txt"), sentences).unwrap();
    let recipe = format!(
        "teacher: \"builtin:tiny-bert\"\ntask: embedding\npooling: mean\neval: sentences\n\
         keep_layers: [0, 2]\n\ndata sentences \"data/sentences.txt\" {{}}\n\n{quantize}"
    );
    let path = dir.join("recipe.pc");
    std::fs::write(&path, recipe).unwrap();
    let out = dir.join("artifact");
    let o = Command::new(env!("CARGO_BIN_EXE_plcc"))
        .args(["build", path.to_str().unwrap(), "--max-steps", "0", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}
