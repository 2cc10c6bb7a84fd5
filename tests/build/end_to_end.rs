//! `plcc build` end to end on the built-in models, without training: the
//! artifact loads and runs, its weight file has the planned size, slicing is
//! checked, corruption and failed builds are diagnosed, bad inputs are
//! diagnostics.

use std::path::PathBuf;

use candle_core::Device;
use plcc::artifact::Artifact;
use plcc::runtime::load_model;

use crate::support;
use crate::support::plcc::{build, plcc, stderr, write_recipe};

const SENTENCES: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\nnumbers like 3 and 42\n";
const PAIRS: &str = "the cat sleeps\ta cat naps\t1\nthe train leaves\tbananas are yellow\t0\nit rains\tthe weather is wet\t1\n";

/// A fresh temporary directory with the data files.
fn workdir(name: &str) -> PathBuf {
    support::plcc::workdir(
        &format!("build-{name}"),
        &[("data/sentences.txt", SENTENCES), ("data/pairs.tsv", PAIRS)],
    )
}

const BERT_RECIPE: &str = r#"
teacher: "builtin:tiny-bert"
task: classification
labels: 2
seed: 5
eval: pairs
keep_layers: [0, 2, 3]

data pairs "data/pairs.tsv" {
    text: 0
    text_pair: 1
    label: 2
}

prune {
    heads: 2
    ffn: 96
    embedding_rank: 24
}

exits {
    after: [1, 2]
    head: classifier
    criterion: entropy
}

quantize weights "encoder.layer.*.intermediate.dense" {
    bits: ternary
}

quantize weights "encoder.layer.*.attention.*" {
    bits: 8
    granularity: row
}

distill task {
    steps: 10
    data: pairs
    loss logit_kl {}
}
"#;

#[test]
fn tiny_bert_builds_loads_runs_and_has_the_planned_size() {
    let dir = workdir("bert");
    let recipe = write_recipe(&dir, BERT_RECIPE);
    let out = dir.join("artifact");
    let o = build(&recipe, &out, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("agreement"), "{text}");

    let artifact = Artifact::open(&out).unwrap();
    let m = &artifact.manifest;
    assert_eq!(m.layer_map, vec![0, 2, 3]);
    assert_eq!(m.config.layers.len(), 3);
    assert!(m.config.layers.iter().all(|l| l.heads == 2 && l.ffn == 96));
    assert_eq!(m.config.embedding_rank, Some(24));
    assert_eq!(m.exits.len(), 2);
    // Classifier exits start as copies of the final classifier.
    assert_eq!(
        artifact.weight_f32("exit.1.classifier.weight").unwrap(),
        artifact.weight_f32("classifier.weight").unwrap()
    );
    assert_eq!(m.kept["encoder.layer.1.heads"].len(), 2);
    assert_eq!(m.kept["encoder.layer.1.neurons"].len(), 96);
    assert!(matches!(
        m.weights["encoder.layer.0.intermediate.dense.weight"].storage,
        plcc::artifact::Storage::Packed { .. }
    ));

    // Real sizes against the plan: the ratio to the teacher is the planned one.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let real_student = artifact.weights_file_bytes as f64;
    let real_teacher = report["teacher"]["bytes"].as_f64().unwrap();
    let planned = report["planned_student_bytes"].as_f64().unwrap();
    let planned_teacher = report["planned_teacher_bytes"].as_f64().unwrap();
    assert!(real_student < real_teacher);
    let (real_ratio, planned_ratio) = (real_teacher / real_student, planned_teacher / planned);
    assert!(
        (real_ratio / planned_ratio - 1.0).abs() < 0.05,
        "real {real_ratio:.3} planned {planned_ratio:.3}"
    );

    // The artifact runs in the library and through the binary.
    let model = load_model(out.to_str().unwrap(), &Device::Cpu).unwrap();
    assert_eq!(model.exits.len(), 2);
    assert!(model.classifier.is_some());
    let input = dir.join("input.txt");
    std::fs::write(&input, "one line\nanother line of text\n").unwrap();
    let o = plcc(&[
        "run",
        out.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["exit_layer"], 3);
    assert_eq!(lines[0]["logits"].as_array().unwrap().len(), 2);
    assert!(stderr(&o).contains("no calibrated thresholds"));

    // A corrupted weight file does not match the manifest.
    let weights = out.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x5a;
    std::fs::write(&weights, bytes).unwrap();
    let o = plcc(&[
        "run",
        out.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("file-changed"), "{}", stderr(&o));
}

#[test]
fn a_failed_build_leaves_the_earlier_artifact_intact() {
    let dir = workdir("intact");
    let recipe = write_recipe(&dir, BERT_RECIPE);
    let out = dir.join("artifact");
    let args = [
        "build",
        recipe.to_str().unwrap(),
        "--max-steps",
        "0",
        "-o",
        out.to_str().unwrap(),
    ];
    assert!(plcc(&args).status.success());
    let before = std::fs::read(out.join("manifest.json")).unwrap();
    std::fs::write(dir.join("data/pairs.tsv"), "a\tb\t7\n").unwrap();
    let o = plcc(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("out of range"), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
    assert!(Artifact::open(&out).is_ok());
}

#[test]
fn training_and_bad_inputs_are_diagnostics() {
    let dir = workdir("diags");
    let recipe = write_recipe(&dir, BERT_RECIPE);
    let r = recipe.to_str().unwrap();
    let out = dir.join("o");
    let o = plcc(&["build", r, "--max-steps", "0", "--resume"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nothing-to-resume"), "{}", stderr(&o));

    std::fs::write(dir.join("data/pairs.tsv"), "").unwrap();
    let o = plcc(&["build", r, "--max-steps", "0", "-o", out.to_str().unwrap()]);
    assert!(stderr(&o).contains("plcc::data::empty"), "{}", stderr(&o));
    std::fs::remove_file(dir.join("data/pairs.tsv")).unwrap();
    let o = plcc(&["build", r, "--max-steps", "0", "-o", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("pairs.tsv"), "{}", stderr(&o));

    std::fs::write(dir.join("data/pairs.tsv"), PAIRS).unwrap();
    std::fs::write(dir.join("blocker"), "a file").unwrap();
    let o = plcc(&[
        "build",
        r,
        "--max-steps",
        "0",
        "-o",
        dir.join("blocker/out").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("plcc::io::write"), "{}", stderr(&o));
}

#[test]
fn gpt2_with_two_bit_learned_scales_builds() {
    let dir = workdir("gpt2");
    let recipe = write_recipe(
        &dir,
        r#"
teacher: "builtin:tiny-gpt2"
task: causal_lm
eval: sentences
keep_layers: [0, 1, 3]

data sentences "data/sentences.txt" {}

prune {
    heads: 3
    ffn: 128
    importance: taylor
    data: sentences
    batches: 1
}

exits {
    after: [1]
}

quantize weights "h.*" {
    bits: 2
    granularity: row
    scale: learned
}
"#,
    );
    let out = dir.join("artifact");
    let o = plcc(&[
        "build",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("perplexity_ratio"));
    assert!(stderr(&o).contains("importance: taylor"), "{}", stderr(&o));
    let a = Artifact::open(&out).unwrap();
    assert!(matches!(
        a.manifest.weights["h.0.attn.c_attn.weight"].storage,
        plcc::artifact::Storage::Packed { .. }
    ));
    assert_eq!(
        a.manifest.weights["h.0.attn.c_attn.weight"].shape,
        vec![144, 64]
    );
    let input = dir.join("input.txt");
    std::fs::write(&input, "the model\n").unwrap();
    let o = plcc(&[
        "run",
        out.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"exit_layer\":3"));
}
