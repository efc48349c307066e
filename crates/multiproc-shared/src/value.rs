//! [`Value`]: Python's `multiprocessing.Value`, a typed value in shared memory with a
//! lock.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use multiproc_sync::{LockError, RawMutex};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::block::Kind;
use crate::guard::{GuardResult, TryGuardResult, ValueGuard};
use crate::locked::LockedBlock;

/// One value of a plain-old-data type `T` in shared memory, with a lock (Python's
/// `multiprocessing.Value`).
///
/// `T` is any [`bytemuck::Pod`] type: integers, floats, arrays of them, and
/// `#[repr(C)]` structs of those (`#[derive(Pod, Zeroable, Clone, Copy)]`).
///
/// Reach the value through [`lock`](Value::lock), which returns a guard that derefs
/// (mutably) to `T`; or, for one read or write, [`load`](Value::load),
/// [`store`](Value::store) and [`update`](Value::update), which lock around a copy.
/// A clone shares the same value, and so does a copy passed to a child process as an
/// argument, under every start method: the memory is an anonymous segment whose
/// descriptor travels with the argument (nothing appears in `/dev/shm`, nothing is left
/// behind, whoever dies).
///
/// The lock is a robust process-shared mutex (`multiproc-sync`'s [`RawMutex`]): if a
/// process dies holding it, the next locker gets [`LockError::OwnerDied`] with a guard
/// that works normally, instead of waiting forever as in Python. Unlike Python's default
/// `RLock`, it is not re-entrant (two guards would give two `&mut T`): locking it again
/// on the same thread is [`LockError::Deadlock`], never a hang. For the same reason
/// there is no `lock=` argument to share one lock between values: to update several
/// things together, put them in one `Value` of a `#[repr(C)]` struct (or one [`Array`](crate::Array)),
/// so that one guard reaches them all.
///
/// ```
/// use multiproc_process::{Process, StartMethod};
/// use multiproc_shared::Value;
///
/// fn add(counter: Value<u64>) {
///     for _ in 0..1000 {
///         *counter.lock().unwrap() += 1; // with counter.get_lock(): counter.value += 1
///     }
/// }
///
/// let counter = Value::new(0u64)?;
/// let mut kids: Vec<_> = (0..2)
///     .map(|_| Process::new(add, counter.clone()).with_start_method(StartMethod::Fork))
///     .collect();
/// for k in &mut kids { k.start()?; }
/// for k in &mut kids { k.join()?; }
/// assert_eq!(counter.load()?, 2000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Value<T> {
    inner: LockedBlock<T>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value { inner: self.inner.clone() }
    }
}

fn one<T>(elems: &mut [T]) -> &mut T {
    // A Value's block always holds exactly one element (created so; checked on attach).
    &mut elems[0]
}

impl<T: Pod> Value<T> {
    /// A new value in its own shared-memory segment, with its own lock (Python:
    /// `Value(typecode, value)`).
    pub fn new(value: T) -> io::Result<Value<T>> {
        Ok(Value { inner: LockedBlock::create(Kind::Value, 1, &[value])? })
    }

    /// Blocks until the calling thread holds the lock, and returns a guard that derefs
    /// to the value.
    ///
    /// [`LockError::OwnerDied`] carries the guard if a process died holding the lock;
    /// [`LockError::Deadlock`] if this thread holds it already.
    #[inline]
    pub fn lock(&self) -> GuardResult<ValueGuard<'_, T>> {
        self.inner.lock(one)
    }

    /// Takes the lock if it is free (Python: `get_lock().acquire(False)`).
    pub fn try_lock(&self) -> TryGuardResult<ValueGuard<'_, T>> {
        self.inner.try_lock(one)
    }

    /// Waits at most `timeout` for the lock.
    pub fn try_lock_for(&self, timeout: Duration) -> TryGuardResult<ValueGuard<'_, T>> {
        self.inner.try_lock_for(timeout, one)
    }

    /// Waits until `deadline` for the lock.
    pub fn try_lock_until(&self, deadline: Instant) -> TryGuardResult<ValueGuard<'_, T>> {
        self.inner.try_lock_until(deadline, one)
    }

    /// The lock that guards the value (Python: `get_lock()`), for code that builds on
    /// the raw lock layer; [`lock`](Value::lock) is the usual way in.
    pub fn get_lock(&self) -> &RawMutex {
        self.inner.raw()
    }

    /// Whether some thread of some process holds the lock right now (a hint).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// A copy of the value, read under the lock (Python: `v.value`).
    ///
    /// On [`LockError::OwnerDied`] the error carries the value as it was found.
    pub fn load(&self) -> Result<T, LockError<T>> {
        self.inner.with(|e| e[0])
    }

    /// Replaces the value under the lock (Python: `v.value = x`).
    ///
    /// On [`LockError::OwnerDied`] the value was stored all the same; the error says a
    /// holder died earlier (lock and call `mark_consistent` to stop hearing about it).
    pub fn store(&self, value: T) -> Result<(), LockError<()>> {
        self.inner.with(|e| e[0] = value)
    }

    /// Runs `f` on the value under the lock and returns its result (Python: `with
    /// v.get_lock(): v.value += 1`). On [`LockError::OwnerDied`], `f` ran all the same
    /// and the error carries its result.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, LockError<R>> {
        self.inner.with(|e| f(&mut e[0]))
    }
}

impl<T: Pod> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(&format!("Value<{}>", std::any::type_name::<T>())).field("locked", &self.is_locked()).finish()
    }
}

impl<T: Pod> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LockedBlock::deserialize(d, Kind::Value).map(|inner| Value { inner })
    }
}
