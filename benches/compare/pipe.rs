//! Issue 4's workloads: a 64-byte round trip through a `Pipe` to a child process and
//! back, and 1 MiB messages streamed one way, with raw socketpair references.
//!
//! The raw references are the same jobs on a bare Unix stream socketpair: 64 bytes
//! written and read back exactly, or 1 MiB blocks read into one reused buffer. The round
//! trip has two: plain blocking reads (two process wake-ups per trip), and reads that
//! spin in `multiproc_sys::spin`'s bounded loop before blocking, the same policy
//! `Connection` uses: the floor multiproc is judged against.
//!
//! Each child says it is ready before the clock starts, and is told up front how many
//! messages to expect, so it stops on its own count (a fork child also holds the
//! parent's end of a raw socketpair, so end-of-file would never come).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use multiproc::codec::Fd;
use multiproc::sys::fd::{SocketKind, socket_pair};
use multiproc::sys::sock::{self, RecvMode};
use multiproc::sys::spin;
use multiproc::{Process, StartMethod};
use multiproc_pipe::{Connection, Pipe};

const SMALL: usize = 64;
const MIB: usize = 1 << 20;
/// What a child sends once it runs, before the clock starts.
const READY: &[u8] = b"r";

fn start<A>(target: fn(A), args: A) -> Process<()>
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let mut p = Process::new(target, args).with_start_method(StartMethod::Fork);
    p.start().expect("start the peer process");
    p
}

// ---- raw socket helpers ----

/// Reads exactly `buf.len()` bytes, each wait a spin of non-blocking receives in
/// `multiproc_sys::spin`'s loop, then one blocking receive if nothing came.
fn read_exact_spin(s: &UnixStream, buf: &mut [u8]) {
    let mut off = 0;
    let mut fds = Vec::new();
    while off < buf.len() {
        let got = spin::spin_until(|| match sock::recv(s.as_fd(), &mut buf[off..], &mut fds, RecvMode::NonBlocking) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            other => Some(other),
        });
        match got.unwrap_or_else(|| sock::recv(s.as_fd(), &mut buf[off..], &mut fds, RecvMode::Blocking)) {
            Ok(0) => panic!("the peer hung up"),
            Ok(n) => off += n,
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}

fn read_exact(s: &mut UnixStream, buf: &mut [u8], spin: bool) {
    if spin {
        read_exact_spin(s, buf);
    } else {
        s.read_exact(buf).expect("read from the socketpair");
    }
}

fn raw_pair() -> (UnixStream, Fd) {
    let (a, b) = socket_pair(SocketKind::Stream).expect("create a socketpair");
    (UnixStream::from(a), Fd::new(b))
}

/// The peer's end of a raw pair, after saying it is ready.
fn ready_stream(fd: Fd) -> UnixStream {
    let mut s = UnixStream::from(fd.into_inner());
    s.write_all(READY).expect("say ready");
    s
}

/// Starts `peer` in a child process on one end of a fresh `Pipe`, waits until it says
/// it is ready, and times `body` on the other end; then joins the child.
fn with_pipe_peer(peer: fn((Connection, u64)), iters: u64, body: impl FnOnce(&Connection)) -> Duration {
    let (mine, theirs) = Pipe::duplex().expect("create a pipe");
    let mut p = start(peer, (theirs, iters));
    assert_eq!(mine.recv_bytes().expect("wait for the peer to be ready"), READY);
    let start = Instant::now();
    body(&mine);
    let took = start.elapsed();
    p.join().expect("join the peer process");
    took
}

/// [`with_pipe_peer`] on a raw socketpair: `args` builds the peer's argument from its end.
fn with_raw_peer<A>(peer: fn(A), args: impl FnOnce(Fd) -> A, body: impl FnOnce(&mut UnixStream)) -> Duration
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let (mut mine, theirs) = raw_pair();
    let mut p = start(peer, args(theirs));
    let mut ready = [0u8; READY.len()];
    mine.read_exact(&mut ready).expect("wait for the peer to be ready");
    let start = Instant::now();
    body(&mut mine);
    let took = start.elapsed();
    p.join().expect("join the peer process");
    took
}

// ---- round trip ----

fn pipe_echo((conn, n): (Connection, u64)) {
    conn.send_bytes(READY).expect("say ready");
    for _ in 0..n {
        let m = conn.recv_bytes().expect("recv_bytes");
        conn.send_bytes(&m).expect("send_bytes");
    }
}

/// 64 bytes there and back through a duplex `Pipe` (`send_bytes` / `recv_bytes`).
pub(crate) fn pingpong_small(iters: u64) -> Duration {
    let msg = [7u8; SMALL];
    with_pipe_peer(pipe_echo, iters, |mine| {
        for _ in 0..iters {
            mine.send_bytes(&msg).expect("send_bytes");
            let back = mine.recv_bytes().expect("recv_bytes");
            assert_eq!(back.len(), SMALL, "the echo changed the message");
        }
    })
}

fn raw_echo((fd, spin, n): (Fd, bool, u64)) {
    let mut s = ready_stream(fd);
    let mut buf = [0u8; SMALL];
    for _ in 0..n {
        read_exact(&mut s, &mut buf, spin);
        s.write_all(&buf).expect("write to the socketpair");
    }
}

fn raw_pingpong(iters: u64, spin: bool) -> Duration {
    with_raw_peer(
        raw_echo,
        |fd| (fd, spin, iters),
        |mine| {
            let mut buf = [7u8; SMALL];
            for _ in 0..iters {
                mine.write_all(&buf).expect("write to the socketpair");
                read_exact(mine, &mut buf, spin);
            }
        },
    )
}

/// Raw reference: the round trip on a socketpair, blocking reads on both sides.
pub(crate) fn raw_pingpong_blocking(iters: u64) -> Duration {
    raw_pingpong(iters, false)
}

/// Raw reference: the round trip on a socketpair, spin-then-block reads on both sides.
pub(crate) fn raw_pingpong_spin(iters: u64) -> Duration {
    raw_pingpong(iters, true)
}

// ---- bandwidth ----

/// Receives `n` messages (`recv_bytes`: a new `Vec` each, like Python's `bytes`), then
/// acknowledges them with one byte.
fn pipe_sink((conn, n): (Connection, u64)) {
    conn.send_bytes(READY).expect("say ready");
    for _ in 0..n {
        let m = conn.recv_bytes().expect("recv_bytes");
        assert_eq!(m.len(), MIB, "a message changed size on the way");
    }
    conn.send_bytes(b"k").expect("send the acknowledgement");
}

/// 1 MiB messages one way through a `Pipe`; the clock stops at the receiver's
/// acknowledgement of the last one.
pub(crate) fn bandwidth_1mib(iters: u64) -> Duration {
    let msg = vec![3u8; MIB];
    with_pipe_peer(pipe_sink, iters, |mine| {
        for _ in 0..iters {
            mine.send_bytes(&msg).expect("send_bytes");
        }
        assert_eq!(mine.recv_bytes().expect("receive the acknowledgement"), b"k");
    })
}

fn raw_sink((fd, n): (Fd, u64)) {
    let mut s = ready_stream(fd);
    let mut buf = vec![0u8; MIB];
    for _ in 0..n {
        s.read_exact(&mut buf).expect("read from the socketpair");
    }
    s.write_all(b"k").expect("write the acknowledgement");
}

/// Raw reference: 1 MiB blocks one way on a socketpair, blocking writes and reads into
/// one reused buffer.
pub(crate) fn raw_bandwidth_1mib(iters: u64) -> Duration {
    let msg = vec![3u8; MIB];
    with_raw_peer(
        raw_sink,
        |fd| (fd, iters),
        |mine| {
            for _ in 0..iters {
                mine.write_all(&msg).expect("write to the socketpair");
            }
            let mut ack = [0u8; 1];
            mine.read_exact(&mut ack).expect("read the acknowledgement");
        },
    )
}
