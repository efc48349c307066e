//! The shared-memory segment behind every primitive, and how a handle travels to
//! another process.
//!
//! Each primitive is one memfd segment (nothing in `/dev/shm`) laid out as a [`Header`]
//! followed by the primitive's `#[repr(C)]` body. The creator initialises the body,
//! then publishes the header with the magic number written last (release ordering); a
//! process attaching a received descriptor checks magic, layout version, kind and size
//! before it looks at the body, so a foreign or mismatched segment is an error, never
//! undefined behaviour.
//!
//! A handle serializes as its segment's descriptor ([`multiproc_codec::Fd`]), which
//! travels out of band; a fork child simply inherits the mapping.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, size_of};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use multiproc_codec::Fd;
use multiproc_sys::shm::Segment;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// "mpsync" plus a format byte; the first eight bytes of every segment.
const MAGIC: u64 = u64::from_le_bytes(*b"mpsync\0\x01");
/// Bumped whenever any body layout changes, so that two builds that disagree refuse to
/// share a primitive instead of misreading it.
const LAYOUT_VERSION: u32 = 1;

/// Which primitive a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Lock = 1,
    RLock = 2,
    Semaphore = 3,
    BoundedSemaphore = 4,
    Event = 5,
    Condition = 6,
    Barrier = 7,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Lock => "Lock",
            Kind::RLock => "RLock",
            Kind::Semaphore => "Semaphore",
            Kind::BoundedSemaphore => "BoundedSemaphore",
            Kind::Event => "Event",
            Kind::Condition => "Condition",
            Kind::Barrier => "Barrier",
        }
    }

    fn from_u32(v: u32) -> Option<Kind> {
        [Kind::Lock, Kind::RLock, Kind::Semaphore, Kind::BoundedSemaphore, Kind::Event, Kind::Condition, Kind::Barrier]
            .into_iter()
            .find(|k| *k as u32 == v)
    }
}

/// The body of a segment.
///
/// # Safety
/// Implementors are `#[repr(C)]`, at most 8-byte aligned, and made only of atomics,
/// [`multiproc_sys::robust::RobustMutex`]es and arrays or structs of those: types that
/// are valid for every bit pattern (all-zero included) and only mutated through shared
/// references, because other processes may write the bytes at any time.
pub(crate) unsafe trait Layout: Send + Sync + Sized + 'static {
    /// Which primitive this is.
    const KIND: Kind;
    /// Whether the layout holds robust mutexes (then the calling thread is checked for
    /// robust-list support when the segment is created or attached).
    const ROBUST: bool;
    /// Whether a thread of this process holds a robust mutex of this layout, so that the
    /// mapping must outlive the handle (glibc links held robust mutexes into the
    /// thread's list by address; unmapping one would leave a dangling link).
    fn pinned(&self) -> bool {
        false
    }
}

#[repr(C)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    kind: AtomicU32,
    size: AtomicU32,
    _reserved: AtomicU32,
}

#[repr(C)]
struct Block<T> {
    header: Header,
    body: T,
}

/// Why a received descriptor could not be attached as a primitive.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachError {
    #[error("the descriptor is not a usable shared-memory segment: {0}")]
    Segment(#[source] io::Error),
    #[error("the shared-memory segment is not a multiproc-sync primitive")]
    Foreign,
    #[error(
        "the {expected} was created by a build of multiproc-sync with layout version {found} \
         (this one uses {LAYOUT_VERSION}); build both programs with the same version"
    )]
    Version { found: u32, expected: &'static str },
    #[error("expected a multiproc-sync {expected} handle, found {found}")]
    Kind { found: &'static str, expected: &'static str },
    #[error("the {expected}'s shared memory has the wrong size ({found} bytes, expected {want})")]
    Size { found: u32, want: usize, expected: &'static str },
    #[error("{0}")]
    Thread(#[source] io::Error),
}

/// One mapping of a primitive's segment.
pub(crate) struct Shared<T: Layout> {
    seg: ManuallyDrop<Segment>,
    _body: PhantomData<T>,
}

impl<T: Layout> Shared<T> {
    /// Creates and maps a new segment, lets `init` initialise the zeroed body (nobody
    /// else can see it yet), then publishes the header.
    pub(crate) fn create(init: impl FnOnce(&T) -> io::Result<()>) -> io::Result<Shared<T>> {
        const { assert!(std::mem::align_of::<Block<T>>() <= 4096) };
        if T::ROBUST {
            multiproc_sys::robust::check_current_thread()?;
        }
        let seg = Segment::create(T::KIND.name(), size_of::<Block<T>>())?;
        let shared = Shared { seg: ManuallyDrop::new(seg), _body: PhantomData };
        init(shared.get())?;
        let h = &shared.block().header;
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.kind.store(T::KIND as u32, Ordering::Relaxed);
        h.size.store(size_of::<T>() as u32, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        Ok(shared)
    }

    /// Maps a received segment after checking that it holds a `T`.
    pub(crate) fn attach(fd: OwnedFd) -> Result<Shared<T>, AttachError> {
        let expected = T::KIND.name();
        let seg = Segment::from_fd(fd, size_of::<Header>()).map_err(AttachError::Segment)?;
        let shared = Shared { seg: ManuallyDrop::new(seg), _body: PhantomData::<T> };
        // Until every check passed, only the header may be looked at, and the mapping
        // must be unmapped on failure without consulting the body (`pinned`).
        let fail = |shared: Shared<T>, e: AttachError| {
            let mut shared = ManuallyDrop::new(shared);
            // SAFETY: `shared` is never used again; its segment is dropped exactly once.
            unsafe { ManuallyDrop::drop(&mut shared.seg) };
            Err(e)
        };
        // SAFETY: the mapping is at least one header long (checked by from_fd) and page
        // aligned; the header is made of atomics, valid for any bytes.
        let h = unsafe { &*(shared.seg.as_ptr() as *const Header) };
        if h.magic.load(Ordering::Acquire) != MAGIC {
            return fail(shared, AttachError::Foreign);
        }
        let version = h.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return fail(shared, AttachError::Version { found: version, expected });
        }
        let kind = h.kind.load(Ordering::Relaxed);
        if kind != T::KIND as u32 {
            let found = Kind::from_u32(kind).map_or("unknown primitive", Kind::name);
            return fail(shared, AttachError::Kind { found, expected });
        }
        let size = h.size.load(Ordering::Relaxed);
        if size as usize != size_of::<T>() || shared.seg.len() < size_of::<Block<T>>() {
            return fail(shared, AttachError::Size { found: size, want: size_of::<T>(), expected });
        }
        if T::ROBUST {
            if let Err(e) = multiproc_sys::robust::check_current_thread() {
                return fail(shared, AttachError::Thread(e));
            }
        }
        Ok(shared)
    }

    #[inline]
    fn block(&self) -> &Block<T> {
        // SAFETY: the mapping is page aligned and at least size_of::<Block<T>>() long
        // (created so, or checked in `attach`), and lives as long as `self`. `T: Layout`
        // promises that every bit pattern is a valid `T` and that it is only mutated
        // through atomics, so a shared reference is sound even while other processes
        // write the bytes.
        unsafe { &*(self.seg.as_ptr() as *const Block<T>) }
    }

    /// The primitive's body.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        &self.block().body
    }
}

impl<T: Layout> Drop for Shared<T> {
    fn drop(&mut self) {
        if self.get().pinned() {
            // A thread of ours holds a robust mutex in here (its guard was leaked):
            // keep the mapping forever rather than leave glibc a dangling pointer.
            return;
        }
        // SAFETY: called once, from drop; `seg` is not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.seg) };
    }
}

/// A cloneable, serializable reference to one mapping.
pub(crate) struct Handle<T: Layout>(Arc<Shared<T>>);

impl<T: Layout> Handle<T> {
    pub(crate) fn create(init: impl FnOnce(&T) -> io::Result<()>) -> io::Result<Handle<T>> {
        Shared::create(init).map(|s| Handle(Arc::new(s)))
    }

    #[inline]
    pub(crate) fn get(&self) -> &T {
        self.0.get()
    }
}

#[cfg(test)]
impl<T: Layout> Handle<T> {
    pub(crate) fn fd_for_tests(&self) -> OwnedFd {
        self.0.seg.try_clone_fd().unwrap()
    }
}

impl<T: Layout> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Handle(self.0.clone())
    }
}

impl<T: Layout> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::KIND.name())
    }
}

impl<T: Layout> Serialize for Handle<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fd = self
            .0
            .seg
            .try_clone_fd()
            .map_err(|e| S::Error::custom(format!("cannot duplicate the {}'s descriptor: {e}", T::KIND.name())))?;
        Fd::new(fd).serialize(s)
    }
}

impl<'de, T: Layout> Deserialize<'de> for Handle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fd = Fd::deserialize(d)?;
        Shared::attach(fd.into_inner()).map(|s| Handle(Arc::new(s))).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use multiproc_codec::{Bincode, decode_with_fds, encode_with_fds};

    use crate::{Barrier, Event, Lock, RLock, Semaphore};

    fn send<T: serde::Serialize, U: serde::de::DeserializeOwned>(value: &T) -> Result<U, String> {
        let codec = Bincode::new();
        let mut bytes = Vec::new();
        let fds = encode_with_fds(&codec, value, &mut bytes).map_err(|e| e.to_string())?;
        decode_with_fds(&codec, &bytes, fds).map_err(|e| e.to_string())
    }

    #[test]
    fn handles_travel_and_share_state() {
        let lock = Lock::new().unwrap();
        let copy: Lock = send(&lock).unwrap();
        let guard = copy.lock().unwrap();
        assert!(lock.is_locked());
        drop(guard);
        let sem = Semaphore::new(3).unwrap();
        let copy: Semaphore = send(&sem).unwrap();
        copy.acquire().forget();
        assert_eq!(sem.value(), 2);
    }

    #[test]
    fn the_wrong_kind_is_refused() {
        let err = send::<Event, Lock>(&Event::new().unwrap()).unwrap_err();
        assert!(err.contains("expected a multiproc-sync Lock handle, found Event"), "{err}");
        let err = send::<Lock, RLock>(&Lock::new().unwrap()).unwrap_err();
        assert!(err.contains("found Lock"), "{err}");
        assert!(send::<Barrier, Semaphore>(&Barrier::new(2).unwrap()).is_err());
    }

    #[test]
    fn foreign_descriptors_are_refused() {
        // A sealed memfd that is not ours: wrong magic.
        let seg = multiproc_sys::shm::Segment::create("foreign", 4096).unwrap();
        let foreign = multiproc_codec::Fd::new(seg.try_clone_fd().unwrap());
        let err = send::<_, Lock>(&foreign).unwrap_err();
        assert!(err.contains("not a multiproc-sync primitive"), "{err}");
        // Not shared memory at all.
        let (r, _w) = multiproc_sys::fd::pipe().unwrap();
        let err = send::<_, Event>(&multiproc_codec::Fd::new(r)).unwrap_err();
        assert!(err.contains("not a usable shared-memory segment"), "{err}");
    }

    #[test]
    fn a_newer_layout_version_is_refused() {
        let lock = Lock::new().unwrap();
        let seg = multiproc_sys::shm::Segment::from_fd(
            multiproc_codec::Fd::new(lock.shared_fd_for_tests()).into_inner(),
            std::mem::size_of::<super::Header>(),
        )
        .unwrap();
        // SAFETY: the header is at the start of the page-aligned mapping; atomics only.
        let h = unsafe { &*(seg.as_ptr() as *const super::Header) };
        h.version.store(super::LAYOUT_VERSION + 1, std::sync::atomic::Ordering::SeqCst);
        let err = send::<Lock, Lock>(&lock).unwrap_err();
        assert!(err.contains("layout version"), "{err}");
    }
}
