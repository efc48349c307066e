//! The protocol between proxies and the server: typed enums, encoded by the pipe
//! crate's connections (serde + bincode, size-limited, never panicking on garbage).
//!
//! A connection starts with [`Hello`] / [`Welcome`], then carries one [`Request`] and
//! one [`Response`] at a time, over the socket or, once a client on the same machine
//! has asked for one ([`Request::OpenMailbox`]), through a shared-memory mailbox (see
//! `crate::mailbox`). The server holds values as
//! their encodings ([`ByteBuf`]s): it never needs the proxies' types, so a server can
//! hold objects for programs whose types it was not compiled with.

use std::time::Duration;

use multiproc_process::FnRef;
use multiproc_queue::{JoinableQueue, Queue};
use multiproc_sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Bumped whenever a message below changes shape.
pub(crate) const PROTOCOL: u32 = 1;

/// A random token naming one process's connections to one server: objects stay alive
/// while some session that uses them has a connection open.
pub(crate) type SessionId = [u8; 16];

/// The first message on every connection, from the client.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) protocol: u32,
    pub(crate) session: SessionId,
}

/// The server's answer to [`Hello`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Welcome {
    pub(crate) protocol: u32,
    /// Random per server: a client that finds another number at the same address knows
    /// the server it used was replaced, and its objects are gone.
    pub(crate) instance: u64,
    pub(crate) server_pid: u32,
    pub(crate) max_message_size: u64,
}

/// The initial contents of a new object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Init {
    Dict(Vec<(ByteBuf, ByteBuf)>),
    List(Vec<ByteBuf>),
    Value(ByteBuf),
    /// `maxsize` 0: unbounded.
    Queue {
        maxsize: u64,
    },
    JoinableQueue {
        maxsize: u64,
    },
    User {
        typeid: String,
        init: ByteBuf,
    },
}

/// A shared-memory primitive to create.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum SyncInit {
    Lock,
    RLock,
    Semaphore(u32),
    BoundedSemaphore(u32),
    Event,
    Condition,
    Barrier(u32),
}

/// A shared-memory primitive itself (its descriptor travels out of band).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SyncHandle {
    Lock(Lock),
    RLock(RLock),
    Semaphore(Semaphore),
    BoundedSemaphore(BoundedSemaphore),
    Event(Event),
    Condition(Condition),
    Barrier(Barrier),
}

impl SyncHandle {
    /// The fingerprint of the primitive's type.
    pub(crate) fn fingerprint(&self) -> &'static str {
        match self {
            SyncHandle::Lock(_) => "Lock",
            SyncHandle::RLock(_) => "RLock",
            SyncHandle::Semaphore(_) => "Semaphore",
            SyncHandle::BoundedSemaphore(_) => "BoundedSemaphore",
            SyncHandle::Event(_) => "Event",
            SyncHandle::Condition(_) => "Condition",
            SyncHandle::Barrier(_) => "Barrier",
        }
    }
}

/// What a name is registered for.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Registered {
    /// A server-held object.
    Object { id: u64 },
    /// A shared-memory primitive, which the server keeps a handle of.
    Sync(SyncHandle),
}

/// How long a blocking queue operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Wait {
    Now,
    For(Duration),
    Forever,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Creates an object held by the server; answered with [`Response::Id`].
    Create {
        init: Init,
        fingerprint: String,
    },
    /// Creates a shared-memory primitive; answered with [`Response::Sync`].
    CreateSync(SyncInit),
    /// An operation on object `id`. `attach`: count this session as a holder of the
    /// object (the first call of a proxy in a process).
    Call {
        id: u64,
        attach: bool,
        op: Op,
    },
    /// This session holds one reference less to `id`. No answer.
    Release {
        id: u64,
    },
    Register {
        name: String,
        object: Registered,
    },
    /// Finds a named object, checking that it has the `expected` fingerprint; an
    /// object is attached to the session at once.
    Lookup {
        name: String,
        expected: String,
    },
    Unregister {
        name: String,
    },
    Names,
    /// The fingerprint of the client's executable (see `crate::binary`), to be allowed
    /// to run `update_with` over a connection whose peer process cannot be inspected
    /// (TCP).
    ProveBinary {
        fingerprint: ByteBuf,
    },
    Stats,
    Shutdown,
    /// Moves the rest of the conversation to a shared-memory mailbox (Unix sockets
    /// only); answered, on the socket, with [`Response::Mailbox`].
    OpenMailbox,
}

impl Request {
    /// Whether the request holds file descriptors (so it must travel on the socket).
    pub(crate) fn carries_fds(&self) -> bool {
        matches!(self, Request::Register { object: Registered::Sync(_), .. })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Dict(DictOp),
    List(ListOp),
    Value(ValueOp),
    Queue(QueueOp),
    User(ByteBuf),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum DictOp {
    Get(ByteBuf),
    Insert(ByteBuf, ByteBuf),
    Remove(ByteBuf),
    Contains(ByteBuf),
    Len,
    Keys,
    Values,
    Items,
    Clear,
    Update(Vec<(ByteBuf, ByteBuf)>),
    SetDefault(ByteBuf, ByteBuf),
    UpdateWith { key: ByteBuf, update: UpdateFn },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ListOp {
    Push(ByteBuf),
    Extend(Vec<ByteBuf>),
    Insert(u64, ByteBuf),
    /// `None`: the last item.
    Pop(Option<u64>),
    Get(u64),
    Set(u64, ByteBuf),
    Len,
    /// Removes the first item equal to this one.
    Remove(ByteBuf),
    Index(ByteBuf),
    Clear,
    ToVec,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ValueOp {
    Get,
    Set(ByteBuf),
    Replace(ByteBuf),
    UpdateWith(UpdateFn),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum QueueOp {
    /// The shared-memory queue itself (Unix-socket connections only).
    Open,
    Put {
        item: ByteBuf,
        wait: Wait,
    },
    Get {
        wait: Wait,
    },
    Qsize,
    Empty,
    Full,
    TaskDone,
    Join {
        wait: Wait,
    },
    Unfinished,
}

/// A read-modify-write function to run on the server: a monomorphised trampoline of
/// this crate that knows the value type, and the user's function, encoded as an
/// [`FnRef`] the trampoline decodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UpdateFn {
    pub(crate) trampoline: FnRef<UpdateCall, UpdateResult>,
    pub(crate) target: ByteBuf,
}

/// What the server hands the trampoline.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UpdateCall {
    pub(crate) target: ByteBuf,
    pub(crate) current: Option<ByteBuf>,
    pub(crate) limit: u64,
}

/// The trampoline's answer: the new value's encoding, or why there is none.
pub(crate) type UpdateResult = Result<ByteBuf, UpdateFailure>;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum UpdateFailure {
    Panicked(String),
    Decode(String),
    Encode(String),
}

/// A server-side failure, turned into the caller's error type by the proxy.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ServerError {
    ObjectGone,
    WrongKind { expected: String, found: String },
    NotFound(String),
    AlreadyRegistered(String),
    TypeMismatch { expected: String, found: String },
    NotRegistered(String),
    IndexOutOfRange { index: u64, len: u64 },
    Panicked(String),
    UpdateFailed(UpdateFailure),
    NotSameBinary(String),
    Unsupported(String),
    Empty,
    Full,
    Timeout,
    TooLarge { size: u64, limit: u64 },
    TaskDone,
    Queue(String),
    Failed(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Done,
    Id(u64),
    Bytes(ByteBuf),
    MaybeBytes(Option<ByteBuf>),
    List(Vec<ByteBuf>),
    Pairs(Vec<(ByteBuf, ByteBuf)>),
    Count(u64),
    Flag(bool),
    Index(Option<u64>),
    Sync(SyncHandle),
    Queue(Queue<ByteBuf>),
    Joinable(JoinableQueue<ByteBuf>),
    Names(Vec<String>),
    Stats(crate::ServerStats),
    Mailbox(multiproc_codec::Fd),
    Error(ServerError),
}

impl Response {
    /// A short name for error messages about unexpected answers.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Response::Done => "Done",
            Response::Id(_) => "Id",
            Response::Bytes(_) => "Bytes",
            Response::MaybeBytes(_) => "MaybeBytes",
            Response::List(_) => "List",
            Response::Pairs(_) => "Pairs",
            Response::Count(_) => "Count",
            Response::Flag(_) => "Flag",
            Response::Index(_) => "Index",
            Response::Sync(_) => "Sync",
            Response::Queue(_) => "Queue",
            Response::Joinable(_) => "Joinable",
            Response::Names(_) => "Names",
            Response::Stats(_) => "Stats",
            Response::Mailbox(_) => "Mailbox",
            Response::Error(_) => "Error",
        }
    }

    /// Whether the response holds file descriptors (so it must travel on the socket).
    pub(crate) fn carries_fds(&self) -> bool {
        matches!(self, Response::Sync(_) | Response::Queue(_) | Response::Joinable(_) | Response::Mailbox(_))
    }
}
