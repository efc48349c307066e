//! Shared memory between processes (Python: `multiprocessing.Value`, `Array`,
//! `RawValue`, `RawArray`, `multiprocessing.shared_memory.SharedMemory` and
//! `ShareableList`), typed and leak-free.
//!
//! | Python | here |
//! |---|---|
//! | `Value('q', 0)`, `with v.get_lock(): v.value += 1`, `v.value` | [`Value::new`], `*v.lock().unwrap() += 1` or `v.update(\|x\| *x += 1)?`, [`Value::load`] / [`Value::store`] |
//! | `Array('d', 10)`, `Array('i', [1, 2])`, `a[i]`, `a[:]` | [`Array::zeroed`], [`Array::from_slice`], [`Array::load`] / [`Array::store`], [`Array::to_vec`], or the slice behind [`Array::lock`] |
//! | `get_lock()` | [`Value::get_lock`], [`Array::get_lock`] (the raw lock; [`Value::lock`] is the way in) |
//! | `Value(..., lock=shared_lock)` | one `Value` of a `#[repr(C)]` struct, or one `Array`: a guard reaches all of it |
//! | `RawValue`, `RawArray` | [`RawValue`], [`RawArray`]: copies in and out, atomics for integers |
//! | `shared_memory.SharedMemory(name, create=True, size=n)` / `(name)` | [`SharedMemory::create`] / [`SharedMemory::open`]; `buf` is [`SharedMemory::read`] / [`SharedMemory::write`] / [`SharedMemory::atomic`] (or the unsafe [`SharedMemory::as_mut_slice`]) |
//! | `shm.unlink()`, `shm.close()` | [`SharedMemory::unlink`], drop; ownership is explicit: see [`SharedMemory`] |
//! | `shared_memory.ShareableList([...], name=...)` | [`ShareableList::create`] / [`ShareableList::open`], typed [`get`](ShareableList::get) / [`set`](ShareableList::set) |
//!
//! **Values and arrays** ([`Value`], [`Array`], [`RawValue`], [`RawArray`]) hold any
//! plain-old-data type ([`bytemuck::Pod`]: integers, floats, arrays and `#[repr(C)]`
//! structs of them). Each lives in an anonymous memfd segment: nothing appears in
//! `/dev/shm`, and the memory is freed when the last process holding it lets go, whoever
//! is killed. Handles are `Clone` and serde types: pass one to a child process as an
//! argument, under any start method, and it maps the same memory (the segment travels
//! as a file descriptor; a fork child simply inherits it).
//!
//! The lock of a `Value` or `Array` is `multiproc-sync`'s robust process-shared mutex
//! ([`multiproc_sync::RawMutex`]), embedded next to the data (one cache line for a small
//! value). A guard derefs to the data, so a locked increment is a plain memory access
//! between a lock and an unlock. A holder that dies (even by SIGKILL) is reported to the
//! next locker as [`LockError::OwnerDied`], holding a working guard, instead of
//! blocking everyone forever as in Python.
//!
//! **Named segments** ([`SharedMemory`], [`ShareableList`]) are for processes that do
//! not start one another: POSIX shared memory, found by name (`/dev/shm/multiproc.<name>`,
//! see [`NAME_PREFIX`]). Who removes a name is explicit: the creator, on drop, unless it
//! persists the segment; openers never do (see [`SharedMemory`] for the full rules,
//! and the cleanup after a killed creator).
//!
//! Every segment starts with a magic number, a layout version and a description of its
//! contents (element size, alignment and a type fingerprint; or the kind of named
//! object), checked when it is attached or opened: a foreign segment or the wrong type
//! is an error value, never undefined behaviour.

mod array;
mod atomic;
mod block;
mod error;
mod guard;
mod locked;
mod name;
mod raw_array;
mod raw_value;
mod shareable_list;
mod shared_memory;
mod value;

pub use array::Array;
pub use atomic::AtomicPod;
pub use error::{AccessError, CreateError, ListError, NameError, OpenError, UnlinkError};
pub use guard::{ArrayGuard, GuardResult, SharedGuard, TryGuardResult, ValueGuard};
pub use name::{MAX_NAME_LEN, NAME_PREFIX};
pub use raw_array::RawArray;
pub use raw_value::RawValue;
pub use shareable_list::{Item, ItemType, MAX_ITEMS, MAX_SLOT_CAPACITY, ShareableList};
pub use shared_memory::SharedMemory;
pub use value::Value;

/// The lock errors of `multiproc-sync`, which [`Value::lock`] and [`Array::lock`]
/// report (with the guard, when the previous holder died).
pub use multiproc_sync::{LockError, TryLockError};

/// The crate behind the [`Pod`](bytemuck::Pod) bound (derive `Pod` and `Zeroable` for
/// your own `#[repr(C)]` structs with its `derive` feature).
pub use bytemuck;

// Compiles and runs the README's examples with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
