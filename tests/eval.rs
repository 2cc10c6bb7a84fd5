//! Measuring models: `plcc eval`'s metrics on built-in models and generated
//! data (gold scores, labels, perplexity, retrieval), and the build report
//! with its exits and recalibration, a classifier's accuracy against FLOPs
//! among them.

/// The helpers of `tests/support/` these tests use: each test binary names
/// only the ones it uses, so every helper it compiles is used.
#[path = "support"]
mod support {
    pub mod diagnostics;
    pub mod plcc;
    pub mod topics;
}

#[path = "eval/exit_accuracy.rs"]
mod exit_accuracy;
#[path = "eval/metrics.rs"]
mod metrics;
#[path = "eval/report.rs"]
mod report;
#[path = "eval/retrieval.rs"]
mod retrieval;
