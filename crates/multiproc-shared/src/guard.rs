//! The guard of a locked [`Value`](crate::Value) or [`Array`](crate::Array): proof that
//! the calling thread holds the lock, and the only way to reach the data by reference.

use std::fmt;
use std::ops::{Deref, DerefMut};

use multiproc_sync::{LockError, LockGuard, RawMutex, TryLockError};

/// What a blocking `lock()` returns: the guard, or why not (with the guard when the
/// previous holder died: [`LockError::OwnerDied`]).
pub type GuardResult<G> = Result<G, LockError<G>>;

/// What `try_lock`, `try_lock_for` and `try_lock_until` return.
pub type TryGuardResult<G> = Result<G, TryLockError<G>>;

/// The guard of a locked [`Value<T>`](crate::Value): derefs to `T`.
pub type ValueGuard<'a, T> = SharedGuard<'a, T>;

/// The guard of a locked [`Array<T>`](crate::Array): derefs to `[T]`.
pub type ArrayGuard<'a, T> = SharedGuard<'a, [T]>;

/// Exclusive access to shared data while its lock is held (Python: the body of
/// `with value.get_lock():`). The lock is released when the guard is dropped.
///
/// It derefs, mutably, to the data in shared memory: reads and writes through it are
/// plain memory accesses, as fast as on a local variable, because every process takes
/// the same lock before touching the data.
///
/// Guards are not `Send`: the lock belongs to the thread that took it.
///
/// If the guard came wrapped in [`LockError::OwnerDied`], a process died while holding
/// the lock and may have left the data half-updated: check or repair it, then call
/// [`mark_consistent`](SharedGuard::mark_consistent) so that later lockers are no longer
/// told.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SharedGuard<'a, D: ?Sized> {
    // Declared before the lock guard, so the reference is gone before the unlock.
    data: &'a mut D,
    lock: LockGuard<'a, RawMutex>,
}

impl<'a, D: ?Sized> SharedGuard<'a, D> {
    pub(crate) fn new(data: &'a mut D, lock: LockGuard<'a, RawMutex>) -> SharedGuard<'a, D> {
        SharedGuard { data, lock }
    }

    /// Records that the data is consistent again after a holder died: later lockers get
    /// a plain guard instead of [`LockError::OwnerDied`].
    pub fn mark_consistent(&self) {
        self.lock.mark_consistent();
    }

    /// Releases the lock now (the same as dropping the guard).
    pub fn unlock(self) {
        drop(self);
    }
}

impl<D: ?Sized> Deref for SharedGuard<'_, D> {
    type Target = D;

    #[inline]
    fn deref(&self) -> &D {
        self.data
    }
}

impl<D: ?Sized> DerefMut for SharedGuard<'_, D> {
    #[inline]
    fn deref_mut(&mut self) -> &mut D {
        self.data
    }
}

impl<D: ?Sized + fmt::Debug> fmt::Debug for SharedGuard<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedGuard").field(&self.data).finish()
    }
}
