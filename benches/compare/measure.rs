//! Timing a workload and turning the time into the unit it is reported in.
//!
//! `benches/python/baseline.py` implements the same procedure and the same unit rules;
//! change both together, or the ratios stop comparing like with like.

use std::time::Duration;

/// A measurement: performs `iters` operations and returns the wall-clock time they took.
///
/// Setup that is not part of an operation (starting a peer process, allocating a
/// buffer) happens before the clock starts, so one function serves any workload shape,
/// like criterion's `iter_custom`.
pub(crate) type Batch = fn(iters: u64) -> Duration;

/// How many timed rounds a measurement is split into; the best one is reported.
pub(crate) const ROUNDS: u32 = 5;

/// The time for one measurement: `MULTIPROC_BENCH_SECONDS` (a decimal number of seconds),
/// one second by default. The Python baseline reads the same variable.
pub(crate) fn budget_from_env() -> Duration {
    std::env::var("MULTIPROC_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
}

/// Seconds per operation of each of `batches` (a workload's multiproc measurement and
/// its raw references), each measured over about `budget`.
///
/// Calibration first: each batch's iteration count grows until one batch takes a
/// twentieth of the budget. That also warms up whatever the first operations pay for
/// once (the fork server's first request, page faults, caches), which must not count.
/// Then the rest of the budget is split into [`ROUNDS`] rounds, and the lowest mean per
/// operation among them is returned for each batch (best of rounds).
///
/// The rounds of the different batches alternate (multiproc, raw, multiproc, raw, ...)
/// so that a change in background load hits both sides of a ratio alike instead of
/// only whichever ran during it. An operation slower than a round still runs once per
/// round, so a very slow workload takes `ROUNDS` operations' time rather than `budget`.
pub(crate) fn seconds_per_op(batches: &[Batch], budget: Duration) -> Vec<f64> {
    let calibration = budget.as_secs_f64() / 20.0;
    let round = (budget.as_secs_f64() - calibration).max(0.0) / f64::from(ROUNDS);
    let iters: Vec<u64> = batches.iter().map(|&b| ((round / calibrate(b, calibration)) as u64).max(1)).collect();
    let mut best = vec![f64::INFINITY; batches.len()];
    for _ in 0..ROUNDS {
        for ((b, &n), best) in batches.iter().zip(&iters).zip(&mut best) {
            *best = best.min(b(n).as_secs_f64() / n as f64);
        }
    }
    best
}

/// Seconds per operation from batches grown until one takes at least `target` seconds.
fn calibrate(batch: Batch, target: f64) -> f64 {
    let mut iters: u64 = 1;
    loop {
        let took = batch(iters).as_secs_f64();
        if took >= target || iters >= 1 << 40 {
            return took / iters as f64;
        }
        // Jump most of the way to the target rather than doubling from 1 each time, so
        // nanosecond operations calibrate in a few batches; aim a little past the target
        // so the next batch usually ends the loop.
        let factor = if took > 0.0 { target / took * 1.2 } else { 100.0 };
        iters = (iters as f64 * factor.clamp(2.0, 100.0)).ceil() as u64;
    }
}

/// What a workload reports, derived from its unit label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Unit {
    /// Time per operation, lower is better: `"s/…"`, `"ms/…"`, `"us/…"` or `"ns/…"`
    /// (`ms/proc`, `us/rtt`, `ns/op`); the value is seconds per operation × `scale`.
    PerOp { label: &'static str, scale: f64 },
    /// Operations per second, higher is better: any other `"…/s"` (`ops/s`, `msgs/s`,
    /// `items/s`).
    PerSecond { label: &'static str },
    /// `"GB/s"`: 10⁹ bytes per second, higher is better; each operation moves
    /// `bytes_per_op` bytes (given to the registry with `.bytes_per_op(n)`).
    Bandwidth { bytes_per_op: u64 },
    /// `"x"`: a factor, higher is better, not derived from one time: the first raw
    /// reference's time per operation divided by multiproc's (a speedup over the
    /// reference). See [`Unit::factor`].
    Factor,
}

impl Unit {
    /// Reads a unit label as described on each variant; `bytes_per_op` is needed by
    /// `GB/s` only, and only allowed there.
    pub(crate) fn parse(label: &'static str, bytes_per_op: Option<u64>) -> Result<Unit, String> {
        match (label, bytes_per_op) {
            ("x", None) => return Ok(Unit::Factor),
            ("GB/s", Some(bytes_per_op)) if bytes_per_op > 0 => return Ok(Unit::Bandwidth { bytes_per_op }),
            ("GB/s", _) => return Err("unit \"GB/s\" needs `.bytes_per_op(n)` in the registry".to_owned()),
            (_, Some(_)) => return Err(format!("unit {label:?}: only GB/s takes bytes per operation")),
            _ => {}
        }
        let (head, tail) = label.split_once('/').ok_or_else(|| format!("unit {label:?} has no `/`"))?;
        let scale = match head {
            "s" => 1.0,
            "ms" => 1e3,
            "us" => 1e6,
            "ns" => 1e9,
            _ if tail == "s" && head != "GB" => return Ok(Unit::PerSecond { label }),
            _ => return Err(format!("unit {label:?}: expected s/ms/us/ns per something, …/s, or GB/s")),
        };
        Ok(Unit::PerOp { label, scale })
    }

    /// The label printed in results.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Unit::PerOp { label, .. } | Unit::PerSecond { label } => label,
            Unit::Bandwidth { .. } => "GB/s",
            Unit::Factor => "x",
        }
    }

    /// The reported value for a measured time per operation.
    pub(crate) fn value(self, seconds_per_op: f64) -> f64 {
        match self {
            Unit::PerOp { scale, .. } => seconds_per_op * scale,
            Unit::PerSecond { .. } => 1.0 / seconds_per_op,
            Unit::Bandwidth { bytes_per_op } => bytes_per_op as f64 / seconds_per_op / 1e9,
            // A time alone is no factor; the runner uses `factor` for these.
            Unit::Factor => f64::NAN,
        }
    }

    /// The reported values of a workload measured as `secs` (multiproc first, then its
    /// raw references, in seconds per operation): for [`Unit::Factor`], multiproc's is
    /// the first reference's time over its own and each reference's is its factor
    /// against that first reference (1 for the first itself); for every other unit,
    /// [`Unit::value`] of each.
    pub(crate) fn values(self, secs: &[f64]) -> Vec<f64> {
        match self {
            Unit::Factor => {
                let base = secs.get(1).copied().unwrap_or(f64::NAN);
                let ours = std::iter::once(base / secs[0]);
                ours.chain(secs[1..].iter().map(|&s| base / s)).collect()
            }
            _ => secs.iter().map(|&s| self.value(s)).collect(),
        }
    }
}

/// Whether a larger value is better for a printed unit label: rates (`…/s`) and
/// factors (`x`, for a later figure that is not derived from a time, which will need its
/// own [`Unit`] variant) are; times per operation are not. Used for results from either
/// side, so it works on labels rather than on [`Unit`].
pub(crate) fn higher_is_better(label: &str) -> bool {
    label.ends_with("/s") || label == "x"
}
