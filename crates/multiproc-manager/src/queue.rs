//! `QueueProxy<T>` and `JoinableQueueProxy<T>`: Python's `manager.Queue()` and
//! `manager.JoinableQueue()`.
//!
//! The server creates a shared-memory queue of this workspace (`multiproc_queue`) and
//! keeps a handle to it. A proxy reaching the server over a Unix socket (every
//! [`Manager::start`](crate::Manager::start)ed manager) receives the queue itself and
//! uses it directly: puts and gets never go through the server. Over TCP, where no
//! shared memory can be handed out, every operation is a request, and the server puts
//! or gets on the proxy's behalf. Both behave the same; only speed differs.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use multiproc_queue::{
    JoinableQueue, Queue, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;

use crate::client::{ObjectRef, WireRef, unexpected};
use crate::encoding::{decode, encode};
use crate::error::{GetError, ProxyError, PutError};
use crate::reply;
use crate::wire::{Op, QueueOp, Response, ServerError, Wait};

pub(crate) fn fingerprint<T>(joinable: bool) -> String {
    if joinable { format!("joinable_queue<{}>", type_name::<T>()) } else { format!("queue<{}>", type_name::<T>()) }
}

/// The shared-memory queue a local proxy uses directly.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Local {
    Plain(Queue<ByteBuf>),
    Joinable(JoinableQueue<ByteBuf>),
}

impl Local {
    fn queue(&self) -> &Queue<ByteBuf> {
        match self {
            Local::Plain(q) => q,
            Local::Joinable(q) => q,
        }
    }

    fn joinable(&self) -> Option<&JoinableQueue<ByteBuf>> {
        match self {
            Local::Joinable(q) => Some(q),
            Local::Plain(_) => None,
        }
    }

    pub(crate) fn from_response(r: Response) -> Result<Local, ProxyError> {
        match r {
            Response::Queue(q) => Ok(Local::Plain(q)),
            Response::Joinable(q) => Ok(Local::Joinable(q)),
            other => Err(unexpected(other)),
        }
    }
}

/// Why a local put did not happen: `None` when the queue stayed full.
type LocalPut = Result<(), Option<String>>;

fn local_put(q: &Queue<ByteBuf>, item: ByteBuf, wait: Wait) -> LocalPut {
    match wait {
        Wait::Forever => q.put(item).map_err(|e| match e {
            SendError::Closed(_) => Some("the queue was closed".to_owned()),
            other => Some(other.to_string()),
        }),
        Wait::For(d) => q.put_timeout(item, d).map_err(|e| match e {
            SendTimeoutError::Timeout(_) => None,
            other => Some(other.to_string()),
        }),
        Wait::Now => q.put_nowait(item).map_err(|e| match e {
            TrySendError::Full(_) => None,
            other => Some(other.to_string()),
        }),
    }
}

fn local_get_error(closed: bool, decode: Option<multiproc_codec::DecodeError>, message: String) -> GetError {
    if closed {
        // Only possible once the server (which keeps a handle) and every proxy that
        // could put are gone.
        return GetError::Failed(ProxyError::ServerGone {
            reason: "the queue is empty and every handle that could put into it, the server's included, is gone"
                .to_owned(),
        });
    }
    match decode {
        Some(d) => GetError::Failed(ProxyError::Decode(d)),
        None => GetError::Failed(ProxyError::Queue(message)),
    }
}

fn local_get(q: &Queue<ByteBuf>, wait: Wait) -> Result<ByteBuf, GetError> {
    match wait {
        Wait::Forever => q.get().map_err(|e| match e {
            RecvError::Closed => local_get_error(true, None, String::new()),
            RecvError::Decode(d) => local_get_error(false, Some(d), String::new()),
            other => local_get_error(false, None, other.to_string()),
        }),
        Wait::For(d) => q.get_timeout(d).map_err(|e| match e {
            RecvTimeoutError::Timeout => GetError::Empty,
            RecvTimeoutError::Closed => local_get_error(true, None, String::new()),
            RecvTimeoutError::Decode(d) => local_get_error(false, Some(d), String::new()),
            other => local_get_error(false, None, other.to_string()),
        }),
        Wait::Now => q.get_nowait().map_err(|e| match e {
            TryRecvError::Empty => GetError::Empty,
            TryRecvError::Closed => local_get_error(true, None, String::new()),
            TryRecvError::Decode(d) => local_get_error(false, Some(d), String::new()),
            other => local_get_error(false, None, other.to_string()),
        }),
    }
}

/// A FIFO queue held by a manager (Python's `manager.Queue()`), for any number of
/// producers and consumers in any processes.
///
/// With a manager on a Unix socket (the default), the proxy holds the server's
/// shared-memory queue ([`multiproc_queue::Queue`]) and uses it directly, at
/// shared-memory speed; over TCP every operation goes through the server. Either way a
/// get waits while the queue is empty (the server keeps it open: unlike a
/// `multiproc_queue::Queue`, a manager's queue never reports "closed" while the server
/// runs, as in Python), and a put waits while a bounded queue is full.
///
/// ```
/// use multiproc_manager::{Manager, QueueProxy};
/// use multiproc_process::{Process, StartMethod};
///
/// fn produce(q: QueueProxy<String>) {
///     for i in 0..3 {
///         q.put(format!("job {i}")).expect("put");
///     }
/// }
///
/// let manager = Manager::builder().start_method(StartMethod::Fork).start()?;
/// let q = manager.queue::<String>()?;
/// let mut p = Process::new(produce, q.clone()).with_start_method(StartMethod::Fork);
/// p.start()?;
/// let got: Vec<String> = (0..3).map(|_| q.get()).collect::<Result<_, _>>()?;
/// p.join()?;
/// assert_eq!(got, ["job 0", "job 1", "job 2"]);
/// assert!(q.get_nowait().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct QueueProxy<T> {
    pub(crate) obj: Arc<ObjectRef>,
    local: Option<Arc<Local>>,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> QueueProxy<T> {
    pub(crate) fn new(obj: Arc<ObjectRef>, local: Option<Local>) -> QueueProxy<T> {
        QueueProxy { obj, local: local.map(Arc::new), _type: PhantomData }
    }

    /// Whether this proxy uses the shared-memory queue directly (a Unix-socket manager)
    /// rather than asking the server for every operation (TCP).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    fn op(&self, op: QueueOp) -> Result<Response, ProxyError> {
        self.obj.call(Op::Queue(op))
    }
}

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    fn put_wait(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        let limit = self.obj.limit();
        let bytes = match encode(&item, limit) {
            Ok(b) => b,
            Err(e) => return Err(PutError::Failed { item, error: e.into() }),
        };
        match &self.local {
            Some(local) => match local_put(local.queue(), bytes, wait) {
                Ok(()) => Ok(()),
                Err(None) => Err(PutError::Full(item)),
                Err(Some(m)) => Err(PutError::Failed { item, error: ProxyError::Queue(m) }),
            },
            None => match self.op(QueueOp::Put { item: bytes, wait }) {
                Ok(Response::Done) => Ok(()),
                Ok(Response::Error(ServerError::Full)) => Err(PutError::Full(item)),
                Ok(other) => Err(PutError::Failed { item, error: unexpected(other) }),
                Err(error) => Err(PutError::Failed { item, error }),
            },
        }
    }

    fn get_wait(&self, wait: Wait) -> Result<T, GetError> {
        let limit = self.obj.limit();
        let bytes = match &self.local {
            Some(local) => local_get(local.queue(), wait)?,
            None => match self.op(QueueOp::Get { wait })? {
                Response::Bytes(b) => b,
                Response::Error(ServerError::Empty) => return Err(GetError::Empty),
                other => return Err(GetError::Failed(unexpected(other))),
            },
        };
        decode(&bytes, limit).map_err(|e| GetError::Failed(e.into()))
    }

    /// Puts an item, waiting while a bounded queue is full (Python's `put`).
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_wait(item, Wait::Forever)
    }

    /// Puts an item, waiting at most `timeout` for room; [`PutError::Full`] hands it
    /// back if there was none.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_wait(item, Wait::For(timeout))
    }

    /// Puts an item if there is room now (Python's `put_nowait`).
    pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
        self.put_wait(item, Wait::Now)
    }

    /// Takes the oldest item, waiting while the queue is empty (Python's `get`).
    pub fn get(&self) -> Result<T, GetError> {
        self.get_wait(Wait::Forever)
    }

    /// Takes the oldest item, waiting at most `timeout`; [`GetError::Empty`] if none came.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_wait(Wait::For(timeout))
    }

    /// Takes the oldest item if there is one now (Python's `get_nowait`).
    pub fn get_nowait(&self) -> Result<T, GetError> {
        self.get_wait(Wait::Now)
    }

    /// How many items the queue holds (a snapshot).
    pub fn qsize(&self) -> Result<usize, ProxyError> {
        match &self.local {
            Some(local) => Ok(local.queue().qsize()),
            None => reply::count(self.op(QueueOp::Qsize)?),
        }
    }

    /// Whether the queue is empty (a snapshot).
    pub fn empty(&self) -> Result<bool, ProxyError> {
        match &self.local {
            Some(local) => Ok(local.queue().empty()),
            None => reply::flag(self.op(QueueOp::Empty)?),
        }
    }

    /// Whether a put would wait now (a snapshot).
    pub fn full(&self) -> Result<bool, ProxyError> {
        match &self.local {
            Some(local) => Ok(local.queue().full()),
            None => reply::flag(self.op(QueueOp::Full)?),
        }
    }
}

impl<T> Clone for QueueProxy<T> {
    /// Another proxy for the same queue.
    fn clone(&self) -> Self {
        QueueProxy { obj: self.obj.clone(), local: self.local.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for QueueProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueProxy").field("object", &self.obj).field("local", &self.is_local()).finish()
    }
}

#[derive(Serialize)]
struct WireQueueRef<'a> {
    obj: WireRef,
    local: Option<&'a Local>,
}

#[derive(Deserialize)]
struct WireQueue {
    obj: WireRef,
    local: Option<Local>,
}

fn serialize_queue<S: Serializer>(obj: &ObjectRef, local: Option<&Local>, s: S) -> Result<S::Ok, S::Error> {
    WireQueueRef { obj: obj.to_wire(), local }.serialize(s)
}

fn deserialize_queue<'de, T, D: Deserializer<'de>>(
    d: D,
    joinable: bool,
) -> Result<(Arc<ObjectRef>, Option<Local>), D::Error> {
    let w = WireQueue::deserialize(d)?;
    if w.local.as_ref().is_some_and(|l| l.joinable().is_some() != joinable) {
        return Err(serde::de::Error::custom("the shared-memory queue in this proxy is of the wrong kind"));
    }
    let obj = ObjectRef::from_wire(w.obj, &fingerprint::<T>(joinable)).map_err(serde::de::Error::custom)?;
    Ok((obj, w.local))
}

impl<T> Serialize for QueueProxy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_queue(&self.obj, self.local.as_deref(), s)
    }
}

impl<'de, T> Deserialize<'de> for QueueProxy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (obj, local) = deserialize_queue::<T, D>(d, false)?;
        Ok(QueueProxy::new(obj, local))
    }
}

/// A queue whose consumers say when each item is processed, so a producer can wait for
/// all of them (Python's `manager.JoinableQueue()`).
///
/// It is a [`QueueProxy`] (it derefs to one) plus [`task_done`](JoinableQueueProxy::task_done)
/// and [`join`](JoinableQueueProxy::join).
///
/// ```
/// use multiproc_manager::{JoinableQueueProxy, Manager};
/// use multiproc_process::{Process, StartMethod};
///
/// fn consume(q: JoinableQueueProxy<u32>) -> u32 {
///     let mut sum = 0;
///     for _ in 0..3 {
///         sum += q.get().expect("get");
///         q.task_done().expect("task_done");
///     }
///     sum
/// }
///
/// let manager = Manager::builder().start_method(StartMethod::Fork).start()?;
/// let q = manager.joinable_queue::<u32>()?;
/// let mut p = Process::new(consume, q.clone()).with_start_method(StartMethod::Fork);
/// p.start()?;
/// for n in [1, 2, 3] {
///     q.put(n)?;
/// }
/// q.join()?; // every item was processed
/// assert_eq!(q.unfinished_tasks()?, 0);
/// assert_eq!(p.join()?, 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueueProxy<T> {
    queue: QueueProxy<T>,
}

impl<T> JoinableQueueProxy<T> {
    pub(crate) fn new(obj: Arc<ObjectRef>, local: Option<Local>) -> JoinableQueueProxy<T> {
        JoinableQueueProxy { queue: QueueProxy::new(obj, local) }
    }

    fn joinable(&self) -> Option<&JoinableQueue<ByteBuf>> {
        self.queue.local.as_deref().and_then(Local::joinable)
    }

    /// Marks one item taken from the queue as processed (Python's `task_done`); fails
    /// with [`ProxyError::TaskDone`] if every item is already marked.
    pub fn task_done(&self) -> Result<(), ProxyError> {
        match self.joinable() {
            Some(q) => q.task_done().map_err(|_| ProxyError::TaskDone),
            None => reply::done(self.queue.op(QueueOp::TaskDone)?),
        }
    }

    /// Waits until every item put has been marked processed (Python's `join`).
    pub fn join(&self) -> Result<(), ProxyError> {
        match self.joinable() {
            Some(q) => {
                q.join();
                Ok(())
            }
            None => reply::flag(self.queue.op(QueueOp::Join { wait: Wait::Forever })?).map(drop),
        }
    }

    /// Like [`join`](JoinableQueueProxy::join), waiting at most `timeout`; returns
    /// whether every item was processed.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, ProxyError> {
        match self.joinable() {
            Some(q) => Ok(q.join_timeout(timeout).is_ok()),
            None => reply::flag(self.queue.op(QueueOp::Join { wait: Wait::For(timeout) })?),
        }
    }

    /// Items put and not yet marked processed (a snapshot).
    pub fn unfinished_tasks(&self) -> Result<usize, ProxyError> {
        match self.joinable() {
            Some(q) => Ok(q.unfinished_tasks()),
            None => reply::count(self.queue.op(QueueOp::Unfinished)?),
        }
    }
}

impl<T> Deref for JoinableQueueProxy<T> {
    type Target = QueueProxy<T>;

    /// Every queue operation works on a joinable queue.
    fn deref(&self) -> &QueueProxy<T> {
        &self.queue
    }
}

impl<T> Clone for JoinableQueueProxy<T> {
    /// Another proxy for the same queue.
    fn clone(&self) -> Self {
        JoinableQueueProxy { queue: self.queue.clone() }
    }
}

impl<T> fmt::Debug for JoinableQueueProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueueProxy").field("object", &self.queue.obj).field("local", &self.is_local()).finish()
    }
}

impl<T> Serialize for JoinableQueueProxy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_queue(&self.queue.obj, self.queue.local.as_deref(), s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueueProxy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (obj, local) = deserialize_queue::<T, D>(d, true)?;
        Ok(JoinableQueueProxy::new(obj, local))
    }
}
