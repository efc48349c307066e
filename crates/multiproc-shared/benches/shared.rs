//! The `Value` benchmark, with Python's figure measured in the same run.
//!
//! | workload | unit | implementations |
//! |---|---|---|
//! | `value_locked_increment_2p` | ops/s (two processes each lock one shared value, increment it, unlock; the final count is verified) | `multiproc` (`Value<i32>`), `python-mp` (`multiprocessing.Value('i')` with `with v.get_lock(): v.value += 1`) |
//!
//! Prints one JSON object per line (`{"workload", "impl", "value", "unit"}`, the format
//! of the workspace's comparative runner), then the ratio. The workload function has
//! the runner's shape, `fn(iters) -> Duration`, so it can be lifted as is; the method
//! mirrors the runner's too: calibrate until one batch takes a twentieth of the budget,
//! then five rounds share the rest and the best is reported, on both sides.
//! `MULTIPROC_BENCH_SECONDS` sets the budget (default 1); `MULTIPROC_BENCH_PYTHON` the
//! interpreter (default `python3`; without one, Python's figure is skipped with a note).

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use multiproc_process::{Process, StartMethod};
use multiproc_shared::Value;
use multiproc_sync::Barrier;

const WORKLOAD: &str = "value_locked_increment_2p";
const ROUNDS: u32 = 5;

/// Handoffs seen in the last batch: how often a worker found that the other process
/// had incremented since its own previous increment (the lock changed hands).
static HANDOFFS: AtomicU64 = AtomicU64::new(0);

fn increment_worker((value, barrier, n): (Value<i32>, Barrier, u64)) -> (f64, u64) {
    barrier.wait().expect("start barrier");
    let start = std::time::Instant::now();
    let (mut last, mut handoffs) = (-1, 0);
    for _ in 0..n {
        let mut v = value.lock().expect("lock");
        handoffs += u64::from(*v != last + 1 && last >= 0);
        *v += 1;
        last = *v;
    }
    (start.elapsed().as_secs_f64(), handoffs)
}

/// `iters` locked increments of one `Value<i32>`, split between two processes (fork)
/// that start together; returns the slower one's time. Panics if the count is not exact.
/// (The `last` bookkeeping that counts handoffs is one compare inside the lock.)
pub fn value_locked_increment_2p(iters: u64) -> Duration {
    let value = Value::new(0i32).expect("create the value");
    let barrier = Barrier::new(2).expect("create the barrier");
    let halves = [iters / 2, iters - iters / 2];
    let mut workers: Vec<_> = halves
        .iter()
        .map(|&n| {
            let mut p = Process::new(increment_worker, (value.clone(), barrier.clone(), n))
                .with_start_method(StartMethod::Fork);
            p.start().expect("start a worker");
            p
        })
        .collect();
    let results: Vec<(f64, u64)> = workers.iter_mut().map(|p| p.join().expect("worker")).collect();
    let secs = results.iter().map(|r| r.0).fold(0.0, f64::max);
    HANDOFFS.store(results.iter().map(|r| r.1).sum(), Ordering::Relaxed);
    let count = value.load().expect("load the count");
    assert_eq!(count as u64, iters, "lost increments: two processes held the lock at once");
    Duration::from_secs_f64(secs)
}

fn budget() -> f64 {
    std::env::var("MULTIPROC_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0)
}

/// Best-of-rounds seconds per operation, as the comparative runner measures.
/// Also returns the handoffs per 1000 operations of the best round.
fn seconds_per_op(batch: fn(u64) -> Duration, budget: f64) -> (f64, f64) {
    let calibration = budget / 20.0;
    let mut iters: u64 = 1000;
    let per_op = loop {
        let took = batch(iters).as_secs_f64();
        if took >= calibration || iters >= 1 << 40 {
            break took / iters as f64;
        }
        let factor = if took > 0.0 { calibration / took * 1.2 } else { 100.0 };
        iters = (iters as f64 * factor.clamp(2.0, 100.0)).ceil() as u64;
    };
    let round = (budget - calibration).max(0.0) / f64::from(ROUNDS);
    let iters = ((round / per_op) as u64).max(2);
    let mut best = (f64::INFINITY, 0.0);
    for _ in 0..ROUNDS {
        let per_op = batch(iters).as_secs_f64() / iters as f64;
        if per_op < best.0 {
            best = (per_op, HANDOFFS.load(Ordering::Relaxed) as f64 * 1000.0 / iters as f64);
        }
    }
    best
}

fn emit(imp: &str, ops_per_sec: f64) {
    println!("{{\"workload\":\"{WORKLOAD}\",\"impl\":\"{imp}\",\"value\":{ops_per_sec:.4e},\"unit\":\"ops/s\"}}");
}

/// The same work in Python: two processes, `with v.get_lock(): v.value += 1`.
const PYTHON: &str = r#"
import math, multiprocessing as mp, sys, time

def worker(v, barrier, n, out):
    barrier.wait()
    t = time.perf_counter()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    out.put(time.perf_counter() - t)

def batch(iters):
    v, barrier, out = mp.Value('i', 0), mp.Barrier(2), mp.Queue()
    halves = [iters // 2, iters - iters // 2]
    ps = [mp.Process(target=worker, args=(v, barrier, n, out)) for n in halves]
    for p in ps: p.start()
    secs = max(out.get() for _ in ps)
    for p in ps: p.join()
    assert v.value == iters, (v.value, iters)
    return secs

def seconds_per_op(budget):
    calibration = budget / 20.0
    iters = 1000
    while True:
        took = batch(iters)
        if took >= calibration:
            per_op = took / iters
            break
        factor = calibration / took * 1.2 if took > 0 else 100.0
        iters = math.ceil(iters * min(max(factor, 2.0), 100.0))
    rnd = max(budget - calibration, 0.0) / 5
    iters = max(int(rnd / per_op), 2)
    return min(batch(iters) / iters for _ in range(5))

if __name__ == "__main__":
    mp.set_start_method("fork")
    print(1.0 / seconds_per_op(float(sys.argv[1])))
"#;

fn python(budget: f64) -> Result<f64, String> {
    let python = std::env::var("MULTIPROC_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(&python)
        .args(["-c", PYTHON, &budget.to_string()])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{python} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse::<f64>().map_err(|e| format!("unexpected output from {python}: {text:?} ({e})"))
}

fn main() -> ExitCode {
    // Lets spawned children take their role; must come first.
    multiproc_process::init();
    // `cargo test --benches` runs bench targets with `--bench`-less arguments to check
    // they start; a quick run is enough there.
    let measuring = std::env::args().any(|a| a == "--bench");
    let budget = if measuring { budget() } else { 0.05 };

    let (secs, handoffs) = seconds_per_op(value_locked_increment_2p, budget);
    let ours = 1.0 / secs;
    emit("multiproc", ours);
    eprintln!("{WORKLOAD}: the lock changed hands between the processes {handoffs:.1} times per 1000 increments");
    match python(budget) {
        Ok(theirs) => {
            emit("python-mp", theirs);
            let ratio = ours / theirs;
            if measuring {
                let verdict = if ratio >= 10.0 { "goal met" } else { "goal MISSED" };
                println!("{WORKLOAD}: multiproc is {ratio:.1}x Python (goal: at least 10x): {verdict}");
            } else {
                println!("{WORKLOAD}: smoke run ({budget} s, maybe unoptimised): figures not meaningful");
            }
        }
        Err(e) => eprintln!("{WORKLOAD}: Python's figure skipped: {e}"),
    }
    ExitCode::SUCCESS
}
