//! `SimpleQueue<T>`: Python's `multiprocessing.SimpleQueue`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Queue;
use crate::builder::Builder;
use crate::error::{CreateError, RecvError, SendError};
use crate::handle::Handle;
use crate::layout::Kind;

/// The minimal queue (Python's `multiprocessing.SimpleQueue`): `put`, `get`, `empty`,
/// `close`.
///
/// The same shared-memory queue as [`Queue`] with fewer methods and no `maxsize`; a put
/// waits only while its byte capacity is full. It passes to child processes and closes
/// exactly like a [`Queue`].
///
/// ```
/// use multiproc_queue::SimpleQueue;
///
/// let q = SimpleQueue::new()?;
/// q.put((1, "one".to_owned()))?;
/// assert!(!q.empty());
/// assert_eq!(q.get()?, (1, "one".to_owned()));
/// q.close(); // the only handle is closed and the queue is empty: get no longer blocks
/// assert!(matches!(q.get(), Err(multiproc_queue::RecvError::Closed)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> SimpleQueue<T> {
    pub(crate) fn from_handle(handle: Handle) -> SimpleQueue<T> {
        SimpleQueue { queue: Queue::from_handle(handle) }
    }

    /// A new queue with the default capacity (Python's `SimpleQueue()`).
    pub fn new() -> Result<SimpleQueue<T>, CreateError> {
        SimpleQueue::builder().build()
    }

    /// A builder for the capacity and message-size limit.
    pub fn builder() -> Builder<SimpleQueue<T>> {
        Builder::new()
    }

    /// Whether the queue holds no item (a snapshot).
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// Declares that this handle will put no more; see [`Queue::close`].
    pub fn close(&self) {
        self.queue.close();
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Puts an item, waiting while the queue's buffer is full.
    pub fn put(&self, item: T) -> Result<(), SendError<T>> {
        self.queue.put(item)
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Takes the oldest item, waiting while the queue is empty but still open; fails
    /// with [`RecvError::Closed`] once it is empty and closed.
    pub fn get(&self) -> Result<T, RecvError> {
        self.queue.get()
    }
}

impl<T> Clone for SimpleQueue<T> {
    /// Another handle on the same queue; see [`Queue::clone`](Queue#impl-Clone-for-Queue<T>).
    fn clone(&self) -> Self {
        SimpleQueue { queue: self.queue.clone() }
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.queue.fmt(f)
    }
}

impl<T> Serialize for SimpleQueue<T> {
    /// Encodes the handle's descriptors out of band (only works inside multiproc).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.queue.handle().serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Handle::deserialize(Kind::SimpleQueue, d).map(SimpleQueue::from_handle)
    }
}
