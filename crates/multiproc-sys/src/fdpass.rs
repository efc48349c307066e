//! Sending file descriptors over Unix sockets (`SCM_RIGHTS`).
//!
//! This is how handles (a pipe end, a shared-memory segment, a lock's segment) travel to a
//! process that did not inherit them: the bytes of a message go through the socket as
//! usual and the descriptors ride beside them as ancillary data. The receiver gets new
//! descriptor numbers for the same open files, already `O_CLOEXEC`.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::io_err;

/// The most descriptors one `sendmsg` may carry (the kernel's `SCM_MAX_FD` is 253).
pub const MAX_FDS_PER_SEND: usize = 253;

/// Sends `data` with `fds` attached in one `sendmsg`, without ever raising `SIGPIPE`.
///
/// Returns how many bytes were written; on a stream socket that may be fewer than
/// `data.len()`, and the descriptors travel with the first byte in any case.
/// Fails with `InvalidInput` when more than [`MAX_FDS_PER_SEND`] descriptors are given.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_SEND {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("at most {MAX_FDS_PER_SEND} descriptors fit in one send"),
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), data, cmsgs, flags, None) {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io_err),
        }
    }
}

/// Receives into `buf` with one `recvmsg`, appending any descriptors that arrive to `fds`.
///
/// Returns the number of bytes read; `0` means the peer closed its end (or `buf` is
/// empty). Descriptors arrive `O_CLOEXEC`. With `nonblocking`, an empty socket gives
/// `ErrorKind::WouldBlock`. If the sender attached more descriptors than fit in our
/// buffer the kernel drops the rest; that is reported as an error rather than ignored.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_SEND]);
    let mut iov = [IoSliceMut::new(buf)];
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Err(Errno::EINTR) => continue,
            other => break other.map_err(io_err)?,
        }
    };
    let n = msg.bytes;
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for r in raw {
                    // SAFETY: the kernel has just installed `r` in our descriptor table
                    // for this message; nothing else owns it yet.
                    fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                }
            }
        }
    }
    if truncated {
        return Err(io::Error::other("the peer sent more descriptors than one message may carry; some were dropped"));
    }
    Ok(n)
}

/// Sends all of `data`, attaching `fds` in chunks of at most [`MAX_FDS_PER_SEND`].
///
/// Each chunk rides on its own byte, so `data` must be at least as long as the number of
/// chunks (`fds.len().div_ceil(253)`); a framed message with a header always is.
pub fn send_all_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let chunks = fds.len().div_ceil(MAX_FDS_PER_SEND);
    if chunks > data.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors for so short a message"));
    }
    let mut off = 0;
    for (i, chunk) in fds.chunks(MAX_FDS_PER_SEND).enumerate() {
        // All chunks but the last go with exactly one byte each, so the receiver sees
        // every descriptor whatever its read sizes.
        let end = if i + 1 == chunks { data.len() } else { off + 1 };
        let n = send_with_fds(sock, &[IoSlice::new(&data[off..end])], chunk, false)?;
        off += n;
    }
    while off < data.len() {
        let n = send_with_fds(sock, &[IoSlice::new(&data[off..])], &[], false)?;
        off += n;
    }
    Ok(())
}

/// Fills `buf` completely, collecting every descriptor that arrives on the way.
///
/// Fails with `UnexpectedEof` if the peer closes first (a truncated message).
pub fn recv_exact_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        let n = recv_with_fds(sock, &mut buf[off..], fds, false)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("peer closed after {off} of {} bytes", buf.len()),
            ));
        }
        off += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fd::{SocketKind, socket_pair};
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_travel_and_stay_cloexec() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        let (r, w) = crate::fd::pipe().unwrap();
        send_all_with_fds(a.as_fd(), b"hello", &[r.as_fd(), w.as_fd()]).unwrap();
        let mut buf = [0u8; 5];
        let mut fds = Vec::new();
        recv_exact_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(fds.len(), 2);
        assert!(crate::fd::is_cloexec(fds[0].as_fd()).unwrap());
        nix::unistd::write(&fds[1], b"x").unwrap();
        let mut one = [0u8; 1];
        nix::unistd::read(r.as_fd(), &mut one).unwrap();
        assert_eq!(&one, b"x");
    }

    #[test]
    fn many_descriptors_in_chunks() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        let (r, _w) = crate::fd::pipe().unwrap();
        let fds: Vec<_> = (0..600).map(|_| r.try_clone().unwrap()).collect();
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            recv_exact_with_fds(b.as_fd(), &mut buf, &mut got).unwrap();
            got.len()
        });
        send_all_with_fds(a.as_fd(), &[7u8; 64], &borrowed).unwrap();
        assert_eq!(t.join().unwrap(), 600);
    }

    #[test]
    fn eof_mid_message_is_an_error() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        send_all_with_fds(a.as_fd(), b"abc", &[]).unwrap();
        drop(a);
        let mut buf = [0u8; 10];
        let err = recv_exact_with_fds(b.as_fd(), &mut buf, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn send_to_closed_peer_is_epipe_not_sigpipe() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        drop(b);
        let err = send_all_with_fds(a.as_fd(), b"x", &[]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    }
}
