//! The seed's counter and friends, across real processes under every start method:
//! a dict `{"count": N}` decremented once by each of N processes under a manager lock
//! ends at 0, the same with `update_with` and no lock, and a list appended to by 10
//! processes 1,000 times each holds all 10,000 items.
//!
//! N is the seed's 100 under forkserver (the default start method) and 20 under fork
//! and spawn, to keep the suite quick on two cores: spawn re-executes the test binary
//! for every child.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use multiproc_manager::{DictProxy, ListProxy, Manager};
use multiproc_process::{Process, StartMethod};
use multiproc_sync::Lock;
use watchdog::{METHODS, started, watchdog};

fn processes(method: StartMethod) -> i64 {
    match method {
        StartMethod::ForkServer => 100,
        StartMethod::Fork | StartMethod::Spawn => 20,
    }
}

fn decrement_under_lock((counts, lock): (DictProxy<String, i64>, Lock)) {
    let _held = lock.lock().expect("lock");
    let n = counts.get("count").expect("get").expect("the count is there");
    counts.insert("count".to_owned(), n - 1).expect("insert");
}

fn decrement(n: Option<i64>) -> i64 {
    n.expect("the count is there") - 1
}

fn decrement_with_update((counts,): (DictProxy<String, i64>,)) -> i64 {
    counts.update_with("count", decrement).expect("update_with")
}

/// Starts `n` children running `f(arg)` with `method` and joins them all.
fn run_all<A, R>(method: StartMethod, n: i64, f: fn(A) -> R, mut arg: impl FnMut() -> A) -> Vec<R>
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let mut children: Vec<_> = (0..n).map(|_| started(Process::new(f, arg()).with_start_method(method))).collect();
    children.iter_mut().map(|c| c.join().unwrap_or_else(|e| panic!("[{method}] a child failed: {e}"))).collect()
}

#[test]
fn counter_under_a_manager_lock_reaches_zero() {
    for method in METHODS {
        watchdog(&format!("lock counter [{method}]"), move || {
            let n = processes(method);
            let manager = Manager::builder().start_method(method).start().expect("start");
            let counts = manager.dict_from([("count".to_owned(), n)]).expect("dict");
            let lock = manager.lock().expect("lock");
            run_all(method, n, decrement_under_lock, || (counts.clone(), lock.clone()));
            assert_eq!(counts.get("count").expect("get"), Some(0), "[{method}]");
            manager.shutdown().expect("shutdown");
        });
    }
}

#[test]
fn counter_with_update_with_and_no_lock_reaches_zero() {
    for method in METHODS {
        watchdog(&format!("update_with counter [{method}]"), move || {
            let n = processes(method);
            let manager = Manager::builder().start_method(method).start().expect("start");
            let counts = manager.dict_from([("count".to_owned(), n)]).expect("dict");
            let mut seen = run_all(method, n, decrement_with_update, || (counts.clone(),));
            assert_eq!(counts.get("count").expect("get"), Some(0), "[{method}]");
            // Each update saw a value no other one saw: they were atomic.
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "[{method}]");
        });
    }
}

fn append_many((list, who): (ListProxy<(u32, u32)>, u32)) {
    for i in 0..1000 {
        list.push((who, i)).expect("push");
    }
}

#[test]
fn ten_processes_append_a_thousand_items_each() {
    for method in METHODS {
        watchdog(&format!("list append [{method}]"), move || {
            let manager = Manager::builder().start_method(method).start().expect("start");
            let list = manager.list::<(u32, u32)>().expect("list");
            let mut who = 0..;
            run_all(method, 10, append_many, || (list.clone(), who.next().expect("more")));
            assert_eq!(list.len().expect("len"), 10_000, "[{method}]");
            let mut items = list.to_vec().expect("to_vec");
            // Each process's items are in its own order, interleaved with the others'.
            for w in 0..10 {
                let mine: Vec<u32> = items.iter().filter(|(p, _)| *p == w).map(|&(_, i)| i).collect();
                assert_eq!(mine, (0..1000).collect::<Vec<_>>(), "[{method}] process {w}");
            }
            items.sort_unstable();
            items.dedup();
            assert_eq!(items.len(), 10_000, "[{method}]");
        });
    }
}
