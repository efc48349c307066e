//! The Pool walk-through: apply vs apply_async, map, imap with a progress bar,
//! callbacks, an error callback, and terminate.
//!
//! Run with `cargo run --example pool`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use multiproc::{Pool, TaskError, cpu_count};

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    x * x
}

fn checked_sqrt(x: i64) -> f64 {
    assert!(x >= 0, "cannot take the square root of {x}");
    (x as f64).sqrt()
}

fn nap(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Must come first: spawn and forkserver children re-enter `main` here.
    multiproc::init();
    let workers = cpu_count().clamp(2, 4);
    let pool = Pool::new(workers)?;
    println!("pool of {} worker processes: {:?}", pool.processes(), pool.worker_pids());

    // apply waits; apply_async returns at once and the results come later.
    let t = Instant::now();
    let one_by_one: Vec<u64> = (0..4).map(|x| pool.apply(slow_square, x)).collect::<Result<_, _>>()?;
    println!("apply x4:       {one_by_one:?} in {:?}", t.elapsed());
    let t = Instant::now();
    let pending: Vec<_> = (0..4).map(|x| pool.apply_async(slow_square, x)).collect();
    let together: Vec<u64> = pending.into_iter().map(|r| r.get()).collect::<Result<_, _>>()?;
    println!("apply_async x4: {together:?} in {:?}", t.elapsed());
    assert_eq!(one_by_one, together);

    // map: results in input order.
    let squares = pool.map(slow_square, 0..10)?;
    println!("map:            {squares:?}");
    assert_eq!(squares, (0..10).map(|x| x * x).collect::<Vec<_>>());

    // imap: results one by one, in order, as they come, with a progress bar.
    let n = 60;
    let bar = ProgressBar::new(n);
    bar.set_style(ProgressStyle::with_template("imap  [{bar:40}] {pos}/{len} {msg}")?.progress_chars("=> "));
    let mut total = 0;
    for r in pool.imap(slow_square, 0..n) {
        total += r?;
        bar.inc(1);
    }
    bar.finish_with_message("done");
    assert_eq!(total, (0..n).map(|x| x * x).sum::<u64>());
    println!("imap total:     {total}");

    // Callbacks run in this process (on the pool's manager thread) as results arrive.
    let log = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let results: Vec<_> = [16, -1, 25]
        .into_iter()
        .map(|x| {
            let (log, errors) = (log.clone(), errors.clone());
            pool.apply_async_with(
                checked_sqrt,
                x,
                move |root: &f64| log.lock().unwrap().push(format!("sqrt({x}) = {root}")),
                move |e: &TaskError| errors.lock().unwrap().push(format!("sqrt({x}) failed: {e}")),
            )
        })
        .collect();
    for r in results {
        let _ = r.get();
    }
    println!("callback:       {:?}", log.lock().unwrap());
    println!("error_callback: {:?}", errors.lock().unwrap());
    assert_eq!(log.lock().unwrap().len(), 2);
    assert_eq!(errors.lock().unwrap().len(), 1);

    // terminate: the workers are killed at once; what was pending fails, nothing hangs.
    let sleepers: Vec<_> = (0..workers).map(|_| pool.apply_async(nap, 60)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    pool.terminate();
    for r in sleepers {
        let e = r.get().expect_err("terminated");
        assert_eq!(e, TaskError::PoolTerminated);
    }
    println!("terminate:      pending results failed with {:?} after {:?}", TaskError::PoolTerminated, t.elapsed());
    pool.join()?;
    println!("pool example finished");
    Ok(())
}
