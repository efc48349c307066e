//! The shape of a registry entry, and choosing entries from the command line.
//!
//! Entries are built with `const fn`s so that the registry in `compare.rs` stays a plain
//! table a later issue extends with one entry, without any registration code.

use crate::measure::{Batch, Unit};

/// The most raw references one workload may have (issue 4's round trip has two: plain
/// blocking reads and spin-then-block reads). Raise it if a workload needs more.
const MAX_RAW: usize = 3;

/// A raw reference: the same job written without multiproc.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reference {
    /// What it measures, as shown in the JSON `reference` field and the table.
    pub(crate) label: &'static str,
    /// The measurement.
    pub(crate) run: Batch,
    /// The goal, if any: multiproc may cost at most this many times the reference.
    pub(crate) max_cost: Option<f64>,
}

/// One workload: its multiproc measurement and its raw references. The Python side is
/// found by name in `benches/python/baseline.py`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Workload {
    /// The name shared by the Rust and Python sides and used on the command line.
    pub(crate) name: &'static str,
    unit: &'static str,
    /// The multiproc measurement.
    pub(crate) multiproc: Batch,
    bytes_per_op: Option<u64>,
    raw: [Option<Reference>; MAX_RAW],
    /// The goal: multiproc must be at least this many times faster than Python.
    pub(crate) min_speedup_vs_python: Option<f64>,
}

/// Starts a registry entry: name, unit label (see [`Unit`]: `ms/proc`, `us/rtt`,
/// `ns/op`, `ops/s`, `msgs/s`, `GB/s` with [`Workload::bytes_per_op`], ...) and the
/// multiproc measurement.
pub(crate) const fn w(name: &'static str, unit: &'static str, multiproc: Batch) -> Workload {
    Workload { name, unit, multiproc, bytes_per_op: None, raw: [None; MAX_RAW], min_speedup_vs_python: None }
}

impl Workload {
    /// Adds a raw reference and the goal relative to it: multiproc may cost at most
    /// `max_cost` times as much. For a throughput unit that reads "reach at least
    /// `1 / max_cost` of its throughput" (issue 4's "0.8x raw" is `1.25`).
    pub(crate) const fn vs_raw(self, label: &'static str, run: Batch, max_cost: f64) -> Workload {
        self.push_raw(Reference { label, run, max_cost: Some(max_cost) })
    }

    /// Adds a raw reference that is shown for context only, without a goal.
    pub(crate) const fn also_raw(self, label: &'static str, run: Batch) -> Workload {
        self.push_raw(Reference { label, run, max_cost: None })
    }

    const fn push_raw(mut self, reference: Reference) -> Workload {
        let mut i = 0;
        while i < MAX_RAW {
            if self.raw[i].is_none() {
                self.raw[i] = Some(reference);
                return self;
            }
            i += 1;
        }
        panic!("too many raw references for one workload: raise MAX_RAW");
    }

    /// How many bytes one operation moves; required by (and only allowed with) the
    /// `GB/s` unit.
    pub(crate) const fn bytes_per_op(mut self, bytes: u64) -> Workload {
        self.bytes_per_op = Some(bytes);
        self
    }

    /// Sets the goal relative to Python: at least `min_speedup` times faster.
    pub(crate) const fn vs_python(mut self, min_speedup: f64) -> Workload {
        self.min_speedup_vs_python = Some(min_speedup);
        self
    }

    /// The raw references, in the order they were added.
    pub(crate) fn raw(&self) -> impl Iterator<Item = &Reference> {
        self.raw.iter().flatten()
    }

    /// The unit; panics on a label the runner cannot convert to (a registry bug).
    pub(crate) fn unit(&self) -> Unit {
        Unit::parse(self.unit, self.bytes_per_op).unwrap_or_else(|e| panic!("workload {}: {e}", self.name))
    }
}

/// The workloads named by `args` (all if none), in registry order. Flags (anything
/// starting with `-`, such as cargo's `--bench`) are ignored; an unknown name is an
/// error listing the known ones, so a typo does not silently run nothing.
pub(crate) fn select(
    registry: &'static [Workload],
    args: impl IntoIterator<Item = String>,
) -> Result<Vec<Workload>, String> {
    // Check every unit up front: a bad label should fail before minutes of measuring.
    for wl in registry {
        wl.unit();
    }
    let wanted: Vec<String> = args.into_iter().filter(|a| !a.starts_with('-')).collect();
    if let Some(unknown) = wanted.iter().find(|n| !registry.iter().any(|wl| wl.name == n.as_str())) {
        let known: Vec<&str> = registry.iter().map(|wl| wl.name).collect();
        return Err(format!("unknown workload {unknown:?}; known workloads: {}", known.join(", ")));
    }
    Ok(registry.iter().filter(|wl| wanted.is_empty() || wanted.iter().any(|n| n == wl.name)).copied().collect())
}
