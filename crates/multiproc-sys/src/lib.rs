//! The OS layer of `multiproc` (Python: `_multiprocessing`, `_posixshmem`, and the parts
//! of `os` that `multiprocessing` calls).
//!
//! Every `unsafe` system call the workspace makes lives in this crate, behind small safe
//! functions, so that the primitive crates above it (pipes, locks, queues, shared values)
//! need almost no `unsafe` of their own. Linux is the target.
//!
//! | module | what it wraps |
//! |---|---|
//! | [`fd`] | socket pairs, pipes, `O_CLOEXEC` / `O_NONBLOCK` flags, `dup` |
//! | [`fdpass`] | sending and receiving file descriptors over Unix sockets (`SCM_RIGHTS`) |
//! | [`handoff`] | descriptor-carrying records a receiver can peek before it takes them |
//! | [`clofork`] | descriptors a `fork` child keeps only if it was handed their owner |
//! | [`shm`] | anonymous shared memory: `memfd_create` + `mmap`, sealed against resizing |
//! | [`named_shm`] | named shared memory for unrelated processes: `shm_open` + `ftruncate` + `mmap`, `shm_unlink` |
//! | [`mapping`] | bounds-checked atomics, copies and (unsafe) references into a shared mapping |
//! | [`shmio`] | safe access to a segment at offsets: atomics, robust mutexes, bounded byte copies |
//! | [`futex`] | wait and wake on a 32-bit word shared between processes |
//! | [`robust`] | process-shared robust mutexes: the kernel reports a holder's death to the next locker |
//! | [`proc`] | `fork`, `clone(CLONE_PARENT)`, `exec` of the current binary, pidfd, `waitid`, `PR_SET_PDEATHSIG` |
//! | [`signal`] | signal numbers and names, `kill` |
//! | [`poll`] | waiting for any of several descriptors to become readable |
//! | [`sock`] | non-blocking socket receive (with descriptors), waiting to write, `shutdown` |
//! | [`spin`] | the shared spin-then-block waiting policy every blocking call uses |
//!
//! All descriptors are returned as [`std::os::fd::OwnedFd`] and opened with `O_CLOEXEC`,
//! so nothing leaks into a program started with `exec` unless it is handed over on purpose.

pub mod clofork;
pub mod fd;
pub mod fdpass;
pub mod futex;
pub mod handoff;
pub mod mapping;
pub mod named_shm;
pub mod poll;
pub mod proc;
pub mod robust;
pub mod shm;
pub mod shmio;
pub mod signal;
pub mod sock;
pub mod spin;

pub use nix::unistd::Pid;

/// Converts a `nix` error into the `std::io::Error` every function here returns.
pub(crate) fn io_err(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// Returns `Err(last_os_error)` when a raw libc call returned -1.
pub(crate) fn cvt(ret: libc::c_long) -> std::io::Result<libc::c_long> {
    if ret == -1 { Err(std::io::Error::last_os_error()) } else { Ok(ret) }
}
