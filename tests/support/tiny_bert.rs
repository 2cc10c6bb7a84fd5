//! The built-in tiny-bert embedding model, layers 0 and 2 kept, built by the
//! `plcc` binary without training: the artifact the kernel and export tests
//! load.

use std::path::PathBuf;

use super::plcc::{build, stderr, workdir, write_recipe};

/// Builds the artifact with the given `quantize` blocks in a fresh folder
/// named after `tag`, with `sentences` (one per line) as its evaluation
/// data; returns its directory.
pub fn build_tiny_bert(tag: &str, sentences: &str, quantize: &str) -> PathBuf {
    let dir = workdir(tag, &[("data/sentences.txt", sentences)]);
    let recipe = write_recipe(
        &dir,
        &format!(
            "teacher: \"builtin:tiny-bert\"\ntask: embedding\npooling: mean\neval: sentences\n\
             keep_layers: [0, 2]\n\ndata sentences \"data/sentences.txt\" {{}}\n\n{quantize}"
        ),
    );
    let out = dir.join("artifact");
    let o = build(&recipe, &out, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    out
}
