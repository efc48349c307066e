//! Handing a descriptor to whichever process takes the next record, with a look before
//! the take: small records with descriptors on a `SOCK_SEQPACKET` socket.
//!
//! A record is one `sendmsg` of a few bytes (a header the caller defines) carrying
//! descriptors. The receiving side first [`peek`]s the record at the head of the socket,
//! which gives it *copies* of the descriptors and leaves the record in place, does what
//! it must with them, and only then [`discard`]s the record. A receiver killed between
//! the two leaves the record for the next one: nothing sent is lost to a crash.
//!
//! Every call here is non-blocking on the receiving side (`MSG_DONTWAIT`) whatever the
//! socket's `O_NONBLOCK` flag says; [`send`] blocks until the record is queued and never
//! raises `SIGPIPE`.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

use crate::fdpass::{self, MAX_FDS_PER_SEND};
use crate::io_err;

/// Sends one record: `header` with `fds` attached, in a single `sendmsg`.
///
/// On a `SOCK_SEQPACKET` socket the record arrives whole or not at all.
pub fn send(sock: BorrowedFd<'_>, header: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let n = fdpass::send_with_fds(sock, &[IoSlice::new(header)], fds, false)?;
    if n != header.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "record was cut short by the socket"));
    }
    Ok(())
}

/// A record seen by [`peek`].
#[derive(Debug)]
pub struct Peeked {
    /// How many bytes of the record were copied into the caller's buffer.
    pub len: usize,
    /// Whether the record was longer than the buffer (the rest was not copied).
    pub truncated: bool,
    /// Copies of the descriptors the record carries (`O_CLOEXEC`).
    pub fds: Vec<OwnedFd>,
}

fn receive(sock: BorrowedFd<'_>, buf: &mut [u8], flags: MsgFlags) -> io::Result<Option<Peeked>> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_SEND]);
    let mut iov = [IoSliceMut::new(buf)];
    let flags = flags | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(None),
            other => break other.map_err(io_err)?,
        }
    };
    let mut out = Peeked { len: msg.bytes, truncated: msg.flags.contains(MsgFlags::MSG_TRUNC), fds: Vec::new() };
    let cut = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for r in raw {
                    // SAFETY: the kernel has just installed `r` in our descriptor table for
                    // this call; nothing else owns it.
                    out.fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                }
            }
        }
    }
    if cut {
        return Err(io::Error::other(
            "descriptors of a record were dropped (this process may be out of descriptors: raise `ulimit -n`)",
        ));
    }
    Ok(Some(out))
}

/// Copies the record at the head of the socket into `buf` and returns it with copies of
/// its descriptors, leaving it in place. `Ok(None)` if no record is queued.
pub fn peek(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<Peeked>> {
    receive(sock, buf, MsgFlags::MSG_PEEK)
}

/// Removes the record at the head of the socket, closing the descriptors it carried.
/// Returns `false` if no record was queued. A zero-length read on a socket whose peer
/// ends are all closed also returns `false`.
pub fn discard(sock: BorrowedFd<'_>) -> io::Result<bool> {
    let mut scratch = [0u8; 64];
    Ok(receive(sock, &mut scratch, MsgFlags::empty())?.is_some_and(|p| p.len > 0 || !p.fds.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fd::{SocketKind, socket_pair};
    use std::os::fd::AsFd;

    #[test]
    fn peek_leaves_the_record_and_discard_removes_it() {
        let (a, b) = socket_pair(SocketKind::SeqPacket).unwrap();
        let (r, w) = crate::fd::pipe().unwrap();
        let mut buf = [0u8; 16];
        assert!(peek(b.as_fd(), &mut buf).unwrap().is_none());
        send(a.as_fd(), b"first", &[w.as_fd()]).unwrap();
        send(a.as_fd(), b"second!", &[]).unwrap();
        drop(w);
        for _ in 0..2 {
            let p = peek(b.as_fd(), &mut buf).unwrap().unwrap();
            assert_eq!((&buf[..p.len], p.truncated, p.fds.len()), (&b"first"[..], false, 1));
            // The peeked copy is a real write end of the pipe.
            nix::unistd::write(&p.fds[0], b"x").unwrap();
        }
        let mut one = [0u8; 2];
        assert_eq!(nix::unistd::read(r.as_fd(), &mut one).unwrap(), 2);
        assert!(discard(b.as_fd()).unwrap());
        let mut small = [0u8; 3];
        let p = peek(b.as_fd(), &mut small).unwrap().unwrap();
        assert!(p.truncated && p.fds.is_empty());
        assert!(discard(b.as_fd()).unwrap());
        assert!(!discard(b.as_fd()).unwrap());
    }
}
