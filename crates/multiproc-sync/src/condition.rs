//! [`Condition`]: Python's `multiprocessing.Condition`, a condition variable over a
//! [`Lock`] or [`RLock`].
//!
//! Waiting uses a shared sequence number as the futex word: a waiter notes it, releases
//! the lock, and sleeps while it is unchanged; `notify` bumps it and wakes waiters. A
//! waiter therefore cannot miss a notification sent after it released the lock, and may
//! occasionally wake without one (use [`ConditionGuard::wait_for`] with a predicate, as
//! in Python).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc_sys::futex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::shared::{Handle, Kind, Layout};
use crate::wait::{deadline_after, wait_while_eq};
use crate::{
    Acquired, Lock, LockError, LockGuard, RLock, RawLock, RawLockError, RawMutex, RawRecursiveMutex, TryLockError,
    UnlockError,
};

/// A lock a [`Condition`] can be built on: [`Lock`] or [`RLock`].
pub trait ConditionLock: Clone + Serialize + DeserializeOwned {
    /// The raw lock underneath.
    type Raw: RawLock;
    /// The raw lock, shared by every clone of the handle.
    fn raw(&self) -> &Self::Raw;
}

impl ConditionLock for Lock {
    type Raw = RawMutex;
    fn raw(&self) -> &RawMutex {
        Lock::raw(self)
    }
}

impl ConditionLock for RLock {
    type Raw = RawRecursiveMutex;
    fn raw(&self) -> &RawRecursiveMutex {
        RLock::raw(self)
    }
}

/// A condition variable shared between processes (Python's
/// `multiprocessing.Condition`), over an [`RLock`] by default or a [`Lock`].
///
/// Lock it with [`lock`](Condition::lock), then wait on the guard; other processes
/// change the shared state under the same lock and call [`notify`](Condition::notify) or
/// [`notify_all`](Condition::notify_all). While waiting the lock is released (all levels
/// of an `RLock`), and it is re-acquired before the wait returns. If a holder died in the
/// meantime, the wait returns [`LockError::OwnerDied`], with the lock held.
///
/// ```
/// use multiproc_sync::{Condition, Lock};
/// use std::time::Duration;
///
/// let cond = Condition::with_lock(Lock::new()?)?;
/// let mut guard = cond.lock().map_err(|e| e.map(drop))?;
/// // Nobody notifies here, so this times out (and returns the predicate's value).
/// let ready = guard.wait_for_timeout(|| false, Duration::from_millis(5))?;
/// assert!(!ready);
/// cond.notify_all(); // wakes whoever waits (nobody)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(bound = "")] // `L: ConditionLock` already implies the serde traits
pub struct Condition<L: ConditionLock = RLock> {
    lock: L,
    state: Handle<CondLayout>,
}

#[repr(C)]
pub(crate) struct CondLayout {
    /// Futex word, bumped by every notify that finds waiters.
    seq: AtomicU32,
    /// How many waiters have released the lock to wait (a waiter that dies while
    /// waiting leaves it one too high, which only costs notify a system call).
    waiters: AtomicU32,
}

// SAFETY: repr(C) atomics only.
unsafe impl Layout for CondLayout {
    const KIND: Kind = Kind::Condition;
    const ROBUST: bool = false;
}

impl Condition<RLock> {
    /// Creates a condition over a new [`RLock`] (Python: `Condition()`).
    pub fn new() -> io::Result<Condition<RLock>> {
        Condition::with_lock(RLock::new()?)
    }
}

impl<L: ConditionLock> Condition<L> {
    /// Creates a condition over an existing lock (Python: `Condition(lock)`).
    pub fn with_lock(lock: L) -> io::Result<Condition<L>> {
        Ok(Condition { lock, state: Handle::create(|_: &CondLayout| Ok(()))? })
    }

    /// The lock underneath.
    pub fn lock_handle(&self) -> &L {
        &self.lock
    }

    /// Blocks until the lock is held, and returns a guard to wait on.
    pub fn lock(&self) -> Result<ConditionGuard<'_, L>, LockError<ConditionGuard<'_, L>>> {
        LockGuard::lock(self.lock.raw()).map(|g| self.wrap(g)).map_err(|e| e.map(|g| self.wrap(g)))
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Result<ConditionGuard<'_, L>, TryLockError<ConditionGuard<'_, L>>> {
        LockGuard::try_lock(self.lock.raw()).map(|g| self.wrap(g)).map_err(|e| e.map(|g| self.wrap(g)))
    }

    /// Waits at most `timeout` for the lock.
    pub fn try_lock_for(
        &self,
        timeout: Duration,
    ) -> Result<ConditionGuard<'_, L>, TryLockError<ConditionGuard<'_, L>>> {
        LockGuard::try_lock_for(self.lock.raw(), timeout).map(|g| self.wrap(g)).map_err(|e| e.map(|g| self.wrap(g)))
    }

    fn wrap<'a>(&'a self, guard: LockGuard<'a, L::Raw>) -> ConditionGuard<'a, L> {
        ConditionGuard { guard, cond: self }
    }

    /// Wakes up to `n` waiters (Python: `notify(n)`). Call it while holding the lock,
    /// after changing the state the waiters test, as Python requires.
    pub fn notify(&self, n: u32) {
        let st = self.state.get();
        if n == 0 || st.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        st.seq.fetch_add(1, Ordering::SeqCst);
        futex::wake(&st.seq, n);
    }

    /// Wakes one waiter (Python: `notify()`).
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes every waiter (Python: `notify_all()`).
    pub fn notify_all(&self) {
        self.notify(u32::MAX);
    }
}

impl<L: ConditionLock + fmt::Debug> fmt::Debug for Condition<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").field("lock", &self.lock).finish_non_exhaustive()
    }
}

/// The lock of a [`Condition`], held; wait on it (Python: inside `with cond:`).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a, L: ConditionLock> {
    guard: LockGuard<'a, L::Raw>,
    cond: &'a Condition<L>,
}

impl<L: ConditionLock> ConditionGuard<'_, L> {
    /// Releases the lock, sleeps until notified, and re-acquires it (Python: `wait()`).
    /// May wake without a notification: re-check the state, or use
    /// [`wait_for`](ConditionGuard::wait_for).
    pub fn wait(&mut self) -> Result<(), LockError<()>> {
        self.wait_inner(None).map(drop).map_err(|e| e.map(drop))
    }

    /// As [`wait`](ConditionGuard::wait), for at most `timeout`; returns `false` if the
    /// time ran out (Python: `wait(timeout)`).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool, LockError<bool>> {
        self.wait_inner(deadline_after(timeout))
    }

    /// As [`wait`](ConditionGuard::wait), until `deadline`; returns `false` if it passed.
    pub fn wait_until(&mut self, deadline: Instant) -> Result<bool, LockError<bool>> {
        self.wait_inner(Some(deadline))
    }

    /// Waits until `predicate` (called with the lock held) returns true (Python:
    /// `wait_for(predicate)`).
    pub fn wait_for(&mut self, mut predicate: impl FnMut() -> bool) -> Result<(), LockError<()>> {
        while !predicate() {
            self.wait()?;
        }
        Ok(())
    }

    /// Waits at most `timeout` for `predicate` to become true; returns its last value
    /// (Python: `wait_for(predicate, timeout)`).
    pub fn wait_for_timeout(
        &mut self,
        predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<bool, LockError<bool>> {
        match deadline_after(timeout) {
            Some(d) => self.wait_for_until(predicate, d),
            None => self.wait_for(predicate).map(|()| true).map_err(|e| e.map(|()| true)),
        }
    }

    /// Waits until `deadline` for `predicate` to become true; returns its last value.
    pub fn wait_for_until(
        &mut self,
        mut predicate: impl FnMut() -> bool,
        deadline: Instant,
    ) -> Result<bool, LockError<bool>> {
        loop {
            if predicate() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            if let Err(e) = self.wait_inner(Some(deadline)) {
                return Err(e.map(|_| predicate()));
            }
        }
    }

    /// Records that the protected state is consistent again after a holder died (see
    /// [`LockGuard::mark_consistent`]).
    pub fn mark_consistent(&self) {
        self.guard.mark_consistent();
    }

    fn wait_inner(&mut self, deadline: Option<Instant>) -> Result<bool, LockError<bool>> {
        let st = self.cond.state.get();
        let raw = self.guard.raw();
        // Note the sequence number and register while still holding the lock: a notify
        // can only come after we release it, and it will see us and move the number.
        let seq = st.seq.load(Ordering::SeqCst);
        st.waiters.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the guard proves this thread holds the lock; `relock` below gives the
        // acquisitions back before the guard can be used again.
        let depth = match unsafe { raw.unlock_fully() } {
            Ok(depth) => depth,
            Err(e) => {
                st.waiters.fetch_sub(1, Ordering::SeqCst);
                return Err(LockError::Os(match e {
                    UnlockError::Os(e) => e,
                    UnlockError::NotOwner => io::Error::other("the condition's lock was not held by this thread"),
                }));
            }
        };
        let woken = wait_while_eq(&st.seq, seq, deadline);
        st.waiters.fetch_sub(1, Ordering::SeqCst);
        match raw.relock(depth) {
            Ok(Acquired::Consistent) => Ok(woken),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(woken)),
            Err(RawLockError::Deadlock) => Err(LockError::Deadlock),
            Err(RawLockError::Os(e)) => Err(LockError::Os(e)),
        }
    }
}

impl<L: ConditionLock> fmt::Debug for ConditionGuard<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}
