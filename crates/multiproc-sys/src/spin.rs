//! The spin-then-block waiting policy shared by every blocking call in multiproc.
//!
//! Waking a process blocked in the kernel costs about 24 µs on the machines we target, so
//! a blocking request/response round trip costs about 48 µs however fast the code around
//! it is. When the answer is a few microseconds away, checking for it in a short busy
//! loop first (as crossbeam and parking_lot do between threads) avoids both sleeps.
//!
//! [`spin_until`] runs such a loop with a *bounded, adaptive* budget: at most
//! [`max_spin`] (20 µs by default), shrinking per thread when spinning keeps failing (the
//! peer is slow, so the CPU is better left idle) and growing back when it succeeds.
//! Callers spin first, then block in the kernel (futex, `poll`) if nothing came.
//!
//! Spinning can be turned off for users who prefer idle CPUs to latency, with
//! [`set_max_spin`]`(Duration::ZERO)` or the environment variable
//! `MULTIPROC_SPIN_US=0` (read once, at first use).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const DEFAULT_MAX_NS: u32 = 20_000;
const MIN_NS: u32 = 500;
const PROBE_EVERY: u32 = 32;
const UNSET: u32 = u32::MAX;

static MAX_NS: AtomicU32 = AtomicU32::new(UNSET);

thread_local! {
    static BUDGET_NS: Cell<u32> = const { Cell::new(DEFAULT_MAX_NS) };
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

/// The longest a single wait spins before it blocks. Zero means spinning is off.
pub fn max_spin() -> Duration {
    Duration::from_nanos(max_ns() as u64)
}

/// Sets the longest a single wait spins before it blocks, for the whole process (and
/// children forked after the call). `Duration::ZERO` turns spinning off.
pub fn set_max_spin(limit: Duration) {
    MAX_NS.store(limit.as_nanos().min((UNSET - 1) as u128) as u32, Ordering::Relaxed);
}

fn max_ns() -> u32 {
    let v = MAX_NS.load(Ordering::Relaxed);
    if v != UNSET {
        return v;
    }
    let from_env = std::env::var("MULTIPROC_SPIN_US")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map_or(DEFAULT_MAX_NS, |us| us.saturating_mul(1000).min(UNSET - 1));
    MAX_NS.store(from_env, Ordering::Relaxed);
    from_env
}

/// Calls `ready` in a busy loop until it returns `Some`, or the adaptive spin budget runs
/// out (then `None`: the caller should block in the kernel).
///
/// `ready` must be cheap and non-blocking (an atomic load, a `MSG_DONTWAIT` receive).
/// With spinning off, `ready` is called exactly once.
pub fn spin_until<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let max = max_ns();
    if max == 0 {
        return ready();
    }
    let calls = CALLS.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    let budget = if calls % PROBE_EVERY == 0 { max } else { BUDGET_NS.with(Cell::get).min(max) };
    let start = Instant::now();
    let mut round = 0u32;
    loop {
        if let Some(v) = ready() {
            let took = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
            BUDGET_NS.with(|b| b.set(b.get().max(took.saturating_mul(2)).clamp(MIN_NS, max)));
            return Some(v);
        }
        let spent = start.elapsed().as_nanos();
        if spent >= budget as u128 {
            BUDGET_NS.with(|b| b.set((b.get() / 2).max(MIN_NS)));
            return None;
        }
        round += 1;
        if round < 64 {
            for _ in 0..(1 << (round / 8)) {
                std::hint::spin_loop();
            }
        } else {
            // Past the first microseconds, let another runnable task (often the peer we
            // wait for, on a machine with few cores) have the CPU between checks.
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_or_gives_up() {
        let mut n = 0;
        assert_eq!(
            spin_until(|| {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
        let start = Instant::now();
        assert_eq!(spin_until(|| None::<()>), None);
        // Gives up eventually (bounded by the budget); no upper bound is asserted.
        assert!(start.elapsed() >= Duration::ZERO);
    }
}
