//! [`Array`]: Python's `multiprocessing.Array`, a fixed-length typed array in shared
//! memory with a lock.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use multiproc_sync::{LockError, RawMutex};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::block::Kind;
use crate::guard::{ArrayGuard, GuardResult, TryGuardResult};
use crate::locked::LockedBlock;

/// A fixed-length array of a plain-old-data type `T` in shared memory, with a lock
/// (Python's `multiprocessing.Array`).
///
/// [`lock`](Array::lock) returns a guard that derefs (mutably) to `[T]`: every slice
/// method works on the shared elements while the lock is held. For one access,
/// [`load`](Array::load), [`store`](Array::store), [`to_vec`](Array::to_vec) and
/// [`copy_from_slice`](Array::copy_from_slice) lock around a copy. Clones and copies
/// passed to child processes share the array, as for [`Value`](crate::Value), and owner
/// death is reported the same way.
///
/// ```
/// use multiproc_process::{Process, StartMethod};
/// use multiproc_shared::Array;
///
/// fn fill((squares, i): (Array<u32>, usize)) {
///     squares.store(i, (i * i) as u32).unwrap();
/// }
///
/// let squares = Array::<u32>::zeroed(4)?;
/// for i in 0..4 {
///     let mut p = Process::new(fill, (squares.clone(), i)).with_start_method(StartMethod::Fork);
///     p.start()?;
///     p.join()?;
/// }
/// assert_eq!(squares.to_vec()?, [0, 1, 4, 9]);
/// let mut guard = squares.lock().map_err(|e| e.map(drop))?; // the whole slice, locked
/// guard.reverse();
/// assert_eq!(&guard[..], &[9, 4, 1, 0]);
/// # drop(guard);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T> {
    inner: LockedBlock<T>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array { inner: self.inner.clone() }
    }
}

fn all<T>(elems: &mut [T]) -> &mut [T] {
    elems
}

impl<T: Pod> Array<T> {
    /// A new array of `len` zeros, with its own lock (Python: `Array(typecode, len)`).
    pub fn zeroed(len: usize) -> io::Result<Array<T>> {
        Ok(Array { inner: LockedBlock::create(Kind::Array, len, &[])? })
    }

    /// A new array holding a copy of `values`, with its own lock (Python:
    /// `Array(typecode, sequence)`).
    pub fn from_slice(values: &[T]) -> io::Result<Array<T>> {
        Ok(Array { inner: LockedBlock::create(Kind::Array, values.len(), values)? })
    }

    /// The number of elements (fixed at creation).
    pub fn len(&self) -> usize {
        self.inner.block().len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until the calling thread holds the lock; the guard derefs to `[T]`.
    #[inline]
    pub fn lock(&self) -> GuardResult<ArrayGuard<'_, T>> {
        self.inner.lock(all)
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> TryGuardResult<ArrayGuard<'_, T>> {
        self.inner.try_lock(all)
    }

    /// Waits at most `timeout` for the lock.
    pub fn try_lock_for(&self, timeout: Duration) -> TryGuardResult<ArrayGuard<'_, T>> {
        self.inner.try_lock_for(timeout, all)
    }

    /// Waits until `deadline` for the lock.
    pub fn try_lock_until(&self, deadline: Instant) -> TryGuardResult<ArrayGuard<'_, T>> {
        self.inner.try_lock_until(deadline, all)
    }

    /// The lock that guards the array (Python: `get_lock()`).
    pub fn get_lock(&self) -> &RawMutex {
        self.inner.raw()
    }

    /// Whether some thread of some process holds the lock right now (a hint).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// A copy of element `index`, read under the lock (Python: `a[i]`).
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn load(&self, index: usize) -> Result<T, LockError<T>> {
        self.check(index);
        self.inner.with(|e| e[index])
    }

    /// Replaces element `index` under the lock (Python: `a[i] = x`).
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn store(&self, index: usize, value: T) -> Result<(), LockError<()>> {
        self.check(index);
        self.inner.with(|e| e[index] = value)
    }

    /// A copy of all elements, made under the lock (Python: `a[:]`).
    pub fn to_vec(&self) -> Result<Vec<T>, LockError<Vec<T>>> {
        self.inner.with(|e| e.to_vec())
    }

    /// Replaces all elements under the lock (Python: `a[:] = values`).
    ///
    /// # Panics
    /// If `values.len() != len()`.
    pub fn copy_from_slice(&self, values: &[T]) -> Result<(), LockError<()>> {
        assert_eq!(values.len(), self.len(), "copy_from_slice needs exactly as many values as the array has elements");
        self.inner.with(|e| e.copy_from_slice(values))
    }

    fn check(&self, index: usize) {
        let len = self.len();
        assert!(index < len, "index {index} out of range for an Array of length {len}");
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(&format!("Array<{}>", std::any::type_name::<T>()))
            .field("len", &self.len())
            .field("locked", &self.is_locked())
            .finish()
    }
}

impl<T: Pod> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LockedBlock::deserialize(d, Kind::Array).map(|inner| Array { inner })
    }
}
