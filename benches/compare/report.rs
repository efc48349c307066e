//! Results: the JSON lines, the Python baseline's results, and the closing table.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::measure::{ROUNDS, higher_is_better};
use crate::workload::Workload;

/// The Python baseline, found from the package root at build time so that the runner
/// works from any directory.
const BASELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/baseline.py");

/// One result, printed as one JSON line (`impl` is a Rust keyword, hence the rename).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) workload: String,
    #[serde(rename = "impl")]
    pub(crate) implementation: String,
    pub(crate) value: f64,
    pub(crate) unit: String,
    /// Which raw reference a `raw` line measures; absent on other lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reference: Option<String>,
}

impl Record {
    /// A result, its value rounded to 4 significant digits: the run-to-run noise is far
    /// larger than that, and shorter numbers keep the lines readable.
    pub(crate) fn new(workload: &str, implementation: &str, value: f64, unit: &str, reference: Option<&str>) -> Record {
        let value = format!("{value:.3e}").parse().unwrap_or(value);
        Record {
            workload: workload.to_owned(),
            implementation: implementation.to_owned(),
            value,
            unit: unit.to_owned(),
            reference: reference.map(str::to_owned),
        }
    }

    /// Prints the JSON line at once (so a long run shows progress) and returns itself.
    pub(crate) fn emit(self) -> Record {
        println!("{}", serde_json::to_string(&self).expect("a record always serialises"));
        self
    }
}

/// Runs the Python baseline for `names` and passes its JSON lines through.
///
/// `None` when there is no Python to run, after saying so once on stderr; the table is
/// then printed without the Python column. Python runs after all Rust measurements, so
/// the two never compete for the CPUs.
pub(crate) fn run_python(names: &[&str], budget: Duration) -> Option<Vec<Record>> {
    let python = std::env::var("MULTIPROC_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let spawned = Command::new(&python)
        .arg(BASELINE)
        .args(names)
        .env("MULTIPROC_BENCH_SECONDS", budget.as_secs_f64().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("compare: {python} is not on PATH; skipping the Python baseline");
            return None;
        }
        Err(e) => {
            eprintln!("compare: cannot run {python}: {e}; skipping the Python baseline");
            return None;
        }
    };
    let mut records = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Record>(&line) {
                Ok(r) => {
                    println!("{line}");
                    records.push(r);
                }
                // Anything else the script prints is a message for the user, not a result.
                Err(_) => eprintln!("{line}"),
            }
        }
    }
    match child.wait() {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("compare: the Python baseline failed ({status}); its results may be incomplete"),
        Err(e) => eprintln!("compare: waiting for the Python baseline: {e}"),
    }
    Some(records)
}

/// The first value recorded for a workload and implementation (and reference).
fn find(records: &[Record], workload: &str, implementation: &str, reference: Option<&str>) -> Option<f64> {
    records
        .iter()
        .find(|r| {
            r.workload == workload
                && r.implementation == implementation
                && (reference.is_none() || r.reference.as_deref() == reference)
        })
        .map(|r| r.value)
}

/// How many times more multiproc costs than `other`: above 1, multiproc is slower. For
/// times that is `ours / other`, for rates `other / ours`.
fn cost_factor(ours: f64, other: f64, unit: &str) -> f64 {
    if higher_is_better(unit) { other / ours } else { ours / other }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// `factor` against a goal, e.g. `1.23x <=1.5 ok`.
fn judged(factor: Option<f64>, goal: Option<f64>, at_most: bool) -> String {
    let Some(f) = factor else { return "-".to_owned() };
    match goal {
        None => format!("{f:.2}x"),
        Some(g) => {
            let met = if at_most { f <= g } else { f >= g };
            let (rel, verdict) = (if at_most { "<=" } else { ">=" }, if met { "ok" } else { "MISSED" });
            format!("{f:.2}x {rel}{g} {verdict}")
        }
    }
}

/// Prints the ratio table: one row per workload and raw reference.
///
/// "vs raw" is how many times more multiproc costs than the reference (1 = as fast, above
/// 1 = slower); "vs python" is how many times faster multiproc is than Python. Both
/// account for the unit's direction, so they read the same for ms/proc and for msgs/s.
pub(crate) fn print_table(workloads: &[Workload], records: &[Record], with_python: bool) {
    println!();
    println!("vs raw: multiproc's cost as a multiple of the raw reference's (goal: at most N)");
    if with_python {
        println!("vs python: multiproc's speedup over Python's multiprocessing (goal: at least N)");
    }
    println!("each value: best of {ROUNDS} rounds, multiproc and raw rounds alternating");
    println!();
    // Columns as wide as their longest entry, so later names and labels keep it aligned.
    let nw = workloads.iter().map(|wl| wl.name.len()).chain(["workload".len()]).max().unwrap_or(0);
    let rw = workloads.iter().flat_map(|wl| wl.raw().map(|r| r.label.len())).chain(["raw reference".len()]).max();
    let rw = rw.unwrap_or(0);
    let mut header = format!(
        "{:<nw$} {:<8} {:>10} {:>10} {:<rw$} {:<20}",
        "workload", "unit", "multiproc", "raw", "raw reference", "vs raw"
    );
    if with_python {
        header.push_str(&format!(" {:>10} {:<20}", "python", "vs python"));
    }
    println!("{}", header.trim_end());
    println!("{}", "-".repeat(header.trim_end().len()));
    for wl in workloads {
        let unit = wl.unit().label();
        let ours = find(records, wl.name, "multiproc", None);
        let python = find(records, wl.name, "python-mp", None);
        let refs: Vec<_> = wl.raw().map(Some).collect();
        // A workload without raw references still gets its one row.
        let rows = if refs.is_empty() { vec![None] } else { refs };
        for (i, r) in rows.into_iter().enumerate() {
            let raw = r.and_then(|r| find(records, wl.name, "raw", Some(r.label)));
            let vs_raw = ours.zip(raw).map(|(o, r)| cost_factor(o, r, unit));
            let (name, mine) = if i == 0 { (wl.name, ours) } else { ("", None) };
            let mut line = format!(
                "{:<nw$} {:<8} {:>10} {:>10} {:<rw$} {:<20}",
                name,
                if i == 0 { unit } else { "" },
                if i == 0 { num(mine) } else { String::new() },
                num(raw),
                r.map_or("-", |r| r.label),
                judged(vs_raw, r.and_then(|r| r.max_cost), true),
            );
            if with_python && i == 0 {
                let speedup = ours.zip(python).map(|(o, p)| 1.0 / cost_factor(o, p, unit));
                line.push_str(&format!(
                    " {:>10} {:<20}",
                    num(python),
                    judged(speedup, wl.min_speedup_vs_python, false)
                ));
            }
            println!("{}", line.trim_end());
        }
    }
}
