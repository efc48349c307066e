//! Socket receives for message transports (pipes, listeners), with descriptors.
//!
//! Each receive says how it may wait ([`RecvMode`]). A non-blocking receive uses
//! `MSG_DONTWAIT`, so it never waits whatever the descriptor's `O_NONBLOCK` flag says
//! (that flag belongs to the open file, which another process may share and change); a
//! waiting receive on a descriptor someone made non-blocking returns `WouldBlock` instead
//! of waiting, so callers handle that case by polling ([`crate::poll::readable`],
//! [`wait_writable`]). Receives collect `SCM_RIGHTS` descriptors (already `O_CLOEXEC`);
//! sends go through [`crate::fdpass::send_with_fds`], which never raises `SIGPIPE`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::fdpass::MAX_FDS_PER_SEND;

// Room for one SCM_RIGHTS message of the kernel's maximum size: a 16-byte `cmsghdr` plus
// 253 descriptors, rounded up; `u64` elements give the alignment `cmsghdr` needs.
const CMSG_WORDS: usize = (16 + MAX_FDS_PER_SEND * 4).div_ceil(8) + 1;

/// How a receive may wait for data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvMode {
    /// Never wait (`MSG_DONTWAIT`): an empty socket gives `ErrorKind::WouldBlock`.
    NonBlocking,
    /// Wait for at least one byte.
    Blocking,
    /// Wait until the whole buffer is filled (`MSG_WAITALL`); fewer bytes come back only
    /// at end-of-file, after a signal, or where a message carrying descriptors begins.
    WaitAll,
}

/// Receives at most `len` bytes into `ptr` with one `recvmsg`, appending any descriptors
/// that arrive to `fds`.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes (they may be uninitialised).
unsafe fn recv_raw(
    sock: BorrowedFd<'_>,
    ptr: *mut u8,
    len: usize,
    fds: &mut Vec<OwnedFd>,
    mode: RecvMode,
) -> io::Result<usize> {
    let flags = libc::MSG_CMSG_CLOEXEC
        | match mode {
            RecvMode::NonBlocking => libc::MSG_DONTWAIT,
            RecvMode::Blocking => 0,
            RecvMode::WaitAll => libc::MSG_WAITALL,
        };
    let mut control = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec { iov_base: ptr.cast(), iov_len: len };
    // SAFETY: an all-zero msghdr is a valid "no address, no data" value; we fill it below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: `msg` points at `iov` (valid for `len` writable bytes by our contract)
        // and at `control`, both alive for the call; the kernel writes within their sizes.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    if msg.msg_controllen > 0 {
        // SAFETY: the kernel filled `msg_control`/`msg_controllen`; CMSG_FIRSTHDR and
        // CMSG_NXTHDR only walk headers inside that buffer and return null past its end.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` is a non-null header inside `control` (see above).
            let hdr = unsafe { &*cmsg };
            if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
                // SAFETY: CMSG_LEN(0) is a pure computation.
                let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
                let count = (hdr.cmsg_len as usize).saturating_sub(header_len) / std::mem::size_of::<RawFd>();
                // SAFETY: CMSG_DATA points at the `count` descriptors that follow the header,
                // inside `control`; they may be unaligned, hence read_unaligned.
                let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
                for i in 0..count {
                    // SAFETY: `i < count`, so the read stays inside this control message.
                    let raw = unsafe { data.add(i).read_unaligned() };
                    // SAFETY: the kernel has just installed `raw` in our descriptor table for
                    // this message; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
            // SAFETY: as for CMSG_FIRSTHDR above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
    }
    // If the kernel had to drop descriptors (MSG_CTRUNC: this process is out of
    // descriptors) the bytes are still good; the message simply arrives with fewer
    // descriptors than it announced, which its decoder reports.
    Ok(n)
}

/// Receives up to `buf.len()` bytes, waiting as `mode` says.
///
/// Returns the number of bytes read: `0` means the peer closed its end (or `buf` is
/// empty); no data without waiting gives `ErrorKind::WouldBlock`. Interrupted calls are
/// retried. Descriptors that arrive are appended to `fds`.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>, mode: RecvMode) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its whole length.
    unsafe { recv_raw(sock, buf.as_mut_ptr(), buf.len(), fds, mode) }
}

/// Like [`recv`], but appends at most `max` bytes to the end of `buf` (growing its
/// capacity as needed) without zero-filling the room first.
pub fn recv_append(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
    fds: &mut Vec<OwnedFd>,
    mode: RecvMode,
) -> io::Result<usize> {
    buf.reserve(max);
    let spare: &mut [MaybeUninit<u8>] = &mut buf.spare_capacity_mut()[..max];
    // SAFETY: `spare` is valid for writes of `max` bytes (reserved just above).
    let n = unsafe { recv_raw(sock, spare.as_mut_ptr().cast(), max, fds, mode) }?;
    // SAFETY: the kernel initialised the first `n <= max` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Waits until `sock` can accept more data (or is in error / hung up), or `timeout`
/// elapses (`None` waits forever). Returns `false` on timeout.
pub fn wait_writable(sock: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut pfd = [PollFd::new(sock, PollFlags::POLLOUT)];
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        match nix::poll::poll(&mut pfd, wait) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(crate::io_err(e)),
        }
    }
}

/// Shuts down the sending direction of a socket (`shutdown(SHUT_WR)`): the peer reads
/// what was sent, then end-of-file. Affects every process sharing the socket.
pub fn shutdown_write(sock: BorrowedFd<'_>) -> io::Result<()> {
    nix::sys::socket::shutdown(sock.as_raw_fd(), nix::sys::socket::Shutdown::Write).map_err(crate::io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fd::{SocketKind, socket_pair};
    use crate::fdpass::send_with_fds;
    use std::io::IoSlice;
    use std::os::fd::AsFd;

    #[test]
    fn recv_never_blocks_and_sees_eof() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        let mut buf = [0u8; 8];
        let err = recv(b.as_fd(), &mut buf, &mut Vec::new(), RecvMode::NonBlocking).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        send_with_fds(a.as_fd(), &[IoSlice::new(b"hello")], &[], true).unwrap();
        assert_eq!(recv(b.as_fd(), &mut buf, &mut Vec::new(), RecvMode::NonBlocking).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf, &mut Vec::new(), RecvMode::NonBlocking).unwrap(), 0);
    }

    #[test]
    fn append_collects_bytes_and_descriptors() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        let (r, w) = crate::fd::pipe().unwrap();
        send_with_fds(a.as_fd(), &[IoSlice::new(b"abc"), IoSlice::new(b"def")], &[r.as_fd(), w.as_fd()], true).unwrap();
        let mut buf = b"xy".to_vec();
        let mut fds = Vec::new();
        assert_eq!(recv_append(b.as_fd(), &mut buf, 4, &mut fds, RecvMode::NonBlocking).unwrap(), 4);
        assert_eq!(buf, b"xyabcd");
        assert_eq!(fds.len(), 2);
        assert!(crate::fd::is_cloexec(fds[0].as_fd()).unwrap());
        assert_eq!(recv_append(b.as_fd(), &mut buf, 100, &mut fds, RecvMode::Blocking).unwrap(), 2);
        assert_eq!(buf, b"xyabcdef");
        assert_eq!(fds.len(), 2);
    }

    #[test]
    fn wait_all_fills_the_buffer_or_stops_at_eof() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        let writer = std::thread::spawn(move || {
            for chunk in [&b"ab"[..], b"cde", b"f"] {
                std::thread::sleep(Duration::from_millis(5));
                send_with_fds(a.as_fd(), &[IoSlice::new(chunk)], &[], false).unwrap();
            }
        });
        let mut buf = [0u8; 5];
        assert_eq!(recv(b.as_fd(), &mut buf, &mut Vec::new(), RecvMode::WaitAll).unwrap(), 5);
        assert_eq!(&buf, b"abcde");
        writer.join().unwrap();
        let mut rest = [0u8; 4];
        assert_eq!(recv(b.as_fd(), &mut rest, &mut Vec::new(), RecvMode::WaitAll).unwrap(), 1);
        assert_eq!(rest[0], b'f');
    }

    #[test]
    fn writable_and_shutdown() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        assert!(wait_writable(a.as_fd(), Some(Duration::ZERO)).unwrap());
        // Fill the socket until it stops taking data.
        let chunk = vec![0u8; 1 << 16];
        while send_with_fds(a.as_fd(), &[IoSlice::new(&chunk)], &[], true).is_ok() {}
        assert!(!wait_writable(a.as_fd(), Some(Duration::from_millis(1))).unwrap());
        shutdown_write(a.as_fd()).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match recv(b.as_fd(), &mut buf, &mut Vec::new(), RecvMode::NonBlocking) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(total > 0);
    }
}
