//! Training end to end on the built-in models: a killed build resumes from
//! its last checkpoint to byte-identical weights, the loss falls, the loss
//! log and plot land in the artifact, a GPT-2 teacher is pretrained and then
//! distilled to 2 bits with learned scales.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::plcc::{plcc, stderr};

const SENTENCES: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\nnumbers like 3 and 42\nthe river runs past the old mill\nshe writes code in the morning\na quiet street after the storm\n";

const RECIPE: &str = r#"
teacher: "builtin:tiny-bert"
task: embedding
seed: 3
eval: sentences
keep_layers: [0, 2, 3]

data sentences "data/sentences.txt" {}

prune {
    heads: 2
    ffn: 96
}

exits {
    after: [1, 2]
    head: pooler
    criterion: similarity
}

quantize weights "encoder.layer.*.intermediate.dense" {
    bits: ternary
}

quantize weights "encoder.layer.*.attention.*" {
    bits: 4
    scale: learned
}

distill general {
    steps: 60
    data: sentences
    lr: 1e-3
    batch_size: 4
    grad_clip: 1.0
    accumulate: 2
    checkpoint_every: 4
    loss hidden_mse {}
    loss attention_kl {}
    loss contrastive {
        negatives: 64
    }
    loss cosine {}
}

distill polish {
    steps: 6
    data: sentences
    lr: 1e-4
    batch_size: 4
    optimizer: sgd
    loss cosine {}
}
"#;

fn workdir(name: &str) -> PathBuf {
    support::plcc::workdir(
        &format!("train-{name}"),
        &[("data/sentences.txt", SENTENCES)],
    )
}

fn losses(artifact: &Path) -> Vec<f64> {
    std::fs::read_to_string(artifact.join("loss.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_killed_build_resumes_to_identical_weights() {
    let dir = workdir("resume");
    let recipe = dir.join("r.pc");
    std::fs::write(&recipe, RECIPE).unwrap();
    let r = recipe.to_str().unwrap();

    let whole = dir.join("whole");
    let o = plcc(&["build", r, "-o", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = losses(&whole);
    assert_eq!(log.len(), 66);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&log[50..60]) < mean(&log[..10]), "{log:?}");
    assert!(whole.join("loss.svg").is_file());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(whole.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["training"]["evaluations"].as_array().unwrap().len(),
        3
    );
    assert!(
        !dir.join("whole.training").exists(),
        "checkpoints are removed after success"
    );

    // The same build, killed once a checkpoint mid-way through the first stage exists.
    let broken = dir.join("broken");
    let latest = dir.join("broken.training/checkpoints/latest");
    let mut child = Command::new(env!("CARGO_BIN_EXE_plcc"))
        .args(["build", r, "-o", broken.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !latest.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the build finished before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!broken.exists(), "a killed build leaves no artifact");

    let o = plcc(&["build", r, "-o", broken.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(broken.join("model.safetensors")).unwrap(),
        "resumed weights differ from the unbroken run's"
    );
    assert_eq!(losses(&broken), log, "the resumed loss log differs");
}

const GPT_RECIPE: &str = r#"
teacher: "builtin:tiny-gpt2"
task: causal_lm
seed: 4
eval: sentences

data sentences "data/sentences.txt" {}

pretrain {
    steps: 30
    data: sentences
    lr: 3e-3
    batch_size: 4
    seq_len: 16
}

quantize weights "h.*" {
    bits: 2
    scale: learned
}

distill two_bit {
    steps: 20
    data: sentences
    lr: 1e-3
    batch_size: 4
    seq_len: 16
    loss contrastive {}
    loss logit_kl {}
}
"#;

#[test]
fn a_gpt2_teacher_is_pretrained_then_distilled_to_two_bits() {
    let dir = workdir("gpt");
    let recipe = dir.join("g.pc");
    std::fs::write(&recipe, GPT_RECIPE).unwrap();
    let out = dir.join("a");
    let o = plcc(&[
        "build",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let stages = report["training"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert_eq!(stages[0]["name"], "pretrain");
    let log = losses(&out);
    // Pretraining from random weights: next-token loss falls from ~ln(512).
    assert!(log[0] > 5.0 && log[29] < log[0] - 0.5, "{log:?}");
    let m = &report["fidelity"]["metrics"];
    assert!(m["teacher_perplexity"].as_f64().unwrap() < 400.0, "{m}");
    assert!(m["student_perplexity"].as_f64().unwrap().is_finite(), "{m}");
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"source\""), "{manifest}");
}

/// `loss`, each term and `grad_norm` of every logged step.
fn step_numbers(artifact: &Path) -> Vec<Vec<(String, f64)>> {
    std::fs::read_to_string(artifact.join("loss.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let mut numbers = vec![
                ("loss".to_string(), v["loss"].as_f64().unwrap()),
                ("grad_norm".to_string(), v["grad_norm"].as_f64().unwrap()),
            ];
            for (name, x) in v["terms"].as_object().unwrap() {
                numbers.push((name.clone(), x.as_f64().unwrap()));
            }
            numbers
        })
        .collect()
}

/// A step split into shards of rows, one per thread, trains as the whole
/// batch does: the same loss, terms and gradient norm at every step, up to
/// rounding (float weights, so no quantizer threshold amplifies it).
#[test]
fn a_batch_split_across_threads_trains_as_the_whole_batch() {
    let embedding = r#"
teacher: "builtin:tiny-bert"
task: embedding
seed: 5
keep_layers: [0, 3]
data sentences "data/sentences.txt" {}
distill d {
    steps: 3
    data: sentences
    lr: 1e-2
    batch_size: 8
    optimizer: sgd
    loss hidden_mse {}
    loss attention_kl {}
    loss attention_mse { weight: 0.5 }
    loss cosine {}
}
"#;
    let language_model = r#"
teacher: "builtin:tiny-gpt2"
task: causal_lm
seed: 5
data sentences "data/sentences.txt" {}
distill d {
    steps: 3
    data: sentences
    lr: 1e-2
    batch_size: 8
    seq_len: 16
    optimizer: sgd
    loss logit_kl {}
    loss task_ce {}
    loss hidden_mse {}
}
"#;
    for (name, recipe) in [("embedding", embedding), ("lm", language_model)] {
        let dir = workdir(&format!("shards-{name}"));
        let r = dir.join("r.pc");
        std::fs::write(&r, recipe).unwrap();
        let run = |threads: &str| {
            let out = dir.join(format!("threads-{threads}"));
            let o = plcc(&[
                "build",
                r.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--threads",
                threads,
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            step_numbers(&out)
        };
        let (whole, split) = (run("1"), run("2"));
        assert_eq!(whole.len(), 3, "{name}");
        for (step, (a, b)) in whole.iter().zip(&split).enumerate() {
            assert_eq!(a.len(), b.len(), "{name} step {step}: {a:?} {b:?}");
            for ((term, x), (_, y)) in a.iter().zip(b) {
                // Relative, or absolute for terms near zero (rounding noise).
                let close = (x - y).abs() <= 1e-4 * x.abs().max(1e-3);
                assert!(close, "{name} step {step} {term}: {x} vs {y}");
            }
        }
    }
}
