//! [`SharedMemory`]: Python's `multiprocessing.shared_memory.SharedMemory`, a named block
//! of bytes that unrelated processes open by name, with explicit ownership.
//!
//! Layout of a named segment (also under [`ShareableList`](crate::ShareableList)):
//!
//! | offset | what |
//! |---|---|
//! | 0 | magic number (`u64`, written last, release) |
//! | 8 | layout version (`u32`) |
//! | 12 | kind: bytes or list (`u32`) |
//! | 16 | size of the data in bytes (`u64`) |
//! | 64 | the data (64-byte aligned) |

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use bytemuck::Pod;
use multiproc_codec::Fd;
use multiproc_sys::mapping::{self, SharedAtomic};
use multiproc_sys::named_shm::{self, NamedSegment};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::block::LAYOUT_VERSION;
use crate::error::{AccessError, CreateError, OpenError, UnlinkError};
use crate::name;

/// "mpnamed" and a format byte: the first eight bytes of every named segment.
const MAGIC: u64 = u64::from_le_bytes(*b"mpnamed\x01");
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_KIND: usize = 12;
const OFF_SIZE: usize = 16;
/// Where the data starts.
pub(crate) const DATA: usize = 64;

/// What a named segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NamedKind {
    Bytes = 1,
    List = 2,
}

impl NamedKind {
    fn name(self) -> &'static str {
        match self {
            NamedKind::Bytes => "SharedMemory",
            NamedKind::List => "ShareableList",
        }
    }
}

/// A named block of shared memory that unrelated processes open by name (Python's
/// `multiprocessing.shared_memory.SharedMemory`).
///
/// # Ownership: who removes the name
/// Python's resource tracker either deletes segments that other programs still use or
/// leaks them (CPython gh-82300). Here the rule is explicit and local:
/// - The handle returned by [`create`](SharedMemory::create) **owns** the name: when the
///   last clone of it is dropped *in the creating process*, the name is unlinked.
///   [`persist`](SharedMemory::persist) gives that up, so the segment outlives its
///   creator until someone calls [`unlink`](SharedMemory::unlink) or
///   [`SharedMemory::unlink_name`].
/// - [`open`](SharedMemory::open) never unlinks on drop, and neither do copies received
///   by child processes (as arguments) or inherited across `fork`.
/// - Unlinking removes only the name: processes that have the segment open keep using it,
///   and its memory is freed when the last of them lets go.
/// - A creator that is killed (SIGKILL) cannot unlink: the segment stays in `/dev/shm`
///   (as `multiproc.<name>`) until someone calls [`SharedMemory::unlink_name`], which is
///   the cleanup for that case. A later [`create`](SharedMemory::create) of the same name
///   fails with [`CreateError::AlreadyExists`] and says so.
/// - An owner's drop unlinks only if the name still refers to *its* segment, never a new
///   one that someone created under the same name after an unlink.
///
/// # Access rules
/// Other processes may write the bytes at any time, so the safe accessors copy:
/// [`read`](SharedMemory::read) / [`write`](SharedMemory::write) (bytes),
/// [`read_value`](SharedMemory::read_value) / [`write_value`](SharedMemory::write_value)
/// (any [`Pod`] type at any offset), and [`atomic`](SharedMemory::atomic), which hands
/// out an atomic integer inside the segment. They are made of atomic accesses (see
/// [`multiproc_sys::mapping`]): never undefined behaviour, but a copy that races a
/// writer may be torn, so order the accesses with a lock, an atomic flag or a message.
/// [`as_slice`](SharedMemory::as_slice) and [`as_mut_slice`](SharedMemory::as_mut_slice)
/// give direct references and are `unsafe`: the caller must know that nobody writes
/// (for `as_mut_slice`: touches) the bytes while the reference lives.
///
/// A process that shrinks the segment's file under others (with `ftruncate` on
/// `/dev/shm/multiproc.<name>`) makes their accesses fault (`SIGBUS`), as with any POSIX
/// shared memory; every process that opens a segment must be trusted not to.
///
/// The data is zero-filled at creation and 64-byte aligned. A handle is `Clone`, and it
/// can be passed to a child process as an argument (its descriptor travels along; the
/// copy does not own the name).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use multiproc_shared::SharedMemory;
///
/// # let name = format!("doc-shm-{}", std::process::id());
/// let shm = SharedMemory::create(&name, 4096)?;       // owns the name
/// shm.write(0, b"hello")?;
///
/// // Another program (here, the same one) opens it by name.
/// let other = SharedMemory::open(&name)?;             // never unlinks
/// let mut buf = [0u8; 5];
/// other.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// other.atomic::<AtomicU64>(64)?.fetch_add(1, Ordering::SeqCst);
/// assert_eq!(shm.read_value::<u64>(64)?, 1);
///
/// drop(other);
/// drop(shm);                                          // the creator unlinks
/// assert!(SharedMemory::open(&name).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    inner: Arc<Inner>,
}

struct Inner {
    seg: NamedSegment,
    name: String,
    kind: NamedKind,
    size: usize,
    /// The pid of the process that created the segment through this handle, if it did.
    creator: Option<u32>,
    /// Whether dropping the last handle (in `creator`) unlinks the name.
    owns: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.owns.load(Ordering::Acquire) && self.creator == Some(std::process::id()) {
            // Nobody to tell in a drop; a failure leaves the name for unlink_name.
            let _ = self.seg.unlink_if_same();
        }
    }
}

fn create_error(name: &str, e: io::Error) -> CreateError {
    match e.kind() {
        io::ErrorKind::AlreadyExists => CreateError::AlreadyExists { name: name.to_owned() },
        _ => CreateError::Os { name: name.to_owned(), source: e },
    }
}

fn open_error(name: &str, e: io::Error) -> OpenError {
    match e.kind() {
        io::ErrorKind::NotFound => OpenError::NotFound { name: name.to_owned() },
        io::ErrorKind::PermissionDenied => OpenError::PermissionDenied { name: name.to_owned() },
        _ => OpenError::Os { name: name.to_owned(), source: e },
    }
}

impl SharedMemory {
    /// Creates the segment `name` with `size` zero bytes; the handle owns the name (see
    /// the type's docs). Fails with [`CreateError::AlreadyExists`] if the name is taken.
    pub fn create(name: &str, size: usize) -> Result<SharedMemory, CreateError> {
        SharedMemory::create_kind(name, size, NamedKind::Bytes, |_| Ok(()))
    }

    /// Creates a segment under a fresh random name (Python: `SharedMemory(create=True,
    /// size=size)`); read it back with [`name`](SharedMemory::name).
    pub fn create_unique(size: usize) -> Result<SharedMemory, CreateError> {
        let mut attempts = 0;
        loop {
            match SharedMemory::create(&name::random_name(), size) {
                Err(CreateError::AlreadyExists { .. }) if attempts < 16 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Opens the existing segment `name` (Python: `SharedMemory(name)`). The handle never
    /// unlinks the name.
    pub fn open(name: &str) -> Result<SharedMemory, OpenError> {
        SharedMemory::open_kind(name, NamedKind::Bytes)
    }

    /// Removes the name `name` (Python: `shm_unlink`): the cleanup for a segment whose
    /// creator was killed or persisted it. Processes that have it open keep using it.
    pub fn unlink_name(name: &str) -> Result<(), UnlinkError> {
        let bare = name::validate(name)?;
        named_shm::unlink(&name::os_name(bare)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => UnlinkError::NotFound { name: bare.to_owned() },
            _ => UnlinkError::Os { name: bare.to_owned(), source: e },
        })
    }

    pub(crate) fn create_kind(
        name: &str,
        size: usize,
        kind: NamedKind,
        init: impl FnOnce(&NamedSegment) -> io::Result<()>,
    ) -> Result<SharedMemory, CreateError> {
        let bare = name::validate(name)?;
        if size == 0 {
            return Err(CreateError::ZeroSize);
        }
        let total = size.checked_add(DATA).filter(|t| *t <= isize::MAX as usize);
        let total = total.ok_or(CreateError::TooLarge { size: size as u64 })?;
        let seg = NamedSegment::create(&name::os_name(bare), total).map_err(|e| create_error(bare, e))?;
        let publish = || -> io::Result<()> {
            init(&seg)?;
            mapping::atomic::<AtomicU32>(&seg, OFF_VERSION)?.store(LAYOUT_VERSION, Ordering::Relaxed);
            mapping::atomic::<AtomicU32>(&seg, OFF_KIND)?.store(kind as u32, Ordering::Relaxed);
            mapping::atomic::<AtomicU64>(&seg, OFF_SIZE)?.store(size as u64, Ordering::Relaxed);
            mapping::atomic::<AtomicU64>(&seg, OFF_MAGIC)?.store(MAGIC, Ordering::Release);
            Ok(())
        };
        if let Err(e) = publish() {
            let _ = seg.unlink_if_same();
            return Err(CreateError::Os { name: bare.to_owned(), source: e });
        }
        let inner = Inner {
            seg,
            name: bare.to_owned(),
            kind,
            size,
            creator: Some(std::process::id()),
            owns: AtomicBool::new(true),
        };
        Ok(SharedMemory { inner: Arc::new(inner) })
    }

    pub(crate) fn open_kind(name: &str, kind: NamedKind) -> Result<SharedMemory, OpenError> {
        let bare = name::validate(name)?;
        let seg = NamedSegment::open(&name::os_name(bare)).map_err(|e| open_error(bare, e))?;
        SharedMemory::check(seg, bare, kind)
    }

    pub(crate) fn from_fd_kind(fd: OwnedFd, name: &str, kind: NamedKind) -> Result<SharedMemory, OpenError> {
        let bare = name::validate(name)?;
        let seg = NamedSegment::from_fd(fd, &name::os_name(bare)).map_err(|e| open_error(bare, e))?;
        SharedMemory::check(seg, bare, kind)
    }

    /// Checks the header of a freshly mapped segment.
    fn check(seg: NamedSegment, bare: &str, kind: NamedKind) -> Result<SharedMemory, OpenError> {
        let name = || bare.to_owned();
        if seg.is_empty() {
            // Created, not yet sized: the creator is between shm_open and ftruncate.
            return Err(OpenError::NotReady { name: name() });
        }
        let header = || -> io::Result<(u64, u32, u32, u64)> {
            Ok((
                mapping::atomic::<AtomicU64>(&seg, OFF_MAGIC)?.load(Ordering::Acquire),
                mapping::atomic::<AtomicU32>(&seg, OFF_VERSION)?.load(Ordering::Relaxed),
                mapping::atomic::<AtomicU32>(&seg, OFF_KIND)?.load(Ordering::Relaxed),
                mapping::atomic::<AtomicU64>(&seg, OFF_SIZE)?.load(Ordering::Relaxed),
            ))
        };
        let Ok((magic, version, found_kind, size)) = header() else {
            // Shorter than our header: not ours.
            return Err(OpenError::Foreign { name: name() });
        };
        match magic {
            MAGIC => {}
            0 => return Err(OpenError::NotReady { name: name() }),
            _ => return Err(OpenError::Foreign { name: name() }),
        }
        if version != LAYOUT_VERSION {
            return Err(OpenError::Version { name: name(), found: version, expected: LAYOUT_VERSION });
        }
        if found_kind != kind as u32 {
            let found = [NamedKind::Bytes, NamedKind::List]
                .into_iter()
                .find(|k| *k as u32 == found_kind)
                .map_or("segment of unknown kind", NamedKind::name);
            return Err(OpenError::WrongKind { name: name(), found, expected: kind.name() });
        }
        let expected = size.saturating_add(DATA as u64);
        if (seg.len() as u64) < expected {
            return Err(OpenError::Truncated { name: name(), len: seg.len() as u64, expected });
        }
        let size = size as usize; // fits: it is below the mapping's length
        let inner = Inner { seg, name: name(), kind, size, creator: None, owns: AtomicBool::new(false) };
        Ok(SharedMemory { inner: Arc::new(inner) })
    }

    /// The name, as given (without a leading `/`). The file is
    /// `/dev/shm/multiproc.<name>`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The size of the data in bytes, as created (Python: `size`; exact, not rounded up
    /// to pages).
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Whether this handle will unlink the name when its last clone is dropped: it was
    /// created here, and neither [`persist`](SharedMemory::persist) nor
    /// [`unlink`](SharedMemory::unlink) was called.
    pub fn is_owner(&self) -> bool {
        self.inner.owns.load(Ordering::Acquire) && self.inner.creator == Some(std::process::id())
    }

    /// Gives up ownership: the segment stays after this handle is dropped, until
    /// someone calls [`unlink`](SharedMemory::unlink) or [`SharedMemory::unlink_name`].
    /// Affects every clone of this handle.
    pub fn persist(&self) {
        self.inner.owns.store(false, Ordering::Release);
    }

    /// Removes the name now (Python: `unlink()`), from any handle, owner or not; the
    /// memory stays usable through every open handle until they are dropped. Fails with
    /// [`UnlinkError::NotFound`] if the name is gone, or refers to another segment by
    /// now (which is left alone).
    pub fn unlink(&self) -> Result<(), UnlinkError> {
        self.inner.owns.store(false, Ordering::Release);
        match self.inner.seg.unlink_if_same() {
            Ok(true) => Ok(()),
            Ok(false) => Err(UnlinkError::NotFound { name: self.inner.name.clone() }),
            Err(e) => Err(UnlinkError::Os { name: self.inner.name.clone(), source: e }),
        }
    }

    fn range(&self, offset: usize, len: usize, align: usize) -> Result<usize, AccessError> {
        let size = self.inner.size;
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(AccessError::OutOfBounds { offset, len, size });
        }
        // The data starts 64-byte aligned, so alignment within it is alignment in memory.
        if offset % align != 0 {
            return Err(AccessError::Misaligned { offset, align });
        }
        Ok(DATA + offset)
    }

    fn internal(offset: usize, len: usize, size: usize) -> impl FnOnce(io::Error) -> AccessError {
        // The range was checked against the data, which lies inside the mapping.
        move |_| AccessError::OutOfBounds { offset, len, size }
    }

    /// Copies `buf.len()` bytes at `offset` out of the segment.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        let at = self.range(offset, buf.len(), 1)?;
        mapping::read(&self.inner.seg, at, buf).map_err(Self::internal(offset, buf.len(), self.inner.size))
    }

    /// Copies `bytes` into the segment at `offset`.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), AccessError> {
        let at = self.range(offset, bytes.len(), 1)?;
        mapping::write(&self.inner.seg, at, bytes).map_err(Self::internal(offset, bytes.len(), self.inner.size))
    }

    /// A copy of the `T` stored at `offset` (any offset: no alignment needed).
    pub fn read_value<T: Pod>(&self, offset: usize) -> Result<T, AccessError> {
        let mut value = T::zeroed();
        self.read(offset, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Stores a copy of `value` at `offset` (any offset).
    pub fn write_value<T: Pod>(&self, offset: usize, value: &T) -> Result<(), AccessError> {
        self.write(offset, bytemuck::bytes_of(value))
    }

    /// The atomic integer `A` (`AtomicU32`, `AtomicI64`, ...) at `offset`, which must be
    /// aligned for it: the sound way to share a counter or a flag in the segment.
    pub fn atomic<A: SharedAtomic>(&self, offset: usize) -> Result<&A, AccessError> {
        let at = self.range(offset, size_of::<A>(), align_of::<A>())?;
        mapping::atomic::<A>(&self.inner.seg, at).map_err(Self::internal(offset, size_of::<A>(), self.inner.size))
    }

    /// The start of the data, for code that manages the accesses itself. Valid for
    /// [`size`](SharedMemory::size) bytes while this handle (or a clone) lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.inner.seg.as_ptr().wrapping_add(DATA)
    }

    /// The data as a byte slice.
    ///
    /// # Safety
    /// While the slice lives, no thread of any process may write those bytes (for
    /// example, because every writer holds a lock that the caller holds too, or because
    /// the data is written once before it is shared and never again).
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the data range lies inside the mapping (checked on create/open);
        // nobody writes it while the slice lives, as the caller promises.
        unsafe { mapping::bytes(&self.inner.seg, DATA, self.inner.size) }.unwrap_or(&[])
    }

    /// The data as a mutable byte slice.
    ///
    /// # Safety
    /// While the slice lives, no other thread of any process may read or write those
    /// bytes, and no other reference to them may exist (from this handle, a clone, or
    /// another mapping): the caller has exclusive access by some agreement, such as a
    /// lock every process takes.
    #[allow(clippy::mut_from_ref, reason = "exclusivity is the caller's promise, as documented")]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: in bounds as above; exclusivity is the caller's promise.
        unsafe { mapping::bytes_mut(&self.inner.seg, DATA, self.inner.size) }.unwrap_or(&mut [])
    }

    /// The mapping, for the ShareableList built on top (offsets from its start).
    pub(crate) fn segment(&self) -> &NamedSegment {
        &self.inner.seg
    }

    pub(crate) fn serialize_kind<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fd = self.inner.seg.try_clone_fd().map_err(|e| {
            S::Error::custom(format!(
                "cannot duplicate the descriptor of {} {:?}: {e}",
                self.inner.kind.name(),
                self.name()
            ))
        })?;
        (Fd::new(fd), self.name()).serialize(s)
    }

    pub(crate) fn deserialize_kind<'de, D: Deserializer<'de>>(d: D, kind: NamedKind) -> Result<SharedMemory, D::Error> {
        let (fd, name) = <(Fd, String)>::deserialize(d)?;
        SharedMemory::from_fd_kind(fd.into_inner(), &name, kind).map_err(D::Error::custom)
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name())
            .field("size", &self.size())
            .field("owner", &self.is_owner())
            .finish()
    }
}

/// Serialized as its descriptor (which travels out of band) and its name; the received
/// handle maps the same segment, even if the name was unlinked meanwhile, and does not
/// own the name.
impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_kind(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SharedMemory::deserialize_kind(d, NamedKind::Bytes)
    }
}
