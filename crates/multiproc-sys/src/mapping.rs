//! Bounds-checked access to the bytes of a shared mapping ([`Segment`] or
//! [`NamedSegment`]), so that the crates above need almost no `unsafe` of their own.
//!
//! Memory shared with other processes is not owned by this program: another process may
//! write any byte at any time. What that allows:
//! - **Atomics** ([`atomic`], [`atomic_slice`]) are always sound: an atomic integer is
//!   valid for every bit pattern and is only ever mutated through shared references.
//! - **Copies** ([`read`], [`write`](fn@write)) are always sound: they are made of relaxed atomic
//!   loads and stores (8, 4, 2 or 1 bytes at a time, the widest the alignment allows), so
//!   a racing writer can make them *torn* (part old, part new) but never undefined
//!   behaviour. A naturally aligned value of at most 8 bytes is copied in one access and
//!   never torn. `write` starts with a release fence and `read` ends with an acquire
//!   fence, so a value copied out after another process copied it in also shows what
//!   that process wrote before.
//! - **References** to plain bytes ([`bytes`], [`bytes_mut`]) and to values with interior
//!   mutability ([`place`]) are `unsafe`: the caller must know that nobody writes the
//!   bytes (or, for `bytes_mut`, touches them at all) while the reference lives, usually
//!   because it holds a lock that every process takes first.
//!
//! Every function checks that the range lies inside the mapping and is aligned, and
//! returns an `InvalidInput` error otherwise.

use std::io;
use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize,
    Ordering, fence,
};

use crate::named_shm::NamedSegment;
use crate::shm::Segment;

/// A mapping of shared memory that the helpers of this module can look into.
///
/// # Safety
/// [`Mapping::base`] must point to a mapping that is readable and writable for
/// [`Mapping::size`] bytes, at least 8-byte aligned, and stays mapped as long as `self`
/// lives.
pub unsafe trait Mapping {
    /// The first byte of the mapping.
    fn base(&self) -> *mut u8;
    /// The number of mapped bytes.
    fn size(&self) -> usize;
}

// SAFETY: a Segment's mapping is page aligned, read-write, `len()` bytes long, and lives
// as long as the Segment.
unsafe impl Mapping for Segment {
    fn base(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn size(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for Segment: page aligned (or dangling and 8-aligned when empty, with a
// size of 0), read-write, `len()` bytes, alive as long as the NamedSegment.
unsafe impl Mapping for NamedSegment {
    fn base(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn size(&self) -> usize {
        self.len()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// An atomic integer type that may be laid over shared bytes: the `std` atomics of 8 to
/// 64 bits (not `AtomicBool`, which is not valid for every byte value).
///
/// # Safety
/// Implemented only here, for types that are valid for every bit pattern, have the size
/// and alignment of their integer, and are only mutated through shared references.
pub unsafe trait SharedAtomic: sealed::Sealed + Sync + Send + 'static {}

macro_rules! shared_atomic {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        // SAFETY: a std atomic integer: valid for any bits, size == align == its
        // integer's, mutated only through `&self` methods.
        unsafe impl SharedAtomic for $t {}
    )*};
}

shared_atomic!(
    AtomicU8,
    AtomicI8,
    AtomicU16,
    AtomicI16,
    AtomicU32,
    AtomicI32,
    AtomicU64,
    AtomicI64,
    AtomicUsize,
    AtomicIsize
);

fn out_of_range(offset: usize, len: usize, size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("bytes {offset}..{} lie outside the {size}-byte mapping", offset.saturating_add(len)),
    )
}

/// Checks that `offset..offset + len` lies inside `m` and that its start is aligned to
/// `align`; returns a pointer to the start.
fn range(m: &(impl Mapping + ?Sized), offset: usize, len: usize, align: usize) -> io::Result<*mut u8> {
    let size = m.size();
    match offset.checked_add(len) {
        Some(end) if end <= size => {}
        _ => return Err(out_of_range(offset, len, size)),
    }
    // In bounds (or `offset == size` with `len == 0`), so the add stays inside or one
    // past the mapping.
    let p = m.base().wrapping_add(offset);
    if (p as usize) % align != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("offset {offset} is not aligned to {align} bytes"),
        ));
    }
    Ok(p)
}

/// The atomic `A` at `offset`. Fails if it does not fit or is misaligned.
pub fn atomic<A: SharedAtomic>(m: &(impl Mapping + ?Sized), offset: usize) -> io::Result<&A> {
    let p = range(m, offset, size_of::<A>(), align_of::<A>())?;
    // SAFETY: in bounds and aligned (checked), mapped as long as `m` is borrowed
    // (`Mapping`'s contract); `A` is valid for any bytes and only mutated atomically
    // (`SharedAtomic`'s contract), so a shared reference is sound whatever other
    // processes do to those bytes.
    Ok(unsafe { &*(p as *const A) })
}

/// `count` consecutive atomics `A` starting at `offset`.
pub fn atomic_slice<A: SharedAtomic>(m: &(impl Mapping + ?Sized), offset: usize, count: usize) -> io::Result<&[A]> {
    let len = count.checked_mul(size_of::<A>()).ok_or_else(|| out_of_range(offset, usize::MAX, m.size()))?;
    let p = range(m, offset, len, align_of::<A>())?;
    // SAFETY: as in `atomic`, for each of the `count` elements.
    Ok(unsafe { std::slice::from_raw_parts(p as *const A, count) })
}

/// Copies `dst.len()` bytes starting at `offset` out of the mapping, with atomic loads
/// (see the module docs: never undefined behaviour, possibly torn by a racing writer).
pub fn read(m: &(impl Mapping + ?Sized), offset: usize, dst: &mut [u8]) -> io::Result<()> {
    let p = range(m, offset, dst.len(), 1)?;
    let mut i = 0;
    while i < dst.len() {
        let addr = p as usize + i;
        let rest = dst.len() - i;
        // SAFETY: in all four arms, `p + i .. p + i + width` lies inside the checked range
        // (`width <= rest`), is aligned to `width` (tested), and is read through an
        // atomic, which is valid for any bytes and sound under concurrent writes.
        unsafe {
            if addr % 8 == 0 && rest >= 8 {
                let v = (*(p.add(i) as *const AtomicU64)).load(Ordering::Relaxed);
                dst[i..i + 8].copy_from_slice(&v.to_ne_bytes());
                i += 8;
            } else if addr % 4 == 0 && rest >= 4 {
                let v = (*(p.add(i) as *const AtomicU32)).load(Ordering::Relaxed);
                dst[i..i + 4].copy_from_slice(&v.to_ne_bytes());
                i += 4;
            } else if addr % 2 == 0 && rest >= 2 {
                let v = (*(p.add(i) as *const AtomicU16)).load(Ordering::Relaxed);
                dst[i..i + 2].copy_from_slice(&v.to_ne_bytes());
                i += 2;
            } else {
                dst[i] = (*(p.add(i) as *const AtomicU8)).load(Ordering::Relaxed);
                i += 1;
            }
        }
    }
    fence(Ordering::Acquire);
    Ok(())
}

/// Copies `src` into the mapping at `offset`, with atomic stores (see the module docs).
pub fn write(m: &(impl Mapping + ?Sized), offset: usize, src: &[u8]) -> io::Result<()> {
    let p = range(m, offset, src.len(), 1)?;
    fence(Ordering::Release);
    let mut i = 0;
    while i < src.len() {
        let addr = p as usize + i;
        let rest = src.len() - i;
        // SAFETY: in all four arms, as in `read`; atomic stores are sound whatever other
        // processes do to the same bytes.
        unsafe {
            if addr % 8 == 0 && rest >= 8 {
                let v = u64::from_ne_bytes(src[i..i + 8].try_into().unwrap_or([0; 8]));
                (*(p.add(i) as *const AtomicU64)).store(v, Ordering::Relaxed);
                i += 8;
            } else if addr % 4 == 0 && rest >= 4 {
                let v = u32::from_ne_bytes(src[i..i + 4].try_into().unwrap_or([0; 4]));
                (*(p.add(i) as *const AtomicU32)).store(v, Ordering::Relaxed);
                i += 4;
            } else if addr % 2 == 0 && rest >= 2 {
                let v = u16::from_ne_bytes(src[i..i + 2].try_into().unwrap_or([0; 2]));
                (*(p.add(i) as *const AtomicU16)).store(v, Ordering::Relaxed);
                i += 2;
            } else {
                (*(p.add(i) as *const AtomicU8)).store(src[i], Ordering::Relaxed);
                i += 1;
            }
        }
    }
    Ok(())
}

/// A shared view of `len` bytes at `offset`.
///
/// # Safety
/// While the returned slice lives, no thread of any process may write those bytes (for
/// example: every writer holds a lock that the caller holds now).
pub unsafe fn bytes(m: &(impl Mapping + ?Sized), offset: usize, len: usize) -> io::Result<&[u8]> {
    let p = range(m, offset, len, 1)?;
    // SAFETY: in bounds and mapped while `m` is borrowed; bytes are valid for any value;
    // the caller promises that nobody writes them while the slice lives.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An exclusive view of `len` bytes at `offset`.
///
/// # Safety
/// While the returned slice lives, no other thread of any process may read or write
/// those bytes, and the caller makes no other reference to them (for example: every
/// access to them happens under a lock that the caller holds now).
#[allow(clippy::mut_from_ref, reason = "exclusivity is the caller's promise, as documented")]
pub unsafe fn bytes_mut(m: &(impl Mapping + ?Sized), offset: usize, len: usize) -> io::Result<&mut [u8]> {
    let p = range(m, offset, len, 1)?;
    // SAFETY: in bounds and mapped while `m` is borrowed; the caller promises exclusive
    // access for the slice's lifetime.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// A reference to a `T` that lives in the mapping at `offset` (a process-shared lock
/// embedded in a shared layout, for instance).
///
/// # Safety
/// `T` must be valid for the bytes found there (initialised in place by its creator, or
/// valid for every bit pattern), and must only be mutated through shared references
/// (atomics, `UnsafeCell` behind a synchronising API), because other processes may
/// operate on it at any time.
pub unsafe fn place<T: Sync>(m: &(impl Mapping + ?Sized), offset: usize) -> io::Result<&T> {
    let p = range(m, offset, size_of::<T>(), align_of::<T>())?;
    // SAFETY: in bounds, aligned, mapped while `m` is borrowed; validity and
    // interior-mutability-only are the caller's promise.
    Ok(unsafe { &*(p as *const T) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_round_trip_at_every_alignment() {
        let seg = Segment::create("mapping-test", 256).unwrap();
        let src: Vec<u8> = (0..100u8).collect();
        for offset in 0..9 {
            write(&seg, offset, &src).unwrap();
            let mut dst = vec![0u8; src.len()];
            read(&seg, offset, &mut dst).unwrap();
            assert_eq!(dst, src, "offset {offset}");
        }
    }

    #[test]
    fn out_of_bounds_and_misaligned_are_errors() {
        let seg = Segment::create("mapping-test", 64).unwrap();
        let size = seg.size();
        assert!(read(&seg, size - 3, &mut [0; 4]).is_err());
        assert!(write(&seg, usize::MAX, &[1]).is_err());
        assert!(atomic::<AtomicU64>(&seg, 4).is_err());
        assert!(atomic::<AtomicU64>(&seg, size).is_err());
        assert!(atomic_slice::<AtomicU32>(&seg, 0, usize::MAX / 2).is_err());
        read(&seg, size, &mut []).unwrap();
    }

    #[test]
    fn atomics_see_copies() {
        let seg = Segment::create("mapping-test", 64).unwrap();
        write(&seg, 8, &42u64.to_ne_bytes()).unwrap();
        assert_eq!(atomic::<AtomicU64>(&seg, 8).unwrap().load(Ordering::SeqCst), 42);
        let cells = atomic_slice::<AtomicU32>(&seg, 16, 4).unwrap();
        cells[3].store(7, Ordering::SeqCst);
        let mut four = [0u8; 4];
        read(&seg, 28, &mut four).unwrap();
        assert_eq!(u32::from_ne_bytes(four), 7);
    }
}
