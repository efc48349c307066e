//! `JoinableQueue<T>`: Python's `multiprocessing.JoinableQueue`.

use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Queue;
use crate::builder::Builder;
use crate::error::{CreateError, JoinTimeoutError, RecvError, TaskDoneError};
use crate::handle::Handle;
use crate::iter::Iter;
use crate::layout::Kind;
use crate::wait::Deadline;

/// A [`Queue`] that also counts unfinished tasks (Python's
/// `multiprocessing.JoinableQueue`).
///
/// Every put adds an unfinished task; a consumer calls [`task_done`](JoinableQueue::task_done)
/// once it has finished with an item it got, and [`join`](JoinableQueue::join) waits
/// until every item ever put has been marked done. All of [`Queue`]'s methods are
/// available (through `Deref`).
///
/// The counter lives in shared memory next to the queue: puts are counted by the same
/// atomic store that publishes them (a producer killed mid-put adds no task), and
/// `task_done` is a single atomic update.
///
/// # When a consumer dies
/// A consumer killed after `get` and before `task_done` leaves its task unfinished for
/// good, so `join` would wait forever. Use [`join_timeout`](JoinableQueue::join_timeout):
/// it returns [`JoinTimeoutError`] with the number of unfinished tasks. Once you know
/// the consumer is dead (its `Process::join` reports the signal) and how many items it
/// held (usually one), call `task_done` once for each on its behalf, or put them again
/// if you can rebuild them, and join again.
///
/// ```
/// use multiproc_process::{Process, StartMethod};
/// use multiproc_queue::JoinableQueue;
///
/// fn worker(q: JoinableQueue<u64>) -> u64 {
///     q.close(); // this handle only consumes (see "When a queue is closed" in the crate docs)
///     let mut sum = 0;
///     while let Ok(n) = q.get() {
///         sum += n;
///         q.task_done().expect("one task_done per get");
///     }
///     sum
/// }
///
/// let q = JoinableQueue::new()?;
/// let mut w = Process::new(worker, q.clone()).with_start_method(StartMethod::Fork);
/// w.start()?;
/// for n in 1..=10 {
///     q.put(n)?;
/// }
/// q.join(); // every item was got and marked done
/// assert_eq!(q.unfinished_tasks(), 0);
/// q.close(); // no more puts: the worker's get reports Closed and it returns
/// assert_eq!(w.join()?, 55);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> JoinableQueue<T> {
    pub(crate) fn from_handle(handle: Handle) -> JoinableQueue<T> {
        JoinableQueue { queue: Queue::from_handle(handle) }
    }

    /// A queue limited only by its byte capacity (Python's `JoinableQueue()`).
    pub fn new() -> Result<JoinableQueue<T>, CreateError> {
        JoinableQueue::builder().build()
    }

    /// A queue that holds at most `maxsize` items (Python's `JoinableQueue(maxsize)`).
    pub fn bounded(maxsize: usize) -> Result<JoinableQueue<T>, CreateError> {
        JoinableQueue::builder().maxsize(maxsize).build()
    }

    /// A builder for the capacity, `maxsize` and message-size limit.
    pub fn builder() -> Builder<JoinableQueue<T>> {
        Builder::new()
    }

    /// Marks one task done (Python's `task_done()`). Fails with [`TaskDoneError`] (and
    /// changes nothing) if every item put is already marked done.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.queue.handle().ring().task_done() { Ok(()) } else { Err(TaskDoneError) }
    }

    /// Waits until every item put into the queue has been marked done (Python's
    /// `join()`). See [the type docs](JoinableQueue#when-a-consumer-dies) for why a
    /// program that may lose consumers should prefer [`join_timeout`](JoinableQueue::join_timeout).
    pub fn join(&self) {
        self.queue.handle().ring().join(Deadline::Never);
    }

    /// Like [`join`](JoinableQueue::join), but gives up after `timeout`, saying how many
    /// tasks are still unfinished.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), JoinTimeoutError> {
        self.join_until(Deadline::after(timeout))
    }

    /// Like [`join`](JoinableQueue::join), but gives up at `deadline`.
    pub fn join_deadline(&self, deadline: Instant) -> Result<(), JoinTimeoutError> {
        self.join_until(Deadline::At(deadline))
    }

    fn join_until(&self, deadline: Deadline) -> Result<(), JoinTimeoutError> {
        let ring = self.queue.handle().ring();
        if ring.join(deadline) { Ok(()) } else { Err(JoinTimeoutError { unfinished: ring.unfinished() }) }
    }

    /// Items put and not yet marked done (a snapshot).
    pub fn unfinished_tasks(&self) -> usize {
        self.queue.handle().ring().unfinished()
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    /// A `JoinableQueue` is a [`Queue`] (as in Python, a subclass): every queue method
    /// works on it.
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Clone for JoinableQueue<T> {
    /// Another handle on the same queue; see [`Queue::clone`](Queue#impl-Clone-for-Queue<T>).
    fn clone(&self) -> Self {
        JoinableQueue { queue: self.queue.clone() }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.queue.fmt(f)
    }
}

impl<T> Serialize for JoinableQueue<T> {
    /// Encodes the handle's descriptors out of band (only works inside multiproc).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.queue.handle().serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Handle::deserialize(Kind::JoinableQueue, d).map(JoinableQueue::from_handle)
    }
}

impl<'a, T: DeserializeOwned> IntoIterator for &'a JoinableQueue<T> {
    type Item = Result<T, RecvError>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.queue.iter()
    }
}
