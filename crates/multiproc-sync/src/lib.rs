//! Cross-process synchronisation (Python: `multiprocessing.Lock`, `RLock`, `Semaphore`,
//! `BoundedSemaphore`, `Event`, `Condition`, `Barrier`), aware of a holder's death.
//!
//! | Python | here |
//! |---|---|
//! | `Lock()`, `with lock:`, `acquire(block, timeout)`, `release()` | [`Lock::new`], [`Lock::lock`] (a guard), [`Lock::try_lock`], [`Lock::try_lock_for`], [`Lock::force_unlock`] |
//! | `RLock()` | [`RLock`], same methods, re-entrant |
//! | `Semaphore(n)`, `BoundedSemaphore(n)`, `get_value()` | [`Semaphore`], [`BoundedSemaphore`]: `acquire`, `try_acquire_for`, `release`, `value` |
//! | `Event()`: `set`, `clear`, `is_set`, `wait(timeout)` | [`Event`]: the same, `wait_timeout` |
//! | `Condition(lock)`: `wait`, `wait_for`, `notify(n)`, `notify_all` | [`Condition`]: [`Condition::lock`] gives a [`ConditionGuard`] to wait on |
//! | `Barrier(n)`: `wait`, `abort`, `reset`, `broken` | [`Barrier`]: the same, `wait_timeout`, `is_broken` |
//!
//! Every primitive lives in its own anonymous shared-memory segment (memfd: nothing in
//! `/dev/shm`, nothing left behind by a killed process). Handles are `Clone` (a clone
//! shares the primitive) and serde types: pass one to a child process as an argument
//! under any start method, and its segment travels as a file descriptor; a fork child
//! simply inherits it. A segment starts with a magic number, a layout version and the
//! primitive's kind, checked when it is received, so a foreign descriptor is an error.
//!
//! **A holder that dies is reported, not waited for forever.** Python's locks stay held
//! by a process that died holding them, and everyone else blocks for good. Here the locks
//! are POSIX robust mutexes ([`multiproc_sys::robust`]): the kernel marks the lock when
//! its holder's thread ends, SIGKILL included, and the next locker gets
//! [`LockError::OwnerDied`], holding the lock, like [`std::sync::PoisonError`]. It keeps
//! getting reported until a holder calls [`LockGuard::mark_consistent`]. Nothing
//! depends on asking whether a pid is alive, so pid reuse cannot fool it.
//! [`Condition`] waits report it on re-acquiring the lock, and a [`Barrier`] whose party
//! died inside it is broken.
//!
//! Semaphores and events have no owner (any process may release or set them), so there
//! is no death to detect; a [`Barrier`] party that never arrives is caught with a timeout.
//!
//! Blocking calls spin briefly before sleeping on a futex (the policy of
//! [`multiproc_sys::spin`]): a wake-up from the kernel costs tens of microseconds.
//!
//! The layer underneath, for crates that keep a lock inside their own shared memory (a
//! queue, a shared value), is the [`RawLock`] trait with [`RawMutex`] and
//! [`RawRecursiveMutex`], in the style of `lock_api`; [`LockGuard`] works over any of them.

mod barrier;
mod condition;
mod error;
mod event;
mod guard;
mod lock;
mod raw;
mod rlock;
mod semaphore;
mod shared;
mod wait;

pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard, ConditionLock};
pub use error::{BarrierError, LockError, RawLockError, ReleaseError, TryLockError, UnlockError};
pub use event::Event;
pub use guard::{LockGuard, LockResult, TryLockResult};
pub use lock::Lock;
pub use raw::{Acquired, RawLock, RawMutex, RawRecursiveMutex};
pub use rlock::RLock;
pub use semaphore::{BoundedSemaphore, SEM_VALUE_MAX, Semaphore, SemaphoreGuard};

// Compiles and runs the README's example with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
