//! `plcc export --format onnx` of linears with 4-bit and narrower weights:
//! ONNX Runtime's `MatMulNBits` blocks (group scales as the blocks' scales,
//! row scales repeated per block) computing what `plcc run` computes, the
//! `--onnx-int4` forms, and the weights `MatMulNBits` cannot hold, which
//! are dequantized in the graph with a note; weight-only linears multiply
//! their float input.

use plcc::export::onnx::proto::{data_type, ModelProto, NodeProto};

use super::formats::{assert_embeddings_match_plcc, export_with, read_model, SENTENCES};
use crate::support::plcc::stderr;
use crate::support::tiny_bert::build_tiny_bert;

/// 4-bit weights in groups of 32 for attention, with row scales for the
/// feed-forward layers.
const W4: &str = "quantize weights \"encoder.layer.*.attention.*\" { bits: 4\n granularity: group\n group: 32 }\n\
    quantize weights \"encoder.layer.*.intermediate.dense\" { bits: 4 }\n\
    quantize weights \"encoder.layer.?.output.dense\" { bits: 4 }\n";

/// Ternary weights with row scales on every encoder linear.
const TERNARY: &str = "quantize weights \"encoder.layer.*\" { bits: ternary }\n";

/// Linears of the two layers tiny-bert artifacts keep.
const LINEARS: usize = 2 * 6;

fn nbits_nodes(model: &ModelProto) -> Vec<&NodeProto> {
    let graph = model.graph.as_ref().unwrap();
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "MatMulNBits")
        .collect()
}

fn int_attr(node: &NodeProto, name: &str) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("`{}` has no `{name}`", node.name))
        .i
}

fn count(model: &ModelProto, data_type: i32) -> usize {
    let graph = model.graph.as_ref().unwrap();
    graph
        .initializer
        .iter()
        .filter(|t| t.data_type == data_type)
        .count()
}

/// The block size of the `MatMulNBits` node of `module`.
fn block_of(nodes: &[&NodeProto], module: &str) -> i64 {
    let node = nodes
        .iter()
        .find(|n| n.output[0] == module)
        .unwrap_or_else(|| panic!("no MatMulNBits for `{module}`"));
    int_attr(node, "block_size")
}

#[test]
fn four_bit_and_ternary_linears_are_matmul_nbits_blocks() {
    for (tag, quantize) in [("nbits-w4", W4), ("nbits-ternary", TERNARY)] {
        let artifact = build_tiny_bert(tag, SENTENCES, quantize);
        let out = artifact.parent().unwrap().join("onnx");
        let o = export_with("onnx", &artifact, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let model = read_model(&out);
        let imports: Vec<(&str, i64)> = model
            .opset_import
            .iter()
            .map(|o| (o.domain.as_str(), o.version))
            .collect();
        assert_eq!(imports, [("", 21), ("com.microsoft", 1)], "{tag}");
        let nodes = nbits_nodes(&model);
        assert_eq!(nodes.len(), LINEARS, "{tag}");
        for node in &nodes {
            assert_eq!(node.domain, "com.microsoft");
            assert_eq!(int_attr(node, "bits"), 4);
            // f32 compute: plcc's arithmetic.
            assert_eq!(int_attr(node, "accuracy_level"), 1);
            // A, codes, scales, (no zero points, no g_idx), bias.
            assert_eq!(node.input.len(), 6, "{}", node.name);
            assert_eq!(&node.input[3..5], ["", ""]);
        }
        assert_eq!(count(&model, data_type::UINT8), LINEARS, "{tag}");
        assert_eq!(count(&model, data_type::INT4), 0, "{tag}");
        // Row scales: the longest block (≤ 128) that tiles the row.
        let ffn_out = block_of(&nodes, "encoder.layer.1.output.dense");
        assert_eq!(ffn_out, 128, "{tag}: rows of 256");
        assert_eq!(block_of(&nodes, "encoder.layer.1.intermediate.dense"), 64);
        if tag == "nbits-w4" {
            let query = "encoder.layer.0.attention.self.query";
            assert_eq!(block_of(&nodes, query), 32, "groups of 32");
        }
        assert_embeddings_match_plcc(&model, &out, &artifact);
    }
}

#[test]
fn onnx_int4_chooses_int8_blocks_or_dequantized_int4() {
    let artifact = build_tiny_bert("nbits-forms", SENTENCES, W4);
    let dir = artifact.parent().unwrap().to_path_buf();

    // The input is quantized per token to int8: ONNX Runtime may multiply
    // int8 (the reference evaluator computes exactly).
    let out = dir.join("int8");
    let o = export_with("onnx", &artifact, &out, &["--onnx-int4", "nbits-int8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = read_model(&out);
    let nodes = nbits_nodes(&model);
    assert_eq!(nodes.len(), LINEARS);
    assert!(nodes.iter().all(|n| int_attr(n, "accuracy_level") == 4));
    assert_embeddings_match_plcc(&model, &out, &artifact);

    let out = dir.join("dequantize");
    let o = export_with("onnx", &artifact, &out, &["--onnx-int4", "dequantize"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = read_model(&out);
    assert!(nbits_nodes(&model).is_empty());
    assert_eq!(model.opset_import.len(), 1, "ONNX's own operators only");
    assert_eq!(count(&model, data_type::INT4), LINEARS);
    let graph = model.graph.as_ref().unwrap();
    assert!(graph.node.iter().any(|n| n.op_type == "DequantizeLinear"));
    assert_embeddings_match_plcc(&model, &out, &artifact);

    // A Hugging Face export has no 4-bit form to choose.
    let o = export_with("hf", &artifact, &dir.join("hf"), &["--onnx-int4", "nbits"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("plcc::export::option"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn groups_matmul_nbits_cannot_hold_are_dequantized_with_a_note() {
    // Groups of 8: shorter than MatMulNBits' shortest block (16).
    let quantize = "quantize weights \"encoder.layer.?.output.dense\" { bits: 4\n granularity: group\n group: 8 }\n\
        quantize weights \"encoder.layer.*.intermediate.dense\" { bits: 4 }\n";
    let artifact = build_tiny_bert("nbits-short-groups", SENTENCES, quantize);
    let out = artifact.parent().unwrap().join("onnx");
    let o = export_with("onnx", &artifact, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("note: `encoder.layer.0.output.dense` and 1 more")
            && err.contains("groups of 8"),
        "{err}"
    );
    let model = read_model(&out);
    let nodes = nbits_nodes(&model);
    let modules: Vec<&str> = nodes.iter().map(|n| n.output[0].as_str()).collect();
    assert_eq!(
        modules,
        [
            "encoder.layer.0.intermediate.dense",
            "encoder.layer.1.intermediate.dense"
        ]
    );
    assert_eq!(count(&model, data_type::INT4), 2, "the groups of 8");
    assert_embeddings_match_plcc(&model, &out, &artifact);
}

#[test]
fn weight_only_linears_multiply_the_float_input() {
    // `activations: float`: plcc decodes the packed weight in the product and
    // quantizes no input, so the export's MatMulNBits read the float input.
    let quantize = "quantize weights \"encoder.layer.*\" { bits: 4\n granularity: group\n group: 32\n activations: float }\n";
    let artifact = build_tiny_bert("nbits-weight-only", SENTENCES, quantize);
    let out = artifact.parent().unwrap().join("onnx");
    let o = export_with("onnx", &artifact, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = read_model(&out);
    assert_eq!(nbits_nodes(&model).len(), LINEARS);
    let graph = model.graph.as_ref().unwrap();
    let quantizing: Vec<&str> = graph
        .node
        .iter()
        .filter(|n| n.output[0].starts_with("act_"))
        .map(|n| n.op_type.as_str())
        .collect();
    assert!(quantizing.is_empty(), "input quantization: {quantizing:?}");
    assert_embeddings_match_plcc(&model, &out, &artifact);

    // The same weights on the integer kernel quantize each linear's input.
    let artifact = build_tiny_bert("nbits-kernel-inputs", SENTENCES, W4);
    let out = artifact.parent().unwrap().join("onnx");
    assert!(export_with("onnx", &artifact, &out, &[]).status.success());
    let model = read_model(&out);
    let graph = model.graph.as_ref().unwrap();
    assert!(graph.node.iter().any(|n| n.output[0].starts_with("act_")));
}
