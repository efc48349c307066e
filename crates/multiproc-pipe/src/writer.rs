//! The sending half of a connection: writes one frame (header, body, descriptors).
//!
//! A frame goes out with as few `sendmsg` calls as the socket allows (one for a small
//! message: header and body are two slices of the same call). Without a deadline the
//! calls block until everything is written; with one they are non-blocking and we wait
//! in `poll` for room, up to the deadline. A frame is
//! never left half-written on a healthy connection: if the deadline passes after part of
//! it went out, the sending side is shut down so the peer sees a clean "truncated"
//! error rather than waiting for bytes that will never come.

use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;
use std::time::Instant;

use multiproc_sys::fdpass::{self, MAX_FDS_PER_SEND};
use multiproc_sys::sock;

use crate::SendError;
use crate::frame::{HEADER_LEN, Header};

/// Scratch buffers larger than this are released after the message is sent.
const SCRATCH_KEEP: usize = 1 << 20;

/// The sending state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// Where typed messages are encoded; reused between sends.
    pub(crate) scratch: Vec<u8>,
    /// Set once a frame was cut off: nothing more may be sent.
    pub(crate) broken: bool,
}

impl Writer {
    /// Releases a scratch buffer grown by a very large message.
    pub(crate) fn trim(&mut self) {
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
    }
}

/// The part of `header ++ body` from `off`, at most `max` bytes, as two slices.
fn remaining<'a>(header: &'a [u8], body: &'a [u8], off: usize, max: usize) -> [IoSlice<'a>; 2] {
    let h = &header[off.min(header.len())..];
    let h = &h[..h.len().min(max)];
    let b = &body[off.saturating_sub(header.len()).min(body.len())..];
    let b = &b[..b.len().min(max - h.len())];
    [IoSlice::new(h), IoSlice::new(b)]
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected)
}

/// Writes one frame carrying `body` and `fds`, waiting for room until `deadline`.
pub(crate) fn write_frame(
    sock_fd: BorrowedFd<'_>,
    broken: &mut bool,
    body: &[u8],
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> Result<(), SendError> {
    if *broken {
        return Err(SendError::Broken);
    }
    let header = Header { fds: fds.len() as u32, len: body.len() as u64 }.encode();
    let total = HEADER_LEN + body.len();
    // Descriptors go in chunks the kernel accepts; every chunk but the last rides on a
    // single byte of its own, so the receiver collects them all by the end of the frame.
    let chunks: Vec<&[BorrowedFd<'_>]> = fds.chunks(MAX_FDS_PER_SEND).collect();
    if chunks.len() > total {
        return Err(SendError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} descriptors are too many for a message of {total} bytes", fds.len()),
        )));
    }
    let mut off = 0;
    let mut next_chunk = 0;
    // Cutting a frame off mid-way would leave the peer waiting for its end forever.
    let cut_off = |broken: &mut bool, off: usize| {
        if off > 0 {
            *broken = true;
            let _ = sock::shutdown_write(sock_fd);
        }
    };
    while off < total {
        let (attach, max): (&[BorrowedFd<'_>], usize) = match chunks.get(next_chunk) {
            Some(c) if next_chunk + 1 < chunks.len() => (c, 1),
            Some(c) => (c, total - off),
            None => (&[], total - off),
        };
        let iov = remaining(&header, body, off, max);
        // With no deadline the kernel may wait for room inside the call (one call for a
        // big message); a descriptor someone made non-blocking still gives WouldBlock.
        match fdpass::send_with_fds(sock_fd, &iov, attach, deadline.is_some()) {
            Ok(n) => {
                off += n;
                if !attach.is_empty() {
                    next_chunk += 1;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left.is_some_and(|l| l.is_zero()) {
                    if off == 0 {
                        return Err(SendError::Timeout);
                    }
                    cut_off(broken, off);
                    return Err(SendError::Broken);
                }
                if let Err(e) = sock::wait_writable(sock_fd, left) {
                    cut_off(broken, off);
                    return Err(SendError::Io(e));
                }
            }
            Err(e) if is_disconnect(&e) => {
                *broken |= off > 0;
                return Err(SendError::Disconnected);
            }
            Err(e) => {
                cut_off(broken, off);
                return Err(SendError::Io(e));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_spans_header_and_body() {
        let h = [1u8; 4];
        let b = [2u8; 6];
        let len = |s: &[IoSlice<'_>; 2]| (s[0].len(), s[1].len());
        assert_eq!(len(&remaining(&h, &b, 0, 10)), (4, 6));
        assert_eq!(len(&remaining(&h, &b, 0, 1)), (1, 0));
        assert_eq!(len(&remaining(&h, &b, 3, 10)), (1, 6));
        assert_eq!(len(&remaining(&h, &b, 5, 10)), (0, 5));
        assert_eq!(len(&remaining(&h, &b, 5, 2)), (0, 2));
        assert_eq!(len(&remaining(&h, &b, 10, 10)), (0, 0));
    }
}
