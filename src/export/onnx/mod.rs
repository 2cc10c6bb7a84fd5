//! ONNX export: the artifact's model as one ONNX graph (opset 21) with inputs
//! `input_ids`, `attention_mask` (and `token_type_ids`), int64 of dynamic
//! batch and length, and outputs `last_hidden_state` plus
//! `sentence_embedding` (embedding models) or `logits` (classifiers; GPT-2:
//! next-token logits at every position).
//! Packed weights stay packed: levels within ±7 (binary, ternary, 2- and
//! 4-bit) as INT4 with `DequantizeLinear` scales per row or per block,
//! 8-bit levels as int8; int8 weights with per-token int8 activations run
//! as `MatMulInteger`, the integer product plcc's kernels compute.

mod bert;
mod blocks;
mod builder;
mod gpt2;
pub mod proto;
mod weights;

use prost::Message;

use self::proto::{ModelProto, OperatorSetIdProto, StringStringEntryProto};
use crate::artifact::Artifact;
use crate::base::Arch;
use crate::diag::Diag;

/// The ONNX opset the graph uses (21: INT4 weights with blocked scales).
pub const OPSET: i64 = 21;
/// The ONNX IR version of opset 21.
const IR_VERSION: i64 = 10;

/// An exported graph.
pub struct OnnxModel {
    pub bytes: Vec<u8>,
    /// Bytes of the initializers (the weights) in the file.
    pub weight_bytes: u64,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub notes: Vec<String>,
}

/// The ONNX model of `artifact`.
pub fn export(artifact: &Artifact) -> Result<OnnxModel, Diag> {
    let manifest = &artifact.manifest;
    let mut w = weights::WeightGraph::new(artifact);
    match manifest.config.arch {
        Arch::Bert => bert::encoder_graph(
            &mut w,
            &manifest.config,
            manifest.task,
            manifest.sentence_pipeline(),
        )?,
        Arch::Gpt2 => gpt2::decoder_graph(&mut w, &manifest.config)?,
        Arch::Bart => {
            return Err(Diag::new(
                "plcc::export::unsupported-model",
                "ONNX export of encoder-decoder (BART) artifacts is not implemented",
            )
            .help("run the artifact with `plcc run`, or load it with `plcc::api::Model::open`"))
        }
    }
    let weight_bytes = w.g.initializer_bytes() as u64;
    let graph = w.g.finish("plcc");
    let inputs = graph.input.iter().map(|v| v.name.clone()).collect();
    let outputs = graph.output.iter().map(|v| v.name.clone()).collect();
    let mut notes = Vec::new();
    if manifest.exits.iter().any(|e| e.threshold.is_some()) {
        notes.push(
            "the artifact's early exits are not exported: the ONNX graph runs every layer"
                .to_string(),
        );
    }
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "plcc".to_string(),
        producer_version: manifest.plcc_version.clone(),
        doc_string: format!(
            "exported from a plcc artifact of {}",
            manifest.source.teacher
        ),
        graph: Some(graph),
        metadata_props: vec![StringStringEntryProto {
            key: "plcc_manifest_sha256".to_string(),
            value: manifest.manifest_sha256.clone(),
        }],
    };
    Ok(OnnxModel {
        bytes: model.encode_to_vec(),
        weight_bytes,
        inputs,
        outputs,
        notes,
    })
}
