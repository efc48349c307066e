//! Creating a queue with non-default parameters.

use std::fmt;
use std::marker::PhantomData;

use multiproc_codec::DEFAULT_MAX_MESSAGE_SIZE;

use crate::error::CreateError;
use crate::handle::Handle;
use crate::layout::{Config, Kind, MAX_CAPACITY, MAX_MAXSIZE, MIN_CAPACITY};
use crate::{JoinableQueue, Queue, SimpleQueue};

/// The default ring capacity: 4 MiB of shared memory, used as it fills (pages that were
/// never written cost nothing).
pub const DEFAULT_CAPACITY: usize = 4 << 20;

/// Builds a [`Queue`], [`SimpleQueue`] or [`JoinableQueue`] with chosen limits.
///
/// Get one from `Queue::builder()` (and likewise for the other two).
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`capacity`](Builder::capacity) | [`DEFAULT_CAPACITY`] (4 MiB) | bytes of shared ring; messages up to half of it are stored in it, larger ones out of band |
/// | `maxsize` (`Queue`, `JoinableQueue`) | none | most messages held at once (Python's `maxsize`) |
/// | [`max_message_size`](Builder::max_message_size) | 1 GiB | largest encoded message; a larger put fails, handing the item back |
///
/// ```
/// use multiproc_queue::Queue;
///
/// let q: Queue<Vec<u8>> = Queue::builder()
///     .capacity(64 << 10)
///     .maxsize(100)
///     .max_message_size(16 << 20)
///     .build()?;
/// assert_eq!((q.capacity(), q.maxsize(), q.max_message_size()), (64 << 10, Some(100), 16 << 20));
/// # Ok::<(), multiproc_queue::CreateError>(())
/// ```
pub struct Builder<Q> {
    capacity: usize,
    maxsize: Option<usize>,
    max_message_size: usize,
    _queue: PhantomData<fn() -> Q>,
}

impl<Q> fmt::Debug for Builder<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("capacity", &self.capacity)
            .field("maxsize", &self.maxsize)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

impl<Q> Builder<Q> {
    pub(crate) fn new() -> Builder<Q> {
        Builder {
            capacity: DEFAULT_CAPACITY,
            maxsize: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            _queue: PhantomData,
        }
    }

    /// Bytes of shared memory for the ring, rounded up to a power of two; between 4 KiB
    /// and 1 GiB.
    ///
    /// A message whose encoding takes at most half the capacity is copied through the
    /// ring; a larger one travels in its own shared-memory segment, and such messages
    /// together may hold at most `capacity` bytes (or one message of any size up to
    /// `max_message_size`, when it is the only one). A put waits when either is full.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// The largest encoded message this queue accepts, in bytes (default 1 GiB). A
    /// larger put fails with an `Encode` error that hands the item back.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    fn config(&self) -> Result<Config, CreateError> {
        let capacity = self
            .capacity
            .checked_next_power_of_two()
            .filter(|c| (MIN_CAPACITY..=MAX_CAPACITY).contains(c) && self.capacity > 0)
            .ok_or(CreateError::Capacity { requested: self.capacity, min: MIN_CAPACITY, max: MAX_CAPACITY })?;
        let maxsize = match self.maxsize {
            None => 0,
            Some(n) if (1..=MAX_MAXSIZE).contains(&n) => n,
            Some(n) => return Err(CreateError::Maxsize { requested: n, max: MAX_MAXSIZE }),
        };
        if self.max_message_size == 0 {
            return Err(CreateError::MaxMessageSize);
        }
        Ok(Config { capacity, maxsize, max_message: self.max_message_size })
    }

    fn handle(&self, kind: Kind) -> Result<Handle, CreateError> {
        Handle::create(kind, self.config()?)
    }
}

impl<T> Builder<Queue<T>> {
    /// The most messages the queue holds at once (Python's `maxsize`); a put waits (or
    /// `put_nowait` fails with `Full`) while it holds that many. At least 1.
    pub fn maxsize(mut self, messages: usize) -> Self {
        self.maxsize = Some(messages);
        self
    }

    /// Creates the queue.
    pub fn build(self) -> Result<Queue<T>, CreateError> {
        Ok(Queue::from_handle(self.handle(Kind::Queue)?))
    }
}

impl<T> Builder<JoinableQueue<T>> {
    /// The most messages the queue holds at once (Python's `maxsize`). At least 1.
    pub fn maxsize(mut self, messages: usize) -> Self {
        self.maxsize = Some(messages);
        self
    }

    /// Creates the queue.
    pub fn build(self) -> Result<JoinableQueue<T>, CreateError> {
        Ok(JoinableQueue::from_handle(self.handle(Kind::JoinableQueue)?))
    }
}

impl<T> Builder<SimpleQueue<T>> {
    /// Creates the queue.
    pub fn build(self) -> Result<SimpleQueue<T>, CreateError> {
        Ok(SimpleQueue::from_handle(self.handle(Kind::SimpleQueue)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_capacity_rounded() {
        let b = Builder::<Queue<u8>>::new().capacity(5000);
        assert_eq!(b.config().unwrap().capacity, 8192);
        assert!(matches!(Builder::<Queue<u8>>::new().capacity(0).config(), Err(CreateError::Capacity { .. })));
        assert!(matches!(Builder::<Queue<u8>>::new().capacity(100).config(), Err(CreateError::Capacity { .. })));
        assert!(matches!(Builder::<Queue<u8>>::new().capacity(usize::MAX).config(), Err(CreateError::Capacity { .. })));
        assert!(matches!(Builder::<Queue<u8>>::new().maxsize(0).config(), Err(CreateError::Maxsize { .. })));
        assert!(matches!(Builder::<Queue<u8>>::new().max_message_size(0).config(), Err(CreateError::MaxMessageSize)));
        let err = Builder::<Queue<u8>>::new().maxsize(0).build().unwrap_err();
        assert!(err.to_string().contains("Queue::new()"), "{err}");
    }
}
