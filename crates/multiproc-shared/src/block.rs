//! The anonymous segment behind [`Value`](crate::Value), [`Array`](crate::Array),
//! [`RawValue`](crate::RawValue) and [`RawArray`](crate::RawArray), and how it travels.
//!
//! Layout of a block (one memfd segment, nothing in `/dev/shm`):
//!
//! | offset | what |
//! |---|---|
//! | 0 | magic number (`u64`, written last, release) |
//! | 8 | layout version (`u32`) |
//! | 12 | kind: Value, Array, RawValue, RawArray (`u32`) |
//! | 16 | element size, element alignment (`u32` each) |
//! | 24 | element type fingerprint (`u64`: a hash of the type's name) |
//! | 32 | number of elements (`u64`) |
//! | 40 | lock: none or embedded (`u32`); offset of the data (`u32`) |
//! | 64 | the embedded [`RawMutex`], if any |
//! | data | the elements, aligned for `T` |
//!
//! The lock and a small value share a cache line, so a contended increment moves one
//! line between processes, not two. A receiver checks every header field against the
//! type it expects before it looks at anything else, so a foreign descriptor or a
//! mismatched element type is an error, never undefined behaviour.

use std::any::type_name;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bytemuck::Pod;
use multiproc_codec::Fd;
use multiproc_sync::RawMutex;
use multiproc_sys::mapping::{self, SharedAtomic};
use multiproc_sys::shm::Segment;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::AttachError;

/// "mpshrd" and a format byte: the first eight bytes of every block.
const MAGIC: u64 = u64::from_le_bytes(*b"mpshrd\0\x01");
/// Bumped whenever the layout changes, so that two builds that disagree refuse to share
/// a block instead of misreading it.
pub(crate) const LAYOUT_VERSION: u32 = 1;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_KIND: usize = 12;
const OFF_ELEM_SIZE: usize = 16;
const OFF_ELEM_ALIGN: usize = 20;
const OFF_TYPE: usize = 24;
const OFF_LEN: usize = 32;
const OFF_LOCK: usize = 40;
const OFF_DATA: usize = 44;
const HEADER: usize = 64;
const MUTEX_OFFSET: usize = HEADER;

/// What a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Value = 1,
    Array = 2,
    RawValue = 3,
    RawArray = 4,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Value => "Value",
            Kind::Array => "Array",
            Kind::RawValue => "RawValue",
            Kind::RawArray => "RawArray",
        }
    }

    fn with_article(self) -> &'static str {
        match self {
            Kind::Value => "a Value",
            Kind::Array => "an Array",
            Kind::RawValue => "a RawValue",
            Kind::RawArray => "a RawArray",
        }
    }

    fn from_u32(v: u32) -> Option<Kind> {
        [Kind::Value, Kind::Array, Kind::RawValue, Kind::RawArray].into_iter().find(|k| *k as u32 == v)
    }
}

/// Which lock protects a block's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// None: RawValue and RawArray.
    None = 0,
    /// A [`RawMutex`] inside the block, at [`MUTEX_OFFSET`].
    Embedded = 1,
}

impl LockMode {
    fn from_u32(v: u32) -> Option<LockMode> {
        [LockMode::None, LockMode::Embedded].into_iter().find(|m| *m as u32 == v)
    }
}

/// A stable fingerprint of `T`: FNV-1a of its type name. The same in every process of
/// one program, and in programs built from the same code.
fn fingerprint<T>() -> u64 {
    type_name::<T>().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn round_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

/// Where the data starts for element type `T` and this lock mode.
fn data_offset<T>(lock: LockMode) -> usize {
    let after = if lock == LockMode::Embedded { MUTEX_OFFSET + size_of::<RawMutex>() } else { HEADER };
    round_up(after, align_of::<T>())
}

/// One mapping of a block holding `len` elements of `T`.
pub(crate) struct Block<T> {
    seg: ManuallyDrop<Segment>,
    kind: Kind,
    len: usize,
    data: usize,
    lock: LockMode,
    _elem: PhantomData<T>,
}

impl<T: Pod> Block<T> {
    /// A description such as `Value<u64>`, for messages.
    pub(crate) fn describe(kind: Kind) -> String {
        format!("{}<{}>", kind.name(), type_name::<T>())
    }

    /// Creates a block of `len` elements initialised from `init` (zeros if it is
    /// shorter), with the given lock, and publishes its header.
    pub(crate) fn create(kind: Kind, len: usize, init: &[T], lock: LockMode) -> io::Result<Block<T>> {
        const {
            assert!(size_of::<T>() > 0, "shared values of zero-sized types are pointless");
            assert!(align_of::<T>() <= 4096, "shared values may need at most page alignment");
        };
        if lock == LockMode::Embedded {
            multiproc_sys::robust::check_current_thread()?;
        }
        let data = data_offset::<T>(lock);
        let too_large = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} of {len} elements is too large", Self::describe(kind)),
            )
        };
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(too_large)?;
        let total = data.checked_add(bytes).filter(|t| *t <= isize::MAX as usize).ok_or_else(too_large)?;
        let seg = Segment::create(&format!("multiproc-{}", kind.name()), total)?;
        if lock == LockMode::Embedded {
            // SAFETY: MUTEX_OFFSET is 8-aligned and inside the fresh, zeroed segment,
            // which nobody else can see yet; a RawMutex is initialised in place right
            // here and afterwards only used through its synchronising methods.
            let mutex = unsafe { mapping::place::<RawMutex>(&seg, MUTEX_OFFSET) }?;
            // SAFETY: zeroed memory that no other thread or process can reach yet.
            unsafe { mutex.init() }?;
        }
        let n = init.len().min(len);
        mapping::write(&seg, data, bytemuck::cast_slice(&init[..n]))?;
        let word32 = |off| mapping::atomic::<AtomicU32>(&seg, off);
        let word64 = |off| mapping::atomic::<AtomicU64>(&seg, off);
        word32(OFF_VERSION)?.store(LAYOUT_VERSION, Ordering::Relaxed);
        word32(OFF_KIND)?.store(kind as u32, Ordering::Relaxed);
        word32(OFF_ELEM_SIZE)?.store(size_of::<T>() as u32, Ordering::Relaxed);
        word32(OFF_ELEM_ALIGN)?.store(align_of::<T>() as u32, Ordering::Relaxed);
        word64(OFF_TYPE)?.store(fingerprint::<T>(), Ordering::Relaxed);
        word64(OFF_LEN)?.store(len as u64, Ordering::Relaxed);
        word32(OFF_LOCK)?.store(lock as u32, Ordering::Relaxed);
        word32(OFF_DATA)?.store(data as u32, Ordering::Relaxed);
        word64(OFF_MAGIC)?.store(MAGIC, Ordering::Release);
        Ok(Block { seg: ManuallyDrop::new(seg), kind, len, data, lock, _elem: PhantomData })
    }

    /// Maps a received segment after checking that it is a `kind` block of `T`.
    pub(crate) fn attach(fd: OwnedFd, kind: Kind) -> Result<Block<T>, AttachError> {
        let expected = || Self::describe(kind);
        let seg = Segment::from_fd(fd, HEADER).map_err(AttachError::Segment)?;
        // The header is made of atomics, read through the bounds-checked helpers; only
        // once every field checks out is anything else looked at. On failure the plain
        // Segment is dropped: nothing in it was ever locked by us.
        let corrupt = |what| AttachError::Corrupt { expected: expected(), what };
        let word32 = |off| {
            mapping::atomic::<AtomicU32>(&seg, off)
                .map(|a| a.load(Ordering::Relaxed))
                .map_err(|_| corrupt("header out of bounds"))
        };
        let word64 = |off, order| {
            mapping::atomic::<AtomicU64>(&seg, off).map(|a| a.load(order)).map_err(|_| corrupt("header out of bounds"))
        };
        if word64(OFF_MAGIC, Ordering::Acquire)? != MAGIC {
            return Err(AttachError::Foreign { expected: expected() });
        }
        let version = word32(OFF_VERSION)?;
        if version != LAYOUT_VERSION {
            return Err(AttachError::Version { found: version, ours: LAYOUT_VERSION, expected: expected() });
        }
        let found_kind = word32(OFF_KIND)?;
        if found_kind != kind as u32 {
            let found = Kind::from_u32(found_kind).map_or("a segment of unknown kind", Kind::with_article);
            return Err(AttachError::Kind { found, expected: expected() });
        }
        let (size, align, hash) =
            (word32(OFF_ELEM_SIZE)?, word32(OFF_ELEM_ALIGN)?, word64(OFF_TYPE, Ordering::Relaxed)?);
        if (size as usize, align as usize, hash) != (size_of::<T>(), align_of::<T>(), fingerprint::<T>()) {
            return Err(AttachError::ElementType {
                expected: expected(),
                found_size: size,
                found_align: align,
                found_hash: hash,
            });
        }
        let lock = LockMode::from_u32(word32(OFF_LOCK)?).ok_or_else(|| corrupt("unknown lock mode"))?;
        let lock_ok = match kind {
            Kind::Value | Kind::Array => lock == LockMode::Embedded,
            Kind::RawValue | Kind::RawArray => lock == LockMode::None,
        };
        if !lock_ok {
            return Err(corrupt("lock mode does not match the kind"));
        }
        let data = word32(OFF_DATA)? as usize;
        if data != data_offset::<T>(lock) {
            return Err(corrupt("data offset does not match the element type"));
        }
        let len = usize::try_from(word64(OFF_LEN, Ordering::Relaxed)?).map_err(|_| corrupt("length too large"))?;
        if matches!(kind, Kind::Value | Kind::RawValue) && len != 1 {
            return Err(corrupt("a single value must have length 1"));
        }
        let end = len.checked_mul(size_of::<T>()).and_then(|b| b.checked_add(data));
        if end.is_none_or(|end| end > seg.len()) {
            return Err(corrupt("the segment is shorter than its length says"));
        }
        if lock == LockMode::Embedded {
            multiproc_sys::robust::check_current_thread().map_err(AttachError::Thread)?;
        }
        Ok(Block { seg: ManuallyDrop::new(seg), kind, len, data, lock, _elem: PhantomData })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The embedded mutex, if the block has one.
    #[inline]
    pub(crate) fn mutex(&self) -> Option<&RawMutex> {
        if self.lock != LockMode::Embedded {
            return None;
        }
        // SAFETY: blocks with an embedded lock initialised a RawMutex at MUTEX_OFFSET
        // before publishing the header (checked on attach); a RawMutex is only mutated
        // through its synchronising methods, and the segment stays mapped while `self`
        // lives. `place` checks bounds and alignment.
        unsafe { mapping::place::<RawMutex>(&*self.seg, MUTEX_OFFSET) }.ok()
    }

    /// All elements, exclusively.
    ///
    /// # Safety
    /// While the slice lives, nobody else in any process may access the elements: the
    /// caller holds the lock that every access to them takes.
    #[inline]
    #[allow(clippy::mut_from_ref, reason = "exclusivity comes from the lock, as documented")]
    pub(crate) unsafe fn elems_mut(&self) -> &mut [T] {
        // SAFETY: forwarded from the caller; bounds were checked at create/attach.
        match unsafe { mapping::bytes_mut(&*self.seg, self.data, self.len * size_of::<T>()) } {
            // The data offset is aligned for T and the length a multiple of its size.
            Ok(bytes) => bytemuck::cast_slice_mut(bytes),
            Err(_) => &mut [],
        }
    }

    /// Copies elements `start..start + dst.len()` out with atomic loads.
    ///
    /// # Panics
    /// If the range is not inside the block (the callers check indexes first).
    pub(crate) fn read(&self, start: usize, dst: &mut [T]) {
        self.check(start, dst.len());
        let r = mapping::read(&*self.seg, self.data + start * size_of::<T>(), bytemuck::cast_slice_mut(dst));
        debug_assert!(r.is_ok());
    }

    /// Copies `src` in at element `start` with atomic stores.
    ///
    /// # Panics
    /// If the range is not inside the block.
    pub(crate) fn write(&self, start: usize, src: &[T]) {
        self.check(start, src.len());
        let r = mapping::write(&*self.seg, self.data + start * size_of::<T>(), bytemuck::cast_slice(src));
        debug_assert!(r.is_ok());
    }

    fn check(&self, start: usize, n: usize) {
        let end = start.checked_add(n);
        assert!(
            end.is_some_and(|e| e <= self.len),
            "index range {start}..{} out of range for a {} of length {}",
            start.saturating_add(n),
            Self::describe(self.kind),
            self.len
        );
    }

    /// The elements as atomics `A` (same size and alignment as `T`).
    pub(crate) fn atomics<A: SharedAtomic>(&self) -> &[A] {
        const { assert!(size_of::<A>() == size_of::<T>() && align_of::<A>() == align_of::<T>()) };
        mapping::atomic_slice::<A>(&*self.seg, self.data, self.len).unwrap_or(&[])
    }

    /// A copy of the segment's descriptor, to send.
    pub(crate) fn fd(&self) -> io::Result<OwnedFd> {
        self.seg.try_clone_fd()
    }
}

/// Serializes a block as its descriptor ([`Fd`]: it travels out of band).
pub(crate) fn serialize_block<T: Pod, S: Serializer>(block: &Block<T>, s: S) -> Result<S::Ok, S::Error> {
    let fd = block.fd().map_err(|e| {
        S::Error::custom(format!("cannot duplicate the {}'s descriptor: {e}", Block::<T>::describe(block.kind)))
    })?;
    Fd::new(fd).serialize(s)
}

/// Receives a block serialized by [`serialize_block`], checking that it is a `kind` of `T`.
pub(crate) fn deserialize_block<'de, T: Pod, D: Deserializer<'de>>(d: D, kind: Kind) -> Result<Block<T>, D::Error> {
    let fd = Fd::deserialize(d)?;
    Block::attach(fd.into_inner(), kind).map_err(D::Error::custom)
}

impl<T> Drop for Block<T> {
    fn drop(&mut self) {
        if self.lock == LockMode::Embedded {
            // SAFETY: as in `mutex`.
            let held = unsafe { mapping::place::<RawMutex>(&*self.seg, MUTEX_OFFSET) }
                .is_ok_and(RawMutex::held_by_this_process);
            if held {
                // A thread of ours holds the lock (its guard was leaked with
                // mem::forget): keep the mapping forever rather than leave glibc's
                // robust list pointing into unmapped memory.
                return;
            }
        }
        // SAFETY: called once, from drop; `seg` is not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.seg) };
    }
}

impl<T: Pod> fmt::Debug for Block<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block").field("kind", &self.kind).field("len", &self.len).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_and_a_small_value_share_a_cache_line() {
        let data = data_offset::<u64>(LockMode::Embedded);
        assert_eq!(MUTEX_OFFSET / 64, (data + 7) / 64, "lock at {MUTEX_OFFSET}, data at {data}");
        assert_eq!(data % 8, 0);
        assert_eq!(data_offset::<u8>(LockMode::None), HEADER);
        assert_eq!(data_offset::<[u64; 64]>(LockMode::Embedded) % align_of::<[u64; 64]>(), 0);
    }

    #[test]
    fn fingerprints_tell_types_apart() {
        assert_ne!(fingerprint::<u64>(), fingerprint::<i64>());
        assert_ne!(fingerprint::<u64>(), fingerprint::<[u8; 8]>());
        assert_eq!(fingerprint::<u64>(), fingerprint::<u64>());
    }

    #[test]
    fn created_blocks_attach_and_share() {
        let b = Block::<u32>::create(Kind::RawArray, 10, &[1, 2, 3], LockMode::None).unwrap();
        let c = Block::<u32>::attach(b.fd().unwrap(), Kind::RawArray).unwrap();
        let mut out = [9u32; 10];
        c.read(0, &mut out);
        assert_eq!(out, [1, 2, 3, 0, 0, 0, 0, 0, 0, 0]);
        c.write(9, &[7]);
        let mut last = [0];
        b.read(9, &mut last);
        assert_eq!(last, [7]);
        assert!(Block::<u32>::attach(b.fd().unwrap(), Kind::Array).is_err());
        assert!(Block::<i32>::attach(b.fd().unwrap(), Kind::RawArray).is_err());
    }
}
