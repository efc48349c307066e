//! Issue 7's workload: two processes increment one shared `Value<i32>` under its lock,
//! the work of Python's `with v.get_lock(): v.value += 1`.

use std::time::{Duration, Instant};

use multiproc::{Barrier, Process, StartMethod, Value};

/// One incrementer: waits for the other, then `n` locked increments; returns the
/// seconds they took.
fn incrementer((value, barrier, n): (Value<i32>, Barrier, u64)) -> f64 {
    barrier.wait().expect("start barrier");
    let start = Instant::now();
    for _ in 0..n {
        *value.lock().expect("lock the value") += 1;
    }
    start.elapsed().as_secs_f64()
}

/// `iters` locked increments of one `Value<i32>`, split between two processes (fork)
/// that start together; the slower one's time. Panics if the count is not exact.
pub(crate) fn value_locked_increment_2p(iters: u64) -> Duration {
    let value = Value::new(0i32).expect("create the value");
    let barrier = Barrier::new(2).expect("create a barrier");
    let mut workers: Vec<_> = [iters / 2, iters - iters / 2]
        .into_iter()
        .map(|n| {
            let mut p =
                Process::new(incrementer, (value.clone(), barrier.clone(), n)).with_start_method(StartMethod::Fork);
            p.start().expect("start an incrementer");
            p
        })
        .collect();
    let secs = workers.iter_mut().map(|p| p.join().expect("join an incrementer")).fold(0.0, f64::max);
    let count = value.load().expect("load the count");
    assert_eq!(u64::try_from(count).ok(), Some(iters), "lost increments: two processes held the lock at once");
    Duration::from_secs_f64(secs)
}
