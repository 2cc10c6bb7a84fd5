//! `plcc build` replaces only what plcc wrote: a foreign folder, a file, the
//! teacher's checkpoint or the recipe's own folder at the output is refused
//! before any work and left as it was; an earlier artifact or an empty folder
//! is replaced; staging folders of killed builds are cleaned up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support;
use crate::support::plcc::{build, plcc, stderr, write_recipe};

const PAIRS: &str = "the cat sleeps\ta cat naps\t1\nthe train leaves\tbananas are yellow\t0\nit rains\tthe weather is wet\t1\n";

const RECIPE: &str = r#"
teacher: "builtin:tiny-bert"
task: classification
labels: 2
eval: pairs
keep_layers: [0, 3]

data pairs "data/pairs.tsv" {
    text: 0
    text_pair: 1
    label: 2
}
"#;

fn workdir(tag: &str) -> PathBuf {
    support::plcc::workdir(&format!("outsafe-{tag}"), &[("data/pairs.tsv", PAIRS)])
}

/// Every file under `dir` (relative path → bytes), for before/after checks.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// `plcc build RECIPE --max-steps 0 EXTRA…`, writing to the recipe's `output:`.
fn build_at_recipe_output(recipe: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["build", recipe.to_str().unwrap(), "--max-steps", "0"];
    args.extend_from_slice(extra);
    plcc(&args)
}

fn refused(o: &std::process::Output, code: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(code), "{err}");
    assert!(!err.contains("read data"), "refused before any work: {err}");
    err
}

/// Names in `dir` other than those given.
fn extra_entries(dir: &Path, expected: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains(&n.as_str()))
        .collect()
}

#[test]
fn a_foreign_folder_at_the_output_is_refused_and_left_byte_identical() {
    let dir = workdir("foreign");
    let recipe = write_recipe(&dir, RECIPE);
    let out = dir.join("checkpoint");
    std::fs::create_dir_all(out.join("sub")).unwrap();
    std::fs::write(out.join("model.safetensors"), b"weights").unwrap();
    std::fs::write(out.join("sub/notes.txt"), b"notes").unwrap();
    let before = snapshot(&out);
    let o = build(&recipe, &out, "0");
    let err = refused(&o, "plcc::build::output-not-ours");
    assert!(err.contains("not a plcc artifact"), "{err}");
    assert_eq!(snapshot(&out), before);
    assert!(
        extra_entries(&dir, &["recipe.pc", "data", "checkpoint"]).is_empty(),
        "nothing written beside it"
    );
}

#[test]
fn a_file_at_the_output_is_refused_and_kept() {
    let dir = workdir("file");
    let recipe = write_recipe(&dir, RECIPE);
    let out = dir.join("model.bin");
    std::fs::write(&out, b"precious").unwrap();
    let o = build(&recipe, &out, "0");
    let err = refused(&o, "plcc::build::output-not-ours");
    assert!(err.contains("is a file"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
}

#[test]
fn the_teachers_folder_is_refused() {
    let dir = workdir("teacher");
    let teacher = dir.join("teacher");
    std::fs::create_dir_all(&teacher).unwrap();
    std::fs::write(
        teacher.join("config.json"),
        r#"{"model_type": "bert", "vocab_size": 1024, "hidden_size": 64,
            "num_hidden_layers": 4, "num_attention_heads": 4,
            "intermediate_size": 128, "max_position_embeddings": 128,
            "type_vocab_size": 2}"#,
    )
    .unwrap();
    std::fs::write(teacher.join("model.safetensors"), b"not really weights").unwrap();
    let recipe = write_recipe(
        &dir,
        &RECIPE.replace("\"builtin:tiny-bert\"", "\"teacher\""),
    );
    let before = snapshot(&teacher);
    let o = build(&recipe, &teacher, "0");
    let err = refused(&o, "plcc::build::output-is-input");
    assert!(err.contains("teacher's"), "{err}");
    assert_eq!(snapshot(&teacher), before);
}

#[test]
fn a_recipe_output_naming_the_recipes_folder_is_refused_with_its_span() {
    let dir = workdir("recipe-dir");
    let inner = dir.join("inner");
    std::fs::create_dir_all(inner.join("data")).unwrap();
    std::fs::write(inner.join("data/pairs.tsv"), PAIRS).unwrap();
    let recipe = write_recipe(&inner, &format!("output: \"../inner\"\n{RECIPE}"));
    let before = snapshot(&inner);
    let o = build_at_recipe_output(&recipe, &[]);
    refused(&o, "plcc::build::output-outside");
    let o = build_at_recipe_output(&recipe, &["--allow-outside"]);
    let err = refused(&o, "plcc::build::output-holds-input");
    assert!(err.contains("recipe.pc`)"), "{err}");
    assert!(err.contains("output: \"../inner\""), "span shown: {err}");
    assert!(err.contains("the output directory named here"), "{err}");
    assert_eq!(snapshot(&inner), before);
    assert!(inner.join("recipe.pc").is_file());

    // The folder above the recipe's is refused too, from -o.
    let o = build(&recipe, &dir, "0");
    refused(&o, "plcc::build::output-holds-input");
    // `.`, `..` and names ending in them are not folder names.
    for p in [".", "..", "x/.."] {
        let o = build(&recipe, std::path::Path::new(p), "0");
        refused(&o, "plcc::build::output-not-a-name");
    }
    assert_eq!(snapshot(&inner), before);

    // A symbolic link loop, at the output or on the way to it.
    std::os::unix::fs::symlink(dir.join("loop"), dir.join("loop")).unwrap();
    for p in [dir.join("loop"), dir.join("loop/model")] {
        let o = build(&recipe, &p, "0");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(!err.contains("read data"), "refused before any work: {err}");
    }
}

#[test]
fn an_earlier_artifact_or_an_empty_folder_is_replaced() {
    let dir = workdir("replace");
    let recipe = write_recipe(&dir, RECIPE);
    let out = dir.join("artifact");
    std::fs::create_dir(&out).unwrap();
    let o = build(&recipe, &out, "0");
    assert!(o.status.success(), "empty folder: {}", stderr(&o));
    assert!(plcc::artifact::is_artifact_dir(&out));
    std::fs::write(out.join("stray.txt"), b"x").unwrap();
    let o = build(&recipe, &out, "0");
    assert!(o.status.success(), "earlier artifact: {}", stderr(&o));
    assert!(plcc::artifact::is_artifact_dir(&out));
    assert!(!out.join("stray.txt").exists(), "replaced as a whole");
}

#[test]
fn stale_staging_of_a_dead_build_is_removed_and_a_live_ones_kept() {
    let dir = workdir("stale");
    let recipe = write_recipe(&dir, RECIPE);
    let out = dir.join("artifact");
    // A process id that is not running: a child that has exited and been reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let live = std::process::id();
    let dead_staging = dir.join(format!(".artifact.staging-{dead}"));
    let live_staging = dir.join(format!(".artifact.staging-{live}"));
    let lookalike = dir.join(format!(".artifact.staging-{dead}x"));
    for d in [&dead_staging, &live_staging, &lookalike] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("model.safetensors"), b"partial").unwrap();
    }
    let o = build(&recipe, &out, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    if Path::new("/proc/self").exists() {
        assert!(!dead_staging.exists(), "dead build's staging removed");
    }
    assert!(live_staging.is_dir(), "live build's staging kept");
    assert!(lookalike.is_dir(), "only exact names are touched");
}

#[test]
fn a_recipe_output_outside_its_folder_needs_allow_outside() {
    let dir = workdir("confine");
    let inner = dir.join("recipes");
    std::fs::create_dir_all(inner.join("data")).unwrap();
    std::fs::write(inner.join("data/pairs.tsv"), PAIRS).unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, inner.join("link")).unwrap();
    let absolute = dir.join("abs-model");
    let escaping = [
        "../escaped".to_string(),
        "out/../../escaped".to_string(),
        absolute.to_string_lossy().into_owned(),
        "link/model".to_string(),
    ];
    for target in &escaping {
        let recipe = write_recipe(&inner, &format!("output: \"{target}\"\n{RECIPE}"));
        let o = build_at_recipe_output(&recipe, &[]);
        let err = refused(&o, "plcc::build::output-outside");
        assert!(
            err.contains(&format!("output: \"{target}\"")),
            "span shown: {err}"
        );
        assert!(err.contains("--allow-outside"), "{err}");
    }
    assert_eq!(
        extra_entries(&dir, &["recipes", "elsewhere", "data"]),
        Vec::<String>::new()
    );
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());

    // Inside the folder (even through `..` that stays inside) is fine.
    let recipe = write_recipe(&inner, &format!("output: \"out/../models/m\"\n{RECIPE}"));
    let o = build_at_recipe_output(&recipe, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(inner.join("models/m/manifest.json").is_file());

    // --allow-outside lifts the rule; so does -o, which is the user's own choice.
    let recipe = write_recipe(&inner, &format!("output: \"../escaped\"\n{RECIPE}"));
    let o = build_at_recipe_output(&recipe, &["--allow-outside"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.join("escaped/manifest.json").is_file());
    let o = build(&recipe, &absolute, "0");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(absolute.join("manifest.json").is_file());
}
