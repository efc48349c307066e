//! [`Semaphore`] and [`BoundedSemaphore`]: a counter in shared memory that processes
//! take from and give back to, sleeping on a futex while it is zero.
//!
//! A semaphore has no owner: any process may release it (Python's semantics, and the way
//! to signal from one process to another). The flip side is that a process that dies
//! after acquiring does not give its permit back; nothing can tell its permit from the
//! others. Use a [`Lock`](crate::Lock) where a holder's death must be noticed.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc_sys::{futex, spin};
use serde::{Deserialize, Serialize};

use crate::ReleaseError;
use crate::shared::{Handle, Kind, Layout};
use crate::wait::deadline_after;

/// The largest value a [`Semaphore`] can hold (Python's `SEM_VALUE_MAX`).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

#[repr(C)]
pub(crate) struct SemLayout {
    /// The count; futex word.
    value: AtomicU32,
    /// How many processes may be asleep on `value` (only a hint to skip the wake call;
    /// a waiter killed while asleep leaves it one too high, which costs a system call).
    sleepers: AtomicU32,
    /// The largest value a release may leave.
    limit: AtomicU32,
}

#[repr(transparent)]
pub(crate) struct BoundedSemLayout(SemLayout);

// SAFETY: repr(C) atomics only.
unsafe impl Layout for SemLayout {
    const KIND: Kind = Kind::Semaphore;
    const ROBUST: bool = false;
}

// SAFETY: repr(transparent) over SemLayout, atomics only.
unsafe impl Layout for BoundedSemLayout {
    const KIND: Kind = Kind::BoundedSemaphore;
    const ROBUST: bool = false;
}

impl SemLayout {
    fn init(&self, value: u32, limit: u32) -> io::Result<()> {
        if value > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a semaphore's initial value may not exceed {limit} (got {value})"),
            ));
        }
        self.value.store(value, Ordering::Relaxed);
        self.limit.store(limit, Ordering::Relaxed);
        Ok(())
    }

    fn try_take(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            match self.value.compare_exchange_weak(v, v - 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    fn acquire(&self, deadline: Option<Instant>) -> bool {
        if self.try_take() || spin::spin_until(|| self.try_take().then_some(())).is_some() {
            return true;
        }
        // Announce ourselves before the last check, so a release that comes after the
        // check sees us and wakes us (both sides use SeqCst; the futex re-checks the
        // value atomically before sleeping).
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let got = loop {
            if self.try_take() {
                break true;
            }
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break false;
                    }
                    Some(left)
                }
            };
            if futex::wait(&self.value, 0, timeout).is_err() {
                std::thread::yield_now();
            }
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        got
    }

    fn release(&self) -> Result<(), ReleaseError> {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            if v >= limit {
                return Err(ReleaseError::TooManyReleases { limit });
            }
            match self.value.compare_exchange_weak(v, v + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex::wake(&self.value, 1);
        }
        Ok(())
    }
}

/// A permit taken from a semaphore; dropping it gives the permit back (Python: the body
/// of `with semaphore:`). [`forget`](SemaphoreGuard::forget) keeps it taken, for a
/// release by another process later.
#[must_use = "the permit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a SemLayout,
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken; someone must [`release`](Semaphore::release) it later.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // Only fails if others released more than they took; the count is then already
        // at its limit, which is what this release would have restored.
        let _ = self.sem.release();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

// The guards below are built lazily (`then`, not `then_some`): a guard that is built
// is dropped, and dropping one gives a permit back.
macro_rules! semaphore_methods {
    () => {
        /// Takes a permit, blocking while the count is zero (Python: `acquire()`).
        pub fn acquire(&self) -> SemaphoreGuard<'_> {
            let sem = self.sem();
            sem.acquire(None);
            SemaphoreGuard { sem }
        }

        /// Takes a permit if one is available now (Python: `acquire(block=False)`).
        pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
            let sem = self.sem();
            sem.try_take().then(|| SemaphoreGuard { sem })
        }

        /// Waits at most `timeout` for a permit (Python: `acquire(timeout=...)`).
        pub fn try_acquire_for(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
            let sem = self.sem();
            sem.acquire(deadline_after(timeout)).then(|| SemaphoreGuard { sem })
        }

        /// Waits until `deadline` for a permit.
        pub fn try_acquire_until(&self, deadline: Instant) -> Option<SemaphoreGuard<'_>> {
            let sem = self.sem();
            sem.acquire(Some(deadline)).then(|| SemaphoreGuard { sem })
        }

        /// The current count (Python: `get_value()`); it may change at once.
        pub fn value(&self) -> u32 {
            self.sem().value.load(Ordering::Relaxed)
        }
    };
}

/// A counting semaphore shared between processes (Python's `multiprocessing.Semaphore`).
///
/// `acquire` takes one of the permits, blocking while there are none; dropping the
/// guard, or [`release`](Semaphore::release) from any process, gives one back. Use it to
/// limit how many processes do something at once, or as a signal from one process to
/// another.
///
/// ```
/// use multiproc_sync::Semaphore;
///
/// let slots = Semaphore::new(2)?;
/// let a = slots.acquire();
/// let b = slots.acquire();
/// assert!(slots.try_acquire().is_none());   // both permits are out
/// drop(a);
/// assert!(slots.try_acquire().is_some());
/// b.forget();                               // keep it; release it by hand:
/// slots.release()?;
/// assert_eq!(slots.value(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Semaphore {
    shared: Handle<SemLayout>,
}

impl Semaphore {
    /// Creates a semaphore with `value` permits (at most [`SEM_VALUE_MAX`]).
    pub fn new(value: u32) -> io::Result<Semaphore> {
        let shared = Handle::create(|s: &SemLayout| s.init(value, SEM_VALUE_MAX))?;
        Ok(Semaphore { shared })
    }

    fn sem(&self) -> &SemLayout {
        self.shared.get()
    }

    semaphore_methods!();

    /// Gives a permit back, waking a waiter (Python: `release()`); any process may call
    /// it. Fails only if the count would pass [`SEM_VALUE_MAX`].
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.sem().release()
    }
}

/// A semaphore that refuses to be released above its initial value (Python's
/// `multiprocessing.BoundedSemaphore`), which catches releasing more than was acquired.
///
/// ```
/// use multiproc_sync::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1)?;
/// assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases { limit: 1 }));
/// sem.acquire().forget();
/// sem.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BoundedSemaphore {
    shared: Handle<BoundedSemLayout>,
}

impl BoundedSemaphore {
    /// Creates a bounded semaphore with `value` permits, which is also its limit.
    pub fn new(value: u32) -> io::Result<BoundedSemaphore> {
        let shared = Handle::create(|s: &BoundedSemLayout| s.0.init(value, value.min(SEM_VALUE_MAX)))?;
        Ok(BoundedSemaphore { shared })
    }

    fn sem(&self) -> &SemLayout {
        &self.shared.get().0
    }

    semaphore_methods!();

    /// Gives a permit back, waking a waiter; any process may call it. Fails with
    /// [`ReleaseError::TooManyReleases`] if the count is already at the initial value.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.sem().release()
    }

    /// The limit: the initial value.
    pub fn limit(&self) -> u32 {
        self.sem().limit.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("value", &self.value()).finish()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore").field("value", &self.value()).field("limit", &self.limit()).finish()
    }
}
