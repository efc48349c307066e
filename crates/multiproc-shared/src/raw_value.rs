//! [`RawValue`]: Python's `multiprocessing.RawValue`, a typed value in shared memory
//! without a lock.

use std::fmt;
use std::io;
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AtomicPod;
use crate::block::{Block, Kind, LockMode, deserialize_block, serialize_block};

/// One value of a plain-old-data type `T` in shared memory, without a lock (Python's
/// `multiprocessing.RawValue`).
///
/// Without a lock, other processes may write the value at any moment, so it is never
/// reached by reference. The rules:
/// - [`load`](RawValue::load) and [`store`](RawValue::store) copy the whole value with
///   atomic loads and stores. That is always memory-safe, but a value written
///   concurrently may be *torn* (part old, part new), except a naturally aligned value
///   of at most 8 bytes (every integer and float), which is copied in one access.
///   A `store` also publishes what the storing thread wrote before it, to a process that
///   `load`s the stored value (release/acquire).
/// - For integers ([`AtomicPod`]), [`as_atomic`](RawValue::as_atomic) gives the shared
///   value as an atomic, for `fetch_add`, `compare_exchange` and friends: the only kind of
///   reference into concurrently written memory that is sound.
/// - For read-modify-write of anything else, use a [`Value`](crate::Value).
///
/// Clones and copies passed to child processes share the value, as for `Value`.
///
/// ```
/// use std::sync::atomic::Ordering;
/// use multiproc_process::{Process, StartMethod};
/// use multiproc_shared::RawValue;
///
/// fn tick(hits: RawValue<u64>) {
///     for _ in 0..1000 {
///         hits.as_atomic().fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let hits = RawValue::new(0u64)?;
/// let mut p = Process::new(tick, hits.clone()).with_start_method(StartMethod::Fork);
/// p.start()?;
/// tick(hits.clone());
/// p.join()?;
/// assert_eq!(hits.load(), 2000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawValue<T> {
    block: Arc<Block<T>>,
}

impl<T> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue { block: self.block.clone() }
    }
}

impl<T: Pod> RawValue<T> {
    /// A new value in its own shared-memory segment (Python: `RawValue(typecode, value)`).
    pub fn new(value: T) -> io::Result<RawValue<T>> {
        Ok(RawValue { block: Arc::new(Block::create(Kind::RawValue, 1, &[value], LockMode::None)?) })
    }

    /// A copy of the value (possibly torn by a concurrent store, see the type's docs).
    #[inline]
    pub fn load(&self) -> T {
        let mut out = [T::zeroed()];
        self.block.read(0, &mut out);
        out[0]
    }

    /// Overwrites the value (a concurrent load may see it torn, see the type's docs).
    #[inline]
    pub fn store(&self, value: T) {
        self.block.write(0, &[value]);
    }
}

impl<T: AtomicPod> RawValue<T> {
    /// The shared value as an atomic integer (for `fetch_add`, `compare_exchange`, ...).
    #[inline]
    pub fn as_atomic(&self) -> &T::Atomic {
        &self.block.atomics::<T::Atomic>()[0]
    }
}

impl<T: Pod> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(&format!("RawValue<{}>", std::any::type_name::<T>())).finish_non_exhaustive()
    }
}

impl<T: Pod> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_block(&self.block, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_block(d, Kind::RawValue).map(|b| RawValue { block: Arc::new(b) })
    }
}
