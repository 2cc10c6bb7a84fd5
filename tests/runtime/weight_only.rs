//! Weight-only quantization (`activations: float`) on built artifacts: the
//! manifest records float inputs, every such linear loads on the weight-only
//! kernel with its weight held packed and no input quantization, and the
//! model's outputs are the dequantized-f32 model's. The integer kernel's
//! int8 per-token inputs are recorded in the manifest, and an artifact
//! without those records loads and runs the same.

use std::path::Path;

use candle_core::Device;
use plcc::artifact::{encode_manifest, read_manifest, Storage};
use plcc::base::WeightInputs;
use plcc::runtime::load::from_artifact::{load_artifact, load_artifact_with, LoadOptions};
use plcc::runtime::model::linear_kernel::{LinearKernel, PER_TOKEN_INT8};
use plcc::runtime::{LinearWeight, Network};

use crate::support::embed::embeddings;
use crate::support::tiny_bert::build_tiny_bert;

const SENTENCES: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\n";

const LINES: &[&str] = &[
    "the compiler reads a recipe and writes a smaller model",
    "hi",
    "why does the cache miss rate triple when the batch size doubles",
];

/// The largest difference of `a` and `b`, relative to `b`'s largest value.
fn relative_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// The packed weights of the encoder's linears.
fn encoder_weights(dir: &Path) -> Vec<(String, Storage)> {
    read_manifest(dir)
        .unwrap()
        .weights
        .into_iter()
        .filter(|(name, record)| {
            name.starts_with("encoder.") && matches!(record.storage, Storage::Packed { .. })
        })
        .map(|(name, record)| (name, record.storage))
        .collect()
}

#[test]
fn weight_only_linears_take_float_inputs_on_packed_weights() {
    let dir = build_tiny_bert(
        "weight-only",
        SENTENCES,
        "quantize weights \"encoder.layer.*\" {\n    bits: 4\n    granularity: group\n    \
         group: 16\n    activations: float\n}\n",
    );
    let manifest = read_manifest(&dir).unwrap();
    assert!(manifest.activation_quant.is_empty());
    for (name, storage) in encoder_weights(&dir) {
        assert!(
            matches!(
                storage,
                Storage::Packed {
                    inputs: WeightInputs::Float,
                    ..
                }
            ),
            "{name}: {storage:?}"
        );
        assert!(manifest.weight_only(name.trim_end_matches(".weight")));
    }
    let mut model = load_artifact(&dir, &Device::Cpu).unwrap();
    let Network::Bert(bert) = &model.network else {
        panic!("tiny-bert is a BERT")
    };
    assert!(bert.layers.iter().all(|l| l
        .qkv
        .as_ref()
        .is_some_and(|j| matches!(j.kernel(), Some(LinearKernel::WeightOnly(_))))));
    let joined = embeddings(&model, LINES);
    for (name, lin) in model.network.linears_mut() {
        assert!(
            matches!(lin.kernel(), Some(LinearKernel::WeightOnly(_))),
            "{name} is not on the weight-only kernel"
        );
        assert_eq!(lin.input_quant(), None, "{name}");
        assert!(
            matches!(lin.weight, LinearWeight::InKernel { .. }),
            "{name} keeps a float weight"
        );
    }
    let reference = load_artifact_with(&dir, &Device::Cpu, LoadOptions::dequantized()).unwrap();
    let (a, b) = (embeddings(&model, LINES), embeddings(&reference, LINES));
    assert!(relative_diff(&a, &b) <= 1e-5, "{}", relative_diff(&a, &b));
    assert!(relative_diff(&joined, &a) <= 1e-6);
    let report = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(report.contains("quantized weight-only"), "{report}");
    assert!(!report.contains("integer kernel"), "{report}");
}

#[test]
fn the_integer_kernels_inputs_are_recorded_and_old_artifacts_read_the_same() {
    let dir = build_tiny_bert(
        "kernel-inputs",
        SENTENCES,
        "quantize weights \"encoder.layer.*\" {\n    bits: ternary\n}\n",
    );
    let manifest = read_manifest(&dir).unwrap();
    for (name, _) in encoder_weights(&dir) {
        let module = name.trim_end_matches(".weight");
        assert_eq!(
            manifest.activation_quant.get(module),
            Some(&PER_TOKEN_INT8),
            "{module}"
        );
        assert!(!manifest.weight_only(module));
    }
    let report = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(report.contains("int8 per token"), "{report}");
    let recorded = embeddings(&load_artifact(&dir, &Device::Cpu).unwrap(), LINES);
    // An artifact that does not record the kernel's inputs.
    let mut old = manifest.clone();
    old.activation_quant.clear();
    std::fs::write(dir.join("manifest.json"), encode_manifest(&old).unwrap()).unwrap();
    let mut model = load_artifact(&dir, &Device::Cpu).unwrap();
    assert_eq!(embeddings(&model, LINES), recorded);
    for (name, lin) in model.network.linears_mut() {
        assert!(lin.kernel().is_some_and(|k| k.is_int8()), "{name}");
        assert_eq!(lin.input_quant(), Some(PER_TOKEN_INT8), "{name}");
    }
}
