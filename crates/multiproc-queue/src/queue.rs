//! `Queue<T>`: Python's `multiprocessing.Queue`.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::builder::Builder;
use crate::error::{CreateError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError};
use crate::handle::{GetError, Handle, PutError};
use crate::iter::{Iter, TryIter};
use crate::layout::Kind;
use crate::wait::Deadline;

/// A multi-producer, multi-consumer queue between processes (Python's
/// `multiprocessing.Queue`).
///
/// Every handle can put and get. Clone it, or pass it to a child process as (part of)
/// its arguments under any start method, to get another handle on the same queue. Items
/// are any serde type, encoded with bincode into shared memory; `put` returns once the
/// item is there, so a producer may exit right away and nothing is lost (there is no
/// feeder thread to flush, and no `join_thread`).
///
/// | Python | here |
/// |---|---|
/// | `Queue()`, `Queue(maxsize)` | [`Queue::new`], [`Queue::bounded`], [`Queue::builder`] |
/// | `put(x)`, `put(x, timeout=t)`, `put_nowait(x)` / `queue.Full` | [`put`](Queue::put), [`put_timeout`](Queue::put_timeout), [`put_nowait`](Queue::put_nowait) / [`TrySendError::Full`] (with the item) |
/// | `get()`, `get(timeout=t)`, `get_nowait()` / `queue.Empty` | [`get`](Queue::get), [`get_timeout`](Queue::get_timeout), [`get_nowait`](Queue::get_nowait) / [`TryRecvError::Empty`] |
/// | `qsize()`, `empty()`, `full()` | the same (snapshots, see [`qsize`](Queue::qsize)) |
/// | `close()` | [`close`](Queue::close): this handle puts no more (it can still get) |
///
/// The crossbeam names work too: [`send`](Queue::send), [`try_send`](Queue::try_send),
/// [`send_timeout`](Queue::send_timeout), [`send_deadline`](Queue::send_deadline),
/// [`recv`](Queue::recv), [`try_recv`](Queue::try_recv),
/// [`recv_timeout`](Queue::recv_timeout), [`recv_deadline`](Queue::recv_deadline), and
/// iteration ([`iter`](Queue::iter), [`try_iter`](Queue::try_iter), `for x in &queue`).
///
/// A get blocks only while some handle could still put: once every handle has been
/// closed or dropped (or its process died) and the queue is drained, it returns
/// [`RecvError::Closed`] and iteration ends. The handle you get through counts too, so
/// a consumer that never puts calls [`close`](Queue::close) first. The exact rule, and
/// what the fork start method changes, are in the [crate docs](crate#when-a-queue-is-closed).
///
/// ```
/// use multiproc_process::{Process, StartMethod};
/// use multiproc_queue::Queue;
///
/// fn produce(q: Queue<String>) {
///     for i in 0..3 {
///         q.put(format!("item {i}")).expect("put");
///     }
/// }
///
/// let q: Queue<String> = Queue::new()?;
/// let mut child = Process::new(produce, q.clone()).with_start_method(StartMethod::Fork);
/// child.start()?;
/// q.close(); // this process only consumes: let the queue close when the child is done
/// let items: Vec<String> = q.iter().collect::<Result<_, _>>()?;
/// child.join()?;
/// assert_eq!(items, ["item 0", "item 1", "item 2"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    handle: Handle,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Queue<T> {
    pub(crate) fn from_handle(handle: Handle) -> Queue<T> {
        Queue { handle, _item: PhantomData }
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// A queue limited only by its byte capacity (Python's `Queue()`): a put waits while
    /// the 4 MiB ring (see [`Builder::capacity`]) is full.
    pub fn new() -> Result<Queue<T>, CreateError> {
        Queue::builder().build()
    }

    /// A queue that holds at most `maxsize` items (Python's `Queue(maxsize)`); a put
    /// waits while it is full. `maxsize` must be at least 1.
    pub fn bounded(maxsize: usize) -> Result<Queue<T>, CreateError> {
        Queue::builder().maxsize(maxsize).build()
    }

    /// A builder for the capacity, `maxsize` and message-size limit.
    pub fn builder() -> Builder<Queue<T>> {
        Builder::new()
    }

    /// How many items the queue holds. A snapshot: other processes may put or get
    /// before you act on it (Python says "approximate"; here it is exact at the instant
    /// it is read).
    pub fn qsize(&self) -> usize {
        self.handle.ring().len()
    }

    /// Whether the queue holds no item (a snapshot, like [`qsize`](Queue::qsize)).
    pub fn empty(&self) -> bool {
        self.handle.ring().is_empty()
    }

    /// Whether a put of even the smallest item would wait now: the queue holds
    /// `maxsize` items, or its ring is full (a snapshot).
    pub fn full(&self) -> bool {
        self.handle.ring().is_full()
    }

    /// The `maxsize` given at creation, if any.
    pub fn maxsize(&self) -> Option<usize> {
        Some(self.handle.ring().config().maxsize).filter(|&m| m != 0)
    }

    /// Bytes of the shared ring.
    pub fn capacity(&self) -> usize {
        self.handle.ring().config().capacity
    }

    /// The largest encoded item the queue accepts, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.handle.ring().config().max_message
    }

    /// Declares that this handle will put no more (Python's `close()`).
    ///
    /// Later puts through it fail with `Closed`, handing the item back; gets still work.
    /// Once every handle on the queue is closed or dropped and the queue is empty, gets
    /// return `Closed` instead of blocking. Dropping a handle closes it too. Idempotent.
    pub fn close(&self) {
        self.handle.close();
    }

    /// Whether [`close`](Queue::close) was called on this handle (the queue itself may
    /// still be open through other handles).
    pub fn is_closed(&self) -> bool {
        !self.handle.can_put()
    }
}

impl<T: Serialize> Queue<T> {
    /// Puts an item, waiting as long as the queue is full (Python's `put`).
    ///
    /// Returns once the item is in shared memory: the producer may exit at once.
    pub fn put(&self, item: T) -> Result<(), SendError<T>> {
        self.handle.put(item, Deadline::Never).map_err(|e| match e {
            PutError::Closed(item) => SendError::Closed(item),
            PutError::Encode(item, error) => SendError::Encode { item, error },
            PutError::Os(item, error) => SendError::Os { item, error },
            // Unreachable without a deadline; an item is never dropped, so map it anyway.
            PutError::Full(item) | PutError::Timeout(item) => SendError::Os {
                item,
                error: std::io::Error::new(std::io::ErrorKind::TimedOut, "put without a timeout timed out"),
            },
        })
    }

    /// Puts an item, waiting at most `timeout` for room (Python's `put(x, timeout=t)`).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.put_until(item, Deadline::after(timeout))
    }

    /// Puts an item, waiting until `deadline` at the latest for room.
    pub fn send_deadline(&self, item: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.put_until(item, Deadline::At(deadline))
    }

    fn put_until(&self, item: T, deadline: Deadline) -> Result<(), SendTimeoutError<T>> {
        self.handle.put(item, deadline).map_err(|e| match e {
            PutError::Full(item) | PutError::Timeout(item) => SendTimeoutError::Timeout(item),
            PutError::Closed(item) => SendTimeoutError::Closed(item),
            PutError::Encode(item, error) => SendTimeoutError::Encode { item, error },
            PutError::Os(item, error) => SendTimeoutError::Os { item, error },
        })
    }

    /// Puts an item if there is room now (Python's `put_nowait`); otherwise fails with
    /// [`TrySendError::Full`], handing the item back.
    pub fn put_nowait(&self, item: T) -> Result<(), TrySendError<T>> {
        self.handle.put(item, Deadline::Now).map_err(|e| match e {
            PutError::Full(item) | PutError::Timeout(item) => TrySendError::Full(item),
            PutError::Closed(item) => TrySendError::Closed(item),
            PutError::Encode(item, error) => TrySendError::Encode { item, error },
            PutError::Os(item, error) => TrySendError::Os { item, error },
        })
    }

    /// [`put`](Queue::put) under crossbeam's name.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.put(item)
    }

    /// [`put_nowait`](Queue::put_nowait) under crossbeam's name.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.put_nowait(item)
    }

    /// [`put_timeout`](Queue::put_timeout) under crossbeam's name.
    pub fn send_timeout(&self, item: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.put_timeout(item, timeout)
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Takes the oldest item, waiting while the queue is empty but still open (Python's
    /// `get`). Fails with [`RecvError::Closed`] once it is empty and closed.
    pub fn get(&self) -> Result<T, RecvError> {
        self.handle.get(Deadline::Never).map_err(|e| match e {
            GetError::Closed => RecvError::Closed,
            GetError::Decode(d) => RecvError::Decode(d),
            GetError::Corrupted(m) => RecvError::Corrupted(m),
            GetError::Os(e) => RecvError::Os(e),
            GetError::Empty | GetError::Timeout => {
                RecvError::Os(std::io::Error::new(std::io::ErrorKind::TimedOut, "get without a timeout timed out"))
            }
        })
    }

    /// Takes the oldest item, waiting at most `timeout` (Python's `get(timeout=t)`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.get_until(Deadline::after(timeout))
    }

    /// Takes the oldest item, waiting until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.get_until(Deadline::At(deadline))
    }

    fn get_until(&self, deadline: Deadline) -> Result<T, RecvTimeoutError> {
        self.handle.get(deadline).map_err(|e| match e {
            GetError::Empty | GetError::Timeout => RecvTimeoutError::Timeout,
            GetError::Closed => RecvTimeoutError::Closed,
            GetError::Decode(d) => RecvTimeoutError::Decode(d),
            GetError::Corrupted(m) => RecvTimeoutError::Corrupted(m),
            GetError::Os(e) => RecvTimeoutError::Os(e),
        })
    }

    /// Takes the oldest item if there is one now (Python's `get_nowait`); otherwise fails
    /// with [`TryRecvError::Empty`] (or [`TryRecvError::Closed`] if the queue is also
    /// closed).
    pub fn get_nowait(&self) -> Result<T, TryRecvError> {
        self.handle.get(Deadline::Now).map_err(|e| match e {
            GetError::Empty | GetError::Timeout => TryRecvError::Empty,
            GetError::Closed => TryRecvError::Closed,
            GetError::Decode(d) => TryRecvError::Decode(d),
            GetError::Corrupted(m) => TryRecvError::Corrupted(m),
            GetError::Os(e) => TryRecvError::Os(e),
        })
    }

    /// [`get`](Queue::get) under crossbeam's name.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.get()
    }

    /// [`get_nowait`](Queue::get_nowait) under crossbeam's name.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.get_nowait()
    }

    /// [`get_timeout`](Queue::get_timeout) under crossbeam's name.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.get_timeout(timeout)
    }

    /// A blocking iterator: yields items until the queue is empty and closed.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter::new(self)
    }

    /// A non-blocking iterator over the items available now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter::new(self)
    }
}

impl<T> Clone for Queue<T> {
    /// Another handle on the same queue, with its own right to put (closing one does not
    /// close the other). If this handle is closed, so is the clone.
    fn clone(&self) -> Self {
        Queue::from_handle(self.handle.duplicate())
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt(f)
    }
}

impl<T> Serialize for Queue<T> {
    /// Encodes the handle's descriptors out of band: only works inside multiproc
    /// (process arguments, a connection, another queue).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.handle.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Handle::deserialize(Kind::Queue, d).map(Queue::from_handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn assert_send_sync<Q: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync_whatever_the_item() {
        assert_send_sync::<Queue<Rc<u8>>>();
        assert_send_sync::<crate::SimpleQueue<Rc<u8>>>();
        assert_send_sync::<crate::JoinableQueue<Rc<u8>>>();
    }

    #[test]
    fn threads_share_one_handle_and_clones() {
        let q: Queue<(u8, u32)> = Queue::builder().capacity(4096).build().unwrap();
        let got = std::thread::scope(|s| {
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut got = Vec::new();
                        while let Ok(item) = q.get_timeout(Duration::from_secs(60)) {
                            if item.0 == u8::MAX {
                                break;
                            }
                            got.push(item);
                        }
                        got
                    })
                })
                .collect();
            std::thread::scope(|p| {
                for id in 0..3u8 {
                    let q = q.clone();
                    p.spawn(move || {
                        for n in 0..2000 {
                            q.put((id, n)).unwrap();
                        }
                    });
                }
            });
            q.put((u8::MAX, 0)).unwrap();
            q.put((u8::MAX, 0)).unwrap();
            consumers.into_iter().flat_map(|c| c.join().unwrap()).collect::<Vec<_>>()
        });
        let mut got = got;
        got.sort_unstable();
        let expected: Vec<_> = (0..3u8).flat_map(|id| (0..2000).map(move |n| (id, n))).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn items_cannot_carry_handles() {
        let q: Queue<Queue<u8>> = Queue::new().unwrap();
        let inner: Queue<u8> = Queue::new().unwrap();
        match q.put(inner) {
            Err(SendError::Encode { item, error }) => {
                assert!(error.to_string().contains("can only be sent through multiproc"), "{error}");
                item.put(1).unwrap();
            }
            other => panic!("a handle went into a queue: {other:?}"),
        }
    }
}
