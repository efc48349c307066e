//! The error types, one per family of operations.
//!
//! Locking a [`Value`](crate::Value) or [`Array`](crate::Array) reports with
//! `multiproc-sync`'s [`LockError`](crate::LockError) and
//! [`TryLockError`](crate::TryLockError), which carry the guard when the previous holder
//! died.

use std::io;

use crate::ItemType;
use crate::name::MAX_NAME_LEN;

/// Why a name for a [`SharedMemory`](crate::SharedMemory) or
/// [`ShareableList`](crate::ShareableList) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty (or only `/`).
    #[error("a shared-memory name cannot be empty; pick a name such as \"my-data\"")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("the shared-memory name {name:?} is {len} bytes long; use at most {MAX_NAME_LEN}")]
    TooLong {
        /// The name as given.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a character outside `A-Z a-z 0-9 _ - .`.
    #[error(
        "the shared-memory name {name:?} contains {found:?}; use only ASCII letters, digits, \
         '_', '-' and '.' (one leading '/' is allowed and ignored)"
    )]
    InvalidChar {
        /// The name as given.
        name: String,
        /// The first character that is not allowed.
        found: char,
    },
}

/// Why a named segment ([`SharedMemory::create`](crate::SharedMemory::create),
/// [`ShareableList::create`](crate::ShareableList::create)) could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The name is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A segment of that name exists already (perhaps left by a process that was killed,
    /// or persisted on purpose).
    #[error(
        "a shared-memory segment named {name:?} already exists; open it with open(), pick \
         another name, or remove a stale one with SharedMemory::unlink_name({name:?})"
    )]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// A size of zero bytes was asked for (Python: `ValueError`).
    #[error("a shared-memory segment needs at least one byte; ask for a size above zero")]
    ZeroSize,
    /// The size does not fit the address space.
    #[error("{size} bytes is too large for a shared-memory segment")]
    TooLarge {
        /// The size asked for.
        size: u64,
    },
    /// A [`ShareableList`](crate::ShareableList) string or bytes item is longer than a
    /// slot may be.
    #[error(
        "item {index} of the list is {len} bytes long, but a ShareableList slot holds at most \
         {max} bytes; store large data in a SharedMemory instead"
    )]
    ItemTooLong {
        /// The position of the item.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The largest slot.
        max: usize,
    },
    /// A [`ShareableList`](crate::ShareableList) with more items than it may have.
    #[error("a ShareableList holds at most {max} items, not {count}")]
    TooManyItems {
        /// The number of items given.
        count: usize,
        /// The largest number allowed.
        max: usize,
    },
    /// The operating system refused (permissions of `/dev/shm`, out of memory, ...).
    #[error("cannot create shared-memory segment {name:?}: {source}")]
    Os {
        /// The name.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// Why [`SharedMemory::open`](crate::SharedMemory::open) or
/// [`ShareableList::open`](crate::ShareableList::open) failed (or a received handle
/// could not be used).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The name is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// No segment has that name.
    #[error(
        "no shared-memory segment named {name:?}; it was never created, or it was unlinked \
         (its creator exited or called unlink()); create it first"
    )]
    NotFound {
        /// The name.
        name: String,
    },
    /// The segment belongs to another user.
    #[error("shared-memory segment {name:?} belongs to another user (segments are created with mode 0600)")]
    PermissionDenied {
        /// The name.
        name: String,
    },
    /// The segment exists but has not been initialised: its creator is still setting
    /// it up, or died while doing so.
    #[error(
        "shared-memory segment {name:?} exists but is not initialised: its creator is still \
         setting it up (retry shortly) or died while doing so (remove it with \
         SharedMemory::unlink_name({name:?}))"
    )]
    NotReady {
        /// The name.
        name: String,
    },
    /// The segment does not start with multiproc-shared's magic number: another program
    /// made it.
    #[error("shared-memory segment {name:?} was not made by multiproc-shared; open it with the program that made it")]
    Foreign {
        /// The name.
        name: String,
    },
    /// The segment was made by a build of multiproc-shared with another layout version.
    #[error(
        "shared-memory segment {name:?} has layout version {found}, this build reads version \
         {expected}; use the same multiproc-shared version in every program"
    )]
    Version {
        /// The name.
        name: String,
        /// The version in the segment.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The segment holds the other kind of named object.
    #[error("shared-memory segment {name:?} holds a {found}, not a {expected}; open it with {found}::open")]
    WrongKind {
        /// The name.
        name: String,
        /// What it holds.
        found: &'static str,
        /// What was asked for.
        expected: &'static str,
    },
    /// The segment is smaller than its header says: someone truncated it.
    #[error(
        "shared-memory segment {name:?} is {len} bytes long but was created for {expected}; \
         another program resized it, so it cannot be used safely: unlink it and create it again"
    )]
    Truncated {
        /// The name.
        name: String,
        /// Its size now.
        len: u64,
        /// The size its header needs.
        expected: u64,
    },
    /// A [`ShareableList`](crate::ShareableList)'s table of slots is inconsistent.
    #[error("shared-memory segment {name:?} holds a damaged ShareableList ({what}); unlink it and create it again")]
    Corrupt {
        /// The name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// The operating system refused.
    #[error("cannot open shared-memory segment {name:?}: {source}")]
    Os {
        /// The name.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// Why an [`unlink`](crate::SharedMemory::unlink) or
/// [`unlink_name`](crate::SharedMemory::unlink_name) failed.
#[derive(Debug, thiserror::Error)]
pub enum UnlinkError {
    /// The name is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// No segment has that name (any more).
    #[error("no shared-memory segment named {name:?} to unlink; it was unlinked already (or never created)")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The operating system refused (for example, the segment belongs to another user).
    #[error("cannot unlink shared-memory segment {name:?}: {source}")]
    Os {
        /// The name.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// Why a bounds-checked access to a [`SharedMemory`](crate::SharedMemory) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The range does not lie inside the segment.
    #[error("bytes {offset}..{end} lie outside the {size}-byte shared-memory segment", end = offset.saturating_add(*len))]
    OutOfBounds {
        /// The start of the range.
        offset: usize,
        /// Its length.
        len: usize,
        /// The segment's size.
        size: usize,
    },
    /// The offset is not a multiple of the type's alignment.
    #[error("offset {offset} is not a multiple of {align}, the alignment the type needs")]
    Misaligned {
        /// The offset.
        offset: usize,
        /// The alignment needed.
        align: usize,
    },
}

/// Why a [`ShareableList`](crate::ShareableList) get or set failed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The index is past the end (Python: `IndexError`).
    #[error("list index {index} out of range for a ShareableList of {len} items")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// The slot holds another type (slots keep the type they were created with).
    #[error(
        "item {index} of the ShareableList has type {found}, not {expected}; a slot keeps the \
         type it was created with"
    )]
    WrongType {
        /// The index.
        index: usize,
        /// The type asked for or given.
        expected: ItemType,
        /// The slot's type.
        found: ItemType,
    },
    /// A string or bytes value longer than the slot's capacity (Python: `ValueError`).
    #[error(
        "{len} bytes do not fit item {index} of the ShareableList, which holds at most \
         {capacity}; create the list with a larger capacity"
    )]
    TooLong {
        /// The index.
        index: usize,
        /// The value's length in bytes.
        len: usize,
        /// The slot's capacity in bytes.
        capacity: usize,
    },
    /// The slot's bytes are not a valid value (only possible if something other than
    /// this library wrote to the segment).
    #[error("item {index} of the ShareableList is damaged ({what}); something other than multiproc wrote to it")]
    Corrupt {
        /// The index.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The list's internal lock failed; its shared memory may have been overwritten.
    #[error("the ShareableList's lock failed ({0}); its shared memory may have been overwritten")]
    Lock(#[source] io::Error),
}

/// Why a received [`Value`](crate::Value), [`Array`](crate::Array),
/// [`RawValue`](crate::RawValue) or [`RawArray`](crate::RawArray) handle could not be
/// attached. It reaches the receiver as the decode error of the message that carried it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachError {
    #[error("the descriptor is not a usable shared-memory segment: {0}")]
    Segment(#[source] io::Error),
    #[error("the shared-memory segment is not a multiproc-shared {expected}")]
    Foreign { expected: String },
    #[error(
        "the {expected} was made by a build of multiproc-shared with layout version {found} \
         (this one uses {ours}); build both programs with the same version"
    )]
    Version { found: u32, ours: u32, expected: String },
    #[error("expected a multiproc-shared {expected}, got {found}")]
    Kind { found: &'static str, expected: String },
    #[error(
        "expected a multiproc-shared {expected}, but the segment holds another element type \
         ({found_size}-byte elements aligned to {found_align}, type fingerprint {found_hash:#x}); \
         both sides must use the same element type"
    )]
    ElementType { expected: String, found_size: u32, found_align: u32, found_hash: u64 },
    #[error("the {expected}'s segment is damaged: {what}")]
    Corrupt { expected: String, what: &'static str },
    #[error("{0}")]
    Thread(#[source] io::Error),
}
