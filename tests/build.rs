//! `plcc build` end to end on the built-in models: artifacts without
//! training, several evaluation sets, GPTQ, vocabulary pruning, training
//! and evaluation during it, training an encoder-decoder, and classifiers
//! with labels by name.

/// The helpers of `tests/support/` these tests use: each test binary names
/// only the ones it uses, so every helper it compiles is used.
#[path = "support"]
mod support {
    pub mod plcc;
    pub mod run;
    pub mod topics;
}

#[path = "build/end_to_end.rs"]
mod end_to_end;
#[path = "build/eval_sets.rs"]
mod eval_sets;
#[path = "build/gptq.rs"]
mod gptq;
#[path = "build/labels.rs"]
mod labels;
#[path = "build/seq2seq_train.rs"]
mod seq2seq_train;
#[path = "build/train.rs"]
mod train;
#[path = "build/train_eval.rs"]
mod train_eval;
#[path = "build/vocab.rs"]
mod vocab;
