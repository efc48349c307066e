//! [`RLock`]: Python's `multiprocessing.RLock`, owner-death aware.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::shared::{Handle, Kind, Layout};
use crate::{LockGuard, LockResult, RawLock, RawRecursiveMutex, TryLockResult, UnlockError};

/// A re-entrant lock shared between processes (Python's `multiprocessing.RLock`).
///
/// The thread that holds it may lock it again; it is released when every guard is
/// dropped. Only the holding thread can release it: an unguarded release from anywhere
/// else ([`RLock::force_unlock`]) fails with [`UnlockError::NotOwner`], as Python raises.
/// A holder that dies is reported to the next locker as
/// [`LockError::OwnerDied`](crate::LockError::OwnerDied), exactly as for a
/// [`Lock`](crate::Lock).
///
/// ```
/// use multiproc_sync::RLock;
///
/// let rlock = RLock::new()?;
/// let outer = rlock.lock().map_err(|e| e.map(drop))?;
/// let inner = rlock.lock().map_err(|e| e.map(drop))?;   // same thread: no deadlock
/// drop(inner);
/// assert!(rlock.is_locked());                             // still held by `outer`
/// drop(outer);
/// assert!(!rlock.is_locked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RLock {
    shared: Handle<RLockLayout>,
}

#[repr(C)]
pub(crate) struct RLockLayout {
    raw: RawRecursiveMutex,
}

// SAFETY: repr(C), one RawRecursiveMutex (plain integers and an atomic), valid for any
// bytes and only mutated through shared references.
unsafe impl Layout for RLockLayout {
    const KIND: Kind = Kind::RLock;
    const ROBUST: bool = true;
    fn pinned(&self) -> bool {
        self.raw.held_by_this_process()
    }
}

impl RLock {
    /// Creates a new, unlocked re-entrant lock in its own shared-memory segment.
    pub fn new() -> io::Result<RLock> {
        let shared = Handle::create(|l: &RLockLayout| {
            // SAFETY: the segment is fresh and zeroed; nobody else can see it yet.
            unsafe { l.raw.init() }
        })?;
        Ok(RLock { shared })
    }

    /// Blocks until the calling thread holds the lock (at once if it already does).
    #[inline]
    pub fn lock(&self) -> LockResult<'_, RawRecursiveMutex> {
        LockGuard::lock(self.raw())
    }

    /// Takes the lock if it is free or already held by the calling thread.
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<'_, RawRecursiveMutex> {
        LockGuard::try_lock(self.raw())
    }

    /// Waits at most `timeout` for the lock.
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<'_, RawRecursiveMutex> {
        LockGuard::try_lock_for(self.raw(), timeout)
    }

    /// Waits until `deadline` for the lock.
    pub fn try_lock_until(&self, deadline: Instant) -> TryLockResult<'_, RawRecursiveMutex> {
        LockGuard::try_lock_until(self.raw(), deadline)
    }

    /// Whether some thread of some process holds the lock right now.
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// Releases one level of the lock without a guard (Python: `release()`). Fails with
    /// [`UnlockError::NotOwner`], changing nothing, unless the calling thread holds it.
    ///
    /// # Safety
    /// No guard of the released acquisition may be used (or dropped) afterwards.
    pub unsafe fn force_unlock(&self) -> Result<(), UnlockError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.raw().unlock() }
    }

    /// The raw lock, for building other primitives on the same lock.
    #[inline]
    pub fn raw(&self) -> &RawRecursiveMutex {
        &self.shared.get().raw
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock").field("locked", &self.is_locked()).finish()
    }
}
