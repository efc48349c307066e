//! Waiting for a condition on the shared state, and waking those who wait.
//!
//! Every wait spins first ([`multiproc_sys::spin::spin_until`]: a peer a few
//! microseconds away answers before a sleep would even begin), then sleeps on a futex
//! word. A waiter sets a *sleeper flag* before it sleeps; whoever changes the state
//! checks the flag and only then pays for the wake system call, so a queue whose peers
//! keep up never enters the kernel. The flag is a flag, not a count: a waker clears it
//! and wakes everyone, and each waiter that still has to wait sets it again. A waiter
//! SIGKILLed while asleep therefore costs at most one needless wake, not one per message.
//!
//! Sleeps are bounded (1 ms, doubling up to [`MAX_NAP`]) and the condition is checked
//! again after each, so that nothing waits forever for a wake that a killed process
//! never sent, and so that a consumer notices that the last producer was SIGKILLed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc_sys::futex;
use multiproc_sys::spin::spin_until;

/// The longest single sleep before the condition is checked again.
pub(crate) const MAX_NAP: Duration = Duration::from_millis(100);
const FIRST_NAP: Duration = Duration::from_millis(1);

/// When a blocking call gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Do not wait at all (`*_nowait`, `try_*`).
    Now,
    /// Wait until this instant (`*_timeout`, `*_deadline`).
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Instant::now().checked_add(timeout).map_or(Deadline::Never, Deadline::At)
    }
}

/// How [`block_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The condition holds.
    Ready,
    /// The deadline passed first.
    TimedOut,
    /// `give_up` returned true (the condition can no longer become true).
    GaveUp,
}

/// A futex word and the sleeper flag that goes with it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signal<'a> {
    pub(crate) word: &'a AtomicU32,
    pub(crate) sleepers: &'a AtomicU32,
}

impl Signal<'_> {
    /// Wakes every sleeper after the state they wait on has changed, bumping the word
    /// so that one about to sleep notices. Costs one load when nobody sleeps.
    ///
    /// The caller's state change must be a `SeqCst` store (or be followed by one) so
    /// that either it sees the flag or the sleeper sees its change.
    #[inline]
    pub(crate) fn notify(&self) {
        if self.sleepers.load(Ordering::SeqCst) != 0 && self.sleepers.swap(0, Ordering::SeqCst) != 0 {
            self.word.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(self.word);
        }
    }

    /// Like [`notify`](Signal::notify) for a word that *is* the state (a counter the
    /// caller just changed), which must not be bumped.
    #[inline]
    pub(crate) fn notify_unchanged(&self) {
        if self.sleepers.load(Ordering::SeqCst) != 0 && self.sleepers.swap(0, Ordering::SeqCst) != 0 {
            futex::wake_all(self.word);
        }
    }
}

/// Waits until `ready()` holds, `give_up()` holds, or the deadline passes.
///
/// `ready` must be cheap (a few atomic loads). `give_up` may cost a system call; it is
/// only consulted when about to sleep.
pub(crate) fn block_until(
    signal: Signal<'_>,
    deadline: Deadline,
    mut ready: impl FnMut() -> bool,
    mut give_up: impl FnMut() -> bool,
) -> Waited {
    if ready() {
        return Waited::Ready;
    }
    if deadline == Deadline::Now {
        return if give_up() { Waited::GaveUp } else { Waited::TimedOut };
    }
    if spin_until(|| ready().then_some(())).is_some() {
        return Waited::Ready;
    }
    let mut nap = FIRST_NAP;
    loop {
        signal.sleepers.store(1, Ordering::SeqCst);
        let seen = signal.word.load(Ordering::SeqCst);
        if ready() {
            return Waited::Ready;
        }
        if give_up() {
            // Give up only if the condition did not become true meanwhile.
            return if ready() { Waited::Ready } else { Waited::GaveUp };
        }
        let sleep = match deadline {
            Deadline::At(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Waited::TimedOut;
                }
                left.min(nap)
            }
            Deadline::Never | Deadline::Now => nap,
        };
        // Errors (none are expected for a valid, aligned word) are treated like a
        // spurious wake: the loop checks again, and the sleep is bounded anyway.
        let _ = futex::wait(signal.word, seen, Some(sleep));
        nap = (nap * 2).min(MAX_NAP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn ready_timeout_and_give_up() {
        let (w, s) = (AtomicU32::new(0), AtomicU32::new(0));
        let sig = Signal { word: &w, sleepers: &s };
        assert_eq!(block_until(sig, Deadline::Now, || true, || false), Waited::Ready);
        assert_eq!(block_until(sig, Deadline::Now, || false, || false), Waited::TimedOut);
        assert_eq!(block_until(sig, Deadline::Now, || false, || true), Waited::GaveUp);
        let start = Instant::now();
        let d = Deadline::after(Duration::from_millis(20));
        assert_eq!(block_until(sig, d, || false, || false), Waited::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(block_until(sig, Deadline::Never, || false, || true), Waited::GaveUp);
    }

    #[test]
    fn notify_wakes_a_sleeper() {
        let (w, s) = (AtomicU32::new(0), AtomicU32::new(0));
        let flag = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let t = scope.spawn(|| {
                block_until(
                    Signal { word: &w, sleepers: &s },
                    Deadline::Never,
                    || flag.load(Ordering::SeqCst),
                    || false,
                )
            });
            std::thread::sleep(Duration::from_millis(30));
            flag.store(true, Ordering::SeqCst);
            Signal { word: &w, sleepers: &s }.notify();
            assert_eq!(t.join().unwrap(), Waited::Ready);
        });
    }
}
