//! Artifacts with packed weights run on the integer kernels: every packed
//! encoder linear of a built tiny-bert gets the int8 kernel, and the loaded
//! model's outputs equal the dequantized-f32 model's once that model also
//! quantizes the linears' inputs per token to int8 (what the kernel does);
//! without that input quantization they differ by a small, bounded amount.
//! Query, key and value joined into one product give the same outputs.
//! Packed weights are held once, in their packed form: no float copy of a
//! kernel's weight, and a packed word table looked up row by row.

use std::path::{Path, PathBuf};

use candle_core::Device;
use plcc::runtime::load::from_artifact::{load_artifact, load_artifact_with, LoadOptions};
use plcc::runtime::model::layers::EmbeddingTable;
use plcc::runtime::model::linear_kernel::{is_per_token_int8, LinearKernel, PER_TOKEN_INT8};
use plcc::runtime::{LinearWeight, LoadedModel, Network};

use crate::support::embed::embedding_rows;
use crate::support::tiny_bert::build_tiny_bert;

const SENTENCES: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\nnumbers like 3 and 42\n";

const LINES: &[&str] = &[
    "the compiler reads a recipe and writes a smaller model",
    "hi",
    "rain is expected across the northern valleys by thursday afternoon",
    "why does the cache miss rate triple when the batch size doubles",
    "numbers like 3 and 42",
];

/// Builds the tiny-bert embedding model with `quantize` blocks.
fn build(name: &str, quantize: &str) -> PathBuf {
    build_tiny_bert(&format!("kernels-{name}"), SENTENCES, quantize)
}

fn embeddings(model: &LoadedModel) -> Vec<Vec<f32>> {
    embedding_rows(model, LINES)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn max_abs(a: &[Vec<f32>]) -> f32 {
    a.iter().flatten().map(|x| x.abs()).fold(0.0, f32::max)
}

/// Loads `dir` three ways and checks the kernels against the references.
fn check(dir: &Path, quantized_inputs_in_manifest: bool) {
    let mut kernels = load_artifact(dir, &Device::Cpu).unwrap();
    let Network::Bert(bert) = &kernels.network else {
        panic!("tiny-bert is a BERT")
    };
    assert!(bert.layers.iter().all(|l| l
        .qkv
        .as_ref()
        .is_some_and(|j| j.kernel().is_some_and(|k| k.is_int8()))));
    let joined = embeddings(&kernels);
    // Handing out the linears drops the joined query / key / value product.
    for (name, lin) in kernels.network.linears_mut() {
        assert!(
            lin.kernel().is_some_and(|k| k.is_int8()),
            "{name} is not on the integer kernel"
        );
        assert!(
            lin.input_quant().is_some_and(|q| is_per_token_int8(&q)),
            "{name}"
        );
        // Held once, packed: no float copy of the weight.
        assert!(
            matches!(lin.weight, LinearWeight::InKernel { .. }),
            "{name} keeps a float weight"
        );
    }
    let reference = load_artifact_with(dir, &Device::Cpu, LoadOptions::dequantized()).unwrap();
    let mut emulated = reference.clone();
    for (name, lin) in emulated.network.linears_mut() {
        assert!(lin.kernel().is_none_or(|k| !k.is_int8()), "{name}");
        lin.quantize_inputs(PER_TOKEN_INT8);
    }
    let (k, r, e) = (
        embeddings(&kernels),
        embeddings(&reference),
        embeddings(&emulated),
    );
    let scale = max_abs(&r);
    assert!(max_diff(&joined, &k) <= 1e-6 * scale, "joined q/k/v differ");
    // The kernel is exact in integers; only f32 rounding of the scales differs.
    let exact = max_diff(&k, &e);
    assert!(
        exact <= 1e-4 * scale,
        "kernel vs emulated: {exact} (scale {scale})"
    );
    // Quantizing activations to 127 levels per token moves outputs a little.
    let act = max_diff(&k, &r);
    assert!(
        act > exact,
        "activation quantization changed nothing: {act}"
    );
    assert!(act <= 0.005 * scale, "kernel vs f32: {act} (scale {scale})");
    let fidelity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let notes = fidelity["notes"].to_string();
    assert_eq!(
        notes.contains("quantize their input activations"),
        quantized_inputs_in_manifest,
        "{notes}"
    );
    assert_eq!(
        notes.contains("run on the integer kernel"),
        !quantized_inputs_in_manifest,
        "{notes}"
    );
}

#[test]
fn int8_weights_and_activations_run_on_the_integer_kernel() {
    let dir = build(
        "int8",
        "quantize weights \"encoder.layer.*\" {\n    bits: 8\n}\n\n\
         quantize activations \"encoder.layer.*\" {\n    bits: 8\n}\n",
    );
    check(&dir, true);
}

#[test]
fn ternary_weights_run_on_the_integer_kernel() {
    let dir = build(
        "ternary",
        "quantize weights \"encoder.layer.*\" {\n    bits: ternary\n}\n",
    );
    check(&dir, false);
}

#[test]
fn group_scales_run_on_the_integer_kernel() {
    let dir = build(
        "group",
        "quantize weights \"encoder.layer.*\" {\n    bits: 4\n    granularity: group\n    group: 16\n}\n",
    );
    check(&dir, false);
    let model = load_artifact(&dir, &Device::Cpu).unwrap();
    let Network::Bert(bert) = &model.network else {
        panic!("tiny-bert is a BERT")
    };
    let Some(LinearKernel::Int8(ffn)) = bert.layers[0].ffn_in.kernel() else {
        panic!("the feed-forward input is not on the integer kernel")
    };
    assert_eq!(ffn.weights().group_len, 16);
    assert!(ffn.weights().groups > 1);
}

#[test]
fn a_packed_word_table_is_looked_up_from_its_packed_rows() {
    let dir = build(
        "table",
        "quantize weights \"embeddings.word_embeddings\" {\n    bits: 4\n    granularity: group\n    group: 8\n}\n\n\
         quantize weights \"embeddings.position_embeddings\" {\n    bits: 8\n}\n",
    );
    let model = load_artifact(&dir, &Device::Cpu).unwrap();
    let Network::Bert(bert) = &model.network else {
        panic!("tiny-bert is a BERT")
    };
    let EmbeddingTable::Packed(rows) = &bert.word_embeddings.table else {
        panic!("the word table was expanded to f32")
    };
    // Half a byte a code and an f32 scale per 8 codes, against 4 bytes a value.
    assert!(rows.bytes() * 3 < rows.rows() * rows.cols() * 4);
    let reference = load_artifact_with(&dir, &Device::Cpu, LoadOptions::dequantized()).unwrap();
    let Network::Bert(plain) = &reference.network else {
        panic!("tiny-bert is a BERT")
    };
    assert!(matches!(
        plain.word_embeddings.table,
        EmbeddingTable::Float(_)
    ));
    let (a, b) = (embeddings(&model), embeddings(&reference));
    assert!(max_diff(&a, &b) <= 1e-5 * max_abs(&b));
}

#[test]
fn inputs_quantized_otherwise_run_the_float_product() {
    let dir = build(
        "group-act",
        "quantize weights \"encoder.layer.*\" {\n    bits: 4\n    granularity: group\n    group: 16\n}\n\n\
         quantize activations \"encoder.layer.*.intermediate.dense\" {\n    bits: 4\n}\n",
    );
    let mut model = load_artifact(&dir, &Device::Cpu).unwrap();
    for (name, lin) in model.network.linears_mut() {
        let other_inputs = name.ends_with("intermediate.dense");
        assert_eq!(
            lin.kernel().is_some_and(|k| k.is_int8()),
            !other_inputs,
            "{name}"
        );
        assert!(lin.input_quant().is_some(), "{name}");
        assert_eq!(
            lin.input_quant() == Some(PER_TOKEN_INT8),
            !other_inputs,
            "{name}"
        );
    }
    let reference = load_artifact_with(&dir, &Device::Cpu, LoadOptions::dequantized()).unwrap();
    let (a, b) = (embeddings(&model), embeddings(&reference));
    assert!(max_diff(&a, &b) > 0.0);
    assert!(max_diff(&a, &b) <= 0.2 * max_abs(&b));
}
