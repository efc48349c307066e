//! Anonymous shared memory: `memfd_create` + `mmap` (through `memmap2`).
//!
//! A [`Segment`] has no name in `/dev/shm`; it exists exactly as long as some process
//! holds its descriptor or a mapping of it, so a process killed at any instruction leaks
//! nothing. Its size is fixed at creation and the file is sealed against growing and
//! shrinking, so a buggy or hostile peer cannot truncate it under our mapping (which would
//! turn every later access into `SIGBUS`).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memmap2::MmapRaw;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::io_err;

/// A shared, fixed-size, zero-initialised memory segment backed by a memfd.
///
/// The mapping is `MAP_SHARED`: writes are seen by every process that maps the same
/// segment, whether it inherited it across `fork` or received its descriptor.
#[derive(Debug)]
pub struct Segment {
    file: File,
    map: MmapRaw,
}

impl Segment {
    /// Creates a new segment of `len` bytes (at least one page is mapped).
    ///
    /// `name` only labels the memfd in `/proc/PID/fd` for debugging; it is not a path.
    pub fn create(name: &str, len: usize) -> io::Result<Segment> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a segment needs at least one byte"));
        }
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).map_err(io_err)?;
        let file = File::from(fd);
        file.set_len(len as u64)?;
        fcntl(
            file.as_fd(),
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_SEAL),
        )
        .map_err(io_err)?;
        let map = MmapRaw::map_raw(&file)?;
        Ok(Segment { file, map })
    }

    /// Maps a segment received from another process.
    ///
    /// Fails if the descriptor is not a sealed memfd (so its size cannot change under us),
    /// or is not at least `min_len` bytes long.
    pub fn from_fd(fd: OwnedFd, min_len: usize) -> io::Result<Segment> {
        let file = File::from(fd);
        let seals = fcntl(file.as_fd(), FcntlArg::F_GET_SEALS).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, "descriptor is not a multiproc shared-memory segment")
        })?;
        let seals = SealFlag::from_bits_truncate(seals);
        if !seals.contains(SealFlag::F_SEAL_SHRINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared-memory segment is not sealed against shrinking",
            ));
        }
        let len = file.metadata()?.len() as usize;
        if len < min_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared-memory segment has {len} bytes, expected at least {min_len}"),
            ));
        }
        let map = MmapRaw::map_raw(&file)?;
        Ok(Segment { file, map })
    }

    /// The segment's length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: segments have at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The start of the mapping. Valid for [`Segment::len`] bytes while `self` lives;
    /// other processes may write to it at any time, so access it through atomics or
    /// under a lock.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Duplicates the descriptor, e.g. to send it to another process.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.file.as_fd().try_clone_to_owned()
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn two_mappings_share_bytes() {
        let a = Segment::create("test", 4096).unwrap();
        let b = Segment::from_fd(a.try_clone_fd().unwrap(), 4096).unwrap();
        // SAFETY: both mappings are 4096 bytes, page aligned, and only used atomically.
        let (wa, wb) = unsafe { (&*(a.as_ptr() as *const AtomicU32), &*(b.as_ptr() as *const AtomicU32)) };
        wa.store(42, Ordering::SeqCst);
        assert_eq!(wb.load(Ordering::SeqCst), 42);
    }

    #[test]
    fn resize_is_refused() {
        let a = Segment::create("test", 100).unwrap();
        assert!(a.file.set_len(10).is_err());
        assert!(a.file.set_len(10_000).is_err());
    }

    #[test]
    fn foreign_descriptors_are_refused() {
        let (r, _w) = crate::fd::pipe().unwrap();
        assert!(Segment::from_fd(r, 1).is_err());
        let a = Segment::create("small", 16).unwrap();
        assert!(Segment::from_fd(a.try_clone_fd().unwrap(), 1 << 20).is_err());
        assert!(Segment::create("zero", 0).is_err());
    }
}
