//! The queue's shared segment: where everything lives, and the header checked on attach.
//!
//! ```text
//! offset  group (128-byte aligned, so writers on different sides never share a line)
//!      0  header: magic, layout version, kind, ring capacity, maxsize, max message size
//!    128  producers: robust mutex, journal of an out-of-band put, oob sequence and bytes
//!         put, the head as producers last saw it
//!    256  consumers: robust mutex, journal of an out-of-band get, oob bytes taken, the
//!         tail as consumers last saw it
//!    384  tail (packed: messages put, byte position), "data" futex word and sleeper flag
//!    512  head (packed: messages taken, byte position), "space" futex word and sleeper flag
//!    640  tasks done (JoinableQueue; also its futex word), join sleeper flag
//!   4096  the ring: `capacity` bytes of records
//! ```
//!
//! The "last seen" copies spare each side a cache miss per message: a producer checks
//! for room against the head it last saw (the real head can only be further on, so the
//! check errs on the safe side) and reloads the consumers' line only when that is not
//! enough; a consumer takes records up to the tail it last saw before it looks at the
//! producers' line again. Each copy is written under its side's lock and is always a
//! value the real word had, so a process dying at any point leaves it valid.
//!
//! Head and tail each pack a 32-bit message count and a 32-bit byte position into one
//! 64-bit word, so that a single atomic store publishes (or consumes) a message: the
//! count and the bytes can never disagree, whatever instruction a process dies at. Both
//! halves wrap; the capacity is a power of two of at most 1 GiB, so positions modulo 2³²
//! map onto ring offsets consistently and the differences stay exact.

use std::io;
use std::sync::atomic::Ordering;

use multiproc_sys::robust::{MutexKind, RobustMutex};
use multiproc_sys::shm::Segment;

use crate::error::AttachError;

/// "mpqueue" and a format byte: the first eight bytes of every queue segment.
const MAGIC: u64 = u64::from_le_bytes(*b"mpqueue\x01");
/// Bumped whenever anything in this file changes meaning, so that two builds that
/// disagree refuse to share a queue instead of misreading it.
pub(crate) const LAYOUT_VERSION: u32 = 2;

// Header (written once by the creator, before the segment is shared).
const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_KIND: usize = 12;
const H_CAPACITY: usize = 16;
const H_MAXSIZE: usize = 24;
const H_MAX_MESSAGE: usize = 32;

// Producer side (written under the producer lock).
pub(crate) const PRODUCER_LOCK: usize = 128;
pub(crate) const P_JOURNAL_ACTIVE: usize = 192;
pub(crate) const P_JOURNAL_OLD_PUT: usize = 200;
pub(crate) const P_JOURNAL_NEW_TAIL: usize = 208;
pub(crate) const OOB_SEQ: usize = 216;
pub(crate) const OOB_PUT: usize = 224;
pub(crate) const HEAD_SEEN: usize = 232;

// Consumer side (written under the consumer lock).
pub(crate) const CONSUMER_LOCK: usize = 256;
pub(crate) const C_JOURNAL_ACTIVE: usize = 320;
pub(crate) const C_JOURNAL_OLD_GOT: usize = 328;
pub(crate) const C_JOURNAL_NEW_HEAD: usize = 336;
pub(crate) const C_JOURNAL_BYTES: usize = 344;
pub(crate) const OOB_GOT: usize = 352;
pub(crate) const TAIL_SEEN: usize = 360;

pub(crate) const TAIL: usize = 384;
pub(crate) const DATA_SEQ: usize = 392;
pub(crate) const DATA_SLEEPERS: usize = 396;

pub(crate) const HEAD: usize = 512;
pub(crate) const SPACE_SEQ: usize = 520;
pub(crate) const SPACE_SLEEPERS: usize = 524;

pub(crate) const DONE: usize = 640;
pub(crate) const JOIN_SLEEPERS: usize = 644;

/// Where the ring starts: one page in, so the header never shares a page with records.
pub(crate) const RING: usize = 4096;

const _: () = assert!(size_of::<RobustMutex>() <= 64, "a robust mutex must fit its 64-byte slot");

/// Smallest and largest ring, in bytes.
pub(crate) const MIN_CAPACITY: usize = 4096;
pub(crate) const MAX_CAPACITY: usize = 1 << 30;
/// Largest `maxsize`: counts are compared modulo 2³², so stay well inside half of that.
pub(crate) const MAX_MAXSIZE: usize = 1 << 30;

/// Which Python type a segment backs. A handle only attaches to its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Queue = 1,
    SimpleQueue = 2,
    JoinableQueue = 3,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Queue => "Queue",
            Kind::SimpleQueue => "SimpleQueue",
            Kind::JoinableQueue => "JoinableQueue",
        }
    }

    fn from_u32(v: u32) -> Option<Kind> {
        [Kind::Queue, Kind::SimpleQueue, Kind::JoinableQueue].into_iter().find(|k| *k as u32 == v)
    }
}

/// The queue's fixed parameters, as stored in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    /// Ring size in bytes: a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
    pub(crate) capacity: usize,
    /// Most messages held at once; 0 for no limit but the bytes.
    pub(crate) maxsize: usize,
    /// Largest encoded message accepted, in bytes.
    pub(crate) max_message: usize,
}

impl Config {
    /// The largest payload stored in the ring itself; larger ones travel out of band.
    pub(crate) fn inline_max(&self) -> usize {
        self.capacity / 2
    }

    fn segment_len(&self) -> usize {
        RING + self.capacity
    }
}

/// Creates and initialises a segment for a queue of `kind`. Nobody else can see it yet.
pub(crate) fn create(kind: Kind, cfg: Config) -> io::Result<Segment> {
    multiproc_sys::robust::check_current_thread()?;
    let seg = Segment::create_with_mutexes(
        kind.name(),
        cfg.segment_len(),
        &[(PRODUCER_LOCK, MutexKind::ErrorCheck), (CONSUMER_LOCK, MutexKind::ErrorCheck)],
    )?;
    seg.atomic_u32(H_VERSION).store(LAYOUT_VERSION, Ordering::Relaxed);
    seg.atomic_u32(H_KIND).store(kind as u32, Ordering::Relaxed);
    seg.atomic_u64(H_CAPACITY).store(cfg.capacity as u64, Ordering::Relaxed);
    seg.atomic_u64(H_MAXSIZE).store(cfg.maxsize as u64, Ordering::Relaxed);
    seg.atomic_u64(H_MAX_MESSAGE).store(cfg.max_message as u64, Ordering::Relaxed);
    // Magic last, with release ordering: a segment with the magic is fully initialised.
    seg.atomic_u64(H_MAGIC).store(MAGIC, Ordering::Release);
    Ok(seg)
}

/// Checks that a received segment is a queue of `kind` built by this layout, and returns
/// its parameters. Only the header is looked at until every check has passed.
pub(crate) fn check(seg: &Segment, kind: Kind) -> Result<Config, AttachError> {
    if seg.len() < RING {
        return Err(AttachError::Foreign);
    }
    if seg.atomic_u64(H_MAGIC).load(Ordering::Acquire) != MAGIC {
        return Err(AttachError::Foreign);
    }
    let version = seg.atomic_u32(H_VERSION).load(Ordering::Relaxed);
    if version != LAYOUT_VERSION {
        return Err(AttachError::Version { found: version, expected: kind.name() });
    }
    let found = seg.atomic_u32(H_KIND).load(Ordering::Relaxed);
    if found != kind as u32 {
        let found = Kind::from_u32(found).map_or("unknown kind of queue", Kind::name);
        return Err(AttachError::Kind { found, expected: kind.name() });
    }
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let cfg = Config {
        capacity: to_usize(seg.atomic_u64(H_CAPACITY).load(Ordering::Relaxed)),
        maxsize: to_usize(seg.atomic_u64(H_MAXSIZE).load(Ordering::Relaxed)),
        max_message: to_usize(seg.atomic_u64(H_MAX_MESSAGE).load(Ordering::Relaxed)),
    };
    let sane = cfg.capacity.is_power_of_two()
        && (MIN_CAPACITY..=MAX_CAPACITY).contains(&cfg.capacity)
        && cfg.maxsize <= MAX_MAXSIZE
        && cfg.max_message > 0
        && seg.len() >= cfg.segment_len();
    if !sane {
        return Err(AttachError::Damaged(kind.name()));
    }
    Ok(cfg)
}

/// A head or tail word: messages counted so far and byte position, both wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) count: u32,
    pub(crate) pos: u32,
}

impl Cursor {
    #[inline]
    pub(crate) fn unpack(word: u64) -> Cursor {
        Cursor { count: (word >> 32) as u32, pos: word as u32 }
    }

    #[inline]
    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.count) << 32) | u64::from(self.pos)
    }

    /// The cursor after one more record of `bytes` bytes.
    #[inline]
    pub(crate) fn advance(self, bytes: usize) -> Cursor {
        Cursor { count: self.count.wrapping_add(1), pos: self.pos.wrapping_add(bytes as u32) }
    }
}

/// How a record's payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// The encoded message follows the header in the ring.
    Inline = 1,
    /// The ring holds [`OobRef`]; the message is in a memfd sent over the hand-off socket.
    OutOfBand = 2,
}

/// Marks a record header, so that a ring position that is not one is noticed.
const RECORD_TAG: u64 = 0x5155; // "QU"
pub(crate) const RECORD_HEADER: usize = 8;
/// The ring payload of an out-of-band record: sequence number and message length.
pub(crate) const OOB_REF: usize = 16;

/// The 8-byte header in front of every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) kind: RecordKind,
    pub(crate) len: u32,
}

impl RecordHeader {
    pub(crate) fn encode(self) -> [u8; RECORD_HEADER] {
        (u64::from(self.len) | ((self.kind as u64) << 32) | (RECORD_TAG << 48)).to_le_bytes()
    }

    /// `None` for bytes that are not a record header.
    pub(crate) fn decode(bytes: [u8; RECORD_HEADER]) -> Option<RecordHeader> {
        let word = u64::from_le_bytes(bytes);
        if word >> 48 != RECORD_TAG {
            return None;
        }
        let kind = match (word >> 32) & 0xFFFF {
            1 => RecordKind::Inline,
            2 => RecordKind::OutOfBand,
            _ => return None,
        };
        Some(RecordHeader { kind, len: word as u32 })
    }

    /// Bytes the whole record occupies in the ring (header + payload, 8-aligned).
    pub(crate) fn footprint(len: usize) -> usize {
        RECORD_HEADER + len.next_multiple_of(8)
    }
}

/// The ring payload of an out-of-band record, also the body of its hand-off record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OobRef {
    pub(crate) seq: u64,
    pub(crate) len: u64,
}

impl OobRef {
    pub(crate) fn encode(self) -> [u8; OOB_REF] {
        let mut b = [0u8; OOB_REF];
        b[..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<OobRef> {
        let seq = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let len = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
        Some(OobRef { seq, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_wrap_and_pack() {
        let c = Cursor { count: u32::MAX, pos: u32::MAX - 3 };
        let n = c.advance(16);
        assert_eq!(n, Cursor { count: 0, pos: 12 });
        assert_eq!(Cursor::unpack(n.pack()), n);
        assert_eq!(n.pos.wrapping_sub(c.pos), 16);
    }

    #[test]
    fn record_headers_round_trip_and_refuse_garbage() {
        for h in
            [RecordHeader { kind: RecordKind::Inline, len: 0 }, RecordHeader { kind: RecordKind::OutOfBand, len: 16 }]
        {
            assert_eq!(RecordHeader::decode(h.encode()), Some(h));
        }
        assert_eq!(RecordHeader::decode([0; 8]), None);
        assert_eq!(RecordHeader::decode([0xFF; 8]), None);
        assert_eq!(RecordHeader::footprint(0), 8);
        assert_eq!(RecordHeader::footprint(1), 16);
        assert_eq!(RecordHeader::footprint(64), 72);
        let r = OobRef { seq: 7, len: 1 << 40 };
        assert_eq!(OobRef::decode(&r.encode()), Some(r));
        assert_eq!(OobRef::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn header_is_checked_on_attach() {
        let cfg = Config { capacity: 4096, maxsize: 3, max_message: 100 };
        let seg = create(Kind::Queue, cfg).unwrap();
        assert_eq!(check(&seg, Kind::Queue).unwrap(), cfg);
        assert!(matches!(check(&seg, Kind::SimpleQueue), Err(AttachError::Kind { found: "Queue", .. })));
        seg.atomic_u32(H_VERSION).store(99, Ordering::Relaxed);
        assert!(matches!(check(&seg, Kind::Queue), Err(AttachError::Version { found: 99, .. })));
        seg.atomic_u32(H_VERSION).store(LAYOUT_VERSION, Ordering::Relaxed);
        seg.atomic_u64(H_CAPACITY).store(5000, Ordering::Relaxed);
        assert!(matches!(check(&seg, Kind::Queue), Err(AttachError::Damaged(_))));
        let foreign = Segment::create("foreign", 8192).unwrap();
        assert!(matches!(check(&foreign, Kind::Queue), Err(AttachError::Foreign)));
        let tiny = Segment::create("tiny", 16).unwrap();
        assert!(matches!(check(&tiny, Kind::Queue), Err(AttachError::Foreign)));
    }
}
