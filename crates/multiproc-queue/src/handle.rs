//! One handle on a queue: the shared ring, this handle's put token, typed put and get,
//! and how a handle travels to another process.
//!
//! Every typed queue ([`crate::Queue`], [`crate::SimpleQueue`], [`crate::JoinableQueue`])
//! is a `Handle` plus its item type.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use multiproc_codec::{Bincode, Codec, DecodeError, EncodeError, Fd};
use multiproc_sys::clofork::CloForkFd;
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::CreateError;
use crate::layout::{Config, Kind};
use crate::ring::{PutFailure, Ring, RingFds, TakeFailure};
use crate::wait::Deadline;

/// Why a typed put failed, before it is turned into the caller's error type.
pub(crate) enum PutError<T> {
    Full(T),
    Timeout(T),
    Closed(T),
    Encode(T, EncodeError),
    Os(T, io::Error),
}

/// Why a typed get failed, before it is turned into the caller's error type.
pub(crate) enum GetError {
    Empty,
    Timeout,
    Closed,
    Decode(DecodeError),
    Corrupted(String),
    Os(io::Error),
}

impl From<TakeFailure> for GetError {
    fn from(f: TakeFailure) -> Self {
        match f {
            TakeFailure::Empty => GetError::Empty,
            TakeFailure::Timeout => GetError::Timeout,
            TakeFailure::Closed => GetError::Closed,
            TakeFailure::Corrupted(m) => GetError::Corrupted(m),
            TakeFailure::Os(e) => GetError::Os(e),
        }
    }
}

thread_local! {
    // The encode/decode buffer of this thread, reused across calls and queues.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Largest scratch buffer kept for the next call (the largest message a default queue
/// stores in its ring, plus room for the encoding); a larger one is freed. Allocating a
/// large buffer anew costs a page fault per 4 KiB, far more than the copy itself.
const KEEP_SCRATCH: usize = (crate::DEFAULT_CAPACITY / 2) + 4096;

fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    // Taken out of the cell, not borrowed: a `Serialize` impl that itself uses a queue
    // then simply gets a fresh buffer.
    let mut buf = SCRATCH.take();
    buf.clear();
    let r = f(&mut buf);
    if buf.capacity() <= KEEP_SCRATCH {
        SCRATCH.set(buf);
    }
    r
}

/// A handle: the shared ring and, while it may put, its token.
pub(crate) struct Handle {
    ring: Arc<Ring>,
    /// A copy of the token pipe's write end; `None` once closed. Fork children that
    /// were not handed this handle have it neutralised (see `multiproc_sys::clofork`).
    token: Mutex<Option<CloForkFd>>,
    can_put: AtomicBool,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cfg = self.ring.config();
        f.debug_struct(self.ring.kind().name())
            .field("qsize", &self.ring.len())
            .field("maxsize", &cfg.maxsize)
            .field("capacity", &cfg.capacity)
            .field("max_message_size", &cfg.max_message)
            .field("closed", &!self.can_put())
            .finish()
    }
}

impl Handle {
    pub(crate) fn create(kind: Kind, cfg: Config) -> Result<Handle, CreateError> {
        let (ring, token) = Ring::create(kind, cfg)?;
        Ok(Handle::new(Arc::new(ring), Some(CloForkFd::new(token))))
    }

    fn new(ring: Arc<Ring>, token: Option<CloForkFd>) -> Handle {
        let can_put = AtomicBool::new(token.is_some());
        Handle { ring, token: Mutex::new(token), can_put }
    }

    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    pub(crate) fn can_put(&self) -> bool {
        self.can_put.load(Ordering::Relaxed)
    }

    fn token(&self) -> std::sync::MutexGuard<'_, Option<CloForkFd>> {
        // The lock only guards an Option swap; a panic cannot leave it half done.
        self.token.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives up this handle's right to put, waking consumers so they can see whether
    /// that was the last one.
    pub(crate) fn close(&self) {
        self.can_put.store(false, Ordering::Relaxed);
        if self.token().take().is_some() {
            self.ring.wake_consumers();
        }
    }

    /// A second handle on the same queue. It may put if this one may; if the process is
    /// out of descriptors it gets no token and cannot put.
    pub(crate) fn duplicate(&self) -> Handle {
        let token = self.token().as_ref().and_then(|t| t.try_clone().ok());
        Handle::new(self.ring.clone(), token)
    }

    fn codec(&self) -> Bincode {
        Bincode::with_max_message_size(self.ring.config().max_message)
    }

    pub(crate) fn put<T: Serialize>(&self, item: T, deadline: Deadline) -> Result<(), PutError<T>> {
        if !self.can_put() {
            return Err(PutError::Closed(item));
        }
        let codec = self.codec();
        let result = with_scratch(|buf| {
            codec.encode(&item, buf).map_err(Err)?;
            self.ring.put(buf, deadline).map_err(Ok)
        });
        match result {
            Ok(()) => Ok(()),
            Err(Err(e)) => Err(PutError::Encode(item, e)),
            Err(Ok(PutFailure::Full)) => Err(PutError::Full(item)),
            Err(Ok(PutFailure::Timeout)) => Err(PutError::Timeout(item)),
            Err(Ok(PutFailure::Os(e))) => Err(PutError::Os(item, e)),
        }
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, deadline: Deadline) -> Result<T, GetError> {
        let codec = self.codec();
        with_scratch(|buf| {
            self.ring.take(buf, deadline)?;
            codec.decode(buf).map_err(GetError::Decode)
        })
    }

    pub(crate) fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fds = self.ring.fds().map_err(|e| S::Error::custom(format!("cannot duplicate a queue descriptor: {e}")))?;
        let token = match self.token().as_ref() {
            Some(t) => {
                // A fork child that receives this handle keeps the token it inherited.
                t.mark_reachable();
                let dup = t
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| S::Error::custom(format!("cannot duplicate a queue token: {e}")))?;
                Some(Fd::new(dup))
            }
            None => None,
        };
        Wire { segment: fds.segment, oob_tx: fds.oob_tx, oob_rx: fds.oob_rx, closed_rx: fds.closed_rx, token }
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(kind: Kind, d: D) -> Result<Handle, D::Error> {
        let w = Wire::deserialize(d)?;
        let fds = RingFds { segment: w.segment, oob_tx: w.oob_tx, oob_rx: w.oob_rx, closed_rx: w.closed_rx };
        let ring = Ring::attach(kind, fds).map_err(|e| D::Error::custom(e.to_string()))?;
        Ok(Handle::new(Arc::new(ring), w.token.map(|t| CloForkFd::new(t.into_inner()))))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.close();
    }
}

/// A handle as it travels: its descriptors, all out of band. What kind of queue it is,
/// and its parameters, are read from the segment's header when it is attached.
#[derive(Serialize, Deserialize)]
struct Wire {
    segment: Fd,
    oob_tx: Fd,
    oob_rx: Fd,
    closed_rx: Fd,
    token: Option<Fd>,
}
