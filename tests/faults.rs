//! Faults: damaged artifacts, hostile and broken inputs, builds killed at
//! any moment and resumed, and an output folder that holds something plcc
//! did not write.

/// The helpers of `tests/support/` these tests use: each test binary names
/// only the ones it uses, so every helper it compiles is used.
#[path = "support"]
mod support {
    pub mod diagnostics;
    pub mod fixtures;
    pub mod plcc;
}

#[path = "faults/artifact.rs"]
mod artifact;
#[path = "faults/inputs.rs"]
mod inputs;
#[path = "faults/output_lock.rs"]
mod output_lock;
#[path = "faults/output_safety.rs"]
mod output_safety;
#[path = "faults/resume.rs"]
mod resume;
