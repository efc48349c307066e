//! Safe access to a [`Segment`] at byte offsets: atomics, robust mutexes, and bounded
//! copies in and out.
//!
//! A shared-memory protocol (a queue's ring, its counters and locks) is a fixed layout of
//! offsets inside one segment. These methods let a crate above this one use such a
//! layout without `unsafe`:
//!
//! - [`Segment::atomic_u32`], [`Segment::atomic_u64`] and [`Segment::robust_mutex`] hand
//!   out references to the only kinds of value that may live in memory another process
//!   writes concurrently: types valid for every bit pattern and mutated only through
//!   shared references, with their own synchronisation.
//! - [`Segment::write_at`], [`Segment::read_at`] and [`Segment::read_append`] copy plain
//!   bytes, never creating a Rust reference to shared bytes. A peer writing the same bytes
//!   at the same time can only make the copy hold wrong bytes (which the protocol above
//!   must prevent with its locks and release/acquire publication, or detect), never an
//!   invalid value.
//! - [`Segment::create_with_mutexes`] initialises robust mutexes while the segment is
//!   still private to its creator, which is what makes that initialisation sound.
//!
//! Offsets come from the caller's layout, not from a peer, so a misaligned or
//! out-of-range *typed* access is a programming error and panics. Byte copies take
//! offsets and lengths that may come from shared memory, so they return an error instead.

use std::io;
use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::robust::{MutexKind, RobustMutex};
use crate::shm::Segment;

/// Types that may be viewed in place inside a shared segment.
///
/// # Safety
/// Implementors are valid for every bit pattern (including all-zero) and are only ever
/// mutated through shared references with their own synchronisation (atomics, pthread
/// calls), so a `&T` into memory that other processes write is sound.
unsafe trait SharedPlain: Sync {}

// SAFETY: an atomic integer is valid for any bits and only mutated atomically.
unsafe impl SharedPlain for AtomicU32 {}
// SAFETY: as above.
unsafe impl SharedPlain for AtomicU64 {}
// SAFETY: a pthread mutex is C integers and bytes (any bits are a Rust-valid value), and
// is only operated on through the pthread functions, which synchronise internally.
unsafe impl SharedPlain for RobustMutex {}

fn out_of_range(offset: usize, len: usize, size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{len} bytes at offset {offset} do not fit in a shared segment of {size} bytes"),
    )
}

impl Segment {
    /// Creates a segment of `len` bytes (like [`Segment::create`]) and initialises a
    /// process-shared robust mutex of the given kind at each offset, before anyone else
    /// can see the segment.
    ///
    /// # Panics
    /// If an offset is misaligned for a mutex or the mutex does not fit in `len` bytes.
    pub fn create_with_mutexes(name: &str, len: usize, mutexes: &[(usize, MutexKind)]) -> io::Result<Segment> {
        let seg = Segment::create(name, len)?;
        for &(offset, kind) in mutexes {
            let m = seg.robust_mutex(offset);
            // SAFETY: the segment was created just above and its descriptor has not been
            // duplicated or sent anywhere, so no other thread or process can reach the
            // mutex, and nobody holds it.
            unsafe { m.init(kind)? };
        }
        Ok(seg)
    }

    fn typed<T: SharedPlain>(&self, offset: usize) -> &T {
        assert!(
            offset.checked_add(size_of::<T>()).is_some_and(|end| end <= self.len()),
            "shared value of {} bytes at offset {offset} overruns a segment of {} bytes",
            size_of::<T>(),
            self.len()
        );
        assert!(offset % align_of::<T>() == 0, "shared value at offset {offset} is misaligned");
        // SAFETY: the mapping is page aligned, so `base + offset` is aligned for `T`
        // (checked above) and lies inside the mapping, which lives as long as `&self`.
        // `T: SharedPlain` makes a shared reference into concurrently written memory sound.
        unsafe { &*(self.as_ptr().add(offset) as *const T) }
    }

    /// The 32-bit atomic at `offset` (e.g. a futex word).
    ///
    /// # Panics
    /// If `offset` is not 4-aligned or the value does not fit in the segment.
    #[inline]
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        self.typed(offset)
    }

    /// The 64-bit atomic at `offset`.
    ///
    /// # Panics
    /// If `offset` is not 8-aligned or the value does not fit in the segment.
    #[inline]
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        self.typed(offset)
    }

    /// The robust mutex at `offset`. It must have been initialised by
    /// [`Segment::create_with_mutexes`]; otherwise locking it fails or does not detect a
    /// holder's death.
    ///
    /// # Panics
    /// If `offset` is misaligned for a mutex or the mutex does not fit in the segment.
    #[inline]
    pub fn robust_mutex(&self, offset: usize) -> &RobustMutex {
        self.typed(offset)
    }

    fn check_range(&self, offset: usize, len: usize) -> io::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(out_of_range(offset, len, self.len())),
        }
    }

    /// Copies `src` into the segment at `offset`. Fails, copying nothing, if the range
    /// does not fit.
    #[inline]
    pub fn write_at(&self, offset: usize, src: &[u8]) -> io::Result<()> {
        self.check_range(offset, src.len())?;
        // SAFETY: the destination range is inside the mapping (checked above), which lives
        // as long as `&self`; `src` is private memory, so the ranges cannot overlap. The
        // shared bytes are only written through a raw pointer, never referenced.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.as_ptr().add(offset), src.len()) };
        Ok(())
    }

    /// Copies `dst.len()` bytes at `offset` out of the segment. Fails, copying nothing,
    /// if the range does not fit.
    #[inline]
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> io::Result<()> {
        self.check_range(offset, dst.len())?;
        // SAFETY: the source range is inside the mapping (checked above); `dst` is private
        // memory of exactly that length, so the ranges cannot overlap. The shared bytes
        // are only read through a raw pointer, never referenced.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Appends the `len` bytes at `offset` to `out` without zero-filling the room first
    /// (for large messages). Fails, leaving `out` unchanged, if the range does not fit.
    pub fn read_append(&self, offset: usize, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        self.check_range(offset, len)?;
        out.reserve(len);
        let spare = &mut out.spare_capacity_mut()[..len];
        // SAFETY: the source range is inside the mapping (checked above); `spare` is `len`
        // bytes of private, writable (uninitialised) memory reserved just above.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), spare.as_mut_ptr().cast::<u8>(), len) };
        // SAFETY: the first `len` bytes of the spare capacity were initialised just above.
        unsafe { out.set_len(out.len() + len) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::Locked;
    use std::sync::atomic::Ordering;

    #[test]
    fn typed_views_and_copies() {
        let seg = Segment::create_with_mutexes("shmio-test", 4096, &[(64, MutexKind::ErrorCheck)]).unwrap();
        let other = Segment::from_fd(seg.try_clone_fd().unwrap(), 4096).unwrap();
        seg.atomic_u64(8).store(7, Ordering::SeqCst);
        assert_eq!(other.atomic_u64(8).load(Ordering::SeqCst), 7);
        other.atomic_u32(4).store(3, Ordering::SeqCst);
        assert_eq!(seg.atomic_u32(4).load(Ordering::SeqCst), 3);
        assert_eq!(seg.robust_mutex(64).lock().unwrap(), Locked::Normal);
        assert!(other.robust_mutex(64).is_locked());
        seg.robust_mutex(64).unlock().unwrap();

        seg.write_at(4000, b"hello").unwrap();
        let mut buf = [0u8; 5];
        other.read_at(4000, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let mut v = b"<".to_vec();
        other.read_append(4000, 5, &mut v).unwrap();
        assert_eq!(v, b"<hello");
    }

    #[test]
    fn byte_copies_are_bounds_checked() {
        let seg = Segment::create("shmio-bounds", 4096).unwrap();
        assert!(seg.write_at(4095, b"ab").is_err());
        assert!(seg.write_at(usize::MAX, b"a").is_err());
        let mut buf = [0u8; 2];
        assert!(seg.read_at(4095, &mut buf).is_err());
        let mut v = Vec::new();
        assert!(seg.read_append(1, 4096, &mut v).is_err());
        assert!(v.is_empty());
        assert!(seg.write_at(4096, b"").is_ok());
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn misaligned_atomic_panics() {
        let seg = Segment::create("shmio-align", 4096).unwrap();
        let _ = seg.atomic_u64(4);
    }
}
