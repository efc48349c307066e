//! The RAII guard over any [`RawLock`], and the safe acquire functions every lock type
//! uses.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::wait::deadline_after;
use crate::{Acquired, LockError, RawLock, TryLockError};

/// What a blocking lock returns: the guard, or why not (with the guard, if the lock was
/// acquired from a holder that died).
pub type LockResult<'a, R> = Result<LockGuard<'a, R>, LockError<LockGuard<'a, R>>>;

/// What `try_lock`, `try_lock_for` and `try_lock_until` return.
pub type TryLockResult<'a, R> = Result<LockGuard<'a, R>, TryLockError<LockGuard<'a, R>>>;

/// Proof that the calling thread holds a lock; the lock is released when it is dropped
/// (Python: the body of `with lock:`).
///
/// Guards are not `Send`: a robust lock belongs to the thread that took it, and only
/// that thread can release it.
///
/// If the lock was handed over from a holder that died, the guard came wrapped in
/// [`LockError::OwnerDied`]; after repairing the protected data, call
/// [`mark_consistent`](LockGuard::mark_consistent) so that later lockers stop hearing
/// about it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a, R: RawLock + ?Sized> {
    raw: &'a R,
    // Not Send, not Sync: the unlock must happen on the locking thread.
    _not_send: PhantomData<*const ()>,
}

impl<'a, R: RawLock + ?Sized> LockGuard<'a, R> {
    /// Blocks until `raw` is held (spinning briefly first), and returns its guard.
    #[inline]
    pub fn lock(raw: &'a R) -> Result<Self, LockError<Self>> {
        match raw.lock() {
            Ok(a) => Self::wrap(raw, a).map_err(LockError::OwnerDied),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes `raw` if that needs no waiting: [`TryLockError::WouldBlock`] otherwise.
    #[inline]
    pub fn try_lock(raw: &'a R) -> Result<Self, TryLockError<Self>> {
        match raw.try_lock() {
            Ok(Some(a)) => Self::wrap(raw, a).map_err(TryLockError::OwnerDied),
            Ok(None) => Err(TryLockError::WouldBlock),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits at most `timeout` for `raw`: [`TryLockError::Timeout`] if still held by then.
    pub fn try_lock_for(raw: &'a R, timeout: Duration) -> Result<Self, TryLockError<Self>> {
        match deadline_after(timeout) {
            Some(d) => Self::try_lock_until(raw, d),
            None => Self::lock(raw).map_err(|e| match e {
                LockError::OwnerDied(g) => TryLockError::OwnerDied(g),
                LockError::Deadlock => TryLockError::Deadlock,
                LockError::Os(e) => TryLockError::Os(e),
            }),
        }
    }

    /// Waits until `deadline` for `raw`: [`TryLockError::Timeout`] if still held by then.
    pub fn try_lock_until(raw: &'a R, deadline: Instant) -> Result<Self, TryLockError<Self>> {
        match raw.try_lock_until(deadline) {
            Ok(Some(a)) => Self::wrap(raw, a).map_err(TryLockError::OwnerDied),
            Ok(None) => Err(TryLockError::Timeout),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a guard for a lock the calling thread already holds (for example, one
    /// acquired through [`RawLock`] directly).
    ///
    /// # Safety
    /// The calling thread holds `raw`, and nothing else will release that acquisition:
    /// the guard's drop will.
    pub unsafe fn from_held(raw: &'a R) -> Self {
        LockGuard { raw, _not_send: PhantomData }
    }

    #[inline]
    fn wrap(raw: &'a R, a: Acquired) -> Result<Self, Self> {
        let g = LockGuard { raw, _not_send: PhantomData };
        match a {
            Acquired::Consistent => Ok(g),
            Acquired::OwnerDied => Err(g),
        }
    }

    /// Records that the protected data is consistent again after an owner died: later
    /// lockers get a plain guard instead of [`LockError::OwnerDied`].
    pub fn mark_consistent(&self) {
        self.raw.mark_consistent();
    }

    /// The raw lock this guard holds.
    pub fn raw(&self) -> &'a R {
        self.raw
    }

    /// Releases the lock now (the same as dropping the guard).
    pub fn unlock(self) {
        drop(self);
    }
}

impl<R: RawLock + ?Sized> Drop for LockGuard<'_, R> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard proves this thread holds the lock, and the guard is going
        // away, so nothing can use this acquisition afterwards. The unlock cannot fail
        // for the holder short of corrupted memory, and a drop has nobody to tell.
        let _ = unsafe { self.raw.unlock() };
    }
}

impl<R: RawLock + ?Sized> fmt::Debug for LockGuard<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
