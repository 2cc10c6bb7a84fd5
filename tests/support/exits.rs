//! The artifacts the early-exit tests share: the sentences and the recipes
//! both the runtime tests and the crate's exit unit tests build, and a
//! folder where each recipe is built once per test run.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub const LINES: &[&str] = &[
    "the model reads a recipe",
    "a smaller model runs faster than the original one on every machine",
    "rain falls on the valley",
    "why is the cache slow",
    "numbers like 3 and 42",
    "the cat sleeps on the warm stone near the door",
    "compilers turn text into programs",
    "she walked home",
    "a long sentence with many words keeps every layer of the network busy for a while",
    "blue",
    "the train leaves at noon and arrives late in the evening",
    "what time is it",
    "plants need light and water",
    "the river is wide",
    "music fills the hall",
    "we measured the speed of the new kernel twice",
    "snow",
    "the old bridge was closed for repairs last winter",
    "good morning",
    "every student read the book before the exam",
    "dogs bark at night",
    "the price of bread went up again",
    "a quiet street",
    "he fixed the bug and ran the tests",
];

pub const EMBEDDING: &str = r#"
teacher: "builtin:tiny-bert"
task: embedding
seed: 3
eval: held
data held "data/sentences.txt" {}
prune {
    heads: 2
    ffn: 64
}
exits {
    after: all
    criterion: similarity
}
"#;

pub const CLASSIFIER: &str = r#"
teacher: "builtin:tiny-bert"
task: classification
labels: 3
seed: 4
eval: pairs
data pairs "data/pairs.tsv" {
    text: 0
    text_pair: 1
    label: 2
}
exits {
    after: all
    criterion: entropy
}
"#;

pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("plcc-exits-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/sentences.txt"), LINES.join("\n")).unwrap();
        let pairs: String = LINES
            .chunks(2)
            .enumerate()
            .map(|(i, p)| format!("{}\t{}\t{}\n", p[0], p[1], i % 3))
            .collect();
        std::fs::write(dir.join("data/pairs.tsv"), pairs).unwrap();
        dir
    })
}

/// The artifact of `recipe` under `name`, built once per test run by
/// `build(recipe file, artifact folder)`.
pub fn built(name: &str, recipe: &str, build: impl FnOnce(&Path, &Path)) -> PathBuf {
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let out = root().join(name);
    if !out.join("manifest.json").is_file() {
        let path = root().join(format!("{name}.pc"));
        std::fs::write(&path, recipe).unwrap();
        build(&path, &out);
    }
    out
}
