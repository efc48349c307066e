//! The comparative benchmark runner: `cargo bench --bench compare [WORKLOAD...]`.
//!
//! Each workload is measured three ways in one run:
//! - `multiproc`: the library, as a user would call it;
//! - `raw`: the same job written directly on system calls (or, for in-process
//!   references, on a thread library) — the floor that multiproc's overhead is judged
//!   against;
//! - `python-mp`: Python's `multiprocessing` doing the same job, from
//!   `benches/python/baseline.py`, when `python3` is on `PATH`.
//!
//! # Output
//! One JSON object per line and per result, as each measurement finishes:
//!
//! ```text
//! {"workload":"process_start_join_fork","impl":"multiproc","value":0.21,"unit":"ms/proc"}
//! {"workload":"process_start_join_fork","impl":"raw","value":0.16,"unit":"ms/proc","reference":"fork+waitpid"}
//! ```
//!
//! `raw` lines also carry `reference`, naming which reference they measure (a workload
//! may have several). After all JSON lines comes a plain-text table with the ratios and
//! the issue's goals.
//!
//! # Method
//! Every figure, in Rust and in Python alike, is the best of five rounds (see
//! [`measure::seconds_per_op`]): the lowest mean time per operation over five timed
//! rounds of equal length, after a calibration run. The best round rather than the
//! overall mean, because this machine is shared: a round that a compiler running next
//! door slowed down says nothing about the code under test. A workload's multiproc and
//! raw rounds alternate, so background load shifts both sides of the ratio alike.
//!
//! # Arguments and environment
//! - Positional arguments select workloads by name (none: all). Arguments starting with
//!   `-` (cargo passes `--bench`) are ignored.
//! - `MULTIPROC_BENCH_SECONDS`: time per measurement (default 1).
//! - `MULTIPROC_BENCH_PYTHON`: the Python interpreter (default `python3`).
//!
//! # Adding a workload
//! 1. Write `fn(iters: u64) -> Duration` that performs `iters` operations and returns the
//!    time they took (setup outside the timed part), plus one for each raw reference, in
//!    a module under `benches/compare/` (declared below with a `#[path]` `mod` line).
//! 2. Add one entry to [`WORKLOADS`].
//! 3. Add the Python side to `WORKLOADS` in `benches/python/baseline.py`, under the same
//!    name and unit.

#[path = "compare/manager.rs"]
mod manager;
#[path = "compare/measure.rs"]
mod measure;
#[path = "compare/pipe.rs"]
mod pipe;
#[path = "compare/pool.rs"]
mod pool;
#[path = "compare/process.rs"]
mod process;
#[path = "compare/queue.rs"]
mod queue;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/shared.rs"]
mod shared;
#[path = "compare/sync.rs"]
mod sync;
#[path = "compare/workload.rs"]
mod workload;

use std::process::ExitCode;

use report::Record;
use workload::{Workload, w};

/// Every workload the runner knows, in the order they run.
///
/// An entry is [`w`]`(name, unit, multiproc measurement)` followed by its raw references
/// (`.vs_raw(label, measurement, goal)` with the largest acceptable multiproc cost as a
/// multiple of the reference's, or `.also_raw(label, measurement)` without a goal), the
/// smallest acceptable speedup over Python (`.vs_python(goal)`), and for `GB/s` the
/// bytes one operation moves (`.bytes_per_op(n)`). Units: see [`measure::Unit`]. Goals
/// only annotate the table; a missed goal does not fail the run. For a rate (`msgs/s`,
/// `GB/s`) a raw goal of `3.0` reads "at least a third of the reference's rate", and
/// issue 4's "0.8x raw" bandwidth is `1.25`.
const WORKLOADS: &[Workload] = &[
    w("process_start_join_fork", "ms/proc", process::start_join_fork)
        .vs_raw("fork+waitpid", process::raw_fork_waitpid, 1.5)
        .vs_python(5.0),
    w("process_start_join_spawn", "ms/proc", process::start_join_spawn)
        .vs_raw("fork+exec+waitpid", process::raw_fork_exec_waitpid, 1.3)
        .vs_python(5.0),
    w("process_start_join_forkserver", "ms/proc", process::start_join_forkserver)
        .vs_raw("fork+waitpid", process::raw_fork_waitpid, 1.5)
        .vs_python(5.0),
    w("pipe_pingpong_small", "us/rtt", pipe::pingpong_small)
        .also_raw("socketpair, blocking", pipe::raw_pingpong_blocking)
        .vs_raw("socketpair, spin then block", pipe::raw_pingpong_spin, 1.2)
        .vs_python(3.0),
    w("pipe_bandwidth_1mib", "GB/s", pipe::bandwidth_1mib)
        .bytes_per_op(1 << 20)
        .vs_raw("socketpair", pipe::raw_bandwidth_1mib, 1.25)
        .vs_python(2.0),
    w("lock_uncontended", "ns/op", sync::lock_uncontended)
        .vs_raw("atomic CAS lock + swap unlock", sync::raw_cas_lock_unlock, 2.0)
        .also_raw("glibc robust mutex", sync::raw_pthread_robust)
        .also_raw("parking_lot::Mutex", sync::raw_parking_lot)
        .vs_python(2.0),
    w("lock_contended_2p", "ops/s", sync::lock_contended_2p)
        .vs_raw("parking_lot::Mutex, 2 threads", sync::raw_parking_lot_2t, 2.0)
        .vs_python(5.0),
    w("value_locked_increment_2p", "ops/s", shared::value_locked_increment_2p).vs_python(10.0),
    w("queue_1p1c_small", "msgs/s", queue::queue_1p1c_small)
        .vs_raw("crossbeam-channel, 2 threads", queue::raw_crossbeam_1p1c_small, 3.0)
        .vs_python(20.0),
    w("simple_queue_1p1c_small", "msgs/s", queue::simple_queue_1p1c_small)
        .vs_raw("crossbeam-channel, 2 threads", queue::raw_crossbeam_1p1c_small, 3.0)
        .vs_python(20.0),
    w("joinable_queue_1p1c_small", "msgs/s", queue::joinable_queue_1p1c_small)
        .vs_raw("crossbeam-channel, 2 threads", queue::raw_crossbeam_1p1c_small, 3.0)
        .vs_python(20.0),
    w("queue_2p2c_small", "msgs/s", queue::queue_2p2c_small)
        .vs_raw("crossbeam-channel, 2+2 threads", queue::raw_crossbeam_2p2c_small, 3.0)
        .vs_python(20.0),
    w("queue_bandwidth_1mib", "GB/s", queue::queue_bandwidth_1mib)
        .bytes_per_op(1 << 20)
        .also_raw("crossbeam-channel, 2 threads", queue::raw_crossbeam_bandwidth_1mib)
        .vs_python(2.0),
    // Issue 9: pools of cpu_count() workers (as Python's Pool() and ProcessPoolExecutor()).
    w("pool_map_trivial", "items/s", pool::map_trivial).vs_python(5.0),
    w("pool_map_trivial_chunk1", "items/s", pool::map_trivial_chunk1).vs_python(5.0),
    w("pool_apply_async_rtt", "us/task", pool::apply_async_rtt).vs_python(5.0),
    w("pool_imap_unordered", "items/s", pool::imap_unordered).vs_python(5.0),
    w("executor_submit_result", "tasks/s", pool::executor_submit_result).vs_python(5.0),
    // Goal: at least 0.9 x cpu_count (a machine-dependent figure, so not in the table).
    w("cpu_sum_speedup", "x", pool::cpu_sum_pool).also_raw("serial, the factor's baseline", pool::cpu_sum_serial),
    // Issue 8: a Manager dict; update_with's Python counterpart is lock + get + set.
    w("manager_dict_setget", "us/op", manager::dict_setget).vs_python(5.0),
    w("manager_dict_contended_2p", "ops/s", manager::dict_contended_2p).vs_python(5.0),
    w("manager_update_with", "us/op", manager::update_with).vs_python(10.0),
    w("manager_update_with_2p", "ops/s", manager::update_with_2p).vs_python(10.0),
];

fn main() -> ExitCode {
    // The raw exec reference starts this binary with this variable set: it must cost
    // nothing but the exec itself, so it leaves before anything else runs.
    if std::env::var_os(process::RAW_EXIT_ENV).is_some() {
        return ExitCode::SUCCESS;
    }
    // Lets a spawned child take its role, and forks the fork server while this process
    // is still single-threaded.
    multiproc::init();

    let selected = match workload::select(WORKLOADS, std::env::args().skip(1)) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("compare: {message}");
            return ExitCode::from(2);
        }
    };
    let budget = measure::budget_from_env();

    let mut records = Vec::new();
    for wl in &selected {
        let unit = wl.unit();
        let batches: Vec<_> = std::iter::once(wl.multiproc).chain(wl.raw().map(|r| r.run)).collect();
        let values = unit.values(&measure::seconds_per_op(&batches, budget));
        records.push(Record::new(wl.name, "multiproc", values[0], unit.label(), None).emit());
        for (r, &v) in wl.raw().zip(&values[1..]) {
            records.push(Record::new(wl.name, "raw", v, unit.label(), Some(r.label)).emit());
        }
    }

    let names: Vec<&str> = selected.iter().map(|wl| wl.name).collect();
    let python = report::run_python(&names, budget);
    if let Some(py) = &python {
        records.extend(py.iter().cloned());
    }
    report::print_table(&selected, &records, python.is_some());
    ExitCode::SUCCESS
}
