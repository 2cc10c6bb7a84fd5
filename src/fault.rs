//! Fault injection for the crash tests: with the environment variable
//! `PLCC_FAULT_KILL_AT=POINT:N` set, the process aborts itself (no
//! unwinding, no cleanup, nothing flushed: as abrupt as `kill -9`) the N-th
//! time it reaches the named point (`:N` may be left out for the first
//! time). The points:
//!
//! - `step`: an optimizer step finished and was appended to the loss log;
//!   counted over this process, so `step:3` is global step 3 of a fresh run.
//! - `checkpoint-write`: a checkpoint's tensors are in its staging folder,
//!   its `meta.json` and checksums are not yet written.
//! - `checkpoint-latest`: a checkpoint folder is renamed into place and
//!   `latest` does not name it yet.
//! - `artifact-write`: the artifact's weights and manifest are in its
//!   staging folder, not yet renamed into place.
//! - `artifact-commit`: the artifact is in place and the training folder
//!   (its checkpoints) not yet removed.
//!
//! Unset, or naming another point, nothing happens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The environment variable read once per process.
pub const KILL_AT_VAR: &str = "PLCC_FAULT_KILL_AT";

/// The point and count of `PLCC_FAULT_KILL_AT`.
fn target() -> Option<&'static (String, usize)> {
    static TARGET: OnceLock<Option<(String, usize)>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let spec = std::env::var(KILL_AT_VAR).ok()?;
            match spec.split_once(':') {
                Some((name, n)) => Some((name.to_string(), n.trim().parse().ok()?)),
                None => Some((spec, 1)),
            }
        })
        .as_ref()
}

/// Marks that the process reached `point`; aborts when this is the time
/// `PLCC_FAULT_KILL_AT` names.
pub fn point(point: &str) {
    static PASSED: AtomicUsize = AtomicUsize::new(0);
    let Some((name, n)) = target() else {
        return;
    };
    if name == point && PASSED.fetch_add(1, Ordering::SeqCst) + 1 == *n {
        std::process::abort();
    }
}
