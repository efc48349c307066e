//! [`Lock`]: Python's `multiprocessing.Lock`, owner-death aware.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::shared::{Handle, Kind, Layout};
use crate::{LockGuard, LockResult, RawLock, RawMutex, TryLockResult, UnlockError};

/// A non-re-entrant lock shared between processes (Python's `multiprocessing.Lock`).
///
/// `lock()` returns a guard; the lock is released when the guard is dropped. A clone
/// shares the same lock, and so does a copy passed to a child process as an argument
/// (under every start method: the lock's shared memory travels as a file descriptor).
///
/// What Python leaves open, this closes: if a process dies while holding the lock, the
/// next locker does not wait forever but gets [`LockError::OwnerDied`](crate::LockError::OwnerDied)
/// holding the guard.
/// The kernel detects the death, so it works even for SIGKILL and whatever the dead
/// process's pid becomes later.
///
/// Locking it again from the thread that holds it is an error
/// ([`LockError::Deadlock`](crate::LockError::Deadlock)), not a hang; for re-entrant locking use an
/// [`RLock`](crate::RLock).
///
/// ```
/// use multiproc_sync::{Lock, LockError, TryLockError};
///
/// let lock = Lock::new()?;
/// {
///     let _guard = lock.lock().map_err(|e| e.map(drop))?;    // with lock:
///     assert!(matches!(lock.try_lock(), Err(TryLockError::Deadlock))); // held, by us
/// }                                                          // released here
///
/// // The usual shape of a locked section: a holder that died is reported, and the
/// // lock is yours all the same.
/// let guard = match lock.lock() {
///     Ok(guard) => guard,
///     Err(LockError::OwnerDied(guard)) => {
///         /* repair the shared data, then: */
///         guard.mark_consistent();
///         guard
///     }
///     Err(e) => return Err(e.map(drop).into()),
/// };
/// drop(guard);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lock {
    shared: Handle<LockLayout>,
}

#[repr(C)]
pub(crate) struct LockLayout {
    raw: RawMutex,
}

// SAFETY: repr(C), one RawMutex (a pthread mutex of plain integers and an atomic), valid
// for any bytes and only mutated through shared references.
unsafe impl Layout for LockLayout {
    const KIND: Kind = Kind::Lock;
    const ROBUST: bool = true;
    fn pinned(&self) -> bool {
        self.raw.held_by_this_process()
    }
}

impl Lock {
    /// Creates a new, unlocked lock in its own shared-memory segment.
    pub fn new() -> io::Result<Lock> {
        let shared = Handle::create(|l: &LockLayout| {
            // SAFETY: the segment is fresh and zeroed; nobody else can see it yet.
            unsafe { l.raw.init() }
        })?;
        Ok(Lock { shared })
    }

    /// Blocks until the lock is held (Python: `acquire()`); spins briefly first.
    #[inline]
    pub fn lock(&self) -> LockResult<'_, RawMutex> {
        LockGuard::lock(self.raw())
    }

    /// Takes the lock if it is free (Python: `acquire(block=False)`).
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<'_, RawMutex> {
        LockGuard::try_lock(self.raw())
    }

    /// Waits at most `timeout` for the lock (Python: `acquire(timeout=...)`).
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<'_, RawMutex> {
        LockGuard::try_lock_for(self.raw(), timeout)
    }

    /// Waits until `deadline` for the lock.
    pub fn try_lock_until(&self, deadline: Instant) -> TryLockResult<'_, RawMutex> {
        LockGuard::try_lock_until(self.raw(), deadline)
    }

    /// Whether some thread of some process holds the lock right now.
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// Releases the lock without its guard (Python: `release()`, for code that kept the
    /// lock past the guard with [`std::mem::forget`]). Fails with
    /// [`UnlockError::NotOwner`], changing nothing, unless the calling thread holds it.
    ///
    /// # Safety
    /// No guard of this acquisition may be used (or dropped) afterwards.
    pub unsafe fn force_unlock(&self) -> Result<(), UnlockError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.raw().unlock() }
    }

    /// The raw lock, for building other primitives on the same lock.
    #[inline]
    pub fn raw(&self) -> &RawMutex {
        &self.shared.get().raw
    }
}

#[cfg(test)]
impl Lock {
    pub(crate) fn shared_fd_for_tests(&self) -> std::os::fd::OwnedFd {
        self.shared.fd_for_tests()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("locked", &self.is_locked()).finish()
    }
}
