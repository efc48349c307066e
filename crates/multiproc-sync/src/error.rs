//! The error types, one per family of operations.

use std::fmt;
use std::io;

/// Why a blocking [`lock`](crate::Lock::lock) (or a [`Condition`](crate::Condition) wait,
/// which re-locks) did not simply succeed.
///
/// Like [`std::sync::PoisonError`], [`LockError::OwnerDied`] still carries what the call
/// would have returned (for `lock`, the guard): the lock *is* held. To pass the error on
/// with `?` (the guard borrows the lock), drop the guard first: `.map_err(|e| e.map(drop))`.
#[derive(thiserror::Error)]
pub enum LockError<G> {
    /// A process (or thread) died while holding the lock, so the data it protects may be
    /// half-updated. The caller holds the lock now: check or repair the data, then call
    /// `mark_consistent()` on the guard. Until someone does, every locker gets this error.
    #[error(
        "a process died while holding the lock, so the data it protects may be half-updated; \
         you hold the lock now: repair the data, then call `mark_consistent()` on the guard"
    )]
    OwnerDied(G),
    /// The calling thread already holds this lock, which is not re-entrant; locking it
    /// again would wait forever.
    #[error("this thread already holds the lock; a Lock is not re-entrant (use an RLock to lock it again)")]
    Deadlock,
    /// The operating system refused the operation; the shared memory of the lock is
    /// probably corrupted.
    #[error("the lock operation failed ({0}); its shared memory may have been overwritten")]
    Os(#[source] io::Error),
}

impl<G> LockError<G> {
    /// The guard (or other value) the call would have returned, if the lock was acquired
    /// anyway ([`LockError::OwnerDied`]); `None` for the other variants.
    pub fn into_inner(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is [`LockError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// Transforms the value carried by [`LockError::OwnerDied`].
    pub fn map<U>(self, f: impl FnOnce(G) -> U) -> LockError<U> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::Deadlock => LockError::Deadlock,
            LockError::Os(e) => LockError::Os(e),
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::Deadlock => f.write_str("Deadlock"),
            LockError::Os(e) => f.debug_tuple("Os").field(e).finish(),
        }
    }
}

impl<G> From<RawLockError> for LockError<G> {
    fn from(e: RawLockError) -> Self {
        match e {
            RawLockError::Deadlock => LockError::Deadlock,
            RawLockError::Os(e) => LockError::Os(e),
        }
    }
}

/// Why [`try_lock`](crate::Lock::try_lock), [`try_lock_for`](crate::Lock::try_lock_for)
/// or [`try_lock_until`](crate::Lock::try_lock_until) did not simply succeed.
#[derive(thiserror::Error)]
pub enum TryLockError<G> {
    /// `try_lock`: another thread or process holds the lock.
    #[error("the lock is held by another thread or process")]
    WouldBlock,
    /// `try_lock_for` / `try_lock_until`: the lock was still held when the time ran out.
    #[error("timed out waiting for the lock; another thread or process still holds it")]
    Timeout,
    /// Acquired, but a process died while holding it: see [`LockError::OwnerDied`].
    #[error(
        "a process died while holding the lock, so the data it protects may be half-updated; \
         you hold the lock now: repair the data, then call `mark_consistent()` on the guard"
    )]
    OwnerDied(G),
    /// The calling thread already holds this non-re-entrant lock.
    #[error("this thread already holds the lock; a Lock is not re-entrant (use an RLock to lock it again)")]
    Deadlock,
    /// The operating system refused the operation.
    #[error("the lock operation failed ({0}); its shared memory may have been overwritten")]
    Os(#[source] io::Error),
}

impl<G> TryLockError<G> {
    /// The guard, if the lock was acquired anyway ([`TryLockError::OwnerDied`]).
    pub fn into_inner(self) -> Option<G> {
        match self {
            TryLockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is [`TryLockError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, TryLockError::OwnerDied(_))
    }

    /// Transforms the value carried by [`TryLockError::OwnerDied`].
    pub fn map<U>(self, f: impl FnOnce(G) -> U) -> TryLockError<U> {
        match self {
            TryLockError::WouldBlock => TryLockError::WouldBlock,
            TryLockError::Timeout => TryLockError::Timeout,
            TryLockError::OwnerDied(g) => TryLockError::OwnerDied(f(g)),
            TryLockError::Deadlock => TryLockError::Deadlock,
            TryLockError::Os(e) => TryLockError::Os(e),
        }
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::Timeout => f.write_str("Timeout"),
            TryLockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            TryLockError::Deadlock => f.write_str("Deadlock"),
            TryLockError::Os(e) => f.debug_tuple("Os").field(e).finish(),
        }
    }
}

impl<G> From<RawLockError> for TryLockError<G> {
    fn from(e: RawLockError) -> Self {
        match e {
            RawLockError::Deadlock => TryLockError::Deadlock,
            RawLockError::Os(e) => TryLockError::Os(e),
        }
    }
}

/// Why a [`RawLock`](crate::RawLock) could not be acquired (the raw layer reports owner
/// death as a successful [`Acquired::OwnerDied`](crate::Acquired::OwnerDied) instead).
#[derive(Debug, thiserror::Error)]
pub enum RawLockError {
    /// The calling thread already holds this non-re-entrant lock.
    #[error("this thread already holds the lock; a Lock is not re-entrant (use an RLock to lock it again)")]
    Deadlock,
    /// The operating system refused the operation.
    #[error("the lock operation failed ({0}); its shared memory may have been overwritten")]
    Os(#[source] io::Error),
}

/// Why an unlock without a guard ([`Lock::force_unlock`](crate::Lock::force_unlock),
/// [`RLock::force_unlock`](crate::RLock::force_unlock)) failed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    /// The calling thread does not hold the lock (Python: "cannot release un-acquired
    /// lock"). Only the thread that locked a Lock or RLock can unlock it; to signal
    /// between processes use a [`Semaphore`](crate::Semaphore).
    #[error(
        "cannot release a lock this thread does not hold; only the holder can unlock it \
         (use a Semaphore if another process should release it)"
    )]
    NotOwner,
    /// The operating system refused the operation.
    #[error("the unlock failed ({0}); the lock's shared memory may have been overwritten")]
    Os(#[source] io::Error),
}

/// Why a semaphore [`release`](crate::Semaphore::release) failed. The count is unchanged.
/// (A serde type, so a child process can return it.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ReleaseError {
    /// Releasing would raise the count above its limit: the initial value of a
    /// [`BoundedSemaphore`](crate::BoundedSemaphore) (Python: "semaphore or lock
    /// released too many times"), or [`SEM_VALUE_MAX`](crate::SEM_VALUE_MAX).
    #[error(
        "semaphore released too many times: its value may not exceed {limit}; \
         release only what was acquired"
    )]
    TooManyReleases {
        /// The largest value the semaphore may hold.
        limit: u32,
    },
}

/// Why a [`Barrier`](crate::Barrier) wait failed (Python: `BrokenBarrierError`).
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// The barrier is broken: a party timed out, died inside the barrier, or called
    /// [`abort`](crate::Barrier::abort). It stays broken until
    /// [`reset`](crate::Barrier::reset).
    #[error(
        "the barrier is broken (a party timed out, died inside it, or called abort); \
         call reset() before waiting on it again"
    )]
    Broken,
    /// This wait timed out before all parties arrived. As in Python, that breaks the
    /// barrier for the other waiters too.
    #[error(
        "timed out waiting for the other parties of the barrier (one may have died); \
         the barrier is now broken: call reset() before waiting on it again"
    )]
    Timeout,
    /// The operating system refused an operation on the barrier's internal lock.
    #[error("the barrier's internal lock failed ({0}); its shared memory may have been overwritten")]
    Os(#[source] io::Error),
}
