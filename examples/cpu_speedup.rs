//! The CPU-bound demo: four sums of 0..N (10^9 by default), first one after the other,
//! then on a pool of `cpu_count()` worker processes; prints both times and the speedup.
//!
//! Run with `cargo run --release --example cpu_speedup [N]`.

use std::time::Instant;

use multiproc::{Pool, cpu_count};

/// Sums 0..n one number at a time. `black_box` hides each number from the optimiser,
/// which would otherwise replace the loop with n(n-1)/2 and measure nothing.
#[inline(never)]
fn sum_to(n: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        sum = sum.wrapping_add(std::hint::black_box(i));
    }
    sum
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let n: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|e| format!("N must be a number, got {arg:?}: {e}"))?,
        None => 1_000_000_000,
    };
    let jobs = [n; 4];
    let expected = (n.wrapping_mul(n.wrapping_sub(1)) / 2) as u64;

    let t = Instant::now();
    let serial: Vec<u64> = jobs.iter().map(|&n| sum_to(n)).collect();
    let serial_time = t.elapsed();

    let pool = Pool::new(cpu_count())?;
    let t = Instant::now();
    let parallel = pool.map_chunked(sum_to, jobs, 1)?;
    let pool_time = t.elapsed();

    assert_eq!(serial, parallel);
    assert!(serial.iter().all(|&s| s == expected), "wrong sum: {serial:?}, expected {expected}");
    println!("four sums of 0..{n}");
    println!("serial:              {serial_time:?}");
    println!("pool of {} workers:   {pool_time:?}", pool.processes());
    println!("speedup:             {:.2}x", serial_time.as_secs_f64() / pool_time.as_secs_f64());
    Ok(())
}
