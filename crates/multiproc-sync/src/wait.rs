//! Waiting for a shared word to change: spin briefly, then sleep on the futex.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc_sys::{futex, spin};

/// The deadline `timeout` from now; `None` when it is too far away to represent (then
/// the caller waits without a deadline).
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Waits until `word` no longer holds `value`, or `deadline` passes. Returns whether the
/// word changed. May return `true` for a change that was undone since.
pub(crate) fn wait_while_eq(word: &AtomicU32, value: u32, deadline: Option<Instant>) -> bool {
    let changed = || word.load(Ordering::Acquire) != value;
    if changed() || spin::spin_until(|| changed().then_some(())).is_some() {
        return true;
    }
    loop {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return changed();
                }
                Some(left)
            }
        };
        // Woken, timed out, interrupted or the value already changed: all end in the
        // same re-check. FUTEX_WAIT cannot otherwise fail on a valid aligned word; if it
        // somehow did, yielding keeps this loop from burning a core.
        if futex::wait(word, value, timeout).is_err() {
            std::thread::yield_now();
        }
        if changed() {
            return true;
        }
    }
}
