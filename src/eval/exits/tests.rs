//! Per-sample early exit on artifacts built from the built-in tiny models:
//! records come back in input order; a sample that leaves at exit k gets
//! exactly what exit k's head gives for it alone; thresholds that exit
//! nobody reproduce the full-depth outputs; calibration meets fidelity and
//! speed-up targets.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::search::with_setting;
use super::{calibrate_with, CalibrateOptions, CalibrationInput};
use crate::base::{CalibrationTarget, ExitHead};
use crate::lower::reporter::Silent;
use crate::lower::BuildOptions;
use crate::runtime::run::early_exit::final_records;
use crate::runtime::run::record::Record;
use crate::runtime::run::runner::{run_all, run_batch, Schedule};
use crate::runtime::run::token_rows::tokenize;
use crate::runtime::{load_model, Inputs, LoadedModel};

#[path = "../../../tests/support/exits.rs"]
mod shared;
use shared::{built, CLASSIFIER, EMBEDDING, LINES};

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

/// Builds `recipe` once per test run, as `plcc build --max-steps 0` does.
fn build(name: &str, recipe: &str) -> PathBuf {
    built(name, recipe, |path, out| {
        let options = BuildOptions {
            output: Some(out.to_path_buf()),
            max_steps: Some(0),
            resume: false,
            allow_outside: false,
            no_wait: false,
            device: None,
        };
        crate::build(path, &options, &crate::pass_registry(), &Silent).unwrap();
    })
}

fn lines() -> Vec<String> {
    LINES.iter().map(|s| s.to_string()).collect()
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
    let records = run_all(&model, &rows, batch, Schedule::SideBySide).unwrap();
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
    let rows = crate::runtime::run::generate::tokenize(&model, &lines, None).unwrap();
    let records = crate::runtime::run::generate::run_all(&model, &rows, 8, None).unwrap();
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
