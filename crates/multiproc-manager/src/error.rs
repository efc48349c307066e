//! The error types, one per family of operations.

use std::fmt;
use std::io;

use multiproc_codec::{DecodeError, EncodeError, human_size};
use multiproc_pipe::Address;

fn human(bytes: u64) -> String {
    human_size(usize::try_from(bytes).unwrap_or(usize::MAX))
}

/// Why [`Manager::start`](crate::Manager::start), [`Manager::serve`](crate::Manager::serve)
/// or [`ManagerBuilder::start`](crate::ManagerBuilder::start) /
/// [`serve`](crate::ManagerBuilder::serve) failed. No server is left running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The server process could not be started.
    #[error("cannot start the manager's server process: {0}")]
    Process(#[from] multiproc_process::StartError),
    /// The server cannot listen on the address it was given.
    #[error("the manager cannot listen: {0}")]
    Listen(#[from] multiproc_pipe::ListenError),
    /// The server process started but failed before it was ready (it says why).
    #[error("the manager's server process failed to start: {0}")]
    Server(String),
    /// The server is up but this process cannot reach it.
    #[error("the manager's server started but cannot be reached: {0}")]
    Connect(#[from] ConnectError),
    /// A system call failed (out of descriptors, processes or memory).
    #[error("cannot start the manager: {0}")]
    Io(#[from] io::Error),
}

/// Why [`Manager::connect`](crate::Manager::connect) (or the first connection of a
/// proxy) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Nothing listens at the address, or the authentication handshake failed (a wrong
    /// authkey is reported on both sides).
    #[error("{0}")]
    Pipe(#[from] multiproc_pipe::ConnectError),
    /// The peer is a manager built from another version of this crate.
    #[error(
        "the manager at {address} speaks protocol version {theirs} and this program version {ours}; \
         build both programs against the same multiproc-manager"
    )]
    Version {
        /// The manager's address.
        address: Address,
        /// Our protocol version.
        ours: u32,
        /// The server's protocol version.
        theirs: u32,
    },
    /// The peer authenticated but did not greet like a manager.
    #[error("the server at {address} did not greet like a multiproc manager ({reason}); is it one?")]
    Greeting {
        /// The address.
        address: Address,
        /// What went wrong.
        reason: String,
    },
}

/// Why a proxy call (or creating a shared object) failed.
///
/// [`ServerGone`](ProxyError::ServerGone) is what every call returns once the server is
/// gone, whatever the reason (shut down, killed, unreachable): promptly, never a hang.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The server was shut down, or its process died, or the connection to it broke.
    #[error(
        "the manager's server is gone ({reason}): it was shut down or its process died; \
         the objects it held are lost, start a new manager"
    )]
    ServerGone {
        /// What the connection reported.
        reason: String,
    },
    /// A new connection to the server was refused by its authentication.
    #[error("cannot connect to the manager: {0}")]
    Connect(#[from] ConnectError),
    /// The object no longer exists on the server: every process that held a proxy to it
    /// had dropped it (or exited) before this one first used it.
    #[error(
        "the shared object no longer exists on the manager: every process holding a proxy to it \
         dropped it or exited before this one used it; keep a proxy alive (in the parent, say) \
         until the others have used theirs, or register the object under a name"
    )]
    ObjectGone,
    /// A request or response is larger than the manager's message limit; nothing was
    /// changed.
    #[error(
        "message of {} exceeds the manager's {} limit; nothing was changed \
         (raise it with `ManagerBuilder::max_message_size`)",
        human(*size),
        human(*limit)
    )]
    TooLarge {
        /// The message size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A value could not be encoded (it holds a handle with a file descriptor, or its
    /// `Serialize` failed); nothing was sent.
    #[error("cannot encode the value for the manager: {0}")]
    Encode(EncodeError),
    /// A value from the server does not decode as the proxy's type.
    #[error("a value from the manager does not decode as the proxy's type: {0}")]
    Decode(#[from] DecodeError),
    /// A list index is out of range.
    #[error("list index {index} is out of range for a list of length {len}")]
    IndexOutOfRange {
        /// The index that was asked for.
        index: u64,
        /// The list's length at that moment.
        len: u64,
    },
    /// The object exists but was created with other types than this proxy names.
    #[error(
        "the manager holds a {found} where this program expects a {expected}; \
         use the types it was created with"
    )]
    TypeMismatch {
        /// What this program asked for.
        expected: String,
        /// What the server holds.
        found: String,
    },
    /// [`Manager::create`](crate::Manager::create) named a type the server does not know.
    #[error(
        "the manager has no shared type {typeid:?}; register it with \
         `ManagerBuilder::register::<T>()` in the program that starts or serves the manager"
    )]
    NotRegistered {
        /// The type's [`TYPEID`](crate::Shared::TYPEID).
        typeid: String,
    },
    /// The operation needs a Unix-socket manager (handles with file descriptors cannot
    /// travel over TCP).
    #[error("{0}")]
    Unsupported(String),
    /// The shared object's code ([`Shared::create`](crate::Shared::create) or
    /// [`Shared::handle`](crate::Shared::handle)) panicked on the server.
    #[error("the shared object's code panicked on the manager: {message}; the object may be half-updated")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// A joinable queue's `task_done` was called more often than items were taken.
    #[error("task_done() was called more times than there were items put in the queue")]
    TaskDone,
    /// The shared-memory queue behind a local queue proxy failed.
    #[error("the shared queue failed: {0}")]
    Queue(String),
    /// The server answered something this proxy did not expect.
    #[error(
        "the manager answered something unexpected ({0}); are both sides built from the same \
         multiproc-manager?"
    )]
    Protocol(String),
}

impl From<EncodeError> for ProxyError {
    fn from(e: EncodeError) -> ProxyError {
        match e {
            EncodeError::TooLarge { size, limit } => ProxyError::TooLarge { size: size as u64, limit: limit as u64 },
            other => ProxyError::Encode(other),
        }
    }
}

impl ProxyError {
    /// Whether this is [`ProxyError::ServerGone`].
    pub fn is_server_gone(&self) -> bool {
        matches!(self, ProxyError::ServerGone { .. })
    }
}

/// Why [`DictProxy::update_with`](crate::DictProxy::update_with) or
/// [`ValueProxy::update_with`](crate::ValueProxy::update_with) failed. The value was not
/// changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The function panicked on the server.
    #[error("the update function panicked on the manager: {message}; the value was not changed")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The server runs another executable, so it cannot run a function of ours.
    #[error(
        "update_with runs your function inside the manager's server, which needs both to run the \
         same executable, and this program is a different build ({0}); use get + insert under a \
         manager lock instead"
    )]
    NotSameBinary(String),
    /// Anything a proxy call can fail with.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

/// Why [`Manager::register`](crate::Manager::register),
/// [`Manager::get`](crate::Manager::get) or [`Manager::unregister`](crate::Manager::unregister)
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No object is registered under that name.
    #[error("no object is registered under the name {name:?} on this manager (see `Manager::names`)")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The name is taken.
    #[error("the name {name:?} is already registered on this manager; unregister it first or pick another")]
    AlreadyRegistered {
        /// The name.
        name: String,
    },
    /// The object was created with other types than the ones it is opened as.
    #[error(
        "{name:?} is a {found} on the manager but was opened as a {expected}; \
         open it with the types it was created with"
    )]
    TypeMismatch {
        /// The name.
        name: String,
        /// The type it was opened as.
        expected: String,
        /// The type it has.
        found: String,
    },
    /// Anything a proxy call can fail with.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

/// Why [`Manager::shutdown`](crate::Manager::shutdown) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// This handle came from [`Manager::connect`](crate::Manager::connect) (or was
    /// passed to this process): only the program that started or serves the manager
    /// shuts it down.
    #[error(
        "this manager handle does not own the server (it came from `Manager::connect` or from \
         another process); only the program that started or serves it can shut it down — drop \
         the handle to disconnect"
    )]
    NotOwner,
    /// Waiting for the server process failed.
    #[error("cannot wait for the manager's server process: {0}")]
    Io(#[from] io::Error),
}

/// Why a put on a [`QueueProxy`](crate::QueueProxy) failed. The item is handed back.
#[derive(thiserror::Error)]
pub enum PutError<T> {
    /// The queue stayed full (`put_nowait`, or the timeout of `put_timeout` expired).
    #[error("the queue is full")]
    Full(T),
    /// The put failed for another reason.
    #[error("cannot put into the queue: {error}")]
    Failed {
        /// The item that was not put.
        item: T,
        /// Why.
        #[source]
        error: ProxyError,
    },
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(item) | PutError::Failed { item, .. } => item,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Failed { error, .. } => f.debug_struct("Failed").field("error", error).finish_non_exhaustive(),
        }
    }
}

/// Why a get on a [`QueueProxy`](crate::QueueProxy) returned no item.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// The queue stayed empty (`get_nowait`, or the timeout of `get_timeout` expired).
    #[error("the queue is empty")]
    Empty,
    /// The get failed for another reason.
    #[error("cannot get from the queue: {0}")]
    Failed(#[from] ProxyError),
}
