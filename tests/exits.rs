//! Per-sample early exit, threshold calibration and `plcc bench --against`
//! on artifacts built from the built-in tiny models: records come back in
//! input order; a sample that leaves at exit k gets exactly what exit k's
//! head gives for it alone; thresholds that exit nobody reproduce the
//! full-depth outputs; calibration hits its target; bad input is diagnosed.

use std::path::{Path, PathBuf};

use std::sync::{Mutex, OnceLock};

use candle_core::Device;
use plcc::artifact::Artifact;
use plcc::base::{CalibrationTarget, ExitHead};
use plcc::eval::exits::search::with_setting;
use plcc::eval::exits::{calibrate_with, CalibrateOptions, CalibrationInput};
use plcc::runtime::run::early_exit::final_records;
use plcc::runtime::run::record::Record;
use plcc::runtime::run::runner::{run_all, run_batch};
use plcc::runtime::run::token_rows::tokenize;
use plcc::runtime::{load_model, Inputs, LoadedModel};

mod common;
use common::{plcc, stderr};

const LINES: &[&str] = &[
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

const EMBEDDING: &str = r#"
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

const CLASSIFIER: &str = r#"
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

const GPT2: &str = r#"
teacher: "builtin:tiny-gpt2"
task: causal_lm
seed: 5
eval: held
data held "data/sentences.txt" {}
exits {
    after: [1, 2]
    criterion: max_prob
}
"#;

const BART: &str = r#"
teacher: "builtin:tiny-bart"
task: seq2seq
seed: 6
eval: held
data held "data/sentences.txt" {}
exits {
    after: [1]
    criterion: max_prob
}
"#;

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

fn root() -> &'static Path {
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

/// Builds `recipe` once per test run (a fresh copy for tests that write).
fn build(name: &str, recipe: &str) -> PathBuf {
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let out = root().join(name);
    if !out.join("manifest.json").is_file() {
        let path = root().join(format!("{name}.pc"));
        std::fs::write(&path, recipe).unwrap();
        let o = plcc(&[
            "build",
            path.to_str().unwrap(),
            "--max-steps",
            "0",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    out
}

fn lines() -> Vec<String> {
    LINES.iter().map(|s| s.to_string()).collect()
}

fn data_file() -> PathBuf {
    root().join("data/sentences.txt")
}

/// A setting on the calibration curve that sends some samples out early
/// and keeps others to the end, applied to `model` in memory.
fn with_mixed_exits(dir: &Path, mut model: LoadedModel) -> LoadedModel {
    let layers = model.config.num_layers() as f64;
    let options = CalibrateOptions {
        write: false,
        ..Default::default()
    };
    let c = calibrate_with(
        dir,
        CalibrationInput::Lines(&lines()),
        CalibrationTarget::AvgExitLayer(layers - 0.75),
        &options,
    )
    .unwrap();
    model.exit_policies = with_setting(&model.exit_policies, c.chosen.setting);
    model
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn output(r: &Record) -> &[f32] {
    r.logits.as_deref().or(r.embedding.as_deref()).unwrap()
}

/// What the full model gives for `row` alone at `layer`: exit `layer`'s
/// head output, or the final output at the last layer.
fn alone(model: &LoadedModel, row: &[u32], layer: usize) -> Record {
    let inputs = Inputs::from_rows(&[row.to_vec()], model.tokenizer.pad_id, &model.device).unwrap();
    let (out, _) = model.forward(&inputs).unwrap();
    match model.exits.iter().position(|h| h.after_layer == layer) {
        Some(e) => {
            let v = out.exits[e].to_vec2::<f32>().unwrap().remove(0);
            match model.exit_policies[e].head {
                ExitHead::Pooler => Record {
                    embedding: Some(v),
                    logits: None,
                    exit_layer: Some(layer),
                    ..Record::default()
                },
                ExitHead::Classifier => Record {
                    embedding: None,
                    logits: Some(v),
                    exit_layer: Some(layer),
                    ..Record::default()
                },
            }
        }
        None => final_records(model, &out.last_hidden, &inputs.mask)
            .unwrap()
            .remove(0),
    }
}

/// Every record equals its own input's output at its exit layer, computed
/// alone at full depth; some leave early and some run to the end.
fn check_exact(dir: &Path, batch: usize) {
    let model = with_mixed_exits(
        dir,
        load_model(dir.to_str().unwrap(), &Device::Cpu).unwrap(),
    );
    let depth = model.config.num_layers();
    let rows = tokenize(&model, &lines(), None).unwrap().rows;
    let records = run_all(&model, &rows, batch).unwrap();
    assert_eq!(records.len(), rows.len());
    let layers: Vec<usize> = records.iter().map(|r| r.exit_layer.unwrap()).collect();
    assert!(layers.iter().any(|&l| l < depth), "{layers:?}");
    assert!(layers.contains(&depth), "{layers:?}");
    for (i, (row, record)) in rows.iter().zip(&records).enumerate() {
        let expected = alone(&model, row, layers[i]);
        let diff = max_abs_diff(output(record), output(&expected));
        assert!(
            diff < 1e-4,
            "input {i} left at layer {}: differs by {diff}",
            layers[i]
        );
    }
}

#[test]
fn embedding_exits_are_exact_and_in_input_order() {
    let dir = build("embedding", EMBEDDING);
    check_exact(&dir, 8);
    check_exact(&dir, 24);
}

#[test]
fn classifier_exits_are_exact_and_in_input_order() {
    check_exact(&build("classifier", CLASSIFIER), 8);
}

#[test]
fn language_model_exits_are_exact_and_in_input_order() {
    check_exact(&build("gpt2", GPT2), 8);
}

/// An encoder-decoder's decoder exits: each line (`source<TAB>target`, the
/// target the line itself) gets exactly what its exit (or the full model)
/// gives for the decoder's last position, run alone.
#[test]
fn decoder_exits_of_an_encoder_decoder_are_exact_and_in_input_order() {
    let dir = build("bart", BART);
    let model = with_mixed_exits(
        &dir,
        load_model(dir.to_str().unwrap(), &Device::Cpu).unwrap(),
    );
    let depth = model.config.num_layers();
    let lines: Vec<String> = lines().iter().map(|l| format!("{l}\t{l}")).collect();
    let rows = plcc::runtime::run::generate::tokenize(&model, &lines, None).unwrap();
    let records = plcc::runtime::run::generate::run_all(&model, &rows, 8, None).unwrap();
    let layers: Vec<usize> = records.iter().map(|r| r.exit_layer.unwrap()).collect();
    assert!(layers.iter().any(|&l| l < depth), "{layers:?}");
    assert!(layers.contains(&depth), "{layers:?}");
    for (i, record) in records.iter().enumerate() {
        let (source, prefix) = (&rows.sources.rows[i], &rows.prefixes[i]);
        let inputs = Inputs::seq2seq(
            std::slice::from_ref(source),
            std::slice::from_ref(prefix),
            model.tokenizer.pad_id,
            &model.device,
        )
        .unwrap();
        let (out, _) = model.forward(&inputs).unwrap();
        let expected = match layers[i] < depth {
            true => out.exits[0].to_vec2::<f32>().unwrap().remove(0),
            false => final_records(&model, &out.last_hidden, &inputs.output_side().mask)
                .unwrap()
                .remove(0)
                .logits
                .unwrap(),
        };
        let diff = max_abs_diff(output(record), &expected);
        assert!(
            diff < 1e-4,
            "input {i} left at layer {}: differs by {diff}",
            layers[i]
        );
    }
}

#[test]
fn thresholds_that_exit_nobody_reproduce_full_depth_outputs() {
    for (name, recipe, never) in [
        ("embedding", EMBEDDING, 2.0),
        ("classifier", CLASSIFIER, -1.0),
    ] {
        let dir = build(name, recipe);
        let full = load_model(dir.to_str().unwrap(), &Device::Cpu).unwrap();
        let mut none = full.clone();
        none.exit_policies = with_setting(&full.exit_policies, Some(never));
        assert!(none.exit_policies.iter().all(|p| p.active()));
        let rows = tokenize(&full, &lines(), None).unwrap().rows;
        let a = run_batch(&full, &rows).unwrap();
        let b = run_batch(&none, &rows).unwrap();
        let depth = full.config.num_layers();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(y.exit_layer, Some(depth));
            assert!(max_abs_diff(output(x), output(y)) < 1e-5);
            assert_eq!(x.logits.is_some(), y.logits.is_some());
        }
    }
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
fn calibrate_max_loss_and_speedup_targets() {
    let dir = build("embedding", EMBEDDING);
    let options = CalibrateOptions {
        write: false,
        ..Default::default()
    };
    let loss = calibrate_with(
        &dir,
        CalibrationInput::Lines(&lines()),
        CalibrationTarget::MaxFidelityLoss(0.001),
        &options,
    )
    .unwrap();
    assert!(1.0 - loss.chosen.fidelity <= 0.001);
    let fast = calibrate_with(
        &dir,
        CalibrationInput::Lines(&lines()),
        CalibrationTarget::Speedup(1.3),
        &options,
    )
    .unwrap();
    assert!(fast.chosen.est_speedup >= 1.3);
    assert!(fast.chosen.avg_exit_layer < 4.0);
}

#[test]
fn calibrate_diagnoses_bad_input() {
    let emb = build("embedding", EMBEDDING);
    let plain = build("no-exits", NO_EXITS);
    let empty = root().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let data = data_file();
    let cases: [(&Path, &Path, &str, &str); 5] = [
        (&plain, &data, "avg_layer=2", "no-exits"),
        (&emb, &data, "avg_layer", "bad-target"),
        (&emb, &data, "depth=2", "bad-target"),
        (&emb, &empty, "avg_layer=2", "empty-input"),
        (&emb, &data, "avg_layer=9", "bad-target"),
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
