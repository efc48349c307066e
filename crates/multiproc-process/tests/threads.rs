//! Starting children from a parent with several threads.
//!
//! spawn and forkserver children never see another thread's locks, so a child may lock a
//! `Mutex` that a thread of the parent holds at the time. fork copies the locks as they
//! are, which is the user's problem for the user's own locks (as in Python), but the
//! library's own locks and the standard streams must survive forks from busy threads.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use multiproc_process::{Process, StartMethod, current_process};
use watchdog::{METHODS, THREAD_SAFE_METHODS, started, watchdog};

static SHARED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Locks the static mutex that a thread of the parent is holding at the time.
fn lock_shared(x: u32) -> u32 {
    let mut v = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    v.push(x);
    v.iter().sum()
}

/// Keeps the other threads of the parent busy with the things a real program does:
/// allocating, asking for `current_process()`, holding the standard streams' locks.
fn busy_threads(n: usize, stop: &Arc<AtomicBool>) -> Vec<thread::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut junk = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    junk.push(vec![i as u8; 1 + junk.len() % 4096]);
                    if junk.len() > 64 {
                        junk.clear();
                    }
                    let _ = current_process().name.len();
                    if i % 2 == 0 {
                        // Hold the stream locks without printing anything.
                        let _out = std::io::stdout().lock();
                        let _err = std::io::stderr().lock();
                        thread::yield_now();
                    }
                }
            })
        })
        .collect()
}

#[test]
fn child_locks_a_mutex_that_a_parent_thread_holds() {
    watchdog("child_locks_a_mutex_that_a_parent_thread_holds", || {
        let stop = Arc::new(AtomicBool::new(false));
        let busy = busy_threads(3, &stop);
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = thread::spawn(move || {
            let guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            drop(guard);
        });
        locked_rx.recv().unwrap();
        for m in THREAD_SAFE_METHODS {
            for i in 0..5 {
                let mut p = started(Process::new(lock_shared, i).with_start_method(m));
                // The child's mutex is fresh (spawn) or a copy from before any thread
                // existed (forkserver): it starts out unlocked and empty.
                assert_eq!(p.join().unwrap(), i, "[{m}] child saw the parent's locked mutex");
                assert_eq!(p.start_method(), m, "[{m}] the method actually used");
            }
        }
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in busy {
            t.join().unwrap();
        }
    });
}

fn square(x: u64) -> u64 {
    x * x
}

/// Several threads start children at the same time, under every method, while other
/// threads hammer the library's state and the stream locks.
#[test]
fn concurrent_starts_from_many_threads() {
    watchdog("concurrent_starts_from_many_threads", || {
        let stop = Arc::new(AtomicBool::new(false));
        let busy = busy_threads(2, &stop);
        for m in METHODS {
            let starters = 4;
            let barrier = Arc::new(Barrier::new(starters));
            let handles: Vec<_> = (0..starters as u64)
                .map(|t| {
                    let barrier = barrier.clone();
                    thread::spawn(move || {
                        barrier.wait();
                        for i in 0..25u64 {
                            let x = t * 1000 + i;
                            let mut p = started(Process::new(square, x).with_start_method(m));
                            assert_eq!(p.join().unwrap(), x * x, "[{m}] thread {t} child {i}");
                        }
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.join() {
                    std::panic::resume_unwind(e);
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in busy {
            t.join().unwrap();
        }
    });
}

fn nap(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

/// Children started by one thread are joined by another (a `Process` is `Send`).
#[test]
fn join_from_another_thread() {
    watchdog("join_from_another_thread", || {
        for m in METHODS {
            let mut p = Process::new(nap, 20).with_start_method(m);
            p.start().unwrap();
            let joined = thread::spawn(move || {
                let mut p = watchdog::Reaped::new(p);
                p.join().map_err(|e| e.to_string())
            });
            assert_eq!(joined.join().unwrap(), Ok(20), "[{m}]");
        }
    });
}

#[test]
fn start_method_is_not_silently_changed() {
    // The test binary is multi-threaded, but its fork server was started by test_init!
    // before any thread existed, so forkserver requests really use it.
    watchdog("start_method_is_not_silently_changed", || {
        let mut p = started(Process::new(square, 3).with_start_method(StartMethod::ForkServer));
        assert_eq!(p.join().unwrap(), 9);
        assert_eq!(p.start_method(), StartMethod::ForkServer);
    });
}
