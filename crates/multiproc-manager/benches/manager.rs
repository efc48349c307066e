//! Manager round trips: `cargo bench -p multiproc-manager --bench manager [WORKLOAD...]`.
//!
//! Each workload is measured two ways in one run, printed as the workspace's `compare`
//! runner prints them (one JSON object per line, then a table):
//! - `multiproc`: this crate, between real processes;
//! - `python-mp`: Python's `multiprocessing.Manager()` doing the same job
//!   (`benches/python_manager.py`), when `python3` is on `PATH`.
//!
//! | workload | unit | what one operation is |
//! |---|---|---|
//! | `manager_dict_setget` | us/op | the parent sets a key and gets it back (two round trips) |
//! | `manager_dict_contended_2p` | ops/s | two processes increment one key under a manager lock (lock, get, set, unlock); the count is verified |
//! | `manager_update_with` | us/op | the parent increments a key; here `update_with` (one round trip), in Python lock + get + set + unlock |
//! | `manager_update_with_2p` | ops/s | two processes increment one key; here `update_with` without a lock, in Python under the lock; verified |
//!
//! Goals (issue 8): at least 5× Python for `manager_dict_setget` and
//! `manager_dict_contended_2p`, and `update_with` at least 10× Python's lock + get + set.
//!
//! Every workload function has the `compare` runner's shape, `fn(iters) -> Duration`:
//! setup (the manager, the children) happens before the clock starts. The procedure is
//! the runner's: calibrate to a twentieth of the budget, then five rounds, best round
//! reported. `MULTIPROC_BENCH_SECONDS` sets the budget per measurement (default 1).

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use multiproc_manager::{DictProxy, Manager};
use multiproc_process::{Process, StartMethod};
use multiproc_sync::{Barrier, Lock};

const ROUNDS: u32 = 5;

type Batch = fn(u64) -> Duration;

// ---- the workloads ----

/// One manager for the whole run (Python's baselines also start theirs once).
fn manager() -> &'static Manager {
    static MANAGER: OnceLock<Manager> = OnceLock::new();
    MANAGER.get_or_init(|| Manager::start().expect("start a manager"))
}

/// `manager_dict_setget`: one set and one get from the parent.
fn manager_dict_setget(iters: u64) -> Duration {
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
fn manager_update_with(iters: u64) -> Duration {
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
fn manager_dict_contended_2p(iters: u64) -> Duration {
    two_processes(iters, increment_under_lock)
}

/// `manager_update_with_2p`: two processes, `update_with` and no lock.
fn manager_update_with_2p(iters: u64) -> Duration {
    two_processes(iters, increment_with_update)
}

// ---- the runner ----

struct Workload {
    name: &'static str,
    unit: &'static str,
    multiproc: Batch,
    min_vs_python: f64,
}

const WORKLOADS: &[Workload] = &[
    Workload { name: "manager_dict_setget", unit: "us/op", multiproc: manager_dict_setget, min_vs_python: 5.0 },
    Workload {
        name: "manager_dict_contended_2p",
        unit: "ops/s",
        multiproc: manager_dict_contended_2p,
        min_vs_python: 5.0,
    },
    Workload { name: "manager_update_with", unit: "us/op", multiproc: manager_update_with, min_vs_python: 10.0 },
    Workload { name: "manager_update_with_2p", unit: "ops/s", multiproc: manager_update_with_2p, min_vs_python: 10.0 },
];

fn budget() -> Duration {
    std::env::var("MULTIPROC_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
}

/// Best-of-rounds seconds per operation (benches/compare/measure.rs's procedure).
fn seconds_per_op(batch: Batch, budget: Duration) -> f64 {
    let calibration = budget.as_secs_f64() / 20.0;
    let mut iters: u64 = 1;
    let per_op = loop {
        let took = batch(iters).as_secs_f64();
        if took >= calibration || iters >= 1 << 40 {
            break took / iters as f64;
        }
        let factor = if took > 0.0 { calibration / took * 1.2 } else { 100.0 };
        iters = (iters as f64 * factor.clamp(2.0, 100.0)).ceil() as u64;
    };
    let round = (budget.as_secs_f64() - calibration).max(0.0) / f64::from(ROUNDS);
    let iters = ((round / per_op) as u64).max(1);
    (0..ROUNDS).map(|_| batch(iters).as_secs_f64() / iters as f64).fold(f64::INFINITY, f64::min)
}

/// The reported value: microseconds per operation, or operations per second.
fn value(unit: &str, secs_per_op: f64) -> f64 {
    if unit == "us/op" { secs_per_op * 1e6 } else { 1.0 / secs_per_op }
}

/// How many times better than Python (whichever direction "better" is for the unit).
fn speedup(unit: &str, ours: f64, python: f64) -> f64 {
    if unit == "us/op" { python / ours } else { ours / python }
}

fn json(workload: &str, imp: &str, value: f64, unit: &str) {
    println!("{{\"workload\":\"{workload}\",\"impl\":\"{imp}\",\"value\":{value:.4e},\"unit\":\"{unit}\"}}");
}

/// Runs the Python baselines and returns workload → value.
fn python(names: &[&str]) -> Vec<(String, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_manager.py");
    let interpreter = std::env::var("MULTIPROC_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = match Command::new(&interpreter).arg(script).args(names).output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            eprintln!("python baseline failed: {}", String::from_utf8_lossy(&out.stderr));
            return Vec::new();
        }
        Err(e) => {
            eprintln!("python baseline skipped: cannot run {interpreter}: {e}");
            return Vec::new();
        }
    };
    let mut results = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("{line}");
        let field = |key: &str| {
            let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
            let rest = &line[start..];
            let end = rest.find([',', '}'])?;
            Some(rest[..end].trim().trim_matches('"').to_owned())
        };
        if let (Some(w), Some(v)) = (field("workload"), field("value").and_then(|v| v.parse().ok())) {
            results.push((w, v));
        }
    }
    results
}

fn main() {
    // Spawned and forkserver children (the manager's server) take their role here.
    multiproc_process::init();
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Workload> =
        WORKLOADS.iter().filter(|w| wanted.is_empty() || wanted.iter().any(|n| n == w.name)).collect();
    let budget = budget();
    let mut ours = Vec::new();
    for w in &selected {
        let v = value(w.unit, seconds_per_op(w.multiproc, budget));
        json(w.name, "multiproc", v, w.unit);
        ours.push((w, v));
    }
    let names: Vec<&str> = selected.iter().map(|w| w.name).collect();
    let py = python(&names);
    println!();
    println!("{:<28} {:>16} {:>16} {:>14}", "workload", "multiproc", "python-mp", "vs python");
    for (w, v) in ours {
        let p = py.iter().find(|(n, _)| n == w.name).map(|(_, p)| *p);
        let goal = p.map_or("-".to_owned(), |p| {
            let x = speedup(w.unit, v, p);
            format!("{x:.1}x {}", if x >= w.min_vs_python { "ok" } else { "MISS" })
        });
        println!(
            "{:<28} {:>16} {:>16} {:>14}",
            w.name,
            format!("{v:.3e} {}", w.unit),
            p.map_or("-".to_owned(), |p| format!("{p:.3e}")),
            goal
        );
    }
    println!(
        "goals: >= 5x python for manager_dict_setget and manager_dict_contended_2p; >= 10x python's \
         lock + get + set for update_with"
    );
}
