//! What parent and child say to each other over the control socket.
//!
//! Every process gets a control socket (a stream socket pair). Under spawn and
//! forkserver the parent first sends a [`Bootstrap`]: which function to run, the encoded
//! arguments (their descriptors out of band), and the child's identity. Under every
//! method the child answers with one [`Outcome`] just before it exits.
//!
//! A frame is a 16-byte header (`magic`, descriptor count, body length) and a bincode
//! body. Reads never trust the length: the body grows as bytes arrive, up to a limit.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use multiproc_codec::{Bincode, Codec, DecodeError};
use multiproc_sys::fdpass;
use multiproc_sys::shm::Segment;
use serde::{Deserialize, Serialize};

use crate::StartMethod;

const MAGIC: u32 = 0x4d50_5243; // "MPRC"
// A frame whose body travels in a memfd (the first descriptor) instead of the socket.
const MAGIC_SPILLED: u32 = 0x4d50_5253; // "MPRS"
const HEADER: usize = 16;
// Results larger than this go through a memfd: a child can then always finish writing
// and exit, whether or not its parent reads (waiting on sentinels alone is a Python
// idiom that must not deadlock), and big values are copied once instead of through
// the socket in pieces.
const SPILL_AT: usize = 64 << 10;

/// Everything a spawn or forkserver child needs to run its target.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Bootstrap {
    pub(crate) trampoline: isize,
    pub(crate) target: isize,
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) authkey: Vec<u8>,
    pub(crate) daemon: bool,
    pub(crate) parent_pid: i32,
    pub(crate) parent_name: String,
    pub(crate) start_method: StartMethod,
    pub(crate) spin_ns: u64,
    #[serde(with = "serde_bytes")]
    pub(crate) args: Vec<u8>,
}

/// How the target ended, as the child reports it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The encoded return value (descriptors out of band).
    Returned(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The panic message.
    Panicked(String),
    /// The arguments did not decode.
    BadArguments(String),
    /// The return value did not encode.
    ResultNotSent(String),
}

impl Outcome {
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Outcome::Returned(_) => 0,
            _ => 1,
        }
    }
}

/// Encodes one frame (header and body) for a message carrying `nfds` descriptors.
pub(crate) fn encode_frame<T: Serialize>(msg: &T, nfds: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; HEADER];
    Bincode::new().encode(msg, &mut buf).map_err(io::Error::other)?;
    let body = (buf.len() - HEADER) as u64;
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4..8].copy_from_slice(&(nfds as u32).to_le_bytes());
    buf[8..16].copy_from_slice(&body.to_le_bytes());
    Ok(buf)
}

/// Writes one frame, moving a large body into a memfd (see `SPILL_AT`) so that the
/// socket only ever carries a few bytes.
pub(crate) fn write_frame_spilling<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let frame = encode_frame(msg, fds.len())?;
    let body = &frame[HEADER..];
    if body.len() <= SPILL_AT {
        return fdpass::send_all_with_fds(sock, &frame, fds);
    }
    let seg = Segment::create("multiproc-result", body.len())?;
    seg.write_at(0, body)?;
    let mut header = [0u8; HEADER];
    header[0..4].copy_from_slice(&MAGIC_SPILLED.to_le_bytes());
    header[4..8].copy_from_slice(&((fds.len() + 1) as u32).to_le_bytes());
    header[8..16].copy_from_slice(&(body.len() as u64).to_le_bytes());
    let mut all = Vec::with_capacity(fds.len() + 1);
    all.push(seg.as_fd());
    all.extend_from_slice(fds);
    fdpass::send_all_with_fds(sock, &header, &all)
}

/// Writes one frame, blocking until it is all in the socket.
pub(crate) fn write_frame<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    fdpass::send_all_with_fds(sock, &encode_frame(msg, fds.len())?, fds)
}

/// Reads one frame incrementally, from a blocking or non-blocking socket.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    header: [u8; HEADER],
    have: usize,
    body: Vec<u8>,
    fds: Vec<OwnedFd>,
    limit: usize,
    spilled: bool,
}

/// What a call to [`FrameReader::read`] achieved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The frame is complete.
    Done,
    /// More bytes are needed and none are available now.
    Pending,
    /// The peer closed the socket; `true` if it did so in the middle of a frame.
    Closed { truncated: bool },
}

impl FrameReader {
    pub(crate) fn new(limit: usize) -> FrameReader {
        FrameReader { limit, ..FrameReader::default() }
    }

    fn body_len(&self) -> u64 {
        u64::from_le_bytes(self.header[8..16].try_into().unwrap_or_default())
    }

    /// How many body bytes travel through the socket itself.
    fn socket_body_len(&self) -> u64 {
        if self.spilled { 0 } else { self.body_len() }
    }

    fn is_done(&self) -> bool {
        self.have >= HEADER && self.body.len() as u64 == self.socket_body_len()
    }

    /// Reads what is available. With `nonblocking`, returns `Pending` instead of waiting.
    pub(crate) fn read(&mut self, sock: BorrowedFd<'_>, nonblocking: bool) -> io::Result<Progress> {
        loop {
            if self.is_done() {
                return Ok(Progress::Done);
            }
            let n = if self.have < HEADER {
                let r = fdpass::recv_with_fds(sock, &mut self.header[self.have..], &mut self.fds, nonblocking);
                match r {
                    Ok(n) => {
                        self.have += n;
                        if self.have == HEADER {
                            self.check_header()?;
                            self.spilled = self.header[0..4] == MAGIC_SPILLED.to_le_bytes();
                        }
                        n
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                    Err(e) => return Err(e),
                }
            } else {
                let want = (self.socket_body_len() - self.body.len() as u64).min(1 << 20) as usize;
                let start = self.body.len();
                self.body.resize(start + want, 0);
                let r = fdpass::recv_with_fds(sock, &mut self.body[start..], &mut self.fds, nonblocking);
                match r {
                    Ok(n) => {
                        self.body.truncate(start + n);
                        n
                    }
                    Err(e) => {
                        self.body.truncate(start);
                        if e.kind() == io::ErrorKind::WouldBlock {
                            return Ok(Progress::Pending);
                        }
                        return Err(e);
                    }
                }
            };
            if n == 0 {
                return Ok(Progress::Closed { truncated: self.have > 0 });
            }
        }
    }

    fn check_header(&self) -> io::Result<()> {
        let magic = u32::from_le_bytes(self.header[0..4].try_into().unwrap_or_default());
        if magic != MAGIC && magic != MAGIC_SPILLED {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "control channel: bad frame magic"));
        }
        if self.body_len() > self.limit as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("control channel: frame of {} bytes exceeds the limit", self.body_len()),
            ));
        }
        Ok(())
    }

    /// Decodes the completed frame; the descriptors stay for the payload.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&mut self) -> Result<(T, Vec<OwnedFd>), DecodeError> {
        if self.spilled {
            self.spilled = false;
            let len = self.body_len() as usize;
            let invalid = |e: io::Error| DecodeError::Invalid(format!("spilled message: {e}"));
            if self.fds.is_empty() {
                return Err(invalid(io::Error::other("its memfd did not arrive")));
            }
            let seg = Segment::from_fd(self.fds.remove(0), len).map_err(invalid)?;
            self.body.clear();
            seg.read_append(0, len, &mut self.body).map_err(invalid)?;
        }
        let v = Bincode::new().decode(&self.body)?;
        Ok((v, std::mem::take(&mut self.fds)))
    }
}

/// Reads one whole frame, blocking.
pub(crate) fn read_frame<T: serde::de::DeserializeOwned>(
    sock: impl AsFd,
    limit: usize,
) -> io::Result<(T, Vec<OwnedFd>)> {
    let mut r = FrameReader::new(limit);
    match r.read(sock.as_fd(), false)? {
        Progress::Done => r.decode().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Progress::Closed { .. } => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the control channel")),
        Progress::Pending => Err(io::Error::new(io::ErrorKind::WouldBlock, "no frame available")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiproc_sys::fd::{SocketKind, socket_pair};

    #[test]
    fn frame_round_trip_and_truncation() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        write_frame(a.as_fd(), &Outcome::Panicked("boom".into()), &[]).unwrap();
        let (o, fds): (Outcome, _) = read_frame(&b, 1 << 20).unwrap();
        assert!(matches!(o, Outcome::Panicked(m) if m == "boom"));
        assert!(fds.is_empty());

        // Half a frame then EOF.
        nix::unistd::write(&a, &MAGIC.to_le_bytes()).unwrap();
        drop(a);
        let mut r = FrameReader::new(1 << 20);
        assert_eq!(r.read(b.as_fd(), false).unwrap(), Progress::Closed { truncated: true });
    }

    #[test]
    fn large_bodies_travel_in_a_memfd() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        let big = Outcome::Returned(vec![7u8; 3 * SPILL_AT]);
        // Would block forever without a reader if the body went through the socket.
        write_frame_spilling(a.as_fd(), &big, &[]).unwrap();
        let (o, fds): (Outcome, _) = read_frame(&b, 1 << 20).unwrap();
        assert!(matches!(o, Outcome::Returned(v) if v.len() == 3 * SPILL_AT && v.iter().all(|&x| x == 7)));
        assert!(fds.is_empty());
    }

    #[test]
    fn garbage_and_oversize_headers_are_refused() {
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        nix::unistd::write(&a, &[0xAB; 16]).unwrap();
        assert!(FrameReader::new(100).read(b.as_fd(), false).is_err());
        let (a, b) = socket_pair(SocketKind::Stream).unwrap();
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        nix::unistd::write(&a, &h).unwrap();
        assert!(FrameReader::new(100).read(b.as_fd(), false).is_err());
    }
}
