//! Issue 9's workloads: `Pool` and `ProcessPoolExecutor` with trivial tasks (what the
//! pool itself costs per task) and the CPU-bound speedup demo.
//!
//! Every pool has `cpu_count()` workers, as Python's `Pool()` and
//! `ProcessPoolExecutor()` default to, and is started (and warmed up) before the clock
//! starts; an operation is one task (one item for the map forms).

use std::time::{Duration, Instant};

use multiproc::{Pool, ProcessPoolExecutor, cpu_count};

/// The trivial task: what is measured is the pool, not the work.
fn trivial(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// The numbers summed by each of the four tasks of `cpu_sum_speedup`.
const SUM_N: u64 = 100_000_000;

/// Sums 0..n one number at a time; `black_box` keeps the optimiser from replacing the
/// loop with n(n-1)/2 (as in `examples/cpu_speedup.rs`). Never inlined, so that the
/// serial baseline runs the same machine code as the workers, which call it through a
/// function pointer.
#[inline(never)]
fn sum_to(n: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        sum = sum.wrapping_add(std::hint::black_box(i));
    }
    sum
}

fn pool() -> Pool {
    let pool = Pool::new(cpu_count()).expect("start a pool");
    // Warm up: every worker has started and run a task.
    pool.map_chunked(trivial, 0..64, 1).expect("warm-up map");
    pool
}

/// `Pool::map` of a trivial function, default chunk size (Python's rule).
pub(crate) fn map_trivial(iters: u64) -> Duration {
    let pool = pool();
    let start = Instant::now();
    let out = pool.map(trivial, 0..iters).expect("map");
    let took = start.elapsed();
    assert_eq!(out.len() as u64, iters);
    took
}

/// `Pool::map` of a trivial function, one item per task.
pub(crate) fn map_trivial_chunk1(iters: u64) -> Duration {
    let pool = pool();
    let start = Instant::now();
    let out = pool.map_chunked(trivial, 0..iters, 1).expect("map");
    let took = start.elapsed();
    assert_eq!(out.len() as u64, iters);
    took
}

/// One `apply_async(..).get()` after the other: the round trip of a task.
pub(crate) fn apply_async_rtt(iters: u64) -> Duration {
    let pool = pool();
    let start = Instant::now();
    for i in 0..iters {
        pool.apply_async(trivial, i).get().expect("apply_async");
    }
    start.elapsed()
}

/// `Pool::imap_unordered`, one item per task.
pub(crate) fn imap_unordered(iters: u64) -> Duration {
    let pool = pool();
    let start = Instant::now();
    let n = pool.imap_unordered(trivial, 0..iters).filter(Result::is_ok).count();
    let took = start.elapsed();
    assert_eq!(n as u64, iters);
    took
}

/// `ProcessPoolExecutor`: submit every task, then take every result.
pub(crate) fn executor_submit_result(iters: u64) -> Duration {
    let ex = ProcessPoolExecutor::new(cpu_count()).expect("start an executor");
    for f in (0..64).map(|i| ex.submit(trivial, i)).collect::<Vec<_>>() {
        f.result().expect("warm-up");
    }
    let start = Instant::now();
    let futures: Vec<_> = (0..iters).map(|i| ex.submit(trivial, i)).collect();
    for f in &futures {
        f.result().expect("result");
    }
    start.elapsed()
}

/// Four sums on a pool of `cpu_count()` workers (one operation: all four).
pub(crate) fn cpu_sum_pool(iters: u64) -> Duration {
    let pool = pool();
    let start = Instant::now();
    for _ in 0..iters {
        let sums = pool.map_chunked(sum_to, [SUM_N; 4], 1).expect("map");
        assert_eq!(sums[0], SUM_N * (SUM_N - 1) / 2);
    }
    start.elapsed()
}

/// The same four sums one after the other in this process: the speedup's baseline.
pub(crate) fn cpu_sum_serial(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let sums: Vec<u64> = [SUM_N; 4].iter().map(|&n| sum_to(n)).collect();
        assert_eq!(sums[0], SUM_N * (SUM_N - 1) / 2);
    }
    start.elapsed()
}
