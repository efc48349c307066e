//! [`Barrier`]: Python's `multiprocessing.Barrier`, a meeting point for a fixed number of
//! parties.
//!
//! The state is a futex word `generation << 1 | broken` plus an arrival count, updated
//! under an internal robust mutex. The last party to arrive moves to the next generation
//! and wakes the others; a waiter knows its round completed when the generation moved.
//! Nobody has to leave before the next round starts, so a party killed while waiting
//! cannot hold the barrier up. A party killed while inside the internal lock is reported
//! by the robust mutex, and breaks the barrier.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc_sys::futex;
use serde::{Deserialize, Serialize};

use crate::shared::{Handle, Kind, Layout};
use crate::wait::{deadline_after, wait_while_eq};
use crate::{BarrierError, LockError, LockGuard, RawMutex};

/// How many resets are remembered, so that a waiter woken late can still tell whether
/// its own round was reset (broken) or completed before a later reset.
const RESET_LOG: u32 = 8;

/// A barrier for `parties` processes (or threads) (Python's `multiprocessing.Barrier`).
///
/// Each party calls [`wait`](Barrier::wait); all return once the last one arrives, each
/// with a different arrival index in `0..parties` (use it to pick one party for a
/// follow-up job, as Python's `action` would). The barrier is then ready for the next
/// round.
///
/// A party that never arrives (it died) would keep the others waiting forever; give them
/// a timeout ([`wait_timeout`](Barrier::wait_timeout)). As in Python, a timeout or an
/// [`abort`](Barrier::abort) *breaks* the barrier: every waiter, present and future,
/// gets [`BarrierError::Broken`] until [`reset`](Barrier::reset).
///
/// ```
/// use multiproc_sync::{Barrier, BarrierError};
/// use std::time::Duration;
///
/// let barrier = Barrier::new(1)?;
/// assert_eq!(barrier.wait()?, 0);           // one party: passes at once
///
/// let pair = Barrier::new(2)?;
/// // The other party never comes: time out, which breaks the barrier.
/// assert!(matches!(pair.wait_timeout(Duration::from_millis(5)), Err(BarrierError::Timeout)));
/// assert!(pair.is_broken());
/// pair.reset();
/// assert!(!pair.is_broken());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Barrier {
    shared: Handle<BarrierLayout>,
}

#[repr(C)]
pub(crate) struct BarrierLayout {
    lock: RawMutex,
    /// Futex word: `generation << 1 | broken`.
    word: AtomicU32,
    /// Parties arrived in the current generation.
    count: AtomicU32,
    parties: AtomicU32,
    /// How many resets there have been, and at which generation each happened.
    resets: AtomicU32,
    reset_gen: [AtomicU32; RESET_LOG as usize],
}

// SAFETY: repr(C): a RawMutex (plain integers and an atomic) and atomics, valid for any
// bytes and only mutated through shared references.
unsafe impl Layout for BarrierLayout {
    const KIND: Kind = Kind::Barrier;
    const ROBUST: bool = true;
    // The internal lock is never held outside a call on a live handle.
}

const BROKEN: u32 = 1;

fn generation(word: u32) -> u32 {
    word >> 1
}

/// The word of the next generation, unbroken.
fn next_generation(word: u32) -> u32 {
    (word & !BROKEN).wrapping_add(2)
}

impl Barrier {
    /// Creates a barrier for `parties` parties (at least one).
    pub fn new(parties: u32) -> io::Result<Barrier> {
        if parties == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a barrier needs at least one party"));
        }
        let shared = Handle::create(|b: &BarrierLayout| {
            b.parties.store(parties, Ordering::Relaxed);
            // SAFETY: the segment is fresh and zeroed; nobody else can see it yet.
            unsafe { b.lock.init() }
        })?;
        Ok(Barrier { shared })
    }

    fn get(&self) -> &BarrierLayout {
        self.shared.get()
    }

    /// Waits for all parties; returns this party's arrival index (Python: `wait()`).
    pub fn wait(&self) -> Result<u32, BarrierError> {
        self.wait_inner(None)
    }

    /// Waits at most `timeout` for all parties (Python: `wait(timeout)`). On timeout the
    /// barrier breaks, and this call returns [`BarrierError::Timeout`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BarrierError> {
        self.wait_inner(deadline_after(timeout))
    }

    /// Waits until `deadline` for all parties; breaks the barrier if it passes.
    pub fn wait_until(&self, deadline: Instant) -> Result<u32, BarrierError> {
        self.wait_inner(Some(deadline))
    }

    /// Breaks the barrier: current and future waiters get [`BarrierError::Broken`] until
    /// [`reset`](Barrier::reset) (Python: `abort()`).
    pub fn abort(&self) {
        let b = self.get();
        let guard = self.lock_internal();
        b.word.fetch_or(BROKEN, Ordering::SeqCst);
        drop(guard);
        futex::wake_all(&b.word);
    }

    /// Returns the barrier to its initial state; parties waiting right now get
    /// [`BarrierError::Broken`] (Python: `reset()`).
    pub fn reset(&self) {
        let b = self.get();
        let guard = self.lock_internal();
        let word = b.word.load(Ordering::Relaxed);
        let resets = b.resets.load(Ordering::Relaxed);
        b.reset_gen[(resets % RESET_LOG) as usize].store(generation(word), Ordering::Relaxed);
        b.resets.store(resets.wrapping_add(1), Ordering::Relaxed);
        b.count.store(0, Ordering::Relaxed);
        b.word.store(next_generation(word), Ordering::SeqCst);
        drop(guard);
        futex::wake_all(&b.word);
    }

    /// How many parties the barrier waits for (Python: `parties`).
    pub fn parties(&self) -> u32 {
        self.get().parties.load(Ordering::Relaxed)
    }

    /// How many parties are waiting now (Python: `n_waiting`).
    pub fn n_waiting(&self) -> u32 {
        if self.is_broken() { 0 } else { self.get().count.load(Ordering::Relaxed) }
    }

    /// Whether the barrier is broken (Python: `broken`).
    pub fn is_broken(&self) -> bool {
        self.get().word.load(Ordering::Acquire) & BROKEN != 0
    }

    /// Takes the internal lock. A party that died holding it may have left the count
    /// half-updated: the barrier is broken then (the caller sees it in the word).
    fn lock_internal(&self) -> Option<LockGuard<'_, RawMutex>> {
        let b = self.get();
        match LockGuard::lock(&b.lock) {
            Ok(g) => Some(g),
            Err(LockError::OwnerDied(g)) => {
                b.word.fetch_or(BROKEN, Ordering::SeqCst);
                g.mark_consistent();
                futex::wake_all(&b.word);
                Some(g)
            }
            // Cannot happen short of corrupted memory (the lock is never held across
            // calls, so never by this thread).
            Err(_) => None,
        }
    }

    fn wait_inner(&self, deadline: Option<Instant>) -> Result<u32, BarrierError> {
        let b = self.get();
        let corrupted = || BarrierError::Os(io::Error::other("the barrier's internal lock cannot be taken"));
        let guard = self.lock_internal().ok_or_else(corrupted)?;
        let word = b.word.load(Ordering::Relaxed);
        if word & BROKEN != 0 {
            return Err(BarrierError::Broken);
        }
        let parties = b.parties.load(Ordering::Relaxed);
        let index = b.count.load(Ordering::Relaxed);
        let resets_before = b.resets.load(Ordering::Relaxed);
        if index.saturating_add(1) >= parties {
            // Last to arrive: complete the round.
            b.count.store(0, Ordering::Relaxed);
            b.word.store(next_generation(word), Ordering::SeqCst);
            drop(guard);
            futex::wake_all(&b.word);
            return Ok(index);
        }
        b.count.store(index + 1, Ordering::Relaxed);
        drop(guard);

        wait_while_eq(&b.word, word, deadline);

        let _guard = self.lock_internal().ok_or_else(corrupted)?;
        let now = b.word.load(Ordering::Relaxed);
        if now == word {
            // Timed out with the round still open: break it for everyone (Python).
            b.word.store(word | BROKEN, Ordering::SeqCst);
            futex::wake_all(&b.word);
            return Err(BarrierError::Timeout);
        }
        if generation(now) == generation(word) {
            // Same round, broken bit set: aborted, timed out elsewhere, or a party died.
            return Err(BarrierError::Broken);
        }
        // The round ended: completed, or reset (which breaks it for its waiters).
        let resets = b.resets.load(Ordering::Relaxed);
        if resets == resets_before {
            return Ok(index);
        }
        if resets.wrapping_sub(resets_before) > RESET_LOG {
            // Too many resets since to tell: say broken rather than claim a meeting.
            return Err(BarrierError::Broken);
        }
        let first_reset_at = b.reset_gen[(resets_before % RESET_LOG) as usize].load(Ordering::Relaxed);
        if first_reset_at == generation(word) { Err(BarrierError::Broken) } else { Ok(index) }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}
