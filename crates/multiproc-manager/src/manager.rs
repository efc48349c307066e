//! `Manager` and `ManagerBuilder`: starting, serving, connecting to and shutting down a
//! manager, and creating shared objects through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use multiproc_pipe::{Address, Listener, Pipe};
use multiproc_process::{Context, JoinError, Process, StartMethod};
use multiproc_sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;

use crate::client::{Client, ObjectRef, Target, unexpected};
use crate::encoding::encode;
use crate::error::{ConnectError, LookupError, ProxyError, ShutdownError, StartError};
use crate::named::{Found, Shareable, open_local};
use crate::server::{InProcess, ServerConfig, State};
use crate::shared::{Registration, Shared, SharedProxy};
use crate::wire::{Init, Request, Response, ServerError, SyncHandle, SyncInit};
use crate::{DictProxy, JoinableQueueProxy, ListProxy, QueueProxy, ServerStats, ValueProxy, dict, list, queue, reply};

/// The message limit of a manager unless set with [`ManagerBuilder::max_message_size`]:
/// 64 MiB per request and per response.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// How long a new server process may take to say it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server process may take to exit after a shutdown request before it is
/// killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A manager: a server owning shared objects, and the handle to create and find them
/// (Python's `multiprocessing.Manager()` / `SyncManager`, and `BaseManager` for remote
/// use).
///
/// - [`Manager::start`] (or [`Manager::builder`]`()...start()`) starts a server process
///   with the start method of your choice and returns its owner handle.
/// - [`Manager::serve`] serves from threads of this process, typically on TCP for other
///   programs; [`Manager::connect`] is how those programs reach it.
///
/// The handle creates shared objects ([`dict`](Manager::dict), [`list`](Manager::list),
/// [`value`](Manager::value), [`queue`](Manager::queue), [`lock`](Manager::lock), ...,
/// and your own [`Shared`] types with [`create`](Manager::create)), registers them
/// under names and finds them again ([`register`](Manager::register),
/// [`get`](Manager::get)). Every proxy can be passed to a child process as an argument,
/// under every start method, and used from any number of threads.
///
/// **Lifetime.** The server stops when the owner calls [`shutdown`](Manager::shutdown)
/// or drops its last handle (clones share one), and a server process exits by itself
/// when the process that started it ends, even by SIGKILL. Proxies that outlive their
/// server return [`ProxyError::ServerGone`] from every call, promptly.
///
/// **Locks, semaphores, events, conditions, barriers and queues** are the shared-memory
/// primitives of `multiproc-sync` and `multiproc-queue`, created by the server and
/// handed to the caller (queues behind a [`QueueProxy`]); they pass between processes by
/// themselves and report a holder's death (a `Lock` held by a process that was killed
/// gives `LockError::OwnerDied` to the next locker). Of these, only queues work over
/// TCP (every queue operation then goes through the server); the others need a manager
/// on a Unix socket, the default. Dicts, lists, values and your own types work
/// everywhere.
///
/// ```
/// use multiproc_manager::Manager;
/// use multiproc_process::StartMethod;
///
/// let manager = Manager::builder().start_method(StartMethod::Fork).start()?;
/// let counts = manager.dict::<String, u32>()?;
/// let lock = manager.lock()?;
/// {
///     let _held = lock.lock().map_err(|e| e.map(drop))?;
///     let n = counts.get_or("apples", 0)?;
///     counts.insert("apples".to_owned(), n + 1)?;
/// }
/// manager.register("counts", &counts)?;
/// let again: multiproc_manager::DictProxy<String, u32> = manager.get("counts")?;
/// assert_eq!(again.get("apples")?, Some(1));
/// manager.shutdown()?;
/// assert!(counts.len().unwrap_err().is_server_gone());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

enum Owner {
    /// A handle from `connect` or from another process.
    None,
    Process(Box<Process<()>>),
    InProcess(InProcess),
    /// Shut down.
    Done,
}

struct Inner {
    client: Arc<Client>,
    owner: Mutex<Owner>,
    owner_pid: u32,
}

impl Inner {
    fn shutdown(&self) -> Result<(), ShutdownError> {
        let owner = {
            let mut guard = self.owner.lock();
            if matches!(*guard, Owner::None) {
                return Err(ShutdownError::NotOwner);
            }
            std::mem::replace(&mut *guard, Owner::Done)
        };
        match owner {
            Owner::None | Owner::Done => return Ok(()),
            Owner::Process(mut p) => {
                // Ask politely, from a helper thread so that a server which cannot
                // answer (stopped, stuck) costs at most the grace period; then kill it.
                // The helper's call ends when the server does.
                let client = self.client.clone();
                let _ = std::thread::Builder::new()
                    .name("multiproc-manager-shutdown".to_owned())
                    .spawn(move || client.call(&Request::Shutdown));
                // Otherwise it returned, or had died: reaped either way.
                if let Err(JoinError::Timeout) = p.join_timeout(SHUTDOWN_GRACE) {
                    p.kill()?;
                    let _ = p.join();
                }
            }
            Owner::InProcess(mut server) => server.stop(),
        }
        self.client.close_idle();
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.owner_pid == std::process::id() {
            let _ = self.shutdown();
        } else {
            // A fork child's copy of its parent's handle: the server is the parent's,
            // and so is the process handle (not our child to reap).
            std::mem::forget(std::mem::replace(self.owner.get_mut(), Owner::None));
        }
    }
}

/// Options for a new manager: start method, address, authkey, message limit, and your
/// own shared types. From [`Manager::builder`].
///
/// ```
/// use multiproc_manager::Manager;
/// use multiproc_pipe::Address;
/// use multiproc_process::StartMethod;
///
/// let manager = Manager::builder()
///     .start_method(StartMethod::Fork)
///     .address(Address::unique_abstract())
///     .authkey(b"a secret shared with the children")
///     .max_message_size(1 << 20)
///     .start()?;
/// let v = manager.value(7u8)?;
/// assert_eq!(v.get()?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ManagerBuilder {
    method: Option<StartMethod>,
    address: Option<Address>,
    authkey: Option<Vec<u8>>,
    max_message_size: usize,
    types: Vec<Registration>,
}

#[derive(Serialize, Deserialize)]
struct ServerArgs {
    ready: multiproc_pipe::Connection,
    address: Address,
    authkey: ByteBuf,
    max_message_size: u64,
    types: Vec<Registration>,
}

/// The server process's `main`.
fn server_main(args: ServerArgs) {
    let ServerArgs { ready, address, authkey, max_message_size, types } = args;
    let fail = |m: String| {
        let _ = ready.send(&Err::<Address, String>(m));
    };
    let limit = usize::try_from(max_message_size).unwrap_or(usize::MAX);
    let mut listener = match Listener::bind(&address, Some(&authkey)) {
        Ok(l) => l,
        Err(e) => return fail(e.to_string()),
    };
    listener.set_max_message_size(limit);
    let state = match State::new(ServerConfig { max_message_size: limit, types }) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot set up the server: {e}")),
    };
    // Exit with the owner, however it ends (SIGKILL included): its pidfd becomes
    // readable when it does.
    let Some(owner) = multiproc_process::parent_process() else {
        return fail("the server has no parent process to serve".to_owned());
    };
    if owner.sentinel().is_none() {
        return; // The owner is already gone.
    }
    let watcher = state.clone();
    let spawned = std::thread::Builder::new().name("multiproc-manager-owner".to_owned()).spawn(move || {
        while owner.is_alive() {
            if let Some(fd) = owner.sentinel() {
                // An error (EINTR) just means look again.
                let _ = multiproc_sys::poll::readable(&[fd], Some(Duration::from_secs(1)));
            }
        }
        watcher.stop();
    });
    if let Err(e) = spawned {
        return fail(format!("cannot start the server's owner watch: {e}"));
    }
    if ready.send(&Ok::<Address, String>(listener.address().clone())).is_err() {
        return;
    }
    drop(ready);
    state.run(listener);
}

static SERVERS: AtomicU32 = AtomicU32::new(1);

impl ManagerBuilder {
    fn new() -> ManagerBuilder {
        ManagerBuilder {
            method: None,
            address: None,
            authkey: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            types: Vec::new(),
        }
    }

    /// The start method of the server process (default: the process-wide one,
    /// [`multiproc_process::get_start_method`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Uses a context's start method (Python's `ctx.Manager()`).
    pub fn context(self, context: Context) -> Self {
        self.start_method(context.start_method())
    }

    /// Where the server listens (default: a fresh abstract Unix socket, which leaves no
    /// file behind even if the server is killed). A socket file ([`Address::Unix`]) is
    /// removed when the server stops, but stays behind if it is killed. A TCP address
    /// makes the manager reachable from other programs and hosts, but over TCP there are
    /// no locks or other shared-memory primitives, and queue operations go through the
    /// server.
    pub fn address(mut self, address: Address) -> Self {
        self.address = Some(address);
        self
    }

    /// The key clients must prove they hold (default: the process authkey,
    /// [`multiproc_process::authkey`], which child processes inherit).
    pub fn authkey(mut self, key: impl AsRef<[u8]>) -> Self {
        self.authkey = Some(key.as_ref().to_vec());
        self
    }

    /// The largest request or response, in bytes ([`DEFAULT_MAX_MESSAGE_SIZE`] unless
    /// set). A client that sends more is disconnected; a proxy refuses to send more
    /// ([`ProxyError::TooLarge`]).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Makes the [`Shared`] type `S` available to [`Manager::create`] (Python's
    /// `BaseManager.register(typeid, callable)`).
    pub fn register<S: Shared>(mut self) -> Self {
        self.types.retain(|t| t.typeid != S::TYPEID);
        self.types.push(Registration::of::<S>());
        self
    }

    fn key(&self) -> Vec<u8> {
        self.authkey.clone().unwrap_or_else(multiproc_process::authkey)
    }

    /// Starts the server process and returns its owner handle (Python's
    /// `manager.start()`). The server exits when the handle is shut down or dropped, or
    /// when this process ends, even by SIGKILL.
    pub fn start(self) -> Result<Manager, StartError> {
        let method = self.method.unwrap_or_else(multiproc_process::get_start_method);
        let address = self.address.clone().unwrap_or_else(Address::unique_abstract);
        let authkey = self.key();
        let (ours, theirs) = Pipe::duplex()?;
        let args = ServerArgs {
            ready: theirs,
            address,
            authkey: ByteBuf::from(authkey.clone()),
            max_message_size: self.max_message_size as u64,
            types: self.types,
        };
        let name = format!("SyncManager-{}", SERVERS.fetch_add(1, Ordering::Relaxed));
        let mut process = Process::new(server_main, args).with_name(name).with_start_method(method);
        process.start()?;
        let address = match ours.recv_timeout::<Result<Address, String>>(READY_TIMEOUT) {
            Ok(Ok(address)) => address,
            Ok(Err(message)) => {
                let _ = process.join();
                return Err(StartError::Server(message));
            }
            Err(e) => {
                let _ = process.kill();
                let how = match process.join() {
                    Ok(()) => "it returned".to_owned(),
                    Err(j) => j.to_string(),
                };
                return Err(StartError::Server(format!("it ended before it was ready ({e}; {how})")));
            }
        };
        let client = match connected(&Target { address, authkey }) {
            Ok(c) => c,
            Err(e) => {
                let _ = process.kill();
                let _ = process.join();
                return Err(e.into());
            }
        };
        Ok(Manager::owning(client, Owner::Process(Box::new(process))))
    }

    /// Serves from threads of this process, listening on the builder's address (Python's
    /// `BaseManager(address, authkey).get_server().serve_forever()`, without blocking).
    /// The server stops when the returned handle is shut down or dropped.
    pub fn serve(self) -> Result<Manager, StartError> {
        let address = self.address.clone().unwrap_or_else(Address::unique_abstract);
        let authkey = self.key();
        let mut listener = Listener::bind(&address, Some(&authkey))?;
        listener.set_max_message_size(self.max_message_size);
        let bound = listener.address().clone();
        let server =
            InProcess::start(listener, ServerConfig { max_message_size: self.max_message_size, types: self.types })?;
        let client = connected(&Target { address: bound, authkey })?;
        Ok(Manager::owning(client, Owner::InProcess(server)))
    }
}

/// This process's pool for `target`, with one connection made (a fresh pool if the one
/// found belonged to a server since replaced at the same address).
fn connected(target: &Target) -> Result<Arc<Client>, ConnectError> {
    let client = Client::get(target);
    match client.warm() {
        Err(_) if client.is_stale() => {
            let fresh = Client::get(target);
            fresh.warm()?;
            Ok(fresh)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(client),
    }
}

impl Manager {
    fn owning(client: Arc<Client>, owner: Owner) -> Manager {
        Manager { inner: Arc::new(Inner { client, owner: Mutex::new(owner), owner_pid: std::process::id() }) }
    }

    /// Starts a manager with the default options (Python's `multiprocessing.Manager()`):
    /// a server process started with the process-wide start method, listening on a fresh
    /// abstract Unix socket, authenticating with the process authkey.
    pub fn start() -> Result<Manager, StartError> {
        ManagerBuilder::new().start()
    }

    /// Options for a new manager.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::new()
    }

    /// Serves a manager from threads of this process at `address`, for other programs
    /// to [`connect`](Manager::connect) to (`authkey: None`: the process authkey).
    pub fn serve(address: &Address, authkey: Option<&[u8]>) -> Result<Manager, StartError> {
        let mut b = ManagerBuilder::new().address(address.clone());
        if let Some(key) = authkey {
            b = b.authkey(key);
        }
        b.serve()
    }

    /// Connects to a manager started or served elsewhere (Python's
    /// `BaseManager(address, authkey).connect()`; `authkey: None`: the process
    /// authkey). The handle does not own the server.
    pub fn connect(address: &Address, authkey: Option<&[u8]>) -> Result<Manager, ConnectError> {
        let authkey = authkey.map_or_else(multiproc_process::authkey, <[u8]>::to_vec);
        let client = connected(&Target { address: address.clone(), authkey })?;
        Ok(Manager::owning(client, Owner::None))
    }

    fn client(&self) -> Arc<Client> {
        if self.inner.client.is_current() { self.inner.client.clone() } else { Client::get(self.inner.client.target()) }
    }

    /// Where the server listens (with the port that was given, for `127.0.0.1:0`).
    pub fn address(&self) -> &Address {
        &self.inner.client.target().address
    }

    /// The server's process id (this process's for a served manager).
    pub fn server_pid(&self) -> Option<u32> {
        if self.inner.owner_pid == std::process::id() {
            if let Owner::Process(p) = &*self.inner.owner.lock() {
                return p.pid();
            }
        }
        self.inner.client.server_pid()
    }

    /// Whether this handle owns the server (started or serves it, in this process).
    pub fn is_owner(&self) -> bool {
        self.inner.owner_pid == std::process::id()
            && matches!(*self.inner.owner.lock(), Owner::Process(_) | Owner::InProcess(_))
    }

    /// Stops the server (Python's `manager.shutdown()`): its objects are gone, and every
    /// proxy call returns [`ProxyError::ServerGone`] from now on. A server process is
    /// asked to exit, killed if it does not within seconds, and reaped. Only the owner
    /// may shut down ([`ShutdownError::NotOwner`]); a second call does nothing.
    pub fn shutdown(&self) -> Result<(), ShutdownError> {
        if self.inner.owner_pid != std::process::id() {
            return Err(ShutdownError::NotOwner);
        }
        self.inner.shutdown()
    }

    /// Counts of the server's objects, names, sessions and connections.
    pub fn stats(&self) -> Result<ServerStats, ProxyError> {
        match self.client().call(&Request::Stats)? {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    // ---- creating objects ----

    fn new_object(&self, init: Init, fingerprint: String) -> Result<Arc<ObjectRef>, ProxyError> {
        let client = self.client();
        let id = reply::id(client.call(&Request::Create { init, fingerprint: fingerprint.clone() })?)?;
        Ok(ObjectRef::attached(client, id, fingerprint))
    }

    fn limit(&self) -> usize {
        self.client().max_message_size()
    }

    /// A new, empty shared dict (Python's `manager.dict()`).
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, ProxyError>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        self.dict_from(std::iter::empty())
    }

    /// A new shared dict holding `pairs` (Python's `manager.dict(pairs)`).
    pub fn dict_from<K, V>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<DictProxy<K, V>, ProxyError>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        let limit = self.limit();
        let pairs = pairs.into_iter().map(|(k, v)| Ok((encode(&k, limit)?, encode(&v, limit)?)));
        let pairs = pairs.collect::<Result<Vec<_>, ProxyError>>()?;
        Ok(DictProxy::from_ref(self.new_object(Init::Dict(pairs), dict::fingerprint::<K, V>())?))
    }

    /// A new, empty shared list (Python's `manager.list()`).
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>, ProxyError> {
        self.list_from(std::iter::empty())
    }

    /// A new shared list holding `items` (Python's `manager.list(items)`).
    pub fn list_from<T: Serialize + DeserializeOwned>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ListProxy<T>, ProxyError> {
        let limit = self.limit();
        let items = items.into_iter().map(|i| encode(&i, limit)).collect::<Result<Vec<_>, _>>()?;
        Ok(ListProxy::from_ref(self.new_object(Init::List(items), list::fingerprint::<T>())?))
    }

    /// A new shared value (Python's `manager.Value(typecode, value)`, or a
    /// `manager.Namespace()` when `T` is a struct).
    pub fn value<T: Serialize + DeserializeOwned>(&self, initial: T) -> Result<ValueProxy<T>, ProxyError> {
        let bytes = encode(&initial, self.limit())?;
        Ok(ValueProxy::from_ref(self.new_object(Init::Value(bytes), crate::value::fingerprint::<T>())?))
    }

    /// A new, unbounded shared queue (Python's `manager.Queue()`).
    pub fn queue<T: Serialize + DeserializeOwned>(&self) -> Result<QueueProxy<T>, ProxyError> {
        self.new_queue(0)
    }

    /// A new shared queue holding at most `maxsize` items (Python's
    /// `manager.Queue(maxsize)`); `maxsize` must be at least 1.
    pub fn bounded_queue<T: Serialize + DeserializeOwned>(&self, maxsize: usize) -> Result<QueueProxy<T>, ProxyError> {
        if maxsize == 0 {
            return Err(ProxyError::Queue("a bounded queue needs a maxsize of at least 1".to_owned()));
        }
        self.new_queue(maxsize as u64)
    }

    fn new_queue<T>(&self, maxsize: u64) -> Result<QueueProxy<T>, ProxyError> {
        let obj = self.new_object(Init::Queue { maxsize }, queue::fingerprint::<T>(false))?;
        let local = open_local(&obj)?;
        Ok(QueueProxy::new(obj, local))
    }

    /// A new, unbounded joinable queue (Python's `manager.JoinableQueue()`).
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(&self) -> Result<JoinableQueueProxy<T>, ProxyError> {
        self.new_joinable_queue(0)
    }

    /// A new joinable queue holding at most `maxsize` items; `maxsize` must be at least 1.
    pub fn bounded_joinable_queue<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<JoinableQueueProxy<T>, ProxyError> {
        if maxsize == 0 {
            return Err(ProxyError::Queue("a bounded queue needs a maxsize of at least 1".to_owned()));
        }
        self.new_joinable_queue(maxsize as u64)
    }

    fn new_joinable_queue<T>(&self, maxsize: u64) -> Result<JoinableQueueProxy<T>, ProxyError> {
        let obj = self.new_object(Init::JoinableQueue { maxsize }, queue::fingerprint::<T>(true))?;
        let local = open_local(&obj)?;
        Ok(JoinableQueueProxy::new(obj, local))
    }

    /// A new value of your [`Shared`] type `S`, made in the server by `S::create(init)`
    /// (Python: calling a type registered with `BaseManager.register`). The server must
    /// know the type ([`ManagerBuilder::register`]).
    pub fn create<S: Shared>(&self, init: S::Init) -> Result<SharedProxy<S>, ProxyError> {
        let init = Init::User { typeid: S::TYPEID.to_owned(), init: encode(&init, self.limit())? };
        Ok(SharedProxy::from_ref(self.new_object(init, crate::shared::fingerprint::<S>())?))
    }

    fn sync(&self, init: SyncInit) -> Result<SyncHandle, ProxyError> {
        match self.client().call(&Request::CreateSync(init))? {
            Response::Sync(h) => Ok(h),
            other => Err(unexpected(other)),
        }
    }

    /// A new lock (Python's `manager.Lock()`): a [`multiproc_sync::Lock`] in shared
    /// memory, made by the server. A process that dies holding it is reported to the
    /// next locker (`LockError::OwnerDied`). Needs a Unix-socket manager.
    pub fn lock(&self) -> Result<Lock, ProxyError> {
        match self.sync(SyncInit::Lock)? {
            SyncHandle::Lock(l) => Ok(l),
            other => Err(ProxyError::Protocol(format!("a {} instead of a Lock", other.fingerprint()))),
        }
    }

    /// A new re-entrant lock (Python's `manager.RLock()`).
    pub fn rlock(&self) -> Result<RLock, ProxyError> {
        match self.sync(SyncInit::RLock)? {
            SyncHandle::RLock(l) => Ok(l),
            other => Err(ProxyError::Protocol(format!("a {} instead of an RLock", other.fingerprint()))),
        }
    }

    /// A new semaphore with `value` permits (Python's `manager.Semaphore(value)`).
    pub fn semaphore(&self, value: u32) -> Result<Semaphore, ProxyError> {
        match self.sync(SyncInit::Semaphore(value))? {
            SyncHandle::Semaphore(s) => Ok(s),
            other => Err(ProxyError::Protocol(format!("a {} instead of a Semaphore", other.fingerprint()))),
        }
    }

    /// A new bounded semaphore (Python's `manager.BoundedSemaphore(value)`).
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphore, ProxyError> {
        match self.sync(SyncInit::BoundedSemaphore(value))? {
            SyncHandle::BoundedSemaphore(s) => Ok(s),
            other => Err(ProxyError::Protocol(format!("a {} instead of a BoundedSemaphore", other.fingerprint()))),
        }
    }

    /// A new event (Python's `manager.Event()`).
    pub fn event(&self) -> Result<Event, ProxyError> {
        match self.sync(SyncInit::Event)? {
            SyncHandle::Event(e) => Ok(e),
            other => Err(ProxyError::Protocol(format!("a {} instead of an Event", other.fingerprint()))),
        }
    }

    /// A new condition variable with its own re-entrant lock (Python's
    /// `manager.Condition()`).
    pub fn condition(&self) -> Result<Condition, ProxyError> {
        match self.sync(SyncInit::Condition)? {
            SyncHandle::Condition(c) => Ok(c),
            other => Err(ProxyError::Protocol(format!("a {} instead of a Condition", other.fingerprint()))),
        }
    }

    /// A new barrier for `parties` participants (Python's `manager.Barrier(parties)`).
    pub fn barrier(&self, parties: u32) -> Result<Barrier, ProxyError> {
        match self.sync(SyncInit::Barrier(parties))? {
            SyncHandle::Barrier(b) => Ok(b),
            other => Err(ProxyError::Protocol(format!("a {} instead of a Barrier", other.fingerprint()))),
        }
    }

    // ---- names ----

    /// Registers `object` under `name`, so any process connected to the manager can
    /// [`get`](Manager::get) it. The name keeps the object alive until
    /// [`unregister`](Manager::unregister)ed.
    ///
    /// A proxy can only be registered with the manager that holds its object.
    pub fn register<O: Shareable>(&self, name: &str, object: &O) -> Result<(), LookupError> {
        if let Some(home) = object.home().filter(|home| **home != *self.inner.client.target()) {
            return Err(ProxyError::Unsupported(format!(
                "this proxy's object lives in the manager at {}, not in this one at {}; register it there",
                home.address,
                self.address()
            ))
            .into());
        }
        let req = Request::Register { name: name.to_owned(), object: object.registered() };
        match self.client().call(&req)? {
            Response::Done => Ok(()),
            Response::Error(ServerError::AlreadyRegistered(name)) => Err(LookupError::AlreadyRegistered { name }),
            other => Err(unexpected(other).into()),
        }
    }

    /// The object registered under `name`, as an `O`; fails with
    /// [`LookupError::TypeMismatch`] if it was created with other types.
    ///
    /// ```
    /// # use multiproc_manager::{DictProxy, LookupError, Manager};
    /// # let manager = Manager::builder().start_method(multiproc_process::StartMethod::Fork).start()?;
    /// let scores = manager.dict::<String, i64>()?;
    /// manager.register("scores", &scores)?;
    /// let wrong = manager.get::<DictProxy<u8, u8>>("scores").unwrap_err();
    /// assert!(matches!(wrong, LookupError::TypeMismatch { .. }), "{wrong}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get<O: Shareable>(&self, name: &str) -> Result<O, LookupError> {
        let client = self.client();
        let expected = O::expected();
        let found = match client.call(&Request::Lookup { name: name.to_owned(), expected })? {
            Response::Id(id) => Found::Object(id),
            Response::Sync(h) => Found::Sync(h),
            Response::Error(ServerError::NotFound(name)) => return Err(LookupError::NotFound { name }),
            Response::Error(ServerError::TypeMismatch { expected, found }) => {
                return Err(LookupError::TypeMismatch { name: name.to_owned(), expected, found });
            }
            other => return Err(unexpected(other).into()),
        };
        Ok(O::found(client, found)?)
    }

    /// Removes a name (the object lives on while proxies use it).
    pub fn unregister(&self, name: &str) -> Result<(), LookupError> {
        match self.client().call(&Request::Unregister { name: name.to_owned() })? {
            Response::Done => Ok(()),
            Response::Error(ServerError::NotFound(name)) => Err(LookupError::NotFound { name }),
            other => Err(unexpected(other).into()),
        }
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Result<Vec<String>, ProxyError> {
        match self.client().call(&Request::Names)? {
            Response::Names(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("address", self.address())
            .field("owner", &self.is_owner())
            .field("server_pid", &self.server_pid())
            .finish()
    }
}

/// A manager handle travels as its address (and authkey, unless it is the process
/// authkey, which children inherit); the receiver gets a handle that does not own the
/// server, so it can create and find objects but not shut it down.
#[derive(Serialize, Deserialize)]
struct WireManager {
    address: Address,
    authkey: Option<ByteBuf>,
}

impl Serialize for Manager {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let target = self.inner.client.target();
        let authkey = (target.authkey != multiproc_process::authkey()).then(|| ByteBuf::from(target.authkey.clone()));
        WireManager { address: target.address.clone(), authkey }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Manager {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireManager::deserialize(d)?;
        let authkey = w.authkey.map_or_else(multiproc_process::authkey, ByteBuf::into_vec);
        Ok(Manager::owning(Client::get(&Target { address: w.address, authkey }), Owner::None))
    }
}
