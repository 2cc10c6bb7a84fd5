//! Where the CPU work of a model runs: on a thread of rayon's pool, the pool
//! every parallel kernel (plcc's and gemm's) splits its work on.
//!
//! A parallel region started from a thread outside the pool hands its work
//! to the pool and puts the caller to sleep on a lock until a worker wakes
//! it, once per region. A forward pass starts dozens of regions (every
//! linear, the attention, the norms), a training step hundreds; for one
//! sentence those round trips through the kernel cost about as much as its
//! arithmetic (measured on 2 cores, the `int8.pc` artifact one sentence at
//! a time: about 365 sentences/s from the main thread, 490 from a worker,
//! 560 with [`on_pool_awake`]). From a worker, a region's join keeps the
//! worker busy (it runs its own half, then whatever it can steal) instead
//! of asleep.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runs `work` on a thread of rayon's pool and returns its result (at once,
/// on the calling thread, when that already is one of the pool's).
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// [`on_pool`] with the other threads of the pool kept awake while `work`
/// runs: each polls the pool for work (rayon's `yield_now`) instead of
/// going to sleep when it finds none, so a parallel region `work` starts is
/// picked up at once, without waking a sleeping thread (on a virtual
/// machine a wake-up is an interrupt to an idle virtual CPU). For the
/// shortest latency of small work, whose regions are short and many: the
/// other threads spin while `work` runs.
///
/// A poller stops when `work` ends, and also after [`MAX_IDLE`] without
/// finding work: a thread that took a poller while waiting inside other
/// work (two callers at once) is held up at most that long, never for good.
pub fn on_pool_awake<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let others = rayon::current_num_threads().saturating_sub(1);
    let done = AtomicBool::new(false);
    let polling = AtomicUsize::new(0);
    let (done, polling) = (&done, &polling);
    rayon::scope(|scope| {
        let owner = rayon::current_thread_index();
        for _ in 0..others {
            scope.spawn(move |_| {
                // The thread running `work` takes a poller back only while
                // it waits in a join: it has better things to do.
                if rayon::current_thread_index() != owner {
                    polling.fetch_add(1, Ordering::AcqRel);
                    poll_until(done);
                }
            });
        }
        let start = Instant::now();
        while polling.load(Ordering::Acquire) < others && start.elapsed() < START_WAIT {
            std::hint::spin_loop();
        }
        let _stop = StopOnDrop(done);
        work()
    })
}

/// How long a poller spins without finding work before it goes back to
/// rayon's own idling (and sleep).
pub const MAX_IDLE: Duration = Duration::from_millis(2);

/// How long `work` waits for the pollers to reach their threads (they
/// cannot while those threads are busy with other work).
const START_WAIT: Duration = Duration::from_micros(200);

/// Runs whatever work the pool has until `done` is set or nothing came for
/// [`MAX_IDLE`].
fn poll_until(done: &AtomicBool) {
    let mut idle_since = Instant::now();
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_since = Instant::now();
        } else if idle_since.elapsed() > MAX_IDLE {
            return;
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Sets its flag when dropped: the pollers stop even when `work` panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::{on_pool, on_pool_awake};

    #[test]
    fn work_runs_on_a_thread_of_the_pool_and_returns_its_result() {
        assert_eq!(on_pool(rayon::current_thread_index).map(|_| 1), Some(1));
        assert_eq!(
            on_pool_awake(rayon::current_thread_index).map(|_| 1),
            Some(1)
        );
        let sum: u64 = on_pool_awake(|| (0..10_000u64).into_par_iter().sum());
        assert_eq!(sum, 49_995_000);
    }

    #[test]
    fn a_panic_in_awake_work_reaches_the_caller_and_stops_the_pollers() {
        let caught = std::panic::catch_unwind(|| on_pool_awake(|| panic!("in the work")));
        // The scope returned, so every poller it spawned has stopped.
        assert!(caught.is_err());
        assert_eq!(on_pool_awake(|| 7), 7);
    }

    #[test]
    fn callers_at_once_each_finish_their_parallel_work() {
        let sums: Vec<u64> = std::thread::scope(|s| {
            let callers: Vec<_> = (0..4u64)
                .map(|c| {
                    s.spawn(move || {
                        (0..50)
                            .map(|_| {
                                on_pool_awake(|| {
                                    (0..1_000u64).into_par_iter().map(|x| x * c).sum::<u64>()
                                })
                            })
                            .sum()
                    })
                })
                .collect();
            callers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(sums, vec![0, 24_975_000, 49_950_000, 74_925_000]);
    }
}
