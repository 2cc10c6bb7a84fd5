//! Threshold calibration and `plcc bench --against` through the command
//! line on artifacts built from the built-in tiny models: calibration hits
//! its target, a build with a target calibrates, bad input is diagnosed.

use std::path::{Path, PathBuf};

use plcc::artifact::Artifact;

use crate::support::exits::{built, root, CLASSIFIER, EMBEDDING, LINES};
use crate::support::plcc::{plcc, stderr};

const WITH_TARGET: &str = r#"
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
    target_avg_layer: 3
}
"#;

const NO_EXITS: &str = r#"
teacher: "builtin:tiny-bert"
task: embedding
eval: held
data held "data/sentences.txt" {}
prune {
    heads: 2
}
"#;

/// Builds `recipe` once per test run (a fresh copy for tests that write).
fn build(name: &str, recipe: &str) -> PathBuf {
    built(name, recipe, |path, out| {
        let o = plcc(&[
            "build",
            path.to_str().unwrap(),
            "--max-steps",
            "0",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    })
}

fn data_file() -> PathBuf {
    root().join("data/sentences.txt")
}

fn run_exit_layers(dir: &Path) -> Vec<usize> {
    let o = plcc(&[
        "run",
        dir.to_str().unwrap(),
        "--input",
        data_file().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["exit_layer"].as_u64().unwrap() as usize
        })
        .collect()
}

fn copy_artifact(from: &Path, name: &str) -> PathBuf {
    let to = root().join(name);
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

#[test]
fn calibrate_writes_thresholds_that_hit_the_average_layer() {
    for (name, recipe, target) in [
        ("embedding", EMBEDDING, 2.5),
        ("classifier", CLASSIFIER, 2.0),
    ] {
        let dir = copy_artifact(&build(name, recipe), &format!("{name}-calibrated"));
        let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
        let o = plcc(&[
            "calibrate",
            dir.to_str().unwrap(),
            "--data",
            data_file().to_str().unwrap(),
            "--target",
            &format!("avg_layer={target}"),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("<- chosen") && text.contains("est. speed-up"),
            "{text}"
        );
        let manifest = Artifact::open(&dir).unwrap().manifest;
        assert!(manifest.exits.iter().all(|e| e.threshold.is_some()));
        assert_eq!(
            std::fs::read(dir.join("model.safetensors")).unwrap(),
            weights
        );
        let layers = run_exit_layers(&dir);
        let avg = layers.iter().sum::<usize>() as f64 / layers.len() as f64;
        assert!(
            avg <= target + 1e-9 && avg > target - 0.5,
            "{name}: average exit layer {avg}, target {target}"
        );
    }
}

#[test]
fn calibrate_reads_a_data_set_of_the_recipe_by_name_as_the_build_read_it() {
    let dir = copy_artifact(&build("embedding", EMBEDDING), "embedding-by-name");
    let calibrate = |data: &str| {
        let o = plcc(&[
            "calibrate",
            dir.to_str().unwrap(),
            "--data",
            data,
            "--target",
            "avg_layer=2.5",
            "--dry-run",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["samples"].as_u64().unwrap(), v["curve"].clone())
    };
    // The data set `held` of the recipe and its file give the same
    // examples, so the same curve.
    let by_name = calibrate("held");
    let by_file = calibrate(data_file().to_str().unwrap());
    assert_eq!(by_name.0, LINES.len() as u64);
    assert_eq!(by_name, by_file);
}

#[test]
fn calibrate_diagnoses_bad_input() {
    let emb = build("embedding", EMBEDDING);
    let plain = build("no-exits", NO_EXITS);
    let empty = root().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let data = data_file();
    let unknown = Path::new("no-such-data");
    let cases: [(&Path, &Path, &str, &str); 6] = [
        (&plain, &data, "avg_layer=2", "no-exits"),
        (&emb, &data, "avg_layer", "bad-target"),
        (&emb, &data, "depth=2", "bad-target"),
        (&emb, &empty, "avg_layer=2", "plcc::data::empty"),
        (&emb, &data, "avg_layer=9", "bad-target"),
        (&emb, unknown, "avg_layer=2", "plcc::calibrate::no-data"),
    ];
    for (dir, data, target, code) in cases {
        let o = plcc(&[
            "calibrate",
            dir.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--target",
            target,
        ]);
        assert_eq!(o.status.code(), Some(1), "{target}: {}", stderr(&o));
        assert!(stderr(&o).contains(code), "{target}: {}", stderr(&o));
    }
    let o = plcc(&[
        "calibrate",
        data.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--target",
        "avg_layer=2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not-an-artifact"), "{}", stderr(&o));
}

#[test]
fn bench_against_reports_both_models_as_json() {
    let dir = build("embedding", EMBEDDING);
    let data = data_file();
    for against in [None, Some("builtin:tiny-bert")] {
        let mut args = vec![
            "bench",
            dir.to_str().unwrap(),
            "--input",
            data.to_str().unwrap(),
            "--json",
            "--batch-size",
            "8",
        ];
        if let Some(a) = against {
            args.extend(["--against", a]);
        }
        let o = plcc(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for side in ["model", "against"] {
            for key in [
                "sentences_per_s",
                "tokens_per_s",
                "p50_ms",
                "p95_ms",
                "peak_rss_mb",
            ] {
                assert!(
                    v[side][key].as_f64().is_some_and(|x| x > 0.0),
                    "{side}.{key}: {v}"
                );
            }
            assert_eq!(v[side]["sentences"], LINES.len());
        }
        assert_eq!(v["against"]["model"], "builtin:tiny-bert");
        assert_eq!(v["model"]["avg_exit_layer"], 4.0);
        assert!(v["speedup"].as_f64().is_some_and(|x| x > 0.0));
        assert_eq!(v["fidelity"]["metric"], "embedding_cosine");
        let mean = v["fidelity"]["mean"].as_f64().unwrap();
        assert!(mean > 0.0 && mean <= 1.0 + 1e-9);
    }
    // Alone, the single-model keys stay at the top level.
    let o = plcc(&[
        "bench",
        dir.to_str().unwrap(),
        "--alone",
        "--input",
        data_file().to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["sentences_per_s"].as_f64().is_some_and(|x| x > 0.0));
}

#[test]
fn bench_without_a_findable_teacher_is_a_diagnostic() {
    let dir = copy_artifact(&build("embedding", EMBEDDING), "lost-teacher");
    let mut manifest = plcc::artifact::read_manifest(&dir).unwrap();
    manifest.source.teacher = "/nonexistent/teacher".into();
    manifest.recipe.file = None;
    std::fs::write(
        dir.join("manifest.json"),
        plcc::artifact::encode_manifest(&manifest).unwrap(),
    )
    .unwrap();
    let o = plcc(&[
        "bench",
        dir.to_str().unwrap(),
        "--input",
        data_file().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("teacher-not-found") && err.contains("--against"),
        "{err}"
    );
}

#[test]
fn build_calibrates_when_the_recipe_gives_a_target() {
    let dir = build("with-target", WITH_TARGET);
    let manifest = Artifact::open(&dir).unwrap().manifest;
    assert!(manifest.exits.iter().all(|e| e.threshold.is_some()));
    let layers = run_exit_layers(&dir);
    let avg = layers.iter().sum::<usize>() as f64 / layers.len() as f64;
    assert!(avg <= 3.0 + 1e-9 && avg > 2.5, "average exit layer {avg}");
}
