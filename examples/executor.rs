//! concurrent.futures: a ProcessPoolExecutor (submit/result, map, as_completed,
//! add_done_callback) with a ThreadPoolExecutor beside it, sharing the same Future.
//!
//! Run with `cargo run --example executor`.

use std::sync::mpsc;
use std::time::Duration;

use multiproc::{Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed};

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

fn sleep_then_echo(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let procs = ProcessPoolExecutor::new(2)?;

    // submit / result
    let f = procs.submit(is_prime, 1_000_000_007);
    println!("is 1000000007 prime? {}", f.result()?);
    assert!(*f.result()?);

    // map: outcomes in input order
    let candidates = [112_272_535_095_293u64, 112_582_705_942_171, 115_280_095_190_773, 1_099_726_899_285_419];
    let primes: Vec<bool> = procs.map(is_prime, candidates).collect::<Result<_, _>>()?;
    for (n, p) in candidates.iter().zip(&primes) {
        println!("{n} is prime: {p}");
    }
    assert_eq!(primes, [true, true, true, false]);

    // as_completed: in completion order, not submission order (two workers: 500 on
    // one, 100 then 250 on the other)
    let futures: Vec<Future<u64>> = [500, 100, 250].into_iter().map(|ms| procs.submit(sleep_then_echo, ms)).collect();
    let order: Vec<u64> = as_completed(&futures, Duration::from_secs(60))
        .map(|f| f.map(|f| *f.result().expect("task ran")))
        .collect::<Result<_, _>>()?;
    println!("as_completed order: {order:?}");
    assert_eq!(order, [100, 250, 500]);

    // add_done_callback: runs when the task finishes
    let (tx, rx) = mpsc::channel();
    let f = procs.submit(is_prime, 97);
    f.add_done_callback(move |f| {
        let _ = tx.send(format!("callback: 97 is prime = {:?}", f.result()));
    });
    let message = rx.recv_timeout(Duration::from_secs(60))?;
    println!("{message}");
    assert!(message.contains("Ok(true)"));

    // The same Future from a ThreadPoolExecutor, whose tasks are closures.
    let threads = ThreadPoolExecutor::new(4);
    let word = String::from("threads");
    let g = threads.submit(move || word.len());
    println!("thread task: {}", g.result()?);
    let doubled: Vec<u64> = threads.map(|x: u64| x * 2, 1..=5).collect::<Result<_, _>>()?;
    println!("thread map: {doubled:?}");
    assert_eq!(doubled, [2, 4, 6, 8, 10]);

    procs.shutdown(true, false);
    threads.shutdown(true, false);
    println!("executor example finished");
    Ok(())
}
