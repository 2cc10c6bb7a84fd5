//! Running models: the runtime end to end, numeric parity with transformers,
//! the integer, weight-only and CUDA kernels on built artifacts, early exits and their
//! calibration, and an encoder-decoder's logits and generation.

/// The helpers of `tests/support/` these tests use: each test binary names
/// only the ones it uses, so every helper it compiles is used.
#[path = "support"]
mod support {
    pub mod embed;
    pub mod exits;
    pub mod fixtures;
    pub mod plcc;
    pub mod tiny_bert;
}

#[path = "runtime/artifact_kernels.rs"]
mod artifact_kernels;
#[path = "runtime/cuda_kernels.rs"]
mod cuda_kernels;
#[path = "runtime/end_to_end.rs"]
mod end_to_end;
#[path = "runtime/exits.rs"]
mod exits;
#[path = "runtime/parity.rs"]
mod parity;
#[path = "runtime/seq2seq_run.rs"]
mod seq2seq_run;
#[path = "runtime/weight_only.rs"]
mod weight_only;
