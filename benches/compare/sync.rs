//! Issue 5's workloads: a `Lock` taken and released in one process, and fought over by
//! two, with the references they are judged against.
//!
//! Uncontended, the floor is a bare compare-and-swap lock with a swap unlock: what any
//! futex lock does at the least (the swap tells the unlocker whether to wake anyone).
//! The glibc robust mutex underneath `Lock`, called directly, shows what the wrapper adds
//! on top of it; `parking_lot` shows the best in-process lock. Contended, the reference is
//! a `parking_lot::Mutex` fought over by two threads of one process.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc::sys::robust::{MutexKind, RobustMutex};
use multiproc::sys::shm::Segment;
use multiproc::{Barrier, Lock, Process, RawValue, StartMethod};

/// `Lock::lock` + drop of the guard, in one process.
pub(crate) fn lock_uncontended(iters: u64) -> Duration {
    let lock = Lock::new().expect("create a lock");
    let start = Instant::now();
    for _ in 0..iters {
        let guard = lock.lock().expect("lock");
        black_box(&guard);
        drop(guard);
    }
    start.elapsed()
}

/// Raw reference: a compare-and-swap lock and a swap unlock on one atomic word.
pub(crate) fn raw_cas_lock_unlock(iters: u64) -> Duration {
    let word = AtomicU32::new(0);
    let start = Instant::now();
    for _ in 0..iters {
        while black_box(&word).compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        black_box(black_box(&word).swap(0, Ordering::Release));
    }
    start.elapsed()
}

/// Raw reference: the robust, process-shared glibc mutex underneath `Lock`, called
/// directly.
pub(crate) fn raw_pthread_robust(iters: u64) -> Duration {
    let seg = Segment::create("bench-robust-mutex", std::mem::size_of::<RobustMutex>()).expect("create a segment");
    // SAFETY: the mapping is page aligned, zeroed, large enough, outlives `m`, and is not
    // shared with anyone.
    let m = unsafe { &*(seg.as_ptr() as *const RobustMutex) };
    // SAFETY: fresh memory that nothing else uses.
    unsafe { m.init(MutexKind::ErrorCheck) }.expect("initialise the mutex");
    let start = Instant::now();
    for _ in 0..iters {
        black_box(m.lock().expect("lock"));
        m.unlock().expect("unlock");
    }
    start.elapsed()
}

/// Raw reference: `parking_lot::Mutex` lock + unlock (threads of one process only).
pub(crate) fn raw_parking_lot(iters: u64) -> Duration {
    let m = parking_lot::Mutex::new(());
    let start = Instant::now();
    for _ in 0..iters {
        let guard = black_box(&m).lock();
        black_box(&guard);
        drop(guard);
    }
    start.elapsed()
}

/// The two halves of `iters` operations, one per process or thread.
fn halves(iters: u64) -> [u64; 2] {
    [iters / 2, iters - iters / 2]
}

/// Load then store: loses increments unless a lock keeps the two processes apart, so a
/// correct total proves the lock did.
fn racy_increment(counter: &RawValue<u64>) {
    let cell = counter.as_atomic();
    cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// One contender: waits for the other, then `n` rounds of lock, increment, unlock;
/// returns the seconds its rounds took.
fn contender((lock, counter, barrier, n): (Lock, RawValue<u64>, Barrier, u64)) -> f64 {
    barrier.wait().expect("start barrier");
    let start = Instant::now();
    for _ in 0..n {
        let guard = lock.lock().expect("lock");
        racy_increment(&counter);
        drop(guard);
    }
    start.elapsed().as_secs_f64()
}

/// Two processes (fork) share `iters` rounds of lock, increment a shared counter,
/// unlock, starting together; the slower one's time. Panics if the count is wrong.
pub(crate) fn lock_contended_2p(iters: u64) -> Duration {
    let lock = Lock::new().expect("create a lock");
    let counter = RawValue::new(0u64).expect("create the counter");
    let barrier = Barrier::new(2).expect("create a barrier");
    let mut workers: Vec<_> = halves(iters)
        .into_iter()
        .map(|n| {
            let mut p = Process::new(contender, (lock.clone(), counter.clone(), barrier.clone(), n))
                .with_start_method(StartMethod::Fork);
            p.start().expect("start a contender");
            p
        })
        .collect();
    let secs = workers.iter_mut().map(|p| p.join().expect("join a contender")).fold(0.0, f64::max);
    assert_eq!(counter.load(), iters, "lost increments: the lock let both processes in at once");
    Duration::from_secs_f64(secs)
}

/// Raw reference: two threads share `iters` increments of a `parking_lot::Mutex<u64>`.
pub(crate) fn raw_parking_lot_2t(iters: u64) -> Duration {
    let m = Arc::new(parking_lot::Mutex::new(0u64));
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = halves(iters)
        .into_iter()
        .map(|n| {
            let (m, barrier) = (m.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for _ in 0..n {
                    *m.lock() += 1;
                }
                start.elapsed()
            })
        })
        .collect();
    let took = threads.into_iter().map(|t| t.join().expect("join a thread")).max().unwrap_or_default();
    assert_eq!(*m.lock(), iters, "parking_lot lost increments");
    took
}
