//! Issue 8's workloads: a `Manager` dict used from the parent and from two processes.
//!
//! | workload | what one operation is |
//! |---|---|
//! | `manager_dict_setget` | the parent sets a key and gets it back (two round trips) |
//! | `manager_dict_contended_2p` | two processes increment one key under a manager lock (lock, get, set, unlock); verified |
//! | `manager_update_with` | the parent increments a key with `update_with` (one round trip); Python: lock + get + set |
//! | `manager_update_with_2p` | two processes increment one key with `update_with`, no lock; Python: under the lock; verified |
//!
//! One manager serves the whole run (Python's baseline also starts one); children
//! (fork) are started before the clock starts.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use multiproc::manager::{DictProxy, Manager};
use multiproc::{Barrier, Lock, Process, StartMethod};

/// One manager for the whole run (Python's baselines also start theirs once).
fn manager() -> &'static Manager {
    static MANAGER: OnceLock<Manager> = OnceLock::new();
    MANAGER.get_or_init(|| Manager::start().expect("start a manager"))
}

/// `manager_dict_setget`: one set and one get from the parent.
pub(crate) fn dict_setget(iters: u64) -> Duration {
    let d: DictProxy<u32, u64> = manager().dict().expect("dict");
    d.insert(0, 0).expect("warm up");
    let start = Instant::now();
    for i in 0..iters {
        d.insert(0, i).expect("insert");
        let v = d.get(&0).expect("get");
        assert_eq!(v, Some(i));
    }
    start.elapsed()
}

fn add_one(n: Option<u64>) -> u64 {
    n.unwrap_or(0) + 1
}

/// `manager_update_with`: one `update_with` from the parent.
pub(crate) fn update_with(iters: u64) -> Duration {
    let d: DictProxy<u32, u64> = manager().dict().expect("dict");
    d.update_with(&0, add_one).expect("warm up");
    let start = Instant::now();
    for _ in 0..iters {
        d.update_with(&0, add_one).expect("update_with");
    }
    let took = start.elapsed();
    assert_eq!(d.get(&0).expect("get"), Some(iters + 1));
    took
}

type Contender = (DictProxy<String, u64>, Lock, Barrier, u64);

fn increment_under_lock((d, lock, go, n): Contender) {
    go.wait().expect("barrier");
    for _ in 0..n {
        let _held = lock.lock().expect("lock");
        let v = d.get("count").expect("get").expect("count");
        d.insert("count".to_owned(), v + 1).expect("insert");
    }
}

fn increment_with_update((d, _lock, go, n): Contender) {
    go.wait().expect("barrier");
    for _ in 0..n {
        d.update_with("count", add_one).expect("update_with");
    }
}

/// Two processes increment one key `iters` times in all; the clock runs from the
/// moment both are ready until both are done.
fn two_processes(iters: u64, worker: fn(Contender)) -> Duration {
    let m = manager();
    let d: DictProxy<String, u64> = m.dict().expect("dict");
    d.insert("count".to_owned(), 0).expect("insert");
    let lock = m.lock().expect("lock");
    let go = m.barrier(3).expect("barrier");
    let half = iters.div_ceil(2);
    let mut kids: Vec<_> = (0..2)
        .map(|_| {
            let args = (d.clone(), lock.clone(), go.clone(), half);
            let mut p = Process::new(worker, args).with_start_method(StartMethod::Fork);
            p.start().expect("start");
            p
        })
        .collect();
    go.wait().expect("barrier");
    let start = Instant::now();
    for k in &mut kids {
        k.join().expect("worker");
    }
    let took = start.elapsed();
    assert_eq!(d.get("count").expect("get"), Some(2 * half), "lost increments");
    // Per operation: `2 * half` increments were made.
    took.mul_f64(iters as f64 / (2 * half) as f64)
}

/// `manager_dict_contended_2p`: two processes, lock + get + set + unlock.
pub(crate) fn dict_contended_2p(iters: u64) -> Duration {
    two_processes(iters, increment_under_lock)
}

/// `manager_update_with_2p`: two processes, `update_with` and no lock.
pub(crate) fn update_with_2p(iters: u64) -> Duration {
    two_processes(iters, increment_with_update)
}
