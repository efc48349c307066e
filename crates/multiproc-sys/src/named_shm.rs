//! Named shared memory: POSIX `shm_open` + `ftruncate` + `mmap` (Python: `_posixshmem`).
//!
//! A [`NamedSegment`] is a file in `/dev/shm` that unrelated processes find by name. Unlike
//! an anonymous [`Segment`](crate::shm::Segment) it outlives every process that uses it,
//! until someone calls [`unlink`]: who does that is the caller's policy (see
//! `multiproc-shared`). Names are passed through as given; they must start with `/` and
//! contain no other `/`.
//!
//! Objects are created `O_EXCL` with mode `0600` (the creating user only) and opened
//! `O_CLOEXEC`. A named object cannot be sealed, so a process with write access could
//! shrink it under our mapping, which would turn accesses beyond the new end into
//! `SIGBUS`; callers check the size on open, and every process that maps the object is
//! trusted not to resize it (as with Python's `SharedMemory`).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::ptr::NonNull;

use memmap2::MmapRaw;
use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::Mode;

use crate::io_err;

/// A mapped POSIX shared-memory object.
#[derive(Debug)]
pub struct NamedSegment {
    name: String,
    file: File,
    // None when the object is empty (an empty mapping does not exist).
    map: Option<MmapRaw>,
}

fn check_name(name: &str) -> io::Result<()> {
    let ok = name.len() > 1 && name.starts_with('/') && !name[1..].contains('/') && !name.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a shared-memory object name: use '/' followed by a name without '/'"),
        ))
    }
}

impl NamedSegment {
    /// Creates the object `name` (which must not exist yet: `AlreadyExists` otherwise),
    /// sizes it to `len` bytes (zero-filled) and maps it.
    ///
    /// If sizing or mapping fails, the new object is unlinked again. Between the create
    /// and the return, another process opening `name` may find it empty (zero bytes):
    /// callers that need more publish readiness themselves (a magic number written last).
    pub fn create(name: &str, len: usize) -> io::Result<NamedSegment> {
        check_name(name)?;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a shared-memory object needs at least one byte"));
        }
        let fd = shm_open(
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(io_err)?;
        let file = File::from(fd);
        let mapped = file.set_len(len as u64).and_then(|()| MmapRaw::map_raw(&file));
        match mapped {
            Ok(map) => Ok(NamedSegment { name: name.to_owned(), file, map: Some(map) }),
            Err(e) => {
                let _ = shm_unlink(name);
                Err(e)
            }
        }
    }

    /// Opens and maps the existing object `name`, read-write, at its current size
    /// (`NotFound` if there is none). An empty object opens with [`len`](Self::len) 0.
    pub fn open(name: &str) -> io::Result<NamedSegment> {
        check_name(name)?;
        let fd = shm_open(name, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(io_err)?;
        NamedSegment::from_fd(fd, name)
    }

    /// Maps an object whose descriptor was received from another process; `name` is
    /// what it was created as (only recorded: the object may have been unlinked since).
    pub fn from_fd(fd: OwnedFd, name: &str) -> io::Result<NamedSegment> {
        let file = File::from(fd);
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "descriptor is not a shared-memory object"));
        }
        let map = if meta.len() == 0 { None } else { Some(MmapRaw::map_raw(&file)?) };
        Ok(NamedSegment { name: name.to_owned(), file, map })
    }

    /// The name it was created or opened as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of bytes mapped (the object's size when it was mapped).
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, MmapRaw::len)
    }

    /// Whether nothing is mapped (the object was empty when opened).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The start of the mapping (dangling, but aligned, when empty). Valid for
    /// [`len`](Self::len) bytes while `self` lives; other processes may write to it at
    /// any time (see [`crate::mapping`]).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ref().map_or(NonNull::<u64>::dangling().as_ptr() as *mut u8, MmapRaw::as_mut_ptr)
    }

    /// The object's size now, which differs from [`len`](Self::len) if someone resized it.
    pub fn current_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Duplicates the descriptor, e.g. to send it to another process.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.file.as_fd().try_clone_to_owned()
    }

    /// Unlinks the name if it still refers to this object, and returns whether it did.
    ///
    /// If the name was unlinked and reused for another object meanwhile, that object is
    /// left alone. (A reuse in the instant between the check and the unlink cannot be
    /// told apart; names should not be recycled that fast.)
    pub fn unlink_if_same(&self) -> io::Result<bool> {
        let fd = match shm_open(self.name.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(io_err(e)),
        };
        let theirs = File::from(fd).metadata()?;
        let ours = self.file.metadata()?;
        if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
            return Ok(false);
        }
        match shm_unlink(self.name.as_str()) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::ENOENT) => Ok(false),
            Err(e) => Err(io_err(e)),
        }
    }
}

impl AsFd for NamedSegment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Removes the name `name` (`NotFound` if there is none). Processes that have the object
/// mapped keep using it; it is freed when the last of them unmaps it.
pub fn unlink(name: &str) -> io::Result<()> {
    check_name(name)?;
    shm_unlink(name).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{atomic, read, write};
    use std::sync::atomic::{AtomicU64, Ordering};

    fn unique(tag: &str) -> String {
        format!("/multiproc-sys-test.{tag}.{}", std::process::id())
    }

    #[test]
    fn create_open_share_unlink() {
        let name = unique("share");
        let a = NamedSegment::create(&name, 100).unwrap();
        assert_eq!(a.len(), 100);
        assert_eq!(
            NamedSegment::create(&name, 100).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists,
            "create is exclusive"
        );
        let b = NamedSegment::open(&name).unwrap();
        write(&a, 8, &7u64.to_ne_bytes()).unwrap();
        assert_eq!(atomic::<AtomicU64>(&b, 8).unwrap().load(Ordering::SeqCst), 7);
        assert!(b.unlink_if_same().unwrap());
        assert_eq!(NamedSegment::open(&name).unwrap_err().kind(), io::ErrorKind::NotFound);
        // Still mapped on both sides after the unlink.
        let mut x = [0; 8];
        read(&a, 8, &mut x).unwrap();
        assert_eq!(u64::from_ne_bytes(x), 7);
        assert!(!a.unlink_if_same().unwrap());
        assert_eq!(unlink(&name).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_reused_name_is_not_unlinked_by_the_old_owner() {
        let name = unique("reuse");
        let old = NamedSegment::create(&name, 10).unwrap();
        unlink(&name).unwrap();
        let new = NamedSegment::create(&name, 10).unwrap();
        assert!(!old.unlink_if_same().unwrap());
        assert!(NamedSegment::open(&name).is_ok());
        assert!(new.unlink_if_same().unwrap());
    }

    #[test]
    fn bad_names_and_sizes_are_refused() {
        for bad in ["", "/", "noslash", "/a/b"] {
            assert_eq!(NamedSegment::open(bad).unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(NamedSegment::create(&unique("zero"), 0).is_err());
    }
}
