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

#[path = "compare/measure.rs"]
mod measure;
#[path = "compare/process.rs"]
mod process;
#[path = "compare/report.rs"]
mod report;
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
/// only annotate the table; a missed goal does not fail the run. A later issue adds,
/// for instance:
///
/// ```text
/// w("pipe_pingpong_small", "us/rtt", pipe::pingpong_small)
///     .also_raw("socketpair, blocking", pipe::raw_pingpong_blocking)
///     .vs_raw("socketpair, spin then block", pipe::raw_pingpong_spin, 1.2)
///     .vs_python(3.0),
/// w("pipe_bandwidth_1mib", "GB/s", pipe::bandwidth_1mib).bytes_per_op(1 << 20)
///     .vs_raw("socketpair", pipe::raw_bandwidth_1mib, 1.25)
///     .vs_python(2.0),
/// ```
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
        let secs = measure::seconds_per_op(&batches, budget);
        records.push(Record::new(wl.name, "multiproc", unit.value(secs[0]), unit.label(), None).emit());
        for (r, &s) in wl.raw().zip(&secs[1..]) {
            records.push(Record::new(wl.name, "raw", unit.value(s), unit.label(), Some(r.label)).emit());
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
