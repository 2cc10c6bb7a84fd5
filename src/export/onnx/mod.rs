//! ONNX export: the artifact's model as one ONNX graph (opset 21) with inputs
//! `input_ids`, `attention_mask` (and `token_type_ids`), int64 of dynamic
//! batch and length, and outputs `last_hidden_state` plus
//! `sentence_embedding` (embedding models) or `logits` (classifiers; GPT-2:
//! next-token logits at every position).
//! Packed weights stay packed: a linear's levels within ±7 (binary,
//! ternary, 2- and 4-bit) as ONNX Runtime's `MatMulNBits` (operator domain
//! `com.microsoft`) by default, or as INT4 with `DequantizeLinear` scales
//! per row or per block (a table's, and a linear's where asked or where
//! `MatMulNBits` cannot hold its scales); 8-bit levels as int8, where int8
//! weights with per-token int8 activations run as `MatMulInteger`, the
//! integer product plcc's kernels compute.

mod activations;
mod bert;
mod blocks;
mod builder;
mod gpt2;
mod linears;
pub mod nbits;
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

/// How the graph writes linear weights whose levels fit 4 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Int4Linears {
    /// `MatMulNBits` computing in f32 (`accuracy_level` 1): plcc's
    /// arithmetic, to float rounding.
    #[default]
    NBits,
    /// `MatMulNBits`; where plcc quantizes the input per token to int8,
    /// ONNX Runtime multiplies int8 (`accuracy_level` 4), quantizing that
    /// input again per block of the weight's (faster, slightly different).
    NBitsInt8,
    /// INT4 with `DequantizeLinear`, then a float `MatMul` (ONNX's own
    /// operators only).
    Dequantize,
}

impl Int4Linears {
    pub fn is_nbits(self) -> bool {
        self != Int4Linears::Dequantize
    }
}

/// How an artifact is written as ONNX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OnnxOptions {
    pub int4: Int4Linears,
}

/// An exported graph.
pub struct OnnxModel {
    pub bytes: Vec<u8>,
    /// Bytes of the initializers (the weights) in the file.
    pub weight_bytes: u64,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub notes: Vec<String>,
}

/// The ONNX model of `artifact`, written as `options` say.
pub fn export(artifact: &Artifact, options: OnnxOptions) -> Result<OnnxModel, Diag> {
    let manifest = &artifact.manifest;
    let mut w = weights::WeightGraph::new(artifact, options);
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
    let mut notes = w.notes();
    let mut opset_import = vec![OperatorSetIdProto {
        domain: String::new(),
        version: OPSET,
    }];
    opset_import.extend(w.g.domains().map(|domain| OperatorSetIdProto {
        domain: domain.name.to_string(),
        version: domain.version,
    }));
    let graph = w.g.finish("plcc");
    let inputs = graph.input.iter().map(|v| v.name.clone()).collect();
    let outputs = graph.output.iter().map(|v| v.name.clone()).collect();
    if manifest.exits.iter().any(|e| e.threshold.is_some()) {
        notes.push(
            "the artifact's early exits are not exported: the ONNX graph runs every layer"
                .to_string(),
        );
    }
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import,
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
