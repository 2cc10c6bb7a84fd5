//! Vocabulary pruning end to end on the built-in tiny BERT: the artifact's
//! word embedding and tokenizer have the kept size, `plcc run` and
//! `plcc bench` read it with its own tokenizer, pruning comes before the
//! embedding factorization, training feeds the teacher the student's pieces,
//! and bad vocabulary data is a located diagnostic with nothing written.

use std::path::{Path, PathBuf};

use plcc::artifact::Artifact;
use plcc::text::vocab::WordPieceVocab;

use crate::support;
use crate::support::plcc::{build, plcc, stderr, write_recipe};

const CORPUS: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\nnumbers like 3 and 42\n";
/// Words the corpus does not use: their pieces are pruned.
const OTHER: &str = "the zebra paints a mountain\nquick brown foxes jump over dogs\n";

fn workdir(name: &str) -> PathBuf {
    support::plcc::workdir(
        &format!("vocab-{name}"),
        &[("data/corpus.txt", CORPUS), ("data/other.txt", OTHER)],
    )
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

/// Pieces every pruned tiny-bert vocabulary keeps.
fn always_kept() -> usize {
    let t = plcc::text::tokenizer::builtin("tiny-bert")
        .unwrap()
        .unwrap();
    WordPieceVocab::of(&t).unwrap().unwrap().always_kept()
}

#[test]
fn pruned_vocabulary_builds_runs_and_benches_against_its_teacher() {
    let dir = workdir("keep");
    let keep = always_kept() + 40;
    let recipe = write_recipe(
        &dir,
        &format!(
            "teacher: \"builtin:tiny-bert\"\nseed: 3\neval: corpus\n\
             data corpus \"data/corpus.txt\" {{}}\n\
             vocab {{\n    data: corpus\n    keep: {keep}\n}}\n"
        ),
    );
    let out = dir.join("artifact");
    let o = build(&recipe, &out, "0");
    assert!(o.status.success(), "{}", stderr(&o));

    let artifact = Artifact::open(&out).unwrap();
    let m = &artifact.manifest;
    assert_eq!(m.config.vocab_size, keep);
    assert_eq!(
        m.weights["embeddings.word_embeddings.weight"].shape,
        vec![keep, 64]
    );
    let tokenizer = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), keep);

    // The corpus is the evaluation data: every text tokenizes as before and
    // the kept rows are the teacher's, so the embeddings are the teacher's.
    let r = report(&out);
    let v = &r["vocab"];
    assert_eq!(v["before"], 1024);
    assert_eq!(v["after"], keep);
    assert_eq!(v["bytes_saved"], (1024 - keep as u64) * 64 * 4);
    assert_eq!(v["eval_token_coverage"], 1.0);
    assert_eq!(v["eval_unchanged_texts"], 1.0);
    let cosine = r["fidelity"]["metrics"]["mean_cosine"].as_f64().unwrap();
    assert!(cosine > 0.99999, "{cosine}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Vocabulary"), "{md}");

    // `plcc run` reads the artifact's own tokenizer, also on words it pruned.
    let input = dir.join("data/other.txt");
    let o = plcc(&[
        "run",
        out.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);

    // Against its teacher, each model tokenizes for itself.
    let o = plcc(&[
        "bench",
        out.to_str().unwrap(),
        "--input",
        dir.join("data/corpus.txt").to_str().unwrap(),
        "--repeat",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bench: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mean = bench["fidelity"]["mean"].as_f64().unwrap();
    assert!(mean > 0.99999, "{bench}");

    // `plcc plan` shows the vocabulary before → after.
    let o = plcc(&["plan", recipe.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!("1024 → {keep} pieces")), "{text}");
}

#[test]
fn pruning_comes_before_factorizing_and_training_reads_pruned_ids() {
    let dir = workdir("train");
    let recipe = write_recipe(
        &dir,
        r#"
teacher: "builtin:tiny-bert"
seed: 4
eval: other

data corpus "data/corpus.txt" {}
data other "data/other.txt" {}

vocab {
    data: corpus
    min_count: 1
}

prune {
    embedding_rank: 16
    importance: magnitude
}

quantize weights "embeddings.*" {
    bits: 8
}

distill general {
    steps: 3
    data: other
    batch_size: 2
    seq_len: 16
    loss hidden_mse {}
    loss attention_mse {}
    loss cosine {}
}
"#,
    );
    let out = dir.join("artifact");
    let o = build(&recipe, &out, "2");
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // stderr is not a terminal here: the stage's progress comes as plain lines.
    assert!(err.contains("  general: 2 steps, from step 0"), "{err}");
    assert!(err.contains("  general step 2/2 done"), "{err}");
    let r = report(&out);
    let kept = r["vocab"]["after"].as_u64().unwrap() as usize;
    assert!(kept > always_kept() && kept < 1024, "{kept}");
    let m = Artifact::open(&out).unwrap().manifest;
    assert_eq!(m.config.vocab_size, kept);
    assert_eq!(
        m.weights["embeddings.word_embeddings.weight"].shape,
        vec![kept, 16]
    );
    assert!(
        r["training"]["stages"][0]["steps"].as_u64() == Some(2),
        "{r}"
    );
    // The evaluation text uses pruned pieces: some texts tokenize otherwise.
    assert!(r["vocab"]["eval_unchanged_texts"].as_f64().unwrap() < 1.0);
}

#[test]
fn bad_vocabulary_data_is_a_located_diagnostic_and_nothing_is_written() {
    let dir = workdir("bad");
    let keep = always_kept() + 10;
    let recipe = write_recipe(
        &dir,
        &format!(
            "teacher: \"builtin:tiny-bert\"\neval: other\n\
             data corpus \"data/vocab.txt\" {{}}\ndata other \"data/other.txt\" {{}}\n\
             vocab {{\n    data: corpus\n    keep: {keep}\n}}\n"
        ),
    );
    let out = dir.join("artifact");
    let failed = |o: &std::process::Output, code: &str, located: &str| {
        let err = stderr(o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(code), "{err}");
        assert!(err.contains(located), "{err}");
        assert!(!out.exists(), "nothing is written");
    };

    // Missing, empty, and text that tokenizes to nothing.
    let o = build(&recipe, &out, "0");
    failed(&o, "plcc::data::unreadable", "data/vocab.txt");
    std::fs::write(dir.join("data/vocab.txt"), "\n  \n").unwrap();
    let o = build(&recipe, &out, "0");
    failed(&o, "plcc::data::empty", "data/vocab.txt");
    std::fs::write(dir.join("data/vocab.txt"), "\u{7}\n").unwrap();
    let o = build(&recipe, &out, "0");
    failed(&o, "plcc::vocab::no-tokens", "data: corpus");

    // With `min_count` the size depends on the data: `plcc check` counts it.
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace(&format!("keep: {keep}"), "min_count: 2");
    std::fs::write(&recipe, text).unwrap();
    let o = plcc(&["check", recipe.to_str().unwrap()]);
    failed(&o, "plcc::vocab::no-tokens", "data: corpus");
    std::fs::remove_file(dir.join("data/vocab.txt")).unwrap();
    let o = plcc(&["check", recipe.to_str().unwrap()]);
    failed(&o, "plcc::data::unreadable", "data/vocab.txt");
}
