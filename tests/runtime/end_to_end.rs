//! The runtime end to end: batch invariance, gradients through every trainable
//! variable, diagnostics for broken checkpoints, and `plcc run` / `plcc bench`
//! through the binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use plcc::base::{builtin, Pooling};
use plcc::runtime::load::loaded_model::Network;
use plcc::runtime::load::loader::{load_builtin, load_checkpoint, load_network};
use plcc::runtime::run::{record, runner, token_rows};
use plcc::runtime::{ForwardOptions, Head, Inputs, Mode, SymmetricIntPerRow};

use crate::support::fixtures::fixture;
use crate::support::plcc::plcc;

/// A fresh temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plcc-runtime-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const LINES: &[&str] = &[
    "The compiler reads a recipe and writes a smaller model.",
    "Hi.",
    "Rain is expected across the northern valleys by Thursday afternoon, and the wind will turn.",
    "Why does the cache miss rate triple when the batch size doubles?",
    "ok",
    "A model with fewer layers runs faster on every device we tried, big or small.",
    "Numbers: 3.14, 42, and 1,000,000.",
];

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Neither the batch size nor running batches side by side changes a record.
#[test]
fn batch_size_does_not_change_results() {
    let lines: Vec<String> = LINES.iter().map(|s| s.to_string()).collect();
    for name in builtin::NAMES {
        let model = load_builtin(name, &Device::Cpu).unwrap();
        let rows = token_rows::tokenize(&model, &lines, None).unwrap().rows;
        let one = runner::run_all(&model, &rows, 1, runner::Schedule::OneAtATime).unwrap();
        for (batch, schedule) in [
            (1, runner::Schedule::SideBySide),
            (3, runner::Schedule::SideBySide),
            (3, runner::Schedule::OneAtATime),
            (32, runner::Schedule::OneAtATime),
        ] {
            let many = runner::run_all(&model, &rows, batch, schedule).unwrap();
            for (a, b) in one.iter().zip(&many) {
                let pick = |r: &record::Record| r.embedding.clone().or(r.logits.clone()).unwrap();
                let d = max_abs_diff(&pick(a), &pick(b));
                assert!(
                    d <= 1e-5,
                    "{name} batch {batch} {schedule:?}: difference {d}"
                );
            }
        }
    }
}

/// Every variable of `varmap` must receive a non-zero gradient from `loss`.
fn assert_all_gradients(varmap: &VarMap, loss: &Tensor, what: &str) {
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    assert!(data.len() > 10, "{what}: only {} variables", data.len());
    let mut missing = Vec::new();
    for (name, var) in data.iter() {
        let nonzero = grads
            .get(var.as_tensor())
            .map(|g| {
                g.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            })
            .unwrap_or(false);
        if !nonzero {
            missing.push(name.clone());
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "{what}: no gradient for {missing:?}");
}

/// A fixed random weighting, so the loss is not invariant to layer norm.
fn weighted_sum(t: &Tensor, seed: f32) -> Tensor {
    let r = Tensor::randn(seed, 1.0, t.dims(), t.device()).unwrap();
    (t * r).unwrap().sum_all().unwrap()
}

#[test]
fn every_trainable_variable_gets_a_gradient() {
    let dev = Device::Cpu;
    let rows = vec![vec![5u32, 9, 14, 3, 8], vec![7, 2, 11]];
    for name in builtin::NAMES {
        let cfg = builtin::config(name).unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let mut network = Network::load(vb.clone(), &cfg).unwrap();
        let exit = Head::load(
            vb.pp("exits.0"),
            2,
            Pooling::Cls,
            cfg.hidden_size,
            true,
            Some(3),
        )
        .unwrap();
        let quantizer = Arc::new(SymmetricIntPerRow { bits: 4 });
        match &mut network {
            Network::Bert(m) => m.layers[1].ffn_in.fake_quantize(quantizer),
            Network::Gpt2(m) => m.blocks[1].ffn_in.fake_quantize(quantizer),
            Network::Bart(m) => m.decoder_layers[1].ffn.fc1.fake_quantize(quantizer),
        }
        .unwrap();
        // An encoder-decoder's decoder reads its start token, then the rows.
        let inputs = if cfg.seq2seq.is_some() {
            let targets: Vec<Vec<u32>> = rows.iter().map(|r| [&[2], &r[1..]].concat()).collect();
            Inputs::seq2seq(&rows, &targets, 1, &dev).unwrap()
        } else {
            Inputs::from_rows(&rows, 0, &dev).unwrap()
        };
        let opts = ForwardOptions {
            mode: Mode::Training,
            lm_logits: true,
            output_attentions: true,
        };
        let out = network.forward(&inputs, &[exit], opts).unwrap();
        let main = match &out.logits {
            Some(l) => weighted_sum(l, 0.0),
            None => weighted_sum(&out.last_hidden, 0.0),
        };
        let loss = (main + weighted_sum(&out.exits[0], 0.5)).unwrap();
        assert_all_gradients(&varmap, &loss, name);
    }
}

fn copy_fixture(name: &str, test: &str) -> PathBuf {
    let dir = temp_dir(test);
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(&format!("parity/{name}/{f}")), dir.join(f)).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> plcc::Diag {
    match load_network(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(d) => d,
    }
}

#[test]
fn broken_checkpoints_are_diagnostics() {
    // Missing weights file.
    let dir = copy_fixture("bert-odd", "no-weights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let d = load_error(&dir);
    assert_eq!(d.code, "plcc::checkpoint::missing-weights");
    assert!(d.message.contains("model.safetensors"), "{}", d.message);

    // Missing config.
    let dir = copy_fixture("bert-odd", "no-config");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert_eq!(load_error(&dir).code, "plcc::checkpoint::missing-config");

    // Truncated weights.
    let dir = copy_fixture("bert-odd", "truncated");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let d = load_error(&dir);
    assert_eq!(d.code, "plcc::checkpoint::corrupt-weights");
    assert!(
        d.notes.iter().any(|n| n.contains("truncated")),
        "{:?}",
        d.notes
    );

    // Garbage.
    let dir = copy_fixture("bert-odd", "garbage");
    std::fs::write(
        dir.join("model.safetensors"),
        b"this is not a safetensors file at all",
    )
    .unwrap();
    assert_eq!(load_error(&dir).code, "plcc::checkpoint::corrupt-weights");

    // A missing tensor is named.
    let dir = copy_fixture("bert-odd", "missing-tensor");
    let path = dir.join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors
        .remove("encoder.layer.1.output.dense.weight")
        .unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let d = load_error(&dir);
    assert_eq!(d.code, "plcc::checkpoint::missing-tensor");
    assert!(
        d.message.contains("encoder.layer.1.output.dense.weight"),
        "{}",
        d.message
    );

    // A shape mismatch names both shapes.
    let dir = copy_fixture("bert-odd", "shape");
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"intermediate_size\": 136", "\"intermediate_size\": 140"),
    )
    .unwrap();
    let d = load_error(&dir);
    assert_eq!(d.code, "plcc::checkpoint::shape-mismatch");
    assert!(
        d.message.contains("136×80") && d.message.contains("140×80"),
        "{}",
        d.message
    );

    // Unsupported architecture.
    let dir = copy_fixture("bert-odd", "model-type");
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"model_type\": \"bert\"", "\"model_type\": \"t5\""),
    )
    .unwrap();
    let d = load_error(&dir);
    assert_eq!(d.code, "plcc::checkpoint::unsupported-model");
    assert!(d.message.contains("t5"));

    // A checkpoint without tokenizer cannot run on text.
    let d = load_checkpoint(&fixture("parity/bert-odd"), &Device::Cpu).unwrap_err();
    assert_eq!(d.code, "plcc::checkpoint::missing-tokenizer");
}

fn json_lines(text: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn plcc_run_end_to_end_on_builtins() {
    let dir = temp_dir("run");
    let input = dir.join("in.txt");
    std::fs::write(&input, LINES.join("\n") + "\n").unwrap();
    let input = input.to_str().unwrap();

    let out = plcc(&[
        "run",
        "builtin:tiny-bert",
        "--input",
        input,
        "--threads",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json_lines(&out.stdout);
    assert_eq!(records.len(), LINES.len());
    assert!(records
        .iter()
        .all(|r| r["embedding"].as_array().map(Vec::len) == Some(64) && r.get("logits").is_none()));

    // Batch size 1 into a file gives the same numbers.
    let out_file = dir.join("out.jsonl");
    let out = plcc(&[
        "run",
        "builtin:tiny-bert",
        "--input",
        input,
        "--batch-size",
        "1",
        "--output",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let single = json_lines(&std::fs::read(&out_file).unwrap());
    for (a, b) in records.iter().zip(&single) {
        let v = |r: &serde_json::Value| -> Vec<f32> {
            serde_json::from_value(r["embedding"].clone()).unwrap()
        };
        assert!(max_abs_diff(&v(a), &v(b)) <= 1e-5);
    }

    let out = plcc(&["run", "builtin:tiny-gpt2", "--input", input]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json_lines(&out.stdout);
    assert_eq!(records.len(), LINES.len());
    assert!(records
        .iter()
        .all(|r| r["logits"].as_array().map(Vec::len) == Some(512)));
}

#[test]
fn plcc_run_rejects_bad_inputs_with_diagnostics() {
    let dir = temp_dir("bad");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let out = plcc(&[
        "run",
        "builtin:tiny-bert",
        "--input",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));

    let input = dir.join("in.txt");
    std::fs::write(&input, "hello\n").unwrap();
    let input = input.to_str().unwrap();
    let out = plcc(&["run", "builtin:tiny-brt", "--input", input]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("builtin:tiny-bert"));

    let out = plcc(&[
        "run",
        "builtin:tiny-bert",
        "--input",
        input,
        "--device",
        "cuda",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cuda"));

    let out = plcc(&[
        "run",
        "builtin:tiny-bert",
        "--input",
        input,
        "--max-len",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(1));

    let out = plcc(&["run", "/nonexistent/model", "--input", input]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn plcc_bench_reports_json() {
    let dir = temp_dir("bench");
    let input = dir.join("in.txt");
    std::fs::write(&input, LINES.join("\n")).unwrap();
    let out = plcc(&[
        "bench",
        "builtin:tiny-bert",
        "--input",
        input.to_str().unwrap(),
        "--json",
        "--batch-size",
        "4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "sentences_per_s",
        "tokens_per_s",
        "p50_ms",
        "p95_ms",
        "peak_rss_mb",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    assert_eq!(v["sentences"], LINES.len());
}
