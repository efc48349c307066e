//! The receiving half of a connection: turns a byte stream back into frames.
//!
//! Bytes are read ahead into a 64 KiB buffer, so a small message costs one `recvmsg` and
//! several small messages may arrive in one. A message too big for the buffer is read
//! straight into its own `Vec` (the bytes already buffered first). Every state the
//! reader can be left in by an error or a timeout is resumable:
//!
//! - `partial`: a message whose header was read but whose body is incomplete (a timeout
//!   expired); the next receive completes it;
//! - `skip`: a message refused as too large; the next receive discards the rest of it
//!   without storing it, then reads the following message;
//! - `broken`: the bytes are not frames (bad magic); nothing can be received any more.
//!
//! Waiting is the shared spin-then-block policy ([`retry`]); the body of a large
//! message is received with one waiting call instead.

use std::io;
use std::ops::Range;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use multiproc_codec::Fd;
use multiproc_sys::sock::{self, RecvMode};
use multiproc_sys::{poll, spin};
use serde::{Deserialize, Serialize};

use crate::RecvError;
use crate::frame::{HEADER_LEN, Header};

/// Size of the read-ahead buffer.
const READ_AHEAD: usize = 64 * 1024;

/// Runs `attempt` (a receive in the mode it is given) until it stops reporting
/// `WouldBlock`.
///
/// With `spin`, and unless the deadline has already passed, it first tries non-blocking
/// receives in the shared spin loop. Then it waits: with no deadline, by receiving in
/// `wait_mode` (one system call that sleeps in the kernel); with one, in `poll` until the
/// deadline. A descriptor someone made `O_NONBLOCK` makes waiting receives return
/// `WouldBlock`; then `poll` does the waiting.
pub(crate) fn retry<T>(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    spin: bool,
    wait_mode: RecvMode,
    mut attempt: impl FnMut(RecvMode) -> io::Result<T>,
) -> Result<T, RecvError> {
    fn would_block<T>(r: &io::Result<T>) -> bool {
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
    let mut result = if !spin || deadline.is_some_and(|d| d <= Instant::now()) {
        attempt(RecvMode::NonBlocking)
    } else {
        spin::spin_until(|| {
            let r = attempt(RecvMode::NonBlocking);
            (!would_block(&r)).then_some(r)
        })
        .unwrap_or_else(|| Err(io::ErrorKind::WouldBlock.into()))
    };
    loop {
        if !would_block(&result) {
            return result.map_err(RecvError::Io);
        }
        match deadline {
            None => {
                result = attempt(wait_mode);
                if would_block(&result) {
                    poll::readable(&[fd], None)?;
                }
            }
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(RecvError::Timeout);
                }
                poll::readable(&[fd], Some(left))?;
                result = attempt(RecvMode::NonBlocking);
            }
        }
    }
}

/// A Unix socket whose peer closed while we still had data queued for it reports
/// `ECONNRESET` once our own queue is drained; TCP reports it after a reset. Either way
/// nothing more will come: treat it as end-of-file.
fn reset_is_eof(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(0),
        other => other,
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Skip {
    left: u64,
    total: u64,
    fds: u32,
}

#[derive(Debug)]
struct Partial {
    header: Header,
    data: Vec<u8>,
}

/// Where the body of a received frame is.
#[derive(Debug)]
pub(crate) enum Body {
    /// In the read-ahead buffer, at this range (valid until the reader is used again).
    Buffered(Range<usize>),
    /// In its own allocation.
    Owned(Vec<u8>),
}

/// The receiving state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: Vec<u8>,
    pos: usize,
    fds: Vec<OwnedFd>,
    skip: Option<Skip>,
    partial: Option<Partial>,
    eof: bool,
    broken: Option<String>,
}

impl Reader {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `n` buffered bytes as used. They stay in place until the next `fill`, so a
    /// [`Body::Buffered`] range stays valid until then.
    fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    fn take_fds(&mut self, n: u32) -> Vec<OwnedFd> {
        let n = (n as usize).min(self.fds.len());
        self.fds.drain(..n).collect()
    }

    /// The bytes of a body returned by [`Reader::next`].
    pub(crate) fn bytes<'a>(&'a self, body: &'a Body) -> &'a [u8] {
        match body {
            Body::Buffered(range) => &self.buf[range.clone()],
            Body::Owned(v) => v,
        }
    }

    /// Whether a receive would find something without reading the socket: buffered
    /// bytes, end-of-file, or a broken stream (whose error it reports at once).
    pub(crate) fn ready_now(&self) -> bool {
        self.pos < self.buf.len() || self.eof || self.broken.is_some()
    }

    /// Reads what the socket has into the read-ahead buffer, waiting until `deadline`
    /// for at least one byte. `Ok(false)` at end-of-file.
    pub(crate) fn fill(&mut self, fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<bool, RecvError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
        } else if self.pos > 0 {
            // Only a few bytes (an incomplete header) are ever left here.
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
        let room = match READ_AHEAD.saturating_sub(self.buf.len()) {
            0 => READ_AHEAD,
            n => n,
        };
        let (buf, fds) = (&mut self.buf, &mut self.fds);
        let n = retry(fd, deadline, true, RecvMode::Blocking, |mode| {
            reset_is_eof(sock::recv_append(fd, buf, room, fds, mode))
        })?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// Discards the rest of a message refused as too large.
    fn finish_skip(&mut self, fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<(), RecvError> {
        while let Some(mut skip) = self.skip {
            let n = (self.buffered().len() as u64).min(skip.left);
            self.consume(n as usize);
            skip.left -= n;
            self.skip = Some(skip);
            if skip.left == 0 {
                self.skip = None;
                self.take_fds(skip.fds);
                return Ok(());
            }
            if !self.fill(fd, deadline)? {
                self.skip = None;
                let received = HEADER_LEN as u64 + skip.total - skip.left;
                return Err(RecvError::Truncated { received, expected: HEADER_LEN as u64 + skip.total });
            }
        }
        Ok(())
    }

    /// Reads the next frame's header, after finishing any skip.
    fn header(&mut self, fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<Header, RecvError> {
        if let Some(why) = &self.broken {
            return Err(RecvError::Corrupt(why.clone()));
        }
        self.finish_skip(fd, deadline)?;
        while self.buffered().len() < HEADER_LEN {
            if !self.fill(fd, deadline)? {
                let have = self.buffered().len();
                if have == 0 {
                    return Err(RecvError::Disconnected);
                }
                self.consume(have);
                return Err(RecvError::Truncated { received: have as u64, expected: HEADER_LEN as u64 });
            }
        }
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&self.buffered()[..HEADER_LEN]);
        match Header::decode(&raw) {
            Some(h) => {
                self.consume(HEADER_LEN);
                Ok(h)
            }
            None => {
                let why = format!("expected a message header, got \"{}\"", raw.escape_ascii());
                self.broken = Some(why.clone());
                Err(RecvError::Corrupt(why))
            }
        }
    }

    /// Receives the next message whole, waiting until `deadline`. Messages longer than
    /// `limit` are refused (and skipped).
    pub(crate) fn next(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        limit: usize,
    ) -> Result<(Body, Vec<OwnedFd>), RecvError> {
        if let Some(p) = self.partial.take() {
            if p.header.len > limit as u64 {
                return Err(self.too_large(p.header, p.data.len() as u64, limit));
            }
            self.partial = Some(p);
            return self.finish_partial(fd, deadline);
        }
        let header = self.header(fd, deadline)?;
        if header.len > limit as u64 {
            return Err(self.too_large(header, 0, limit));
        }
        self.body(fd, deadline, header)
    }

    /// Refuses a message longer than `limit` (`already` bytes of its body consumed):
    /// arranges for the rest of it to be skipped without being stored.
    fn too_large(&mut self, header: Header, already: u64, limit: usize) -> RecvError {
        let mut skip = Skip { left: header.len - already, total: header.len, fds: header.fds };
        let n = (self.buffered().len() as u64).min(skip.left);
        self.consume(n as usize);
        skip.left -= n;
        if skip.left == 0 {
            self.take_fds(skip.fds);
        } else {
            self.skip = Some(skip);
        }
        RecvError::TooLarge { size: header.len, limit }
    }

    /// Reads the body of a frame whose header was just consumed.
    fn body(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        header: Header,
    ) -> Result<(Body, Vec<OwnedFd>), RecvError> {
        // `header.len` was checked against a `usize` limit.
        let len = header.len as usize;
        if self.buffered().len() >= len {
            let start = self.pos;
            self.consume(len);
            let fds = self.take_fds(header.fds);
            return Ok((Body::Buffered(start..start + len), fds));
        }
        // Reserving the claimed length costs address space only until bytes arrive, and
        // the claim was checked against the connection's limit.
        let mut data = Vec::with_capacity(len);
        data.extend_from_slice(self.buffered());
        self.consume(data.len());
        self.partial = Some(Partial { header, data });
        self.finish_partial(fd, deadline)
    }

    /// Completes the message in `partial`.
    fn finish_partial(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
    ) -> Result<(Body, Vec<OwnedFd>), RecvError> {
        let Some(mut p) = self.partial.take() else {
            return Err(RecvError::Corrupt("internal error: no message in progress".to_owned()));
        };
        let len = p.header.len as usize;
        let truncated = |got: usize| RecvError::Truncated {
            received: (HEADER_LEN + got) as u64,
            expected: (HEADER_LEN + len) as u64,
        };
        while p.data.len() < len {
            let missing = len - p.data.len();
            // A `poll` may have read part of the body ahead.
            let from_buf = self.buffered().len().min(missing);
            if from_buf > 0 {
                p.data.extend_from_slice(&self.buf[self.pos..self.pos + from_buf]);
                self.consume(from_buf);
                continue;
            }
            if self.eof {
                return Err(truncated(p.data.len()));
            }
            let (data, fds) = (&mut p.data, &mut self.fds);
            // A big body streams in: with no deadline, one receive waits for all of it
            // (spinning would only compete with the sender for the socket).
            let spin = deadline.is_some();
            match retry(fd, deadline, spin, RecvMode::WaitAll, |mode| {
                reset_is_eof(sock::recv_append(fd, data, missing, fds, mode))
            }) {
                Ok(0) => {
                    self.eof = true;
                    return Err(truncated(p.data.len()));
                }
                Ok(_) => {}
                Err(RecvError::Timeout) => {
                    self.partial = Some(p);
                    return Err(RecvError::Timeout);
                }
                Err(e) => {
                    self.broken = Some(format!("a receive failed in the middle of a message: {e}"));
                    return Err(e);
                }
            }
        }
        let fds = self.take_fds(p.header.fds);
        Ok((Body::Owned(p.data), fds))
    }

    /// Receives the next message into `out`, blocking. Returns its length; a message
    /// longer than `out` comes back whole in [`RecvError::BufferTooShort`].
    pub(crate) fn next_into(&mut self, fd: BorrowedFd<'_>, out: &mut [u8], limit: usize) -> Result<usize, RecvError> {
        let header = match self.partial.as_ref() {
            Some(p) => p.header,
            None => {
                let header = self.header(fd, None)?;
                if header.len > limit as u64 {
                    return Err(self.too_large(header, 0, limit));
                }
                header
            }
        };
        let len = header.len as usize;
        if self.partial.is_some() || len > out.len() {
            let (body, _fds) =
                if self.partial.is_some() { self.finish_partial(fd, None)? } else { self.body(fd, None, header)? };
            let bytes = self.bytes(&body);
            if bytes.len() > out.len() {
                return Err(RecvError::BufferTooShort { message: bytes.to_vec(), buffer: out.len() });
            }
            out[..bytes.len()].copy_from_slice(bytes);
            return Ok(bytes.len());
        }
        // The message fits: copy what is buffered, read the rest straight into `out`.
        let mut off = self.buffered().len().min(len);
        out[..off].copy_from_slice(&self.buffered()[..off]);
        self.consume(off);
        while off < len {
            if self.eof {
                return Err(RecvError::Truncated {
                    received: (HEADER_LEN + off) as u64,
                    expected: (HEADER_LEN + len) as u64,
                });
            }
            let fds = &mut self.fds;
            match retry(fd, None, false, RecvMode::WaitAll, |mode| {
                reset_is_eof(sock::recv(fd, &mut out[off..len], fds, mode))
            }) {
                Ok(0) => self.eof = true,
                Ok(n) => off += n,
                Err(e) => {
                    self.broken = Some(format!("a receive failed in the middle of a message: {e}"));
                    return Err(e);
                }
            }
        }
        self.take_fds(header.fds);
        Ok(len)
    }

    /// A copy of this state that can travel with the connection to another process.
    pub(crate) fn snapshot(&self) -> io::Result<ReaderState> {
        let fds = self.fds.iter().map(|f| f.try_clone().map(Fd::new)).collect::<io::Result<Vec<_>>>()?;
        Ok(ReaderState {
            pending: self.buffered().to_vec(),
            fds,
            skip: self.skip,
            partial: self.partial.as_ref().map(|p| (p.header.fds, p.header.len, p.data.clone())),
            eof: self.eof,
            broken: self.broken.clone(),
        })
    }

    /// Rebuilds a reader from a [`snapshot`](Reader::snapshot).
    pub(crate) fn restore(state: ReaderState) -> Reader {
        Reader {
            buf: state.pending,
            pos: 0,
            fds: state.fds.into_iter().map(Fd::into_inner).collect(),
            skip: state.skip,
            partial: state.partial.map(|(fds, len, data)| Partial { header: Header { fds, len }, data }),
            eof: state.eof,
            broken: state.broken,
        }
    }
}

/// A reader's state as it travels inside a serialized connection: bytes read ahead but
/// not yet received, descriptors that came with them, and any message in progress.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReaderState {
    pending: Vec<u8>,
    fds: Vec<Fd>,
    skip: Option<Skip>,
    partial: Option<(u32, u64, Vec<u8>)>,
    eof: bool,
    broken: Option<String>,
}
