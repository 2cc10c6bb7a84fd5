//! Where the CPU work of a model runs: on a thread of rayon's pool, the pool
//! every parallel kernel (plcc's and gemm's) splits its work on.
//!
//! A parallel region started from a thread outside the pool hands its work
//! to the pool and puts the caller to sleep on a lock until a worker wakes
//! it, once per region. A forward pass starts dozens of regions (every
//! linear, the attention, the norms), a training step hundreds; for one
//! sentence those round trips through the kernel cost about as much as its
//! arithmetic (measured on 2 cores, the `int8.pc` artifact one sentence at
//! a time: 357 sentences/s from the main thread, 569 from a worker). From a
//! worker, a region's join keeps the worker busy (it runs its own half,
//! then whatever it can steal) instead of asleep.

/// Runs `work` on a thread of rayon's pool and returns its result (at once,
/// on the calling thread, when that already is one of the pool's).
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}
