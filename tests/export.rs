//! `plcc export`: ONNX graphs (4-bit linears as `MatMulNBits` included)
//! checked with a reference evaluator, Hugging Face checkpoints, and a
//! sentence-transformers checkpoint's pipeline from `plcc run` through the
//! artifact to its ONNX export.

/// The helpers of `tests/support/` these tests use: each test binary names
/// only the ones it uses, so every helper it compiles is used.
#[path = "support"]
mod support {
    pub mod plcc;
    pub mod run;
    pub mod tiny_bert;
}

#[path = "export/formats.rs"]
mod formats;
#[path = "export/nbits.rs"]
mod nbits;
#[path = "export/onnx_eval.rs"]
mod onnx_eval;
#[path = "export/pipeline.rs"]
mod pipeline;
