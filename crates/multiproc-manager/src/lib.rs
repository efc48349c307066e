//! Python's `multiprocessing.Manager()` / `SyncManager` / `BaseManager` for Rust: a
//! server that owns shared dicts, lists, values, queues and your own types, used from
//! any process through typed proxies, locally or over TCP with an authkey.
//!
//! | Python | here |
//! |---|---|
//! | `with Manager() as m:` / `m = SyncManager(); m.start()` | [`Manager::start`] / [`Manager::builder`]`()...start()`; dropping the last handle shuts down |
//! | `m.shutdown()` | [`Manager::shutdown`] |
//! | `m.dict()`, `m.list()`, `m.Value(t, x)`, `m.Namespace()` | [`Manager::dict`] → [`DictProxy`], [`Manager::list`] → [`ListProxy`], [`Manager::value`] → [`ValueProxy`] |
//! | `m.Queue()`, `m.JoinableQueue()` | [`Manager::queue`] → [`QueueProxy`], [`Manager::joinable_queue`] → [`JoinableQueueProxy`] |
//! | `m.Lock()`, `m.RLock()`, `m.Semaphore(n)`, `m.BoundedSemaphore(n)`, `m.Event()`, `m.Condition()`, `m.Barrier(n)` | the same names, returning the shared-memory primitives of `multiproc_sync` |
//! | `BaseManager.register(typeid, callable)` | the [`Shared`] trait, [`ManagerBuilder::register`], [`Manager::create`] → [`SharedProxy`] |
//! | `BaseManager(address, authkey).get_server().serve_forever()` | [`Manager::serve`] |
//! | `BaseManager(address, authkey).connect()` | [`Manager::connect`] |
//! | registering a shared object for other clients | [`Manager::register`] / [`Manager::get`] (by name, type-checked) |
//! | `d[k] += 1` (two requests, racy without a lock) | [`DictProxy::update_with`]: one round trip, atomic |
//!
//! # How it works
//! The server is a process (or, for [`Manager::serve`], threads of yours) that holds
//! every object by id, as encoded bytes, so it never needs your types and can serve
//! programs it was not built with. Each client connection is served by a thread of its
//! own; requests and responses are typed enums, sent over the authenticated connections
//! of `multiproc-pipe` with a size limit ([`ManagerBuilder::max_message_size`]). A
//! connection that sends garbage or an oversize request is dropped; the server goes on.
//!
//! A process reaches a server through one pool of connections shared by all its
//! proxies, so proxies can be used from many threads at once (each blocking call has a
//! connection of its own). On a Unix socket each connection also gets a shared-memory
//! *mailbox*: requests and responses that fit (64 KiB) and hold no file descriptors are
//! exchanged there, spinning briefly and then sleeping on a futex, which takes a round
//! trip from about 5 µs through the socket to about 1.5 µs; the socket still carries the
//! rest, and tells each side when the other has died. A proxy passed to a child process carries the server's
//! address, the object's id and, if it is not the process authkey the child inherits,
//! the authkey; the child connects by itself, under every start method.
//!
//! An object lives while some process holds a proxy it has used (or a name refers to
//! it). A process that dies — even by SIGKILL — has its connections closed by the
//! kernel, and the server releases what it held; see [`ProxyError::ObjectGone`] for the
//! one rule to follow when passing proxies to children.
//!
//! Locks, semaphores, events, conditions and barriers are the real shared-memory
//! primitives of `multiproc-sync`, made by the server and handed over: they pass
//! between processes by themselves, are as fast as without a manager, and report a
//! holder's death ([`multiproc_sync::LockError::OwnerDied`]). Queues are
//! `multiproc-queue` queues held by the server, used directly through shared memory
//! over a Unix socket and through the server over TCP. Handles with file descriptors
//! cannot cross TCP, so a remote (TCP) manager offers dicts, lists, values, queues and
//! your own types, not the other primitives.
//!
//! # When things die
//! - The server killed (or shut down): every proxy call returns
//!   [`ProxyError::ServerGone`] at once, also a call that was waiting.
//! - A client killed in the middle of a request: the server goes on serving the
//!   others; the client's references are released; a lock it held is reported to the
//!   next locker; a queue get it was waiting in is abandoned without taking an item.
//! - The owner of a started manager killed: the server process notices (through a
//!   pidfd) and exits.
//!
//! # `update_with` and the same executable
//! [`DictProxy::update_with`] and [`ValueProxy::update_with`] run a `fn` of yours in the
//! server, sent as its offset in the executable. The server only does so for a client
//! running the same executable file: over a Unix socket it checks the peer process's
//! `/proc/PID/exe`; over TCP the client first sends a fingerprint of its executable (the
//! GNU build id the linker put in it, or else the file's SHA-256), which must equal the
//! server's. A different build gets [`UpdateError::NotSameBinary`].
//!
//! # Example
//! ```
//! use multiproc_manager::{DictProxy, Manager};
//! use multiproc_process::{Process, StartMethod};
//!
//! fn decrement(n: Option<i64>) -> i64 { n.unwrap_or(0) - 1 }
//!
//! fn worker(counts: DictProxy<String, i64>) {
//!     counts.update_with("count", decrement).expect("update");
//! }
//!
//! let manager = Manager::builder().start_method(StartMethod::Fork).start()?;
//! let counts = manager.dict_from([("count".to_owned(), 10)])?;
//! let mut workers: Vec<_> =
//!     (0..10).map(|_| Process::new(worker, counts.clone()).with_start_method(StartMethod::Fork)).collect();
//! for w in &mut workers {
//!     w.start()?;
//! }
//! for w in &mut workers {
//!     w.join()?;
//! }
//! assert_eq!(counts.get("count")?, Some(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod binary;
mod client;
mod dict;
mod encoding;
mod error;
mod list;
mod mailbox;
mod manager;
mod named;
mod queue;
mod reply;
mod server;
mod shared;
mod update;
mod value;
mod wire;

pub use dict::DictProxy;
pub use error::{ConnectError, GetError, LookupError, ProxyError, PutError, ShutdownError, StartError, UpdateError};
pub use list::ListProxy;
pub use manager::{DEFAULT_MAX_MESSAGE_SIZE, Manager, ManagerBuilder};
pub use named::Shareable;
pub use queue::{JoinableQueueProxy, QueueProxy};
pub use server::ServerStats;
pub use shared::{Shared, SharedProxy};
pub use value::ValueProxy;

// Compiles and runs the README's example with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
