//! Creating and flagging file descriptors.
//!
//! Every descriptor made here carries `O_CLOEXEC`; a descriptor meant for a child started
//! with `exec` is handed over explicitly (see [`crate::proc::SpawnCommand`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use crate::io_err;

/// The kind of Unix socket pair to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// A byte stream (`SOCK_STREAM`): messages need framing, any size.
    Stream,
    /// Reliable, ordered datagrams (`SOCK_SEQPACKET`): each send is one message.
    SeqPacket,
}

/// Creates a connected pair of Unix sockets, both `O_CLOEXEC`.
pub fn socket_pair(kind: SocketKind) -> io::Result<(OwnedFd, OwnedFd)> {
    let ty = match kind {
        SocketKind::Stream => SockType::Stream,
        SocketKind::SeqPacket => SockType::SeqPacket,
    };
    socketpair(AddressFamily::Unix, ty, None, SockFlag::SOCK_CLOEXEC).map_err(io_err)
}

/// Creates a pipe `(read end, write end)`, both `O_CLOEXEC`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_err)
}

/// Duplicates a descriptor; the copy is `O_CLOEXEC`.
pub fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// Turns `O_NONBLOCK` on or off.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io_err)?;
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io_err)?;
    Ok(())
}

/// Whether `O_CLOEXEC` is set on a descriptor.
pub fn is_cloexec(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = fcntl(fd, FcntlArg::F_GETFD).map_err(io_err)?;
    Ok(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC))
}

/// The raw number of a descriptor, for messages and `/proc` paths.
pub fn raw(fd: &impl AsFd) -> i32 {
    fd.as_fd().as_raw_fd()
}

/// Takes ownership of a descriptor this process inherited across `exec` under a known
/// number (the number travels in an environment variable), after checking that it is
/// open, and flags it `O_CLOEXEC` again so it goes no further.
///
/// Fails if `raw` is not an open descriptor. Call it once per inherited number: a second
/// call would create a second owner.
pub fn adopt_inherited(raw: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table.
    if raw < 0 || unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("inherited descriptor {raw} is not open")));
    }
    // SAFETY: the descriptor is open, and by this function's contract nothing else in
    // this process owns it: it was handed to us across exec for exactly this purpose.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io_err)?;
    Ok(fd)
}

/// Closes a descriptor by number in a freshly forked child, where the `OwnedFd` that
/// owns it belongs to a stack frame the child will never return to.
pub fn close_inherited_copy(raw: i32) {
    if raw >= 0 {
        // SAFETY: closing a number only affects our descriptor table; the caller
        // promises the owner of `raw` in this (forked) process never runs again.
        unsafe { libc::close(raw) };
    }
}

/// Lists the descriptors this process has open (from `/proc/self/fd`), sorted.
///
/// Used by tests to prove that nothing leaks.
pub fn open_fds() -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(n) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    // The directory handle used to list them is itself one of the entries; drop any
    // descriptor that is already closed again.
    out.retain(|&fd| {
        // SAFETY: fcntl(F_GETFD) only queries the descriptor table; an invalid number
        // returns EBADF and touches nothing.
        unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_cloexec() {
        for kind in [SocketKind::Stream, SocketKind::SeqPacket] {
            let (a, b) = socket_pair(kind).unwrap();
            assert!(is_cloexec(a.as_fd()).unwrap());
            assert!(is_cloexec(b.as_fd()).unwrap());
        }
        let (r, w) = pipe().unwrap();
        assert!(is_cloexec(r.as_fd()).unwrap() && is_cloexec(w.as_fd()).unwrap());
        let d = dup(r.as_fd()).unwrap();
        assert!(is_cloexec(d.as_fd()).unwrap());
    }

    #[test]
    fn nonblocking_toggles() {
        let (a, _b) = socket_pair(SocketKind::Stream).unwrap();
        set_nonblocking(a.as_fd(), true).unwrap();
        let mut buf = [0u8; 1];
        let err = nix::unistd::read(a.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err, nix::errno::Errno::EAGAIN);
        set_nonblocking(a.as_fd(), false).unwrap();
    }
}
