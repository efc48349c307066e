//! Shared memory between processes (Python: `multiprocessing.Value`, `Array`, `RawValue`):
//! a few workers count into shared counters and fill a shared array, under each start
//! method. Run with `cargo run --release --example shared_value`; it exits with 0 only
//! if every count is exact.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use multiproc::{Process, StartMethod};
use multiproc_shared::{Array, RawValue, Value};

const WORKERS: usize = 4;
const INCREMENTS: u64 = 10_000;
const SLOTS_PER_WORKER: usize = 8;

/// What each worker receives: the handles travel to the child like any argument.
type Shared = (usize, Value<u64>, Array<u64>, RawValue<u64>);

fn worker((id, total, squares, finished): Shared) -> u64 {
    // `with total.get_lock(): total.value += 1`, ten thousand times.
    for _ in 0..INCREMENTS {
        *total.lock().expect("lock the counter") += 1;
    }
    // Fill this worker's stretch of the array under one lock.
    {
        let mut slots = squares.lock().expect("lock the array");
        for i in id * SLOTS_PER_WORKER..(id + 1) * SLOTS_PER_WORKER {
            slots[i] = (i * i) as u64;
        }
    }
    // A lock-free counter: RawValue integers are atomics.
    finished.as_atomic().fetch_add(1, Ordering::SeqCst);
    INCREMENTS
}

fn run(method: StartMethod) -> Result<bool, Box<dyn std::error::Error>> {
    let total = Value::new(0u64)?;
    let squares = Array::<u64>::zeroed(WORKERS * SLOTS_PER_WORKER)?;
    let finished = RawValue::new(0u64)?;

    let mut workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            Process::new(worker, (id, total.clone(), squares.clone(), finished.clone())).with_start_method(method)
        })
        .collect();
    for w in &mut workers {
        w.start()?;
    }
    let mut reported = 0;
    for w in &mut workers {
        reported += w.join()?;
    }

    let total = total.load()?;
    let squares = squares.to_vec()?;
    let finished = finished.load();
    let squares_ok = squares.iter().enumerate().all(|(i, &s)| s == (i * i) as u64);
    let expected = WORKERS as u64 * INCREMENTS;
    println!(
        "{:>10}: total {total} (expected {expected}), workers finished {finished}/{WORKERS}, \
         array {} (last {:?})",
        method.name(),
        if squares_ok { "exact" } else { "WRONG" },
        squares.last()
    );
    Ok(total == expected && reported == expected && finished == WORKERS as u64 && squares_ok)
}

fn main() -> ExitCode {
    multiproc::init(); // first line of main: Python's `if __name__ == "__main__":`
    println!("{WORKERS} workers x {INCREMENTS} locked increments of one shared Value, plus a shared Array");
    let mut all_exact = true;
    for method in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
        match run(method) {
            Ok(exact) => all_exact &= exact,
            Err(e) => {
                eprintln!("{method}: {e}");
                all_exact = false;
            }
        }
    }
    if all_exact {
        println!("all counts exact");
        ExitCode::SUCCESS
    } else {
        println!("some counts were wrong");
        ExitCode::FAILURE
    }
}
