//! The raw lock layer, in the style of `lock_api`: a trait for a lock word that lives in
//! shared memory, with owner death as a first-class outcome, and its two robust
//! implementations.
//!
//! [`RawMutex`] and [`RawRecursiveMutex`] are `#[repr(C)]` values meant to be embedded in
//! a shared-memory layout (a queue header, a shared value) and initialised in place with
//! their unsafe `init`. The safe, RAII side is [`LockGuard`](crate::LockGuard), which
//! works over any [`RawLock`].

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use multiproc_sys::robust::{Locked, MutexKind, RobustMutex};
use multiproc_sys::spin;

use crate::{RawLockError, UnlockError};

/// How a raw lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// Normally: the data it protects is as the last holder left it.
    Consistent,
    /// A holder died while holding the lock (now or earlier, and nobody has called
    /// [`RawLock::mark_consistent`] since): the data may be half-updated. The lock is
    /// held all the same.
    OwnerDied,
}

/// A lock whose state lives in memory shared between processes (the raw layer under
/// [`LockGuard`](crate::LockGuard), like `lock_api::RawMutex`).
///
/// Owner death is part of the contract: when the holder dies, the next acquisition
/// succeeds with [`Acquired::OwnerDied`], and keeps doing so for every later holder until
/// one of them calls [`mark_consistent`](RawLock::mark_consistent).
///
/// # Safety
/// Implementations must provide mutual exclusion: between an acquisition that returned
/// `Ok(Acquired::..)` (or `Ok(Some(..))`) and the matching [`unlock`](RawLock::unlock),
/// no other thread, in this or another process, may acquire the lock. A re-entrant
/// implementation may let the *holding* thread acquire it again. Code holding a guard
/// relies on this for memory safety.
pub unsafe trait RawLock {
    /// Blocks until the calling thread holds the lock.
    fn lock(&self) -> Result<Acquired, RawLockError>;

    /// Acquires the lock if that needs no waiting; `Ok(None)` if it is held elsewhere.
    fn try_lock(&self) -> Result<Option<Acquired>, RawLockError>;

    /// Blocks until the lock is acquired or `deadline` passes (`Ok(None)`).
    fn try_lock_until(&self, deadline: Instant) -> Result<Option<Acquired>, RawLockError>;

    /// Releases one acquisition. Fails with [`UnlockError::NotOwner`], changing nothing,
    /// if the calling thread does not hold the lock.
    ///
    /// # Safety
    /// If the calling thread holds the lock, no guard for the released acquisition may be
    /// used afterwards (its holder would otherwise touch protected data without the lock).
    unsafe fn unlock(&self) -> Result<(), UnlockError>;

    /// Records that the protected data is consistent again after an
    /// [`Acquired::OwnerDied`]. Call it only while holding the lock.
    fn mark_consistent(&self);

    /// Whether some thread in some process holds the lock now (a hint: it may change
    /// at once).
    fn is_locked(&self) -> bool;

    /// Releases every acquisition the calling thread holds (one for a plain lock, all
    /// levels of a re-entrant one) and returns how many, for
    /// [`relock`](RawLock::relock). Used by condition variables.
    ///
    /// # Safety
    /// As for [`unlock`](RawLock::unlock), for every released acquisition, until
    /// `relock` gives them back.
    unsafe fn unlock_fully(&self) -> Result<u32, UnlockError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.unlock() }.map(|()| 1)
    }

    /// Acquires the lock `depth` times (once for a plain lock), undoing
    /// [`unlock_fully`](RawLock::unlock_fully).
    fn relock(&self, depth: u32) -> Result<Acquired, RawLockError> {
        let _ = depth;
        self.lock()
    }
}

/// A robust, error-checking, process-shared mutex: the raw lock under
/// [`Lock`](crate::Lock).
///
/// Built on a POSIX robust mutex ([`multiproc_sys::robust`]), so the kernel reports the
/// holder's death, whatever pid it had and whatever pid is reused later. On top of it, a
/// shared flag remembers that a holder died until someone calls
/// [`mark_consistent`](RawLock::mark_consistent) (the POSIX mutex itself would turn
/// unusable forever instead). Locking spins briefly (see [`multiproc_sys::spin`]) before
/// sleeping in the kernel.
///
/// To embed one in your own shared layout: zeroed memory, then [`RawMutex::init`] before
/// the memory is shared; and keep the memory mapped while
/// [`held_by_this_process`](RawMutex::held_by_this_process) is true.
#[repr(C)]
#[derive(Debug)]
pub struct RawMutex {
    mutex: RobustMutex,
    owner_died: AtomicU32,
}

/// A robust, re-entrant, process-shared mutex: the raw lock under [`RLock`](crate::RLock).
///
/// As [`RawMutex`], but the holding thread may lock it again; it is released when
/// unlocked as many times as it was locked.
#[repr(C)]
#[derive(Debug)]
pub struct RawRecursiveMutex {
    mutex: RobustMutex,
    owner_died: AtomicU32,
}

enum Wait {
    No,
    Forever,
    Until(Instant),
}

fn os(e: io::Error) -> RawLockError {
    // EDEADLK: an error-checking mutex locked again by its holder.
    if e.kind() == io::ErrorKind::Deadlock { RawLockError::Deadlock } else { RawLockError::Os(e) }
}

#[inline]
fn acquire(m: &RobustMutex, owner_died: &AtomicU32, wait: Wait) -> Result<Option<Acquired>, RawLockError> {
    match m.try_lock() {
        Ok(Some(l)) => finish(m, owner_died, l).map(Some),
        Ok(None) => acquire_slow(m, owner_died, wait),
        Err(e) => Err(os(e)),
    }
}

/// Looks at the lock word in a tight loop before yielding between looks.
const QUICK_LOOKS: u32 = 4;

#[cold]
#[inline(never)]
fn acquire_slow(m: &RobustMutex, owner_died: &AtomicU32, wait: Wait) -> Result<Option<Acquired>, RawLockError> {
    let deadline = match wait {
        Wait::No => return Ok(None),
        Wait::Forever => None,
        Wait::Until(d) => Some(d),
    };
    // The holder usually lets go within microseconds: spin before sleeping in the
    // kernel. After a few quick looks, give the CPU away between looks: every look pulls
    // the lock's cache line away from the holder, and under steady contention that
    // costs the holder more than the wait costs us (parking_lot does the same).
    let mut looks = 0u32;
    let spun = spin::spin_until(|| {
        looks += 1;
        if looks > QUICK_LOOKS {
            std::thread::yield_now();
        }
        if m.is_locked() || deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        match m.try_lock() {
            Ok(None) => None,
            other => Some(other),
        }
    });
    let locked = match spun {
        Some(r) => r.map_err(os)?,
        None => match deadline {
            None => Some(m.lock().map_err(os)?),
            Some(d) => m.lock_until(d).map_err(os)?,
        },
    };
    match locked {
        Some(l) => finish(m, owner_died, l).map(Some),
        None => Ok(None),
    }
}

#[inline]
fn finish(m: &RobustMutex, owner_died: &AtomicU32, l: Locked) -> Result<Acquired, RawLockError> {
    // `owner_died` is only touched while holding the mutex, which orders it.
    match l {
        Locked::Normal if owner_died.load(Ordering::Relaxed) == 0 => Ok(Acquired::Consistent),
        Locked::Normal => Ok(Acquired::OwnerDied),
        Locked::OwnerDied => {
            // Remember the death before repairing the mutex: if we die in between, the
            // kernel marks it again and the next holder repeats this.
            owner_died.store(1, Ordering::Relaxed);
            m.make_consistent().map_err(RawLockError::Os)?;
            Ok(Acquired::OwnerDied)
        }
    }
}

#[inline]
fn unlock(m: &RobustMutex) -> Result<(), UnlockError> {
    // EPERM: the calling thread is not the holder.
    m.unlock().map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied { UnlockError::NotOwner } else { UnlockError::Os(e) }
    })
}

macro_rules! robust_raw_lock {
    ($ty:ident, $kind:expr $(, { $($extra:tt)* })?) => {
        impl $ty {
            /// Initialises the lock in place, unlocked.
            ///
            /// # Safety
            /// `self` must be in zeroed memory (or an earlier, unheld lock) that no other
            /// thread or process uses until `init` returns: call it on a freshly created
            /// segment before sharing it.
            pub unsafe fn init(&self) -> io::Result<()> {
                self.owner_died.store(0, Ordering::Relaxed);
                // SAFETY: forwarded from the caller.
                unsafe { self.mutex.init($kind) }
            }

            /// Whether a thread of this process holds the lock, in which case the memory
            /// it lives in must stay mapped (see [`multiproc_sys::robust`]).
            pub fn held_by_this_process(&self) -> bool {
                self.mutex.held_by_this_process()
            }
        }

        // SAFETY: a robust pthread mutex excludes every other thread of every process
        // between a successful lock (including EOWNERDEAD, which hands over ownership)
        // and the unlock; the recursive kind only lets the holding thread re-acquire.
        unsafe impl RawLock for $ty {
            #[inline]
            fn lock(&self) -> Result<Acquired, RawLockError> {
                acquire(&self.mutex, &self.owner_died, Wait::Forever).map(|a| a.unwrap_or(Acquired::Consistent))
            }

            #[inline]
            fn try_lock(&self) -> Result<Option<Acquired>, RawLockError> {
                acquire(&self.mutex, &self.owner_died, Wait::No)
            }

            fn try_lock_until(&self, deadline: Instant) -> Result<Option<Acquired>, RawLockError> {
                acquire(&self.mutex, &self.owner_died, Wait::Until(deadline))
            }

            #[inline]
            unsafe fn unlock(&self) -> Result<(), UnlockError> {
                unlock(&self.mutex)
            }

            fn mark_consistent(&self) {
                self.owner_died.store(0, Ordering::Relaxed);
            }

            fn is_locked(&self) -> bool {
                self.mutex.is_locked()
            }

            $($($extra)*)?
        }
    };
}

robust_raw_lock!(RawMutex, MutexKind::ErrorCheck);
robust_raw_lock!(RawRecursiveMutex, MutexKind::Recursive, {
    unsafe fn unlock_fully(&self) -> Result<u32, UnlockError> {
        // glibc keeps the recursion count; unlock until it says we no longer own the
        // mutex. The probing unlock after the last real one fails with EPERM and changes
        // nothing, whoever holds the mutex by then.
        let mut depth = 0;
        loop {
            match unlock(&self.mutex) {
                Ok(()) => depth += 1,
                Err(UnlockError::NotOwner) if depth > 0 => return Ok(depth),
                Err(e) => return Err(e),
            }
        }
    }

    fn relock(&self, depth: u32) -> Result<Acquired, RawLockError> {
        let first = self.lock()?;
        for _ in 1..depth {
            // Already ours: each of these only bumps glibc's recursion count.
            self.mutex.lock().map_err(os)?;
        }
        Ok(first)
    }
});
