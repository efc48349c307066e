//! [`RawArray`]: Python's `multiprocessing.RawArray`, a fixed-length typed array in
//! shared memory without a lock.

use std::fmt;
use std::io;
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AtomicPod;
use crate::block::{Block, Kind, LockMode, deserialize_block, serialize_block};

/// A fixed-length array of a plain-old-data type `T` in shared memory, without a lock
/// (Python's `multiprocessing.RawArray`).
///
/// The rules are those of [`RawValue`](crate::RawValue), element by element: copies in
/// and out ([`load`](RawArray::load), [`store`](RawArray::store),
/// [`read`](RawArray::read), [`to_vec`](RawArray::to_vec),
/// [`copy_from_slice`](RawArray::copy_from_slice)) are made of atomic accesses, so they
/// are always memory-safe; an element of at most 8 bytes is never torn, and a copy of
/// several elements is not a snapshot if other processes write meanwhile. Integer arrays
/// can also be reached as a slice of atomics ([`as_atomics`](RawArray::as_atomics)).
/// The usual pattern is to give each process its own part of the array, or to order
/// the accesses with a lock, a barrier or an event of `multiproc-sync`.
///
/// ```
/// use multiproc_process::{Process, StartMethod};
/// use multiproc_shared::RawArray;
///
/// fn fill((out, part): (RawArray<f64>, usize)) {
///     for i in part * 4..part * 4 + 4 {
///         out.store(i, i as f64 / 2.0); // each child writes its own quarter
///     }
/// }
///
/// let out = RawArray::<f64>::zeroed(16)?;
/// let mut kids: Vec<_> = (0..4)
///     .map(|part| Process::new(fill, (out.clone(), part)).with_start_method(StartMethod::Fork))
///     .collect();
/// for k in &mut kids { k.start()?; }
/// for k in &mut kids { k.join()?; }
/// assert_eq!(out.load(15), 7.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawArray<T> {
    block: Arc<Block<T>>,
}

impl<T> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray { block: self.block.clone() }
    }
}

impl<T: Pod> RawArray<T> {
    /// A new array of `len` zeros (Python: `RawArray(typecode, len)`).
    pub fn zeroed(len: usize) -> io::Result<RawArray<T>> {
        Ok(RawArray { block: Arc::new(Block::create(Kind::RawArray, len, &[], LockMode::None)?) })
    }

    /// A new array holding a copy of `values` (Python: `RawArray(typecode, sequence)`).
    pub fn from_slice(values: &[T]) -> io::Result<RawArray<T>> {
        Ok(RawArray { block: Arc::new(Block::create(Kind::RawArray, values.len(), values, LockMode::None)?) })
    }

    /// The number of elements (fixed at creation).
    pub fn len(&self) -> usize {
        self.block.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of element `index`.
    ///
    /// # Panics
    /// If `index >= len()`.
    #[inline]
    pub fn load(&self, index: usize) -> T {
        let mut out = [T::zeroed()];
        self.block.read(index, &mut out);
        out[0]
    }

    /// Overwrites element `index`.
    ///
    /// # Panics
    /// If `index >= len()`.
    #[inline]
    pub fn store(&self, index: usize, value: T) {
        self.block.write(index, &[value]);
    }

    /// Copies elements `start..start + out.len()` into `out`.
    ///
    /// # Panics
    /// If the range is not inside the array.
    pub fn read(&self, start: usize, out: &mut [T]) {
        self.block.read(start, out);
    }

    /// Copies `values` into the array from element `start` on.
    ///
    /// # Panics
    /// If the range is not inside the array.
    pub fn write(&self, start: usize, values: &[T]) {
        self.block.write(start, values);
    }

    /// A copy of all elements.
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len()];
        self.block.read(0, &mut out);
        out
    }

    /// Replaces all elements.
    ///
    /// # Panics
    /// If `values.len() != len()`.
    pub fn copy_from_slice(&self, values: &[T]) {
        assert_eq!(values.len(), self.len(), "copy_from_slice needs exactly as many values as the array has elements");
        self.block.write(0, values);
    }
}

impl<T: AtomicPod> RawArray<T> {
    /// The shared elements as atomic integers.
    pub fn as_atomics(&self) -> &[T::Atomic] {
        self.block.atomics::<T::Atomic>()
    }
}

impl<T: Pod> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(&format!("RawArray<{}>", std::any::type_name::<T>())).field("len", &self.len()).finish()
    }
}

impl<T: Pod> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_block(&self.block, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_block(d, Kind::RawArray).map(|b| RawArray { block: Arc::new(b) })
    }
}
