//! How a build tells its caller what it is doing: each stage as it finishes,
//! and long work (a training stage, importance scoring) step by step. The
//! library never prints; `plcc`'s command line draws bars on a terminal and
//! writes plain lines to logs (`cli::progress`).

/// Receives a build's progress. Every method does nothing by default. A
/// build reports from a thread of the kernels' pool, so a reporter is `Sync`.
pub trait Reporter: Sync {
    /// A build stage finished after `seconds`.
    fn stage(&self, _name: &str, _seconds: f64) {}
    /// Long work begins: `total` steps, `done` of them already done (a
    /// resumed training stage).
    fn begin(&self, _work: &str, _total: usize, _done: usize) {}
    /// The current work now has `total` steps (a time budget planned again
    /// at the stage's own pace).
    fn resize(&self, _total: usize) {}
    /// One more step of the current work is done; `status` holds its
    /// numbers (loss, learning rate, tokens/s), or is empty.
    fn step(&self, _status: &str) {}
    /// Something worth a line of its own happened in the current work (an
    /// evaluation of the student during training).
    fn event(&self, _message: &str) {}
    /// The current work ended.
    fn end(&self) {}
}

/// A reporter that reports nothing (tests, library callers that do not
/// want progress).
pub struct Silent;

impl Reporter for Silent {}
