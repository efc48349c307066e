//! The byte queue under every typed queue: records in a shared ring, two robust locks,
//! large messages out of band, and the end-of-producers token pipe.
//!
//! # Putting
//! Under the producer lock: check for room, copy the record at the tail, then publish it
//! with one `SeqCst` store of the new tail word (count and position together). Nothing
//! before that store is visible to a consumer, so a producer killed at any earlier
//! instruction leaves no trace but unpublished bytes past the tail, which the next
//! producer overwrites. The robust lock tells that producer its predecessor died; the
//! ring needs no repair.
//!
//! # Getting
//! Under the consumer lock: read the record at the head, copy it out, then store the new
//! head word. A consumer killed before that store leaves the message in place for the
//! next consumer; killed after it, the message is gone with it.
//!
//! # Large messages
//! A payload larger than half the ring is written by the producer into its own sealed
//! memfd, before taking the lock. Under the lock it sends the memfd over a
//! `SOCK_SEQPACKET` socket as a hand-off record tagged with a fresh sequence number, and
//! puts a 16-byte reference (sequence number, length) in the ring. A consumer *peeks*
//! the hand-off socket (copies of the descriptors, record left in place), skips records
//! with older sequence numbers (left by producers killed between sending and publishing,
//! or by consumers killed between taking and removing), maps the memfd, commits the head,
//! and only then removes the hand-off record; so the rule above holds for large messages
//! too. Bytes held out of band are counted (`OOB_PUT - OOB_GOT`) and limited to the ring
//! capacity, except that a single message of any size up to `max_message_size` may be
//! outstanding alone. The two counters are changed by separate stores; a short journal
//! written first lets the next holder of the lock restore them if a process dies between
//! the stores.
//!
//! # Closing
//! Every handle that may still put owns a copy of the write end of a pipe (its *token*);
//! consumers hold the read end, which reports a hang-up once no copy exists anywhere. The
//! kernel counts the copies, so a producer process that was SIGKILLed stops counting
//! without running any code.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use multiproc_codec::Fd;
use multiproc_sys::fd::{self, SocketKind};
use multiproc_sys::handoff;
use multiproc_sys::robust::{Locked, RobustMutex};
use multiproc_sys::shm::Segment;
use multiproc_sys::spin::spin_until;

use crate::error::{AttachError, CreateError};
use crate::layout::{self as l, Config, Cursor, Kind, OOB_REF, OobRef, RECORD_HEADER, RecordHeader, RecordKind};
use crate::wait::{Deadline, Signal, Waited, block_until};

/// Why a put did not happen (the typed layer adds the item and the encode errors).
#[derive(Debug)]
pub(crate) enum PutFailure {
    Full,
    Timeout,
    Os(io::Error),
}

impl From<io::Error> for PutFailure {
    fn from(e: io::Error) -> Self {
        PutFailure::Os(e)
    }
}

/// Why a take did not happen.
#[derive(Debug)]
pub(crate) enum TakeFailure {
    Empty,
    Timeout,
    Closed,
    Corrupted(String),
    Os(io::Error),
}

impl From<io::Error> for TakeFailure {
    fn from(e: io::Error) -> Self {
        TakeFailure::Os(e)
    }
}

/// One process's mapping of a queue, and the descriptors every handle shares.
#[derive(Debug)]
pub(crate) struct Ring {
    seg: Segment,
    cfg: Config,
    mask: u32,
    kind: Kind,
    /// Producers send large messages' memfds here...
    oob_tx: Fd,
    /// ...and consumers peek and take them here.
    oob_rx: Fd,
    /// The token pipe's read end: hung up once no handle anywhere can put.
    closed_rx: Fd,
}

/// The descriptors of a queue, as they travel to another process.
#[derive(Debug)]
pub(crate) struct RingFds {
    pub(crate) segment: Fd,
    pub(crate) oob_tx: Fd,
    pub(crate) oob_rx: Fd,
    pub(crate) closed_rx: Fd,
}

/// Holds a robust lock; unlocks on drop.
struct Held<'a>(&'a RobustMutex);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Only fails (EPERM) if this thread does not hold it, which a `Held` rules out.
        let _ = self.0.unlock();
    }
}

/// What a successful take under the lock produced.
enum Taken {
    /// The message was copied into the caller's buffer.
    Inline,
    /// The message is in this mapping, still to be copied (outside the lock).
    OutOfBand(Segment, usize),
}

impl Ring {
    /// Creates a new queue; returns it and the first token (the pipe's write end).
    pub(crate) fn create(kind: Kind, cfg: Config) -> Result<(Ring, OwnedFd), CreateError> {
        let seg = l::create(kind, cfg)?;
        let (oob_tx, oob_rx) = fd::socket_pair(SocketKind::SeqPacket)?;
        let (closed_rx, token) = fd::pipe()?;
        let ring = Ring::new(seg, cfg, kind, Fd::new(oob_tx), Fd::new(oob_rx), Fd::new(closed_rx));
        Ok((ring, token))
    }

    /// Maps a queue received from another process, checking that it is a `kind`.
    pub(crate) fn attach(kind: Kind, fds: RingFds) -> Result<Ring, AttachError> {
        let seg = Segment::from_fd(fds.segment.into_inner(), l::RING).map_err(AttachError::Segment)?;
        let cfg = l::check(&seg, kind)?;
        multiproc_sys::robust::check_current_thread().map_err(AttachError::Thread)?;
        Ok(Ring::new(seg, cfg, kind, fds.oob_tx, fds.oob_rx, fds.closed_rx))
    }

    fn new(seg: Segment, cfg: Config, kind: Kind, oob_tx: Fd, oob_rx: Fd, closed_rx: Fd) -> Ring {
        let mask = (cfg.capacity - 1) as u32;
        Ring { seg, cfg, mask, kind, oob_tx, oob_rx, closed_rx }
    }

    /// Copies of the descriptors, to send to another process.
    pub(crate) fn fds(&self) -> io::Result<RingFds> {
        Ok(RingFds {
            segment: Fd::new(self.seg.try_clone_fd()?),
            oob_tx: self.oob_tx.try_clone()?,
            oob_rx: self.oob_rx.try_clone()?,
            closed_rx: self.closed_rx.try_clone()?,
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn config(&self) -> Config {
        self.cfg
    }

    // ---- shared words ----

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.seg.atomic_u64(off)
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.seg.atomic_u32(off)
    }

    fn tail(&self) -> &AtomicU64 {
        self.u64_at(l::TAIL)
    }

    fn head(&self) -> &AtomicU64 {
        self.u64_at(l::HEAD)
    }

    fn data_signal(&self) -> Signal<'_> {
        Signal { word: self.u32_at(l::DATA_SEQ), sleepers: self.u32_at(l::DATA_SLEEPERS) }
    }

    fn space_signal(&self) -> Signal<'_> {
        Signal { word: self.u32_at(l::SPACE_SEQ), sleepers: self.u32_at(l::SPACE_SLEEPERS) }
    }

    fn join_signal(&self) -> Signal<'_> {
        Signal { word: self.u32_at(l::DONE), sleepers: self.u32_at(l::JOIN_SLEEPERS) }
    }

    // ---- state ----

    /// Messages in the queue right now (a snapshot: exact only while nobody else acts).
    pub(crate) fn len(&self) -> usize {
        // Head first: the tail read after it is at least as new, so the difference is
        // never negative.
        let head = Cursor::unpack(self.head().load(Ordering::Acquire));
        let tail = Cursor::unpack(self.tail().load(Ordering::Acquire));
        tail.count.wrapping_sub(head.count) as usize
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head().load(Ordering::Acquire) == self.tail().load(Ordering::Acquire)
    }

    /// Whether a consumer has something to take: first against the tail consumers last
    /// saw (their own cache line), then against the real one.
    #[inline]
    fn has_data(&self) -> bool {
        let head = self.head().load(Ordering::Acquire);
        head != self.u64_at(l::TAIL_SEEN).load(Ordering::Relaxed) || head != self.tail().load(Ordering::Acquire)
    }

    /// Whether a put of the smallest message would have to wait right now.
    pub(crate) fn is_full(&self) -> bool {
        !self.has_room(RecordHeader::footprint(0), 0)
    }

    /// Whether no handle anywhere can put any more (the token pipe hung up).
    pub(crate) fn closed(&self) -> bool {
        multiproc_sys::poll::readable(&[self.closed_rx.as_fd()], Some(Duration::ZERO))
            .is_ok_and(|ready| !ready.is_empty())
    }

    /// Tells sleeping consumers to look again (a token was just released).
    pub(crate) fn wake_consumers(&self) {
        self.data_signal().notify();
    }

    #[inline]
    fn has_room(&self, footprint: usize, oob_len: u64) -> bool {
        self.has_room_at(Cursor::unpack(self.tail().load(Ordering::Acquire)), footprint, oob_len)
    }

    #[inline]
    fn has_room_at(&self, tail: Cursor, footprint: usize, oob_len: u64) -> bool {
        // The head producers last saw is at or behind the real one, so room against it
        // is room for sure; only when it is not enough is the consumers' line read.
        let seen = Cursor::unpack(self.u64_at(l::HEAD_SEEN).load(Ordering::Relaxed));
        if !self.fits(tail, seen, footprint) {
            let head = Cursor::unpack(self.head().load(Ordering::Acquire));
            if !self.fits(tail, head, footprint) {
                return false;
            }
        }
        if oob_len > 0 {
            let out = self.oob_outstanding();
            if out != 0 && out.saturating_add(oob_len) > self.cfg.capacity as u64 {
                return false;
            }
        }
        true
    }

    #[inline]
    fn fits(&self, tail: Cursor, head: Cursor, footprint: usize) -> bool {
        let count_ok = self.cfg.maxsize == 0 || (tail.count.wrapping_sub(head.count) as usize) < self.cfg.maxsize;
        count_ok && tail.pos.wrapping_sub(head.pos) as usize + footprint <= self.cfg.capacity
    }

    fn oob_outstanding(&self) -> u64 {
        let got = self.u64_at(l::OOB_GOT).load(Ordering::Acquire);
        self.u64_at(l::OOB_PUT).load(Ordering::Acquire).saturating_sub(got)
    }

    // ---- locks ----

    /// Takes a robust lock: try, spin while it looks free, then block (until the
    /// deadline). `Ok(None)` when the deadline passed. `Deadline::Now` blocks too: the
    /// locks are only ever held for a copy, never across a wait.
    fn acquire<'a>(m: &'a RobustMutex, deadline: Deadline) -> io::Result<Option<(Held<'a>, Locked)>> {
        let mut got = m.try_lock()?;
        if got.is_none() {
            got = spin_until(|| if m.is_locked() { None } else { m.try_lock().transpose() }).transpose()?;
        }
        if got.is_none() {
            got = match deadline {
                Deadline::At(t) => m.lock_until(t)?,
                Deadline::Now | Deadline::Never => Some(m.lock()?),
            };
        }
        Ok(got.map(|how| (Held(m), how)))
    }

    fn lock_producers(&self, deadline: Deadline) -> io::Result<Option<Held<'_>>> {
        let m = self.seg.robust_mutex(l::PRODUCER_LOCK);
        let Some((held, how)) = Ring::acquire(m, deadline)? else { return Ok(None) };
        if how == Locked::OwnerDied {
            self.recover_producers(m)?;
        }
        Ok(Some(held))
    }

    /// A producer died holding the lock (which we now hold). Whatever it wrote past the
    /// tail is invisible; only the out-of-band counter may need restoring.
    fn recover_producers(&self, m: &RobustMutex) -> io::Result<()> {
        if self.u64_at(l::P_JOURNAL_ACTIVE).load(Ordering::SeqCst) != 0 {
            let published =
                self.tail().load(Ordering::SeqCst) == self.u64_at(l::P_JOURNAL_NEW_TAIL).load(Ordering::SeqCst);
            if !published {
                let old = self.u64_at(l::P_JOURNAL_OLD_PUT).load(Ordering::SeqCst);
                self.u64_at(l::OOB_PUT).store(old, Ordering::SeqCst);
            }
            self.u64_at(l::P_JOURNAL_ACTIVE).store(0, Ordering::SeqCst);
        }
        m.make_consistent()
    }

    fn lock_consumers(&self, deadline: Deadline) -> io::Result<Option<Held<'_>>> {
        let m = self.seg.robust_mutex(l::CONSUMER_LOCK);
        let Some((held, how)) = Ring::acquire(m, deadline)? else { return Ok(None) };
        if how == Locked::OwnerDied {
            self.recover_consumers(m)?;
        }
        Ok(Some(held))
    }

    /// A consumer died holding the lock (which we now hold). If it was taking a large
    /// message, make the out-of-band counter agree with whether it committed the head.
    fn recover_consumers(&self, m: &RobustMutex) -> io::Result<()> {
        if self.u64_at(l::C_JOURNAL_ACTIVE).load(Ordering::SeqCst) != 0 {
            let old = self.u64_at(l::C_JOURNAL_OLD_GOT).load(Ordering::SeqCst);
            let committed =
                self.head().load(Ordering::SeqCst) == self.u64_at(l::C_JOURNAL_NEW_HEAD).load(Ordering::SeqCst);
            let got =
                if committed { old.wrapping_add(self.u64_at(l::C_JOURNAL_BYTES).load(Ordering::SeqCst)) } else { old };
            self.u64_at(l::OOB_GOT).store(got, Ordering::SeqCst);
            self.u64_at(l::C_JOURNAL_ACTIVE).store(0, Ordering::SeqCst);
        }
        m.make_consistent()?;
        // It may have freed room without waking anyone.
        self.space_signal().notify();
        Ok(())
    }

    /// Repairs after a process that died holding either lock, if nobody else has yet.
    ///
    /// Called by a producer about to sleep for lack of room: a producer that died in the
    /// middle of a large put leaves the out-of-band budget counted as used until the
    /// next holder of the producer lock repairs it, and a producer waiting for that
    /// budget would otherwise never take the lock. Two uncontended `try_lock`s.
    fn repair(&self) {
        for (offset, recover) in [
            (l::PRODUCER_LOCK, Ring::recover_producers as fn(&Ring, &RobustMutex) -> io::Result<()>),
            (l::CONSUMER_LOCK, Ring::recover_consumers),
        ] {
            let m = self.seg.robust_mutex(offset);
            if let Ok(Some(how)) = m.try_lock() {
                let _held = Held(m);
                if how == Locked::OwnerDied {
                    // On failure the lock stays inconsistent and the next locker retries.
                    let _ = recover(self, m);
                }
            }
        }
    }

    // ---- ring bytes ----

    fn ring_write(&self, pos: u32, data: &[u8]) -> io::Result<()> {
        let off = (pos & self.mask) as usize;
        let first = data.len().min(self.cfg.capacity - off);
        self.seg.write_at(l::RING + off, &data[..first])?;
        if first < data.len() {
            self.seg.write_at(l::RING, &data[first..])?;
        }
        Ok(())
    }

    fn ring_read_append(&self, pos: u32, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let off = (pos & self.mask) as usize;
        let first = len.min(self.cfg.capacity - off);
        self.seg.read_append(l::RING + off, first, out)?;
        if first < len {
            self.seg.read_append(l::RING, len - first, out)?;
        }
        Ok(())
    }

    // ---- put ----

    /// Puts one encoded message, waiting for room until `deadline`.
    pub(crate) fn put(&self, payload: &[u8], deadline: Deadline) -> Result<(), PutFailure> {
        // A large message goes into its own memfd first, outside the lock, so other
        // producers are not held up by the copy.
        let big = if payload.len() > self.cfg.inline_max() {
            let seg = Segment::create("multiproc-queue-message", payload.len())?;
            seg.write_at(0, payload)?;
            Some(seg)
        } else {
            None
        };
        let oob_len = if big.is_some() { payload.len() as u64 } else { 0 };
        let footprint = RecordHeader::footprint(if big.is_some() { OOB_REF } else { payload.len() });
        let gave_up = || if deadline == Deadline::Now { PutFailure::Full } else { PutFailure::Timeout };
        loop {
            let no_room_yet = || {
                self.repair();
                false
            };
            match block_until(self.space_signal(), deadline, || self.has_room(footprint, oob_len), no_room_yet) {
                Waited::Ready => {}
                Waited::TimedOut | Waited::GaveUp => return Err(gave_up()),
            }
            let Some(held) = self.lock_producers(deadline)? else { return Err(gave_up()) };
            // Only producers move the tail, and we are the only producer now.
            let tail = Cursor::unpack(self.tail().load(Ordering::Relaxed));
            let seen = Cursor::unpack(self.u64_at(l::HEAD_SEEN).load(Ordering::Relaxed));
            if !self.fits(tail, seen, footprint) {
                // Acquire: the consumers finished reading the bytes before they moved it.
                let head = self.head().load(Ordering::Acquire);
                self.u64_at(l::HEAD_SEEN).store(head, Ordering::Relaxed);
            }
            if !self.has_room_at(tail, footprint, oob_len) {
                // Another producer took the room between our check and the lock.
                drop(held);
                continue;
            }
            let new_tail = tail.advance(footprint);
            match &big {
                None => {
                    let header = RecordHeader { kind: RecordKind::Inline, len: payload.len() as u32 };
                    self.ring_write(tail.pos, &header.encode())?;
                    self.ring_write(tail.pos.wrapping_add(RECORD_HEADER as u32), payload)?;
                    self.tail().store(new_tail.pack(), Ordering::SeqCst);
                }
                Some(msg) => self.publish_oob(tail, new_tail, msg, oob_len)?,
            }
            drop(held);
            self.data_signal().notify();
            return Ok(());
        }
    }

    /// Sends a large message's memfd and publishes its reference. Producer lock held.
    fn publish_oob(&self, tail: Cursor, new_tail: Cursor, msg: &Segment, len: u64) -> io::Result<()> {
        // A fresh sequence number, stored before the memfd is sent: if we die after
        // sending, the orphan's number is older than any later message's.
        let seq = self.u64_at(l::OOB_SEQ).load(Ordering::Relaxed);
        self.u64_at(l::OOB_SEQ).store(seq.wrapping_add(1), Ordering::SeqCst);
        let r = OobRef { seq, len };
        let old_put = self.u64_at(l::OOB_PUT).load(Ordering::Relaxed);
        self.u64_at(l::P_JOURNAL_OLD_PUT).store(old_put, Ordering::Relaxed);
        self.u64_at(l::P_JOURNAL_NEW_TAIL).store(new_tail.pack(), Ordering::Relaxed);
        self.u64_at(l::P_JOURNAL_ACTIVE).store(1, Ordering::SeqCst);
        self.u64_at(l::OOB_PUT).store(old_put.wrapping_add(len), Ordering::SeqCst);
        let sent = handoff::send(self.oob_tx.as_fd(), &r.encode(), &[msg.as_fd()]).and_then(|()| {
            let header = RecordHeader { kind: RecordKind::OutOfBand, len: OOB_REF as u32 };
            self.ring_write(tail.pos, &header.encode())?;
            self.ring_write(tail.pos.wrapping_add(RECORD_HEADER as u32), &r.encode())
        });
        match sent {
            Ok(()) => self.tail().store(new_tail.pack(), Ordering::SeqCst),
            // Not published: undo the count. A hand-off record that did go out is an
            // orphan that consumers skip by its sequence number.
            Err(_) => self.u64_at(l::OOB_PUT).store(old_put, Ordering::SeqCst),
        }
        self.u64_at(l::P_JOURNAL_ACTIVE).store(0, Ordering::SeqCst);
        sent
    }

    // ---- take ----

    /// Takes one encoded message into `out` (cleared first), waiting until `deadline`.
    pub(crate) fn take(&self, out: &mut Vec<u8>, deadline: Deadline) -> Result<(), TakeFailure> {
        out.clear();
        let gave_up = || if deadline == Deadline::Now { TakeFailure::Empty } else { TakeFailure::Timeout };
        loop {
            match block_until(self.data_signal(), deadline, || self.has_data(), || self.closed()) {
                Waited::Ready => {}
                Waited::TimedOut => return Err(gave_up()),
                Waited::GaveUp => return Err(TakeFailure::Closed),
            }
            let Some(held) = self.lock_consumers(deadline)? else { return Err(gave_up()) };
            // Only consumers move the head, and we are the only consumer now. Records up
            // to the tail consumers last saw are known to be published; look at the
            // producers' line only when those are used up.
            let head = Cursor::unpack(self.head().load(Ordering::Relaxed));
            let mut tail = Cursor::unpack(self.u64_at(l::TAIL_SEEN).load(Ordering::Relaxed));
            // (A hint behind the head, which only damage could cause, is refreshed too:
            // it must never make the head move backwards.)
            if head == tail || tail.pos.wrapping_sub(head.pos) as usize > self.cfg.capacity {
                // Acquire: the producer wrote the bytes before it published this tail.
                let now = self.tail().load(Ordering::Acquire);
                self.u64_at(l::TAIL_SEEN).store(now, Ordering::Relaxed);
                tail = Cursor::unpack(now);
            }
            if head == tail {
                // Another consumer took it between our check and the lock.
                drop(held);
                continue;
            }
            let taken = self.take_locked(head, tail, out);
            drop(held);
            self.space_signal().notify();
            return match taken? {
                Taken::Inline => Ok(()),
                // Copied outside the lock: the message is ours since the head moved.
                Taken::OutOfBand(msg, len) => Ok(msg.read_append(0, len, out)?),
            };
        }
    }

    /// Takes the record at `head`. Consumer lock held; `head != tail`.
    fn take_locked(&self, head: Cursor, tail: Cursor, out: &mut Vec<u8>) -> Result<Taken, TakeFailure> {
        let used = tail.pos.wrapping_sub(head.pos) as usize;
        if used < RECORD_HEADER || used > self.cfg.capacity || tail.count == head.count {
            return Err(self.discard_all(tail, "head and tail disagree"));
        }
        let mut hb = [0u8; RECORD_HEADER];
        self.ring_read_exact(head.pos, &mut hb)?;
        let Some(header) = RecordHeader::decode(hb) else {
            return Err(self.discard_all(tail, "no record header at the head of the ring"));
        };
        let footprint = RecordHeader::footprint(header.len as usize);
        if footprint > used {
            return Err(self.discard_all(tail, "a record claims more bytes than the ring holds"));
        }
        let new_head = head.advance(footprint);
        let body = head.pos.wrapping_add(RECORD_HEADER as u32);
        match header.kind {
            RecordKind::Inline => {
                self.ring_read_append(body, header.len as usize, out)?;
                self.head().store(new_head.pack(), Ordering::SeqCst);
                Ok(Taken::Inline)
            }
            RecordKind::OutOfBand => {
                let mut rb = [0u8; OOB_REF];
                if header.len as usize != OOB_REF {
                    return Err(self.discard_all(tail, "a large-message reference has the wrong size"));
                }
                self.ring_read_exact(body, &mut rb)?;
                let Some(r) = OobRef::decode(&rb) else {
                    return Err(self.discard_all(tail, "unreadable large-message reference"));
                };
                self.take_oob(r, new_head)
            }
        }
    }

    fn ring_read_exact(&self, pos: u32, buf: &mut [u8]) -> io::Result<()> {
        let off = (pos & self.mask) as usize;
        let first = buf.len().min(self.cfg.capacity - off);
        let (a, b) = buf.split_at_mut(first);
        self.seg.read_at(l::RING + off, a)?;
        if !b.is_empty() {
            self.seg.read_at(l::RING, b)?;
        }
        Ok(())
    }

    /// Takes a large message: find its memfd, map it, commit. Consumer lock held.
    fn take_oob(&self, r: OobRef, new_head: Cursor) -> Result<Taken, TakeFailure> {
        let len = match usize::try_from(r.len) {
            Ok(n) if n <= self.cfg.max_message => n,
            _ => {
                self.commit_oob(r.len, new_head, false);
                return Err(TakeFailure::Corrupted(format!(
                    "a large message claims {} bytes, over the queue's max_message_size; it was dropped",
                    r.len
                )));
            }
        };
        let fd = match self.find_oob(r)? {
            Some(fd) => fd,
            None => {
                self.commit_oob(r.len, new_head, false);
                return Err(TakeFailure::Corrupted(
                    "the descriptor of a large message is missing from the queue's socket; the message was dropped"
                        .to_owned(),
                ));
            }
        };
        let msg = match Segment::from_fd(fd, len) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.commit_oob(r.len, new_head, true);
                return Err(TakeFailure::Corrupted(format!(
                    "a large message's memory is unusable ({e}); it was dropped"
                )));
            }
            // Out of memory or address space: leave the message for a later try.
            Err(e) => return Err(TakeFailure::Os(e)),
        };
        self.commit_oob(r.len, new_head, true);
        Ok(Taken::OutOfBand(msg, len))
    }

    /// Moves the head past an out-of-band record and returns its bytes to the budget;
    /// with `remove`, also removes its hand-off record (peeked at the socket's head).
    fn commit_oob(&self, len: u64, new_head: Cursor, remove: bool) {
        let got = self.u64_at(l::OOB_GOT).load(Ordering::Relaxed);
        self.u64_at(l::C_JOURNAL_OLD_GOT).store(got, Ordering::Relaxed);
        self.u64_at(l::C_JOURNAL_NEW_HEAD).store(new_head.pack(), Ordering::Relaxed);
        self.u64_at(l::C_JOURNAL_BYTES).store(len, Ordering::Relaxed);
        self.u64_at(l::C_JOURNAL_ACTIVE).store(1, Ordering::SeqCst);
        self.u64_at(l::OOB_GOT).store(got.wrapping_add(len), Ordering::SeqCst);
        self.head().store(new_head.pack(), Ordering::SeqCst);
        self.u64_at(l::C_JOURNAL_ACTIVE).store(0, Ordering::SeqCst);
        if remove {
            // If this fails the record stays, and is skipped later by its old number.
            let _ = handoff::discard(self.oob_rx.as_fd());
        }
    }

    /// Finds the hand-off record for `r` at the head of the socket, discarding older
    /// ones; returns a copy of its descriptor, leaving the record in place. `None` if it
    /// is not there.
    fn find_oob(&self, r: OobRef) -> Result<Option<OwnedFd>, TakeFailure> {
        loop {
            let mut buf = [0u8; OOB_REF];
            let Some(mut p) = handoff::peek(self.oob_rx.as_fd(), &mut buf)? else { return Ok(None) };
            let seen = if p.len == OOB_REF && !p.truncated { OobRef::decode(&buf) } else { None };
            match seen {
                Some(s) if s.seq == r.seq && s.len == r.len && p.fds.len() == 1 => return Ok(p.fds.pop()),
                // Left by a producer killed between sending and publishing, or by a
                // consumer killed between committing and removing: skip it.
                Some(s) if s.seq.wrapping_sub(r.seq) > u64::MAX / 2 => {
                    handoff::discard(self.oob_rx.as_fd())?;
                }
                Some(_) => return Ok(None),
                // Not one of ours at all.
                None => {
                    handoff::discard(self.oob_rx.as_fd())?;
                }
            }
        }
    }

    /// The ring holds something that is not a record: drop everything in it so the
    /// queue can go on, and say so. Consumer lock held.
    fn discard_all(&self, tail: Cursor, what: &str) -> TakeFailure {
        // Out-of-band references in the discarded bytes cannot be read any more; give
        // their budget back (the hand-off records are skipped later by number).
        let put = self.u64_at(l::OOB_PUT).load(Ordering::SeqCst);
        self.u64_at(l::OOB_GOT).store(put, Ordering::SeqCst);
        self.head().store(tail.pack(), Ordering::SeqCst);
        TakeFailure::Corrupted(what.to_owned())
    }

    // ---- JoinableQueue ----

    /// Items put and not yet marked done.
    pub(crate) fn unfinished(&self) -> usize {
        let done = self.u32_at(l::DONE).load(Ordering::SeqCst);
        let put = Cursor::unpack(self.tail().load(Ordering::SeqCst)).count;
        put.wrapping_sub(done) as usize
    }

    /// Marks one item done; `false` if none was unfinished.
    pub(crate) fn task_done(&self) -> bool {
        let done = self.u32_at(l::DONE);
        loop {
            let d = done.load(Ordering::SeqCst);
            let put = Cursor::unpack(self.tail().load(Ordering::SeqCst)).count;
            if put == d {
                return false;
            }
            if done.compare_exchange(d, d.wrapping_add(1), Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                self.join_signal().notify_unchanged();
                return true;
            }
        }
    }

    /// Waits until every item put has been marked done; `false` on timeout.
    pub(crate) fn join(&self, deadline: Deadline) -> bool {
        block_until(self.join_signal(), deadline, || self.unfinished() == 0, || false) == Waited::Ready
    }

    /// Writes raw bytes into the ring and publishes them, for tests of corruption.
    #[cfg(test)]
    pub(crate) fn put_raw_record(&self, bytes: &[u8], footprint: usize) {
        let held = self.lock_producers(Deadline::Never).unwrap().unwrap();
        let tail = Cursor::unpack(self.tail().load(Ordering::Relaxed));
        self.ring_write(tail.pos, bytes).unwrap();
        self.tail().store(tail.advance(footprint).pack(), Ordering::SeqCst);
        drop(held);
    }

    /// The producer lock, for tests of a holder's death.
    #[cfg(test)]
    pub(crate) fn producer_lock(&self) -> &RobustMutex {
        self.seg.robust_mutex(l::PRODUCER_LOCK)
    }

    /// Sends a hand-off record that no ring record refers to, as a producer killed
    /// between sending and publishing leaves behind.
    #[cfg(test)]
    pub(crate) fn send_orphan(&self, len: usize) {
        let msg = Segment::create("orphan", len).unwrap();
        let held = self.lock_producers(Deadline::Never).unwrap().unwrap();
        let seq = self.u64_at(l::OOB_SEQ).fetch_add(1, Ordering::SeqCst);
        handoff::send(self.oob_tx.as_fd(), &OobRef { seq, len: len as u64 }.encode(), &[msg.as_fd()]).unwrap();
        drop(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiproc_sys::proc::{ExitStatus, Forked, PidFd, exit_now, fork};
    use std::time::Instant;

    fn ring(capacity: usize, maxsize: usize) -> (Ring, OwnedFd) {
        Ring::create(Kind::Queue, Config { capacity, maxsize, max_message: 1 << 24 }).unwrap()
    }

    fn take(r: &Ring) -> Result<Vec<u8>, TakeFailure> {
        let mut out = Vec::new();
        r.take(&mut out, Deadline::Now).map(|()| out)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Runs `child` in a forked process that then exits, and waits for it.
    fn in_child(child: impl FnOnce()) {
        // SAFETY: the child only touches the shared segment (atomics, a robust mutex) and
        // exits without returning into the test harness.
        match unsafe { fork() }.unwrap() {
            Forked::Child => {
                child();
                exit_now(0)
            }
            Forked::Parent(pid) => assert_eq!(PidFd::open(pid).unwrap().wait().unwrap(), ExitStatus::Exited(0)),
        }
    }

    #[test]
    fn records_wrap_around_the_ring() {
        let (r, _token) = ring(4096, 0);
        for round in 0..200u32 {
            let len = (round as usize * 37) % 1500;
            let a = pattern(len, round as u8);
            let b = pattern(len / 2 + 1, !round as u8);
            r.put(&a, Deadline::Now).unwrap();
            r.put(&b, Deadline::Now).unwrap();
            assert_eq!(r.len(), 2);
            assert_eq!(take(&r).unwrap(), a);
            assert_eq!(take(&r).unwrap(), b);
        }
        assert!(r.is_empty());
        assert!(matches!(take(&r), Err(TakeFailure::Empty)));
    }

    #[test]
    fn large_messages_go_out_of_band_within_a_budget() {
        let (r, _token) = ring(4096, 0);
        let inline_max = r.config().inline_max();
        let big = pattern(inline_max + 1, 1);
        r.put(&big, Deadline::Now).unwrap();
        // A second one would exceed the out-of-band budget (the capacity)...
        let second = pattern(3000, 2);
        assert!(matches!(r.put(&second, Deadline::Now), Err(PutFailure::Full)));
        let start = Instant::now();
        let late = Deadline::At(start + Duration::from_millis(20));
        assert!(matches!(r.put(&second, late), Err(PutFailure::Timeout)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        // ...while small messages still fit in the ring.
        r.put(b"small", Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), big);
        r.put(&second, Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), b"small");
        assert_eq!(take(&r).unwrap(), second);
        // Alone, a message far larger than the ring is allowed.
        let huge = pattern(1 << 20, 3);
        r.put(&huge, Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), huge);
        assert_eq!(r.oob_outstanding(), 0);
    }

    #[test]
    fn orphaned_hand_offs_are_skipped() {
        let (r, _token) = ring(4096, 0);
        r.send_orphan(5000);
        let big = pattern(6000, 9);
        r.put(&big, Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), big);
        r.send_orphan(5000);
        r.send_orphan(100);
        r.put(&big, Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), big);
    }

    #[test]
    fn garbage_in_the_ring_is_reported_and_cleared() {
        let (r, _token) = ring(4096, 0);
        r.put(b"before", Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), b"before");
        r.put_raw_record(&[0xAB; 8], 8);
        assert!(matches!(take(&r), Err(TakeFailure::Corrupted(m)) if m.contains("header")));
        let lie = RecordHeader { kind: RecordKind::Inline, len: 100_000 }.encode();
        r.put_raw_record(&lie, 8);
        assert!(matches!(take(&r), Err(TakeFailure::Corrupted(m)) if m.contains("more bytes")));
        let bad_ref = RecordHeader { kind: RecordKind::OutOfBand, len: OOB_REF as u32 }.encode();
        let mut rec = bad_ref.to_vec();
        rec.extend_from_slice(&OobRef { seq: 12345, len: 10 }.encode());
        r.put_raw_record(&rec, rec.len());
        assert!(matches!(take(&r), Err(TakeFailure::Corrupted(m)) if m.contains("missing")));
        // Usable again.
        r.put(b"after", Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), b"after");
    }

    #[test]
    fn count_limit_and_byte_limit() {
        let (r, _token) = ring(4096, 2);
        r.put(b"a", Deadline::Now).unwrap();
        r.put(b"b", Deadline::Now).unwrap();
        assert!(r.is_full());
        assert!(matches!(r.put(b"c", Deadline::Now), Err(PutFailure::Full)));
        let (r2, _t2) = ring(4096, 0);
        let chunk = pattern(1000, 0);
        for _ in 0..4 {
            r2.put(&chunk, Deadline::Now).unwrap();
        }
        assert!(matches!(r2.put(&chunk, Deadline::Now), Err(PutFailure::Full)));
        assert_eq!(r.len(), 2);
        assert_eq!(r2.len(), 4);
    }

    #[test]
    fn a_dead_producer_is_recovered_from() {
        let (r, _token) = ring(4096, 0);
        r.put(b"one", Deadline::Now).unwrap();
        let put_before = r.u64_at(l::OOB_PUT).load(Ordering::SeqCst);
        in_child(|| {
            // Die holding the lock halfway through a large put: journal written,
            // out-of-band count raised, garbage past the tail, nothing published.
            assert_eq!(r.producer_lock().lock().unwrap(), Locked::Normal);
            let tail = Cursor::unpack(r.tail().load(Ordering::SeqCst));
            r.u64_at(l::P_JOURNAL_OLD_PUT).store(put_before, Ordering::SeqCst);
            r.u64_at(l::P_JOURNAL_NEW_TAIL).store(tail.advance(24).pack(), Ordering::SeqCst);
            r.u64_at(l::P_JOURNAL_ACTIVE).store(1, Ordering::SeqCst);
            r.u64_at(l::OOB_PUT).store(put_before + 5000, Ordering::SeqCst);
            r.ring_write(tail.pos, &[0xEE; 24]).unwrap();
        });
        // The leaked budget would block this large put for good unless the waiting
        // producer repairs the dead one's state without being asked to.
        let big = pattern(3000, 4);
        assert!(!r.has_room(RecordHeader::footprint(OOB_REF), 3000));
        r.put(&big, Deadline::At(Instant::now() + Duration::from_secs(30))).unwrap();
        assert_eq!(r.u64_at(l::OOB_PUT).load(Ordering::SeqCst), put_before + 3000);
        r.put(b"two", Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), b"one");
        assert_eq!(take(&r).unwrap(), big);
        assert_eq!(take(&r).unwrap(), b"two");
        assert!(matches!(take(&r), Err(TakeFailure::Empty)));
    }

    #[test]
    fn a_dead_consumer_is_recovered_from() {
        let (r, _token) = ring(4096, 0);
        let big = pattern(3000, 5);
        r.put(&big, Deadline::Now).unwrap();
        r.put(&big, Deadline::Now).unwrap_err();
        // A consumer that dies after peeking, before committing: the message stays.
        in_child(|| {
            let m = r.seg.robust_mutex(l::CONSUMER_LOCK);
            assert_eq!(m.lock().unwrap(), Locked::Normal);
            let mut buf = [0u8; OOB_REF];
            assert!(handoff::peek(r.oob_rx.as_fd(), &mut buf).unwrap().is_some());
            r.u64_at(l::C_JOURNAL_OLD_GOT).store(0, Ordering::SeqCst);
            r.u64_at(l::C_JOURNAL_NEW_HEAD).store(u64::MAX, Ordering::SeqCst);
            r.u64_at(l::C_JOURNAL_BYTES).store(3000, Ordering::SeqCst);
            r.u64_at(l::C_JOURNAL_ACTIVE).store(1, Ordering::SeqCst);
            r.u64_at(l::OOB_GOT).store(3000, Ordering::SeqCst);
        });
        assert_eq!(take(&r).unwrap(), big);
        assert_eq!(r.oob_outstanding(), 0);
        // A consumer that dies after committing, before removing the hand-off record:
        // that message is gone with it, the next one arrives intact.
        r.put(&big, Deadline::Now).unwrap();
        in_child(|| {
            let m = r.seg.robust_mutex(l::CONSUMER_LOCK);
            assert_eq!(m.lock().unwrap(), Locked::Normal);
            let head = Cursor::unpack(r.head().load(Ordering::SeqCst));
            let mut buf = [0u8; OOB_REF];
            assert!(handoff::peek(r.oob_rx.as_fd(), &mut buf).unwrap().is_some());
            let got = r.u64_at(l::OOB_GOT).load(Ordering::SeqCst);
            let new_head = head.advance(RecordHeader::footprint(OOB_REF));
            r.u64_at(l::TAIL_SEEN).store(r.tail().load(Ordering::SeqCst), Ordering::SeqCst);
            r.u64_at(l::C_JOURNAL_OLD_GOT).store(got, Ordering::SeqCst);
            r.u64_at(l::C_JOURNAL_NEW_HEAD).store(new_head.pack(), Ordering::SeqCst);
            r.u64_at(l::C_JOURNAL_BYTES).store(3000, Ordering::SeqCst);
            r.u64_at(l::C_JOURNAL_ACTIVE).store(1, Ordering::SeqCst);
            r.u64_at(l::OOB_GOT).store(got + 3000, Ordering::SeqCst);
            r.head().store(new_head.pack(), Ordering::SeqCst);
        });
        let other = pattern(3500, 6);
        r.put(&other, Deadline::Now).unwrap();
        assert_eq!(take(&r).unwrap(), other);
        assert_eq!(r.oob_outstanding(), 0);
        assert!(r.is_empty());
    }

    #[test]
    fn a_damaged_tail_hint_never_moves_the_head_back() {
        let (r, _token) = ring(4096, 0);
        for i in 0..3u8 {
            r.put(&[i], Deadline::Now).unwrap();
        }
        assert_eq!(take(&r).unwrap(), [0]);
        assert_eq!(take(&r).unwrap(), [1]);
        // Pretend the hint lags behind the head (as only damage could make it).
        r.u64_at(l::TAIL_SEEN).store(0, Ordering::SeqCst);
        assert_eq!(take(&r).unwrap(), [2]);
        assert!(matches!(take(&r), Err(TakeFailure::Empty)));
    }

    #[test]
    fn tasks_are_counted_by_publication() {
        let (r, _token) = ring(4096, 0);
        assert!(!r.task_done());
        r.put(b"x", Deadline::Now).unwrap();
        r.put(b"y", Deadline::Now).unwrap();
        assert_eq!(r.unfinished(), 2);
        assert!(!r.join(Deadline::Now));
        assert!(r.task_done());
        assert!(r.task_done());
        assert!(!r.task_done());
        assert!(r.join(Deadline::Now));
    }

    #[test]
    fn closed_once_no_token_is_left() {
        let (r, token) = ring(4096, 0);
        assert!(!r.closed());
        let copy = token.try_clone().unwrap();
        drop(token);
        assert!(!r.closed());
        r.put(b"last", Deadline::Now).unwrap();
        drop(copy);
        assert!(r.closed());
        // Closed, but not empty: the last message is still delivered, then Closed.
        let mut out = Vec::new();
        r.take(&mut out, Deadline::Never).unwrap();
        assert_eq!(out, b"last");
        assert!(matches!(r.take(&mut out, Deadline::Never), Err(TakeFailure::Closed)));
        assert!(matches!(r.take(&mut out, Deadline::Now), Err(TakeFailure::Closed)));
    }
}
