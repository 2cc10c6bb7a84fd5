//! Classifiers with labels by name: a `finetune` stage trains the built-in
//! tiny BERT's head on texts labelled by name and writes a Hugging Face
//! checkpoint (`output "DIR" { format: hf }`) whose config.json and
//! artifact manifest carry the names; `plcc run` prints the predicted
//! label and `plcc eval` the confusion counts by name; the checkpoint,
//! rewritten with transformers' own names and config, is a teacher as it
//! is; a label the task does not have is an error naming its line.

use std::path::Path;

use safetensors::SafeTensors;

use super::support::plcc::{plcc, stderr, workdir, write_recipe};
use super::support::run::run_lines;
use super::support::topics::{labelled, FINETUNE};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Fine-tunes the tiny BERT in a fresh folder; returns the folder.
fn finetuned(tag: &str) -> std::path::PathBuf {
    let (train, dev) = (labelled(96, 0), labelled(30, 1));
    let dir = workdir(tag, &[("train.tsv", &train), ("dev.tsv", &dev)]);
    let recipe = write_recipe(&dir, FINETUNE);
    let o = plcc(&["build", recipe.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

#[test]
fn a_finetuned_classifier_carries_its_label_names_to_run_eval_and_export() {
    let dir = finetuned("labels-finetune");
    let ckpt = dir.join("ckpt");
    let config = json(&ckpt.join("config.json"));
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(
        config["id2label"],
        serde_json::json!({"0": "net", "1": "sound", "2": "games"})
    );
    assert_eq!(
        config["label2id"],
        serde_json::json!({"net": 0, "sound": 1, "games": 2})
    );
    let manifest = json(&dir.join("ckpt.artifact/manifest.json"));
    assert_eq!(
        manifest["config"]["labels"],
        serde_json::json!(["net", "sound", "games"])
    );
    assert!(ckpt.join("report.md").is_file());

    for model in [&ckpt, &dir.join("ckpt.artifact")] {
        let records = run_lines(
            model,
            &dir,
            "chess puzzle board chess arcade\nmidi synth audio\n",
        );
        for r in &records {
            let label = r["label"].as_str().unwrap();
            assert!(["net", "sound", "games"].contains(&label), "{r}");
            let p = r["probabilities"].as_object().unwrap();
            assert_eq!(p.len(), 3);
            let sum: f64 = p.values().map(|v| v.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-6);
            assert!(
                p[label].as_f64().unwrap()
                    >= p.values().map(|v| v.as_f64().unwrap()).fold(0.0, f64::max) - 1e-12
            );
        }
        assert_eq!(
            records[0]["label"], "games",
            "the fine-tuned head learnt the topics"
        );
    }

    let dev = dir.join("dev.tsv");
    let o = plcc(&[
        "eval",
        ckpt.to_str().unwrap(),
        "--data",
        dev.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let confusion = &report["confusion"];
    assert_eq!(
        confusion["labels"],
        serde_json::json!(["net", "sound", "games"])
    );
    let counts: Vec<Vec<u64>> = serde_json::from_value(confusion["counts"].clone()).unwrap();
    let total: u64 = counts.iter().flatten().sum();
    let correct: u64 = (0..3).map(|i| counts[i][i]).sum();
    assert_eq!(total, 30);
    assert!((report["accuracy"].as_f64().unwrap() - correct as f64 / 30.0).abs() < 1e-12);
    assert!(report["macro_f1"].as_f64().unwrap() > 0.5, "{report}");
    let o = plcc(&[
        "eval",
        ckpt.to_str().unwrap(),
        "--data",
        dev.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("gold \\ predicted") && text.contains("macro_f1"),
        "{text}"
    );
}

/// Writes the checkpoint `from` as transformers' `save_pretrained` writes a
/// `BertForSequenceClassification`: its config keys, and its tensors under
/// `prefix` (`bert.` or none) with the head's `classifier.*` unprefixed.
fn transformers_layout(from: &Path, to: &Path, prefix: &str) {
    std::fs::create_dir_all(to).unwrap();
    let bytes = std::fs::read(from.join("model.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let bare = name.strip_prefix("bert.").unwrap_or(&name).to_string();
            let named = match bare.starts_with("classifier.") {
                true => bare,
                false => format!("{prefix}{bare}"),
            };
            (named, view)
        })
        .collect();
    let out = safetensors::serialize(renamed, None).unwrap();
    std::fs::write(to.join("model.safetensors"), out).unwrap();
    let mut config = json(&from.join("config.json"));
    let map = config.as_object_mut().unwrap();
    map.remove("num_labels");
    map.insert("_name_or_path".into(), "tiny".into());
    map.insert("problem_type".into(), "single_label_classification".into());
    map.insert("transformers_version".into(), "4.57.1".into());
    map.insert("torch_dtype".into(), "float32".into());
    std::fs::write(
        to.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    std::fs::copy(from.join("tokenizer.json"), to.join("tokenizer.json")).unwrap();
}

#[test]
fn a_transformers_written_classifier_is_a_teacher_with_its_labels() {
    let dir = finetuned("labels-teacher");
    for (folder, prefix) in [("hf-bert", "bert."), ("hf-bare", "")] {
        let teacher = dir.join(folder);
        transformers_layout(&dir.join("ckpt"), &teacher, prefix);
        let recipe = format!(
            "teacher: \"{folder}\"\ntask: classification\neval: dev\ndata dev \"dev.tsv\" {{ label: 1 }}\nkeep_layers: [0, 2]\n"
        );
        let path = dir.join(format!("{folder}.pc"));
        std::fs::write(&path, recipe).unwrap();
        let plan = plcc(&["plan", path.to_str().unwrap(), "--json"]);
        assert!(plan.status.success(), "{}", stderr(&plan));
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        assert_eq!(plan["labels"], serde_json::json!(["net", "sound", "games"]));
        let out = dir.join(format!("{folder}-student"));
        let o = plcc(&[
            "build",
            path.to_str().unwrap(),
            "--max-steps",
            "0",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let manifest = json(&out.join("manifest.json"));
        assert_eq!(
            manifest["config"]["labels"],
            serde_json::json!(["net", "sound", "games"])
        );
        let records = run_lines(&teacher, &dir, "midi synth audio\n");
        assert!(
            records[0]["probabilities"]["sound"].is_number(),
            "{}",
            records[0]
        );
    }
    // Labels that are not the teacher's are refused.
    let path = dir.join("other.pc");
    std::fs::write(
        &path,
        "teacher: \"hf-bert\"\ntask: classification\nlabels: [a, b, c]\n",
    )
    .unwrap();
    let o = plcc(&["check", path.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("plcc::recipe::labels-teacher"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_label_the_task_does_not_have_names_its_file_and_line() {
    let train = format!("{}chess board\tpuzzles\n", labelled(4, 0));
    let dir = workdir(
        "labels-unknown",
        &[("train.tsv", &train), ("dev.tsv", &labelled(3, 0))],
    );
    let recipe = write_recipe(
        &dir,
        &FINETUNE.replace("output \"ckpt\" { format: hf }\n", ""),
    );
    let o = plcc(&["check", recipe.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("plcc::data::bad-row"), "{err}");
    assert!(
        err.contains("train.tsv:5: label `puzzles` is not one"),
        "{err}"
    );
}

#[test]
fn a_finetune_stage_refuses_losses_against_the_teacher() {
    let dir = workdir(
        "labels-finetune-loss",
        &[("train.tsv", &labelled(4, 0)), ("dev.tsv", &labelled(3, 0))],
    );
    let text = FINETUNE.replace("    warmup: 0\n", "    warmup: 0\n    loss logit_kl {}\n");
    let recipe = write_recipe(&dir, &text);
    let o = plcc(&["check", recipe.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("plcc::recipe::finetune-loss"),
        "{}",
        stderr(&o)
    );
    let bad = FINETUNE.replace("format: hf", "format: onnx");
    let recipe = write_recipe(&dir, &bad);
    let o = plcc(&["check", recipe.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(err.contains("artifact") && err.contains("hf"), "{err}");
}
