//! Lock benchmarks, with their baselines measured in the same run.
//!
//! | workload | unit | implementations |
//! |---|---|---|
//! | `lock_uncontended` | ns/op (lock + unlock, one process) | `multiproc` (our `Lock`), `atomic_cas` (a bare CAS lock + swap unlock), `pthread_robust` (the glibc mutex underneath, called directly), `parking_lot`, `python` |
//! | `lock_contended_2p` | ops/s (2 processes lock, increment a shared counter, unlock; count verified) | `multiproc`, `parking_lot` (2 threads), `python` |
//!
//! Prints one JSON object per line (`{"workload", "impl", "value", "unit"}`), the format
//! of the workspace's comparative runner; each workload function is self-contained so
//! it can be lifted into that runner. Each measurement runs about one second
//! (`MULTIPROC_BENCH_SECS` changes that). Python's figures need `python3` on the PATH and
//! are skipped, with a note on stderr, without it.

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc_process::{Process, StartMethod};
use multiproc_sync::{Barrier, Lock};

#[path = "../tests/support/counter.rs"]
mod counter;
use counter::Counters;

fn target_time() -> Duration {
    let secs = std::env::var("MULTIPROC_BENCH_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(secs.max(0.01))
}

/// How many iterations of `run` take about `target_time()`.
fn calibrate(run: impl Fn(u64) -> Duration) -> u64 {
    let mut n = 1_000u64;
    loop {
        let t = run(n);
        if t >= Duration::from_millis(50) || n >= 1 << 34 {
            let per = t.as_secs_f64() / n as f64;
            return ((target_time().as_secs_f64() / per.max(1e-12)) as u64).max(1);
        }
        n *= 10;
    }
}

fn emit(workload: &str, imp: &str, value: f64, unit: &str) {
    println!("{{\"workload\": \"{workload}\", \"impl\": \"{imp}\", \"value\": {value:.3}, \"unit\": \"{unit}\"}}");
}

// ---- lock_uncontended: ns per lock + unlock in one process ----

/// Our `Lock`: `n` lock/unlock pairs; returns the elapsed time.
pub fn lock_uncontended_multiproc(n: u64) -> Duration {
    let lock = Lock::new().expect("create lock");
    let start = Instant::now();
    for _ in 0..n {
        let g = lock.lock().expect("lock");
        black_box(&g);
        drop(g);
    }
    start.elapsed()
}

/// The floor: a bare compare-and-swap lock with a swap unlock (what any futex lock needs
/// at least: the swap tells the unlocker whether to wake someone).
pub fn lock_uncontended_atomic_cas(n: u64) -> Duration {
    let word = AtomicU32::new(0);
    let start = Instant::now();
    for _ in 0..n {
        while black_box(&word).compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        black_box(black_box(&word).swap(0, Ordering::Release));
    }
    start.elapsed()
}

/// The robust pthread mutex underneath our `Lock`, called directly: what the wrapper
/// costs on top of glibc.
pub fn lock_uncontended_pthread_robust(n: u64) -> Duration {
    use multiproc_sys::robust::{MutexKind, RobustMutex};
    let seg = multiproc_sys::shm::Segment::create("bench", std::mem::size_of::<RobustMutex>()).expect("segment");
    // SAFETY: the mapping is page aligned, zeroed, large enough, outlives `m`, and is not
    // shared with anyone.
    let m = unsafe { &*(seg.as_ptr() as *const RobustMutex) };
    // SAFETY: fresh, unshared memory.
    unsafe { m.init(MutexKind::ErrorCheck) }.expect("init");
    let start = Instant::now();
    for _ in 0..n {
        black_box(m.lock().expect("lock"));
        m.unlock().expect("unlock");
    }
    start.elapsed()
}

/// `parking_lot::Mutex` (threads of one process only), for reference.
pub fn lock_uncontended_parking_lot(n: u64) -> Duration {
    let m = parking_lot::Mutex::new(());
    let start = Instant::now();
    for _ in 0..n {
        let g = black_box(&m).lock();
        black_box(&g);
        drop(g);
    }
    start.elapsed()
}

// ---- lock_contended_2p: ops/s, two processes lock, increment, unlock ----

fn contended_worker((lock, counter, barrier, n): (Lock, Counters, Barrier, u64)) -> f64 {
    barrier.wait().expect("start barrier");
    let start = Instant::now();
    for _ in 0..n {
        let g = lock.lock().expect("lock");
        counter.racy_increment(0);
        drop(g);
    }
    start.elapsed().as_secs_f64()
}

/// Two processes (fork) each do `n` lock / increment / unlock rounds on one `Lock` and
/// one shared counter. Returns the slower process's time and the final count.
pub fn lock_contended_2p_multiproc(n: u64) -> (Duration, u64) {
    let lock = Lock::new().expect("create lock");
    let counter = Counters::new();
    let barrier = Barrier::new(2).expect("create barrier");
    let mut procs: Vec<_> = (0..2)
        .map(|_| {
            let mut p = Process::new(contended_worker, (lock.clone(), counter.clone(), barrier.clone(), n))
                .with_start_method(StartMethod::Fork);
            p.start().expect("start worker");
            p
        })
        .collect();
    let secs = procs.iter_mut().map(|p| p.join().expect("worker")).fold(0.0, f64::max);
    (Duration::from_secs_f64(secs), counter.get(0))
}

/// The same with a `parking_lot::Mutex<u64>` shared by two threads.
pub fn lock_contended_2t_parking_lot(n: u64) -> (Duration, u64) {
    let m = Arc::new(parking_lot::Mutex::new(0u64));
    let b = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (m, b) = (m.clone(), b.clone());
            std::thread::spawn(move || {
                b.wait();
                let start = Instant::now();
                for _ in 0..n {
                    *m.lock() += 1;
                }
                start.elapsed()
            })
        })
        .collect();
    let t = threads.into_iter().map(|t| t.join().expect("thread")).max().unwrap_or_default();
    let count = *m.lock();
    (t, count)
}

// ---- Python's multiprocessing.Lock, the same two workloads ----

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time

def uncontended(n):
    lock = mp.Lock()
    acquire, release = lock.acquire, lock.release
    t = time.perf_counter()
    for _ in range(n):
        acquire(); release()
    return (time.perf_counter() - t) / n * 1e9

def worker(lock, value, barrier, n, out):
    barrier.wait()
    t = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        value.value += 1
        lock.release()
    out.put(time.perf_counter() - t)

def contended(n):
    lock, value, barrier, out = mp.Lock(), mp.Value('q', 0, lock=False), mp.Barrier(2), mp.Queue()
    ps = [mp.Process(target=worker, args=(lock, value, barrier, n, out)) for _ in range(2)]
    for p in ps: p.start()
    secs = max(out.get() for _ in ps)
    for p in ps: p.join()
    assert value.value == 2 * n, (value.value, 2 * n)
    return 2 * n / secs

if __name__ == "__main__":
    mp.set_start_method("fork")
    secs = float(sys.argv[1])
    n = 10000
    while True:
        t = time.perf_counter(); uncontended(n); t = time.perf_counter() - t
        if t > 0.05: break
        n *= 10
    print("lock_uncontended", uncontended(int(n * secs / t)))
    n = 2000
    t = time.perf_counter(); contended(n); t = time.perf_counter() - t
    print("lock_contended_2p", contended(max(1000, int(n * secs / t))))
"#;

fn python() -> Option<Vec<(String, f64)>> {
    let out = Command::new("python3").arg("-c").arg(PYTHON).arg(target_time().as_secs_f64().to_string()).output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("python3 failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("python3 not run ({e}); skipping Python's figures");
            return None;
        }
    };
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects workloads by substring.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));

    if wanted("lock_uncontended") {
        for (imp, f) in [
            ("multiproc", lock_uncontended_multiproc as fn(u64) -> Duration),
            ("atomic_cas", lock_uncontended_atomic_cas),
            ("pthread_robust", lock_uncontended_pthread_robust),
            ("parking_lot", lock_uncontended_parking_lot),
        ] {
            let n = calibrate(f);
            let t = f(n);
            emit("lock_uncontended", imp, t.as_nanos() as f64 / n as f64, "ns/op");
        }
    }
    if wanted("lock_contended_2p") {
        let n = calibrate(|n| lock_contended_2p_multiproc(n).0) / 2;
        let (t, count) = lock_contended_2p_multiproc(n);
        assert_eq!(count, 2 * n, "the shared count is wrong: the lock let both processes in at once");
        emit("lock_contended_2p", "multiproc", (2 * n) as f64 / t.as_secs_f64(), "ops/s");

        let n = calibrate(|n| lock_contended_2t_parking_lot(n).0) / 2;
        let (t, count) = lock_contended_2t_parking_lot(n);
        assert_eq!(count, 2 * n);
        emit("lock_contended_2p", "parking_lot", (2 * n) as f64 / t.as_secs_f64(), "ops/s");
    }
    if wanted("lock_uncontended") || wanted("lock_contended_2p") {
        for (workload, value) in python().unwrap_or_default() {
            if wanted(&workload) {
                let unit = if workload == "lock_uncontended" { "ns/op" } else { "ops/s" };
                emit(&workload, "python", value, unit);
            }
        }
    }
}
