//! The fast path of a local connection: a shared-memory mailbox next to the socket.
//!
//! A round trip through a Unix socket costs two `sendmsg` and at least two `recvmsg`
//! system calls per side, about 5 µs even when both sides spin instead of sleeping. A
//! proxy and its server thread on the same machine can do better: once connected (and
//! authenticated) over the socket, the client asks for a mailbox, a small shared-memory
//! segment (a sealed memfd, passed over the socket) holding one request slot and one
//! response slot. A message is copied into its slot and *published* by bumping the
//! slot's sequence number, which the other side is spinning on, or sleeping on with a
//! futex; so a round trip costs a few cache-line transfers and no system call while both
//! sides are busy.
//!
//! The socket stays: messages too large for a slot, and messages carrying file
//! descriptors (locks, queues), travel on it, announced in the slot by [`ON_SOCKET`],
//! so each side only ever waits in one place. The socket is also how each side notices
//! the other's death: a side that sleeps on the futex wakes every `tick` to look at it
//! (a closed socket reads as end-of-file).
//!
//! What a peer can do to the segment: write any bytes at any time. Every length read
//! from it is checked against the slot's size, every byte is copied out before it is
//! decoded (decoding garbage is an error), and copies are made of atomic accesses
//! ([`multiproc_sys::mapping`]), so a peer that scribbles only breaks its own
//! connection. A request is visible only after the store that publishes it, so a client
//! killed while writing one leaves nothing half-written behind.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use multiproc_sys::futex;
use multiproc_sys::mapping::{read, write};
use multiproc_sys::shm::Segment;

/// Bytes of each slot.
pub(crate) const CAPACITY: usize = 64 << 10;

/// The length that says "the message is on the socket".
pub(crate) const ON_SOCKET: u32 = u32::MAX;

const MAGIC: u32 = u32::from_le_bytes(*b"MPmb");
const VERSION: u32 = 1;

// The layout: a header, then the request slot's bytes, then the response slot's.
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_REQ_SEQ: usize = 8;
const OFF_REQ_LEN: usize = 12;
const OFF_RESP_SEQ: usize = 16;
const OFF_RESP_LEN: usize = 20;
const OFF_SERVER_SLEEPS: usize = 24;
const OFF_CLIENT_SLEEPS: usize = 28;
const OFF_REQ_DATA: usize = 64;
const OFF_RESP_DATA: usize = OFF_REQ_DATA + CAPACITY;
const SIZE: usize = OFF_RESP_DATA + CAPACITY;

/// Which end of the mailbox this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Posts requests, waits for responses.
    Client,
    /// Waits for requests, posts responses.
    Server,
}

/// Offsets of one direction of the mailbox.
struct Slot {
    seq: usize,
    len: usize,
    data: usize,
    /// The flag the *receiver* of this slot raises before it sleeps.
    sleeps: usize,
}

const REQUEST: Slot = Slot { seq: OFF_REQ_SEQ, len: OFF_REQ_LEN, data: OFF_REQ_DATA, sleeps: OFF_SERVER_SLEEPS };
const RESPONSE: Slot = Slot { seq: OFF_RESP_SEQ, len: OFF_RESP_LEN, data: OFF_RESP_DATA, sleeps: OFF_CLIENT_SLEEPS };

/// What [`Mailbox::receive`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// The message's bytes.
    Bytes(Vec<u8>),
    /// The message is on the socket.
    OnSocket,
}

/// Why [`Mailbox::receive`] gave up.
#[derive(Debug)]
pub(crate) enum Broken {
    /// The peer is gone (or `alive` said to stop).
    Gone,
    /// The peer published a length that does not fit the slot.
    Garbage(String),
}

/// One end of a mailbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    seg: Segment,
    end: End,
    /// The sequence number of the last message received.
    seen: u32,
}

impl Mailbox {
    /// A new mailbox, for the server end; hand [`fd`](Mailbox::fd) to the client.
    pub(crate) fn create() -> io::Result<Mailbox> {
        let seg = Segment::create("multiproc-manager-mailbox", SIZE)?;
        seg.atomic_u32(OFF_VERSION).store(VERSION, Ordering::Relaxed);
        seg.atomic_u32(OFF_MAGIC).store(MAGIC, Ordering::Release);
        Ok(Mailbox { seg, end: End::Server, seen: 0 })
    }

    /// The client end of a mailbox received from the server.
    pub(crate) fn attach(fd: OwnedFd) -> io::Result<Mailbox> {
        let seg = Segment::from_fd(fd, SIZE)?;
        if seg.atomic_u32(OFF_MAGIC).load(Ordering::Acquire) != MAGIC
            || seg.atomic_u32(OFF_VERSION).load(Ordering::Relaxed) != VERSION
        {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a multiproc-manager mailbox of this version"));
        }
        let seen = seg.atomic_u32(OFF_RESP_SEQ).load(Ordering::Acquire);
        Ok(Mailbox { seg, end: End::Client, seen })
    }

    /// A descriptor of the segment, to send to the client.
    pub(crate) fn fd(&self) -> io::Result<OwnedFd> {
        self.seg.try_clone_fd()
    }

    fn outgoing(&self) -> &'static Slot {
        if self.end == End::Client { &REQUEST } else { &RESPONSE }
    }

    fn incoming(&self) -> &'static Slot {
        if self.end == End::Client { &RESPONSE } else { &REQUEST }
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        self.seg.atomic_u32(offset)
    }

    /// Whether `bytes` fit in a slot.
    pub(crate) fn fits(bytes: usize) -> bool {
        bytes <= CAPACITY
    }

    /// Publishes a message (`None`: "it is on the socket", sent right after) and wakes
    /// the peer if it sleeps. The caller makes sure the peer has taken the previous
    /// message (the protocol is one request, one response).
    pub(crate) fn post(&self, message: Option<&[u8]>) -> io::Result<()> {
        let slot = self.outgoing();
        let len = match message {
            Some(bytes) => {
                debug_assert!(Self::fits(bytes.len()));
                write(&self.seg, slot.data, bytes)?;
                bytes.len() as u32
            }
            None => ON_SOCKET,
        };
        self.word(slot.len).store(len, Ordering::Relaxed);
        // SeqCst pairs with the receiver's raise-then-recheck in `receive`: either it
        // sees the new number, or we see its flag and wake it.
        self.word(slot.seq).fetch_add(1, Ordering::SeqCst);
        if self.word(slot.sleeps).load(Ordering::SeqCst) != 0 {
            futex::wake(self.word(slot.seq), 1);
        }
        Ok(())
    }

    /// Waits for the next message: spins briefly, then sleeps on the futex, waking every
    /// `tick` to ask `alive` whether to go on waiting.
    pub(crate) fn receive(&mut self, tick: Duration, mut alive: impl FnMut() -> bool) -> Result<Incoming, Broken> {
        let slot = self.incoming();
        let seen = self.seen;
        let arrived = || (self.word(slot.seq).load(Ordering::Acquire) != seen).then_some(());
        if multiproc_sys::spin::spin_until(arrived).is_none() {
            loop {
                self.word(slot.sleeps).store(1, Ordering::SeqCst);
                if self.word(slot.seq).load(Ordering::SeqCst) != seen {
                    break;
                }
                let slept = futex::wait(self.word(slot.seq), seen, Some(tick));
                self.word(slot.sleeps).store(0, Ordering::Relaxed);
                if self.word(slot.seq).load(Ordering::Acquire) != seen {
                    break;
                }
                if slept.is_err() || !alive() {
                    return Err(Broken::Gone);
                }
            }
            self.word(slot.sleeps).store(0, Ordering::Relaxed);
        }
        self.seen = self.word(slot.seq).load(Ordering::Acquire);
        let len = self.word(slot.len).load(Ordering::Acquire);
        if len == ON_SOCKET {
            return Ok(Incoming::OnSocket);
        }
        let len = len as usize;
        if !Self::fits(len) {
            return Err(Broken::Garbage(format!("a message of {len} bytes in a mailbox slot of {CAPACITY}")));
        }
        let mut bytes = vec![0u8; len];
        read(&self.seg, slot.data, &mut bytes).map_err(|e| Broken::Garbage(e.to_string()))?;
        Ok(Incoming::Bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_go_both_ways_and_large_ones_are_announced() {
        let mut server = Mailbox::create().unwrap();
        let mut client = Mailbox::attach(server.fd().unwrap()).unwrap();
        let t = std::thread::spawn(move || {
            for i in 0..1000u32 {
                let got = server.receive(Duration::from_millis(50), || true).unwrap();
                if i % 100 == 99 {
                    assert_eq!(got, Incoming::OnSocket);
                    server.post(None).unwrap();
                } else {
                    assert_eq!(got, Incoming::Bytes(i.to_le_bytes().to_vec()));
                    server.post(Some(&(i * 2).to_le_bytes())).unwrap();
                }
            }
        });
        for i in 0..1000u32 {
            if i % 100 == 99 {
                client.post(None).unwrap();
                assert_eq!(client.receive(Duration::from_millis(50), || true).unwrap(), Incoming::OnSocket);
            } else {
                client.post(Some(&i.to_le_bytes())).unwrap();
                let want = (i * 2).to_le_bytes().to_vec();
                assert_eq!(client.receive(Duration::from_millis(50), || true).unwrap(), Incoming::Bytes(want));
            }
            if i == 500 {
                // Let the server fall asleep on the futex once.
                std::thread::sleep(Duration::from_millis(30));
            }
        }
        t.join().unwrap();
    }

    #[test]
    fn a_silent_peer_is_given_up_on_and_garbage_is_refused() {
        let mut server = Mailbox::create().unwrap();
        let client = Mailbox::attach(server.fd().unwrap()).unwrap();
        let mut ticks = 0;
        let r = server.receive(Duration::from_millis(5), || {
            ticks += 1;
            ticks < 3
        });
        assert!(matches!(r, Err(Broken::Gone)));
        // A client that publishes a length larger than the slot.
        client.word(OFF_REQ_LEN).store(CAPACITY as u32 + 1, Ordering::Relaxed);
        client.word(OFF_REQ_SEQ).fetch_add(1, Ordering::SeqCst);
        assert!(matches!(server.receive(Duration::from_millis(5), || true), Err(Broken::Garbage(_))));
        // Something that is not a mailbox.
        let other = Segment::create("x", SIZE).unwrap();
        assert!(Mailbox::attach(other.try_clone_fd().unwrap()).is_err());
    }
}
