//! The seed's counter: a dict `{"count": 100}` in a manager, decremented once by each of
//! 100 processes (Python's classic `Manager().dict()` + `Manager().Lock()` example).
//!
//! First as in Python, under a manager lock (get, then set); then without any lock,
//! with `update_with`, which runs the decrement inside the server in one round trip.
//! Prints the final counts; exits 0 only if both are 0.
//!
//! Run with `cargo run --example manager_counter`.

use std::process::ExitCode;

use multiproc::{Lock, Process};
use multiproc_manager::{DictProxy, Manager};

const PROCESSES: i64 = 100;

/// Python: `with lock: d["count"] -= 1`.
fn decrement_under_lock((counts, lock): (DictProxy<String, i64>, Lock)) {
    let _held = lock.lock().expect("lock");
    let n = counts.get("count").expect("get").expect("the count is set");
    counts.insert("count".to_owned(), n - 1).expect("insert");
}

fn minus_one(n: Option<i64>) -> i64 {
    n.unwrap_or(0) - 1
}

/// No lock: the server applies `minus_one` atomically.
fn decrement_with_update(counts: DictProxy<String, i64>) {
    counts.update_with("count", minus_one).expect("update_with");
}

/// Starts every process, then joins them all.
fn run_all<A>(args: impl Fn() -> A, target: fn(A)) -> Result<(), Box<dyn std::error::Error>>
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let mut processes = Vec::new();
    for _ in 0..PROCESSES {
        let mut p = Process::new(target, args());
        p.start()?;
        processes.push(p);
    }
    for p in &mut processes {
        p.join()?;
    }
    Ok(())
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    // Must come first: spawned and forkserver children (the manager's server among
    // them) take their role here.
    multiproc::init();
    let manager = Manager::start()?;
    let counts = manager.dict_from([("count".to_owned(), PROCESSES)])?;
    let lock = manager.lock()?;

    run_all(|| (counts.clone(), lock.clone()), decrement_under_lock)?;
    let with_lock = counts.get("count")?.unwrap_or(i64::MIN);
    println!("final count, {PROCESSES} processes under a manager lock: {with_lock}");

    counts.insert("count".to_owned(), PROCESSES)?;
    run_all(|| counts.clone(), decrement_with_update)?;
    let with_update = counts.get("count")?.unwrap_or(i64::MIN);
    println!("final count, {PROCESSES} processes with update_with and no lock: {with_update}");

    manager.shutdown()?;
    Ok(if with_lock == 0 && with_update == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
