//! The server: owns the shared objects and serves each connection on a thread of its
//! own.
//!
//! # Objects and who keeps them alive
//! Every object has an id and a reference count. A reference is held by a *session*
//! (one client process's pool of connections, named by the random id of its
//! [`Hello`]) for each proxy of that process that has used the object, and by each name
//! it is registered under. A session's references are released when its last connection
//! closes: when the process drops its last proxy and manager handle, exits, or is
//! killed (the kernel closes its sockets). An object whose count reaches zero is freed.
//!
//! # What a client can and cannot do to the server
//! Each connection has its own thread; a request is handled completely (and its answer
//! sent) before the next one is read. A request that is garbage, larger than the
//! message limit, or does not arrive whole (the client died mid-message) drops that
//! connection only. A request that waits (a queue get, put or join) waits in slices and
//! gives up when the client goes away, so a dead client never takes an item.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multiproc_codec::{EncodeError, Fd};
use multiproc_pipe::{AcceptError, Connection, Listener, SendError, Waitable};
use multiproc_queue::{JoinableQueue, Queue, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use multiproc_sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::binary;
use crate::encoding::{decode, encode};
use crate::mailbox::{Incoming, Mailbox};
use crate::shared::{Created, ErasedShared, Failure, Registration};
use crate::wire::{
    DictOp, Hello, Init, ListOp, Op, PROTOCOL, QueueOp, Registered, Request, Response, ServerError, SessionId,
    SyncHandle, SyncInit, ValueOp, Wait, Welcome,
};

/// How long a new connection may take to say [`Hello`].
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a waiting queue operation checks whether its client is still there.
const SLICE: Duration = Duration::from_millis(50);

/// How often a connection thread sleeping in a mailbox looks whether its client is
/// still there.
const SERVER_TICK: Duration = Duration::from_millis(200);

/// A snapshot of a server's bookkeeping (see [`Manager::stats`](crate::Manager::stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerStats {
    /// The server's process id.
    pub pid: u32,
    /// Objects held (dicts, lists, values, queues, registered types).
    pub objects: u64,
    /// Registered names.
    pub names: u64,
    /// Client processes with at least one open connection.
    pub sessions: u64,
    /// Open connections.
    pub connections: u64,
}

/// What the server is started with.
#[derive(Debug, Clone)]
pub(crate) struct ServerConfig {
    pub(crate) max_message_size: usize,
    pub(crate) types: Vec<Registration>,
}

struct TypeEntry {
    fingerprint: String,
    create: fn(ByteBuf) -> Created,
}

/// An insertion-ordered map of encoded keys to encoded values (Python dicts keep
/// insertion order; overwriting a key keeps its place).
#[derive(Default)]
struct DictData {
    map: HashMap<ByteBuf, (u64, ByteBuf)>,
    next: u64,
}

impl DictData {
    fn insert(&mut self, key: ByteBuf, value: ByteBuf) -> Option<ByteBuf> {
        if let Some(slot) = self.map.get_mut(&key) {
            return Some(std::mem::replace(&mut slot.1, value));
        }
        self.next += 1;
        self.map.insert(key, (self.next, value));
        None
    }

    fn ordered(&self) -> Vec<(&ByteBuf, &ByteBuf)> {
        let mut v: Vec<_> = self.map.iter().map(|(k, (seq, val))| (*seq, k, val)).collect();
        v.sort_unstable_by_key(|e| e.0);
        v.into_iter().map(|(_, k, val)| (k, val)).collect()
    }
}

enum Data {
    Dict(DictData),
    List(Vec<ByteBuf>),
    Value(ByteBuf),
    User(Box<dyn ErasedShared>),
}

enum Body {
    Data(Mutex<Data>),
    Queue(Queue<ByteBuf>),
    Joinable(JoinableQueue<ByteBuf>),
}

struct Entry {
    fingerprint: String,
    body: Body,
}

struct Slot {
    refs: u64,
    entry: Arc<Entry>,
}

enum Named {
    Object(u64),
    Sync(SyncHandle),
}

#[derive(Default)]
struct Session {
    connections: usize,
    refs: HashMap<u64, u64>,
}

/// What one connection's thread knows about its client.
struct Peer {
    session: SessionId,
    same_binary: bool,
    can_pass_fds: bool,
}

/// Why a request ended its connection instead of being answered: the client went
/// away (or broke the protocol) while it waited, or the server is stopping.
struct Hangup;

pub(crate) struct State {
    limit: usize,
    pid: u32,
    instance: u64,
    types: HashMap<String, TypeEntry>,
    // Lock order: names, then sessions, then objects.
    names: Mutex<HashMap<String, Named>>,
    sessions: Mutex<HashMap<SessionId, Session>>,
    objects: Mutex<HashMap<u64, Slot>>,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_connection: AtomicU64,
    stopping: AtomicBool,
    wake_read: OwnedFd,
    wake_write: OwnedFd,
}

impl State {
    /// A server with `config`, whose type registrations are resolved here.
    pub(crate) fn new(config: ServerConfig) -> std::io::Result<Arc<State>> {
        let (wake_read, wake_write) = multiproc_sys::fd::pipe()?;
        let types = config
            .types
            .into_iter()
            .map(|r| {
                // SAFETY: a `Registration` is only ever made by `Registration::of` in a
                // process running this executable: either this process (a manager served
                // in-process) or the process that started this server process with one
                // of the start methods, all of which run this same executable. It
                // reached us as that parent's process arguments, not from a client.
                let create = unsafe { r.create.resolve() };
                (r.typeid, TypeEntry { fingerprint: r.fingerprint, create })
            })
            .collect();
        Ok(Arc::new(State {
            limit: config.max_message_size,
            pid: std::process::id(),
            instance: random_instance(),
            types,
            names: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            objects: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            wake_read,
            wake_write,
        }))
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops accepting, and disconnects every client (their calls fail with
    /// `ServerGone`). Idempotent.
    pub(crate) fn stop(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = nix::unistd::write(&self.wake_write, &[1]);
        for conn in self.connections.lock().values() {
            let _ = nix::sys::socket::shutdown(conn.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
    }

    /// Accepts connections until [`stop`](State::stop), each served on its own thread.
    pub(crate) fn run(self: &Arc<State>, listener: Listener) {
        while !self.stopping() {
            let ready = multiproc_pipe::wait(&[&listener as &dyn Waitable, &self.wake_read], None);
            if ready.is_err() {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if self.stopping() {
                break;
            }
            match listener.accept_timeout(Duration::ZERO) {
                Ok(conn) => {
                    let state = self.clone();
                    // If no thread can be made, the connection is dropped: the client
                    // sees the server close it and may retry.
                    let _ = std::thread::Builder::new()
                        .name("multiproc-manager-conn".to_owned())
                        .spawn(move || state.serve_connection(conn));
                }
                // Out of descriptors or similar: let some connections close first.
                Err(AcceptError::Io(_)) => std::thread::sleep(Duration::from_millis(20)),
                // A client that failed to authenticate, or went away before we got to it.
                Err(_) => {}
            }
        }
    }

    fn serve_connection(self: Arc<State>, conn: Connection) {
        let conn = Arc::new(conn);
        let key = self.next_connection.fetch_add(1, Ordering::Relaxed);
        self.connections.lock().insert(key, conn.clone());
        if !self.stopping() {
            self.converse(&conn);
        }
        self.connections.lock().remove(&key);
    }

    fn converse(&self, conn: &Connection) {
        let Ok(hello) = conn.recv_timeout::<Hello>(HELLO_TIMEOUT) else { return };
        let same_binary = binary::peer_runs_this_binary(conn);
        let welcome = Welcome {
            protocol: PROTOCOL,
            instance: self.instance,
            server_pid: self.pid,
            max_message_size: self.limit as u64,
        };
        if conn.send(&welcome).is_err() || hello.protocol != PROTOCOL {
            return;
        }
        let mut peer = Peer { session: hello.session, same_binary, can_pass_fds: conn.can_pass_fds() };
        self.sessions.lock().entry(peer.session).or_default().connections += 1;
        let mut mailbox: Option<Mailbox> = None;
        loop {
            // Garbage, an oversize request, a truncated one, end of file: this
            // connection is over (the others go on).
            let Some(request) = self.next_request(conn, mailbox.as_mut()) else { break };
            let response = match request {
                Request::Release { id } => {
                    self.release(&peer.session, id);
                    Response::Done
                }
                Request::Shutdown => {
                    let _ = self.reply(conn, mailbox.as_ref(), &Response::Done);
                    self.stop();
                    break;
                }
                Request::OpenMailbox if mailbox.is_none() && peer.can_pass_fds => match Mailbox::create() {
                    Ok(m) => match m.fd() {
                        Ok(fd) => {
                            // Announced on the socket; everything after goes through it.
                            if !self.reply(conn, None, &Response::Mailbox(Fd::new(fd))) {
                                break;
                            }
                            mailbox = Some(m);
                            continue;
                        }
                        Err(e) => Response::Error(ServerError::Failed(format!("cannot share the mailbox: {e}"))),
                    },
                    Err(e) => Response::Error(ServerError::Failed(format!("cannot make a mailbox: {e}"))),
                },
                Request::OpenMailbox => {
                    Response::Error(ServerError::Unsupported("a mailbox needs a Unix-socket connection".to_owned()))
                }
                other => match self.handle(&mut peer, conn, other) {
                    Ok(r) => r,
                    Err(Hangup) => break,
                },
            };
            if !self.reply(conn, mailbox.as_ref(), &response) {
                break;
            }
        }
        self.close_session(&peer.session);
    }

    /// The next request, from the socket or the mailbox; `None` ends the connection.
    fn next_request(&self, conn: &Connection, mailbox: Option<&mut Mailbox>) -> Option<Request> {
        let Some(mailbox) = mailbox else { return conn.recv().ok() };
        // The client sends nothing on the socket unannounced: anything readable there
        // while we wait is its end-of-file (or a breach of the protocol).
        let alive = || !self.stopping() && matches!(conn.poll(Duration::ZERO), Ok(false));
        match mailbox.receive(SERVER_TICK, alive) {
            Ok(Incoming::Bytes(bytes)) => decode(&bytes, self.limit).ok(),
            Ok(Incoming::OnSocket) => conn.recv().ok(),
            Err(_) => None,
        }
    }

    /// Sends an answer, through the mailbox when there is one and it fits; one that
    /// cannot be sent as is becomes an error answer. Returns whether the connection is
    /// still usable.
    fn reply(&self, conn: &Connection, mailbox: Option<&Mailbox>, response: &Response) -> bool {
        if let Some(mailbox) = mailbox {
            if !response.carries_fds() {
                let bytes = match encode(response, self.limit) {
                    Ok(b) => b,
                    Err(EncodeError::TooLarge { size, limit }) => {
                        return self.reply(
                            conn,
                            Some(mailbox),
                            &Response::Error(ServerError::TooLarge { size: size as u64, limit: limit as u64 }),
                        );
                    }
                    Err(e) => {
                        let e = ServerError::Failed(format!("cannot encode the answer: {e}"));
                        return self.reply(conn, Some(mailbox), &Response::Error(e));
                    }
                };
                if Mailbox::fits(bytes.len()) {
                    return mailbox.post(Some(&bytes)).is_ok();
                }
                return mailbox.post(None).is_ok() && conn.send_bytes(&bytes).is_ok();
            }
            if mailbox.post(None).is_err() {
                return false;
            }
        }
        let fallback = match conn.send(response) {
            Ok(()) => return true,
            Err(SendError::TooLarge { size, limit }) => ServerError::TooLarge { size, limit: limit as u64 },
            Err(SendError::Encode(e)) => ServerError::Failed(format!("cannot encode the answer: {e}")),
            Err(SendError::CannotPassFds { .. }) => ServerError::Unsupported(
                "shared-memory handles cannot travel over TCP; use a manager on a Unix socket for them".to_owned(),
            ),
            Err(_) => return false,
        };
        conn.send(&Response::Error(fallback)).is_ok()
    }

    // ---- references ----

    fn add_object(&self, session: &SessionId, entry: Entry) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.sessions.lock();
        self.objects.lock().insert(id, Slot { refs: 1, entry: Arc::new(entry) });
        *sessions.entry(*session).or_default().refs.entry(id).or_insert(0) += 1;
        id
    }

    fn attach(&self, session: &SessionId, id: u64) -> Option<Arc<Entry>> {
        let mut sessions = self.sessions.lock();
        let mut objects = self.objects.lock();
        let slot = objects.get_mut(&id)?;
        slot.refs += 1;
        *sessions.entry(*session).or_default().refs.entry(id).or_insert(0) += 1;
        Some(slot.entry.clone())
    }

    fn entry(&self, id: u64) -> Option<Arc<Entry>> {
        self.objects.lock().get(&id).map(|s| s.entry.clone())
    }

    /// Drops `n` references to `id`; returns the entry if that freed it, so the caller
    /// drops it outside the lock.
    fn decref(objects: &mut HashMap<u64, Slot>, id: u64, n: u64) -> Option<Arc<Entry>> {
        let slot = objects.get_mut(&id)?;
        slot.refs = slot.refs.saturating_sub(n);
        if slot.refs == 0 { objects.remove(&id).map(|s| s.entry) } else { None }
    }

    fn release(&self, session: &SessionId, id: u64) {
        let freed = {
            let mut sessions = self.sessions.lock();
            let Some(s) = sessions.get_mut(session) else { return };
            let Some(count) = s.refs.get_mut(&id) else { return };
            *count -= 1;
            if *count == 0 {
                s.refs.remove(&id);
            }
            Self::decref(&mut self.objects.lock(), id, 1)
        };
        drop(freed);
    }

    fn close_session(&self, session: &SessionId) {
        let mut freed = Vec::new();
        {
            let mut sessions = self.sessions.lock();
            let Some(s) = sessions.get_mut(session) else { return };
            s.connections -= 1;
            if s.connections > 0 {
                return;
            }
            let Some(s) = sessions.remove(session) else { return };
            let mut objects = self.objects.lock();
            for (id, n) in s.refs {
                freed.extend(Self::decref(&mut objects, id, n));
            }
        }
        // User objects' destructors run here, outside every lock.
        drop(freed);
    }

    fn stats(&self) -> crate::ServerStats {
        let names = self.names.lock().len() as u64;
        let sessions = self.sessions.lock().len() as u64;
        let objects = self.objects.lock().len() as u64;
        let connections = self.connections.lock().len() as u64;
        crate::ServerStats { pid: self.pid, objects, names, sessions, connections }
    }

    // ---- requests ----

    fn handle(&self, peer: &mut Peer, conn: &Connection, request: Request) -> Result<Response, Hangup> {
        Ok(match request {
            Request::Create { init, fingerprint } => self.create(peer, init, fingerprint),
            Request::CreateSync(init) => create_sync(peer, init),
            Request::Call { id, attach, op } => {
                let entry = if attach { self.attach(&peer.session, id) } else { self.entry(id) };
                match entry {
                    Some(entry) => self.call(peer, conn, &entry, op)?,
                    None => Response::Error(ServerError::ObjectGone),
                }
            }
            Request::Register { name, object } => self.register(name, object),
            Request::Lookup { name, expected } => self.lookup(peer, name, expected),
            Request::Unregister { name } => self.unregister(name),
            Request::Names => {
                let mut names: Vec<String> = self.names.lock().keys().cloned().collect();
                names.sort();
                Response::Names(names)
            }
            Request::ProveBinary { fingerprint } => match binary::fingerprint() {
                Ok(ours) if ours == fingerprint.as_slice() => {
                    peer.same_binary = true;
                    Response::Done
                }
                Ok(_) => Response::Error(ServerError::NotSameBinary(
                    "its executable is another build than the server's (the fingerprints differ)".to_owned(),
                )),
                Err(e) => Response::Error(ServerError::NotSameBinary(format!("the server {e}"))),
            },
            Request::Stats => Response::Stats(self.stats()),
            // Handled by the connection loop.
            Request::Release { .. } | Request::Shutdown | Request::OpenMailbox => Response::Done,
        })
    }

    fn create(&self, peer: &Peer, init: Init, fingerprint: String) -> Response {
        let body = match init {
            Init::Dict(items) => {
                let mut d = DictData::default();
                for (k, v) in items {
                    d.insert(k, v);
                }
                Body::Data(Mutex::new(Data::Dict(d)))
            }
            Init::List(items) => Body::Data(Mutex::new(Data::List(items))),
            Init::Value(v) => Body::Data(Mutex::new(Data::Value(v))),
            Init::Queue { maxsize } => {
                let mut b = Queue::<ByteBuf>::builder().max_message_size(self.queue_message_limit());
                if maxsize > 0 {
                    b = b.maxsize(usize::try_from(maxsize).unwrap_or(usize::MAX));
                }
                match b.build() {
                    Ok(q) => Body::Queue(q),
                    Err(e) => return Response::Error(ServerError::Queue(e.to_string())),
                }
            }
            Init::JoinableQueue { maxsize } => {
                let mut b = JoinableQueue::<ByteBuf>::builder().max_message_size(self.queue_message_limit());
                if maxsize > 0 {
                    b = b.maxsize(usize::try_from(maxsize).unwrap_or(usize::MAX));
                }
                match b.build() {
                    Ok(q) => Body::Joinable(q),
                    Err(e) => return Response::Error(ServerError::Queue(e.to_string())),
                }
            }
            Init::User { typeid, init } => {
                let Some(t) = self.types.get(&typeid) else {
                    return Response::Error(ServerError::NotRegistered(typeid));
                };
                if t.fingerprint != fingerprint {
                    return Response::Error(ServerError::TypeMismatch {
                        expected: fingerprint,
                        found: t.fingerprint.clone(),
                    });
                }
                match (t.create)(init) {
                    Ok(value) => Body::Data(Mutex::new(Data::User(value))),
                    Err(message) => return Response::Error(ServerError::Panicked(message)),
                }
            }
        };
        Response::Id(self.add_object(&peer.session, Entry { fingerprint, body }))
    }

    /// Queue items are the encoded values wrapped in a byte string (a length prefix).
    fn queue_message_limit(&self) -> usize {
        self.limit.saturating_add(16)
    }

    fn register(&self, name: String, object: Registered) -> Response {
        let mut names = self.names.lock();
        if names.contains_key(&name) {
            return Response::Error(ServerError::AlreadyRegistered(name));
        }
        let named = match object {
            Registered::Object { id } => {
                let mut objects = self.objects.lock();
                let Some(slot) = objects.get_mut(&id) else { return Response::Error(ServerError::ObjectGone) };
                slot.refs += 1;
                Named::Object(id)
            }
            Registered::Sync(handle) => Named::Sync(handle),
        };
        names.insert(name, named);
        Response::Done
    }

    fn lookup(&self, peer: &Peer, name: String, expected: String) -> Response {
        let names = self.names.lock();
        match names.get(&name) {
            None => Response::Error(ServerError::NotFound(name)),
            Some(Named::Object(id)) => {
                let found = match self.entry(*id) {
                    Some(e) => e.fingerprint.clone(),
                    None => return Response::Error(ServerError::ObjectGone),
                };
                if found != expected {
                    return Response::Error(ServerError::TypeMismatch { expected, found });
                }
                match self.attach(&peer.session, *id) {
                    Some(_) => Response::Id(*id),
                    None => Response::Error(ServerError::ObjectGone),
                }
            }
            Some(Named::Sync(handle)) => {
                if handle.fingerprint() != expected {
                    return Response::Error(ServerError::TypeMismatch {
                        expected,
                        found: handle.fingerprint().to_owned(),
                    });
                }
                if !peer.can_pass_fds {
                    return Response::Error(ServerError::Unsupported(unsupported_over_tcp(handle.fingerprint())));
                }
                Response::Sync(handle.clone())
            }
        }
    }

    fn unregister(&self, name: String) -> Response {
        let freed = {
            let mut names = self.names.lock();
            match names.remove(&name) {
                None => return Response::Error(ServerError::NotFound(name)),
                Some(Named::Sync(_)) => None,
                Some(Named::Object(id)) => Self::decref(&mut self.objects.lock(), id, 1),
            }
        };
        drop(freed);
        Response::Done
    }

    fn call(&self, peer: &Peer, conn: &Connection, entry: &Entry, op: Op) -> Result<Response, Hangup> {
        let wrong = |expected: &str| {
            Ok(Response::Error(ServerError::WrongKind {
                expected: expected.to_owned(),
                found: entry.fingerprint.clone(),
            }))
        };
        match (&entry.body, op) {
            (Body::Data(data), op) => {
                let mut data = data.lock();
                Ok(match (&mut *data, op) {
                    (Data::Dict(d), Op::Dict(op)) => self.dict(peer, d, op),
                    (Data::List(l), Op::List(op)) => list(l, op),
                    (Data::Value(v), Op::Value(op)) => self.value(peer, v, op),
                    (Data::User(u), Op::User(request)) => match u.handle_bytes(&request, self.limit) {
                        Ok(bytes) => Response::Bytes(bytes),
                        Err(Failure::Panicked(m)) => Response::Error(ServerError::Panicked(m)),
                        Err(Failure::TooLarge { size, limit }) => {
                            Response::Error(ServerError::TooLarge { size, limit })
                        }
                        Err(Failure::Decode(m) | Failure::Encode(m)) => Response::Error(ServerError::Failed(m)),
                    },
                    (_, op) => return wrong(op_kind(&op)),
                })
            }
            (Body::Queue(q), Op::Queue(op)) => self.queue(peer, conn, q, None, op),
            (Body::Joinable(q), Op::Queue(op)) => self.queue(peer, conn, q, Some(q), op),
            (_, op) => wrong(op_kind(&op)),
        }
    }

    fn dict(&self, peer: &Peer, d: &mut DictData, op: DictOp) -> Response {
        match op {
            DictOp::Get(k) => Response::MaybeBytes(d.map.get(&k).map(|(_, v)| v.clone())),
            DictOp::Insert(k, v) => Response::MaybeBytes(d.insert(k, v)),
            DictOp::Remove(k) => Response::MaybeBytes(d.map.remove(&k).map(|(_, v)| v)),
            DictOp::Contains(k) => Response::Flag(d.map.contains_key(&k)),
            DictOp::Len => Response::Count(d.map.len() as u64),
            DictOp::Keys => Response::List(d.ordered().into_iter().map(|(k, _)| k.clone()).collect()),
            DictOp::Values => Response::List(d.ordered().into_iter().map(|(_, v)| v.clone()).collect()),
            DictOp::Items => Response::Pairs(d.ordered().into_iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            DictOp::Clear => {
                d.map.clear();
                Response::Done
            }
            DictOp::Update(items) => {
                for (k, v) in items {
                    d.insert(k, v);
                }
                Response::Done
            }
            DictOp::SetDefault(k, default) => match d.map.get(&k) {
                Some((_, v)) => Response::Bytes(v.clone()),
                None => {
                    d.insert(k, default.clone());
                    Response::Bytes(default)
                }
            },
            DictOp::UpdateWith { key, update } => {
                if !peer.same_binary {
                    return Response::Error(ServerError::NotSameBinary(
                        "it has not shown that it runs the server's executable".to_owned(),
                    ));
                }
                let current = d.map.get(&key).map(|(_, v)| v.clone());
                match crate::update::run(update, current, self.limit) {
                    Ok(new) => {
                        d.insert(key, new.clone());
                        Response::Bytes(new)
                    }
                    Err(f) => Response::Error(ServerError::UpdateFailed(f)),
                }
            }
        }
    }

    fn value(&self, peer: &Peer, v: &mut ByteBuf, op: ValueOp) -> Response {
        match op {
            ValueOp::Get => Response::Bytes(v.clone()),
            ValueOp::Set(new) => {
                *v = new;
                Response::Done
            }
            ValueOp::Replace(new) => Response::Bytes(std::mem::replace(v, new)),
            ValueOp::UpdateWith(update) => {
                if !peer.same_binary {
                    return Response::Error(ServerError::NotSameBinary(
                        "it has not shown that it runs the server's executable".to_owned(),
                    ));
                }
                match crate::update::run(update, Some(v.clone()), self.limit) {
                    Ok(new) => {
                        *v = new.clone();
                        Response::Bytes(new)
                    }
                    Err(f) => Response::Error(ServerError::UpdateFailed(f)),
                }
            }
        }
    }

    /// Waits in slices for a queue operation, giving up (dropping the connection) when
    /// the client goes away or the server stops. `attempt` is tried once with
    /// `Duration::ZERO` for [`Wait::Now`].
    fn sliced<T>(
        &self,
        conn: &Connection,
        wait: Wait,
        mut attempt: impl FnMut(Duration) -> Option<T>,
    ) -> Result<Option<T>, Hangup> {
        let deadline = match wait {
            Wait::Now => return Ok(attempt(Duration::ZERO)),
            Wait::For(d) => Instant::now().checked_add(d),
            Wait::Forever => None,
        };
        loop {
            let slice = match deadline {
                None => SLICE,
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            };
            if let Some(done) = attempt(slice) {
                return Ok(Some(done));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            // The client waits for our answer and sends nothing meanwhile: anything
            // readable means it closed the connection (or broke the protocol).
            if self.stopping() || !matches!(conn.poll(Duration::ZERO), Ok(false)) {
                return Err(Hangup);
            }
        }
    }

    fn queue(
        &self,
        peer: &Peer,
        conn: &Connection,
        q: &Queue<ByteBuf>,
        joinable: Option<&JoinableQueue<ByteBuf>>,
        op: QueueOp,
    ) -> Result<Response, Hangup> {
        let failed = |m: String| Response::Error(ServerError::Queue(m));
        Ok(match op {
            QueueOp::Open => {
                if !peer.can_pass_fds {
                    return Ok(Response::Error(ServerError::Unsupported(unsupported_over_tcp("queue"))));
                }
                match joinable {
                    Some(j) => Response::Joinable(j.clone()),
                    None => Response::Queue(q.clone()),
                }
            }
            QueueOp::Put { item, wait } => {
                let mut item = Some(item);
                let mut error = None;
                let done = self.sliced(conn, wait, |slice| {
                    let it = item.take()?;
                    let result = if slice.is_zero() {
                        q.put_nowait(it).map_err(|e| match e {
                            TrySendError::Full(it) => Ok(it),
                            other => Err(other.to_string()),
                        })
                    } else {
                        q.put_timeout(it, slice).map_err(|e| match e {
                            SendTimeoutError::Timeout(it) => Ok(it),
                            other => Err(other.to_string()),
                        })
                    };
                    match result {
                        Ok(()) => Some(()),
                        Err(Ok(it)) => {
                            item = Some(it);
                            None
                        }
                        Err(Err(m)) => {
                            error = Some(m);
                            Some(())
                        }
                    }
                })?;
                match (done, error) {
                    (_, Some(m)) => failed(m),
                    (Some(()), None) => Response::Done,
                    (None, None) => Response::Error(ServerError::Full),
                }
            }
            QueueOp::Get { wait } => {
                let mut error = None;
                let got = self.sliced(conn, wait, |slice| {
                    let result = if slice.is_zero() {
                        q.get_nowait().map_err(|e| match e {
                            TryRecvError::Empty => None,
                            other => Some(other.to_string()),
                        })
                    } else {
                        q.get_timeout(slice).map_err(|e| match e {
                            RecvTimeoutError::Timeout => None,
                            other => Some(other.to_string()),
                        })
                    };
                    match result {
                        Ok(item) => Some(Some(item)),
                        Err(None) => None,
                        Err(Some(m)) => {
                            error = Some(m);
                            Some(None)
                        }
                    }
                })?;
                match (got, error) {
                    (_, Some(m)) => failed(m),
                    // The client went away while we took the item: give the item to
                    // the others (at the back of the queue) rather than lose it.
                    (Some(Some(item)), None) if !matches!(conn.poll(Duration::ZERO), Ok(false)) => {
                        let _ = q.put_timeout(item, SLICE);
                        return Err(Hangup);
                    }
                    (Some(Some(item)), None) => Response::Bytes(item),
                    _ => Response::Error(ServerError::Empty),
                }
            }
            QueueOp::Qsize => Response::Count(q.qsize() as u64),
            QueueOp::Empty => Response::Flag(q.empty()),
            QueueOp::Full => Response::Flag(q.full()),
            QueueOp::TaskDone | QueueOp::Join { .. } | QueueOp::Unfinished if joinable.is_none() => {
                Response::Error(ServerError::WrongKind {
                    expected: "joinable queue".to_owned(),
                    found: "queue".to_owned(),
                })
            }
            QueueOp::TaskDone => match joinable.map(JoinableQueue::task_done) {
                Some(Ok(())) => Response::Done,
                _ => Response::Error(ServerError::TaskDone),
            },
            QueueOp::Unfinished => Response::Count(joinable.map_or(0, |j| j.unfinished_tasks() as u64)),
            QueueOp::Join { wait } => {
                let Some(j) = joinable else { return Ok(Response::Done) };
                let joined = self.sliced(conn, wait, |slice| {
                    if slice.is_zero() { (j.unfinished_tasks() == 0).then_some(()) } else { j.join_timeout(slice).ok() }
                })?;
                Response::Flag(joined.is_some())
            }
        })
    }
}

fn random_instance() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(b).max(1)
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Dict(_) => "dict",
        Op::List(_) => "list",
        Op::Value(_) => "value",
        Op::Queue(_) => "queue",
        Op::User(_) => "registered shared type",
    }
}

fn unsupported_over_tcp(what: &str) -> String {
    format!(
        "a {what} is a shared-memory object that can only be handed out over a Unix socket, and this \
         connection is TCP; use a manager on a Unix socket (the default of Manager::start) for it"
    )
}

fn list(l: &mut Vec<ByteBuf>, op: ListOp) -> Response {
    let out_of_range =
        |index: u64, len: usize| Response::Error(ServerError::IndexOutOfRange { index, len: len as u64 });
    let idx = |i: u64| usize::try_from(i).unwrap_or(usize::MAX);
    match op {
        ListOp::Push(v) => {
            l.push(v);
            Response::Done
        }
        ListOp::Extend(vs) => {
            l.extend(vs);
            Response::Done
        }
        ListOp::Insert(i, v) => {
            // Python's list.insert clamps the index.
            let at = idx(i).min(l.len());
            l.insert(at, v);
            Response::Done
        }
        ListOp::Pop(None) => Response::MaybeBytes(l.pop()),
        ListOp::Pop(Some(i)) if idx(i) < l.len() => Response::MaybeBytes(Some(l.remove(idx(i)))),
        ListOp::Pop(Some(i)) => out_of_range(i, l.len()),
        ListOp::Get(i) => Response::MaybeBytes(l.get(idx(i)).cloned()),
        ListOp::Set(i, v) => match l.get_mut(idx(i)) {
            Some(slot) => {
                *slot = v;
                Response::Done
            }
            None => out_of_range(i, l.len()),
        },
        ListOp::Len => Response::Count(l.len() as u64),
        ListOp::Remove(v) => match l.iter().position(|x| *x == v) {
            Some(at) => {
                l.remove(at);
                Response::Flag(true)
            }
            None => Response::Flag(false),
        },
        ListOp::Index(v) => Response::Index(l.iter().position(|x| *x == v).map(|i| i as u64)),
        ListOp::Clear => {
            l.clear();
            Response::Done
        }
        ListOp::ToVec => Response::List(l.clone()),
    }
}

fn create_sync(peer: &Peer, init: SyncInit) -> Response {
    let handle = match init {
        SyncInit::Lock => Lock::new().map(SyncHandle::Lock),
        SyncInit::RLock => RLock::new().map(SyncHandle::RLock),
        SyncInit::Semaphore(n) => Semaphore::new(n).map(SyncHandle::Semaphore),
        SyncInit::BoundedSemaphore(n) => BoundedSemaphore::new(n).map(SyncHandle::BoundedSemaphore),
        SyncInit::Event => Event::new().map(SyncHandle::Event),
        SyncInit::Condition => Condition::new().map(SyncHandle::Condition),
        SyncInit::Barrier(n) => Barrier::new(n).map(SyncHandle::Barrier),
    };
    match handle {
        Ok(h) if peer.can_pass_fds => Response::Sync(h),
        Ok(h) => Response::Error(ServerError::Unsupported(unsupported_over_tcp(h.fingerprint()))),
        Err(e) => Response::Error(ServerError::Failed(format!("cannot create the primitive: {e}"))),
    }
}

/// A server running on threads of this process (`Manager::serve`).
pub(crate) struct InProcess {
    state: Arc<State>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    pub(crate) fn start(listener: Listener, config: ServerConfig) -> std::io::Result<InProcess> {
        let state = State::new(config)?;
        let s = state.clone();
        let accept =
            std::thread::Builder::new().name("multiproc-manager-accept".to_owned()).spawn(move || s.run(listener))?;
        Ok(InProcess { state, accept: Some(accept) })
    }

    /// Stops the server and waits for its accept loop (the listener is closed when this
    /// returns; a Unix socket file is removed).
    pub(crate) fn stop(&mut self) {
        self.state.stop();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("stopping", &self.state.stopping()).finish()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: &[u8]) -> ByteBuf {
        ByteBuf::from(x.to_vec())
    }

    #[test]
    fn dicts_keep_insertion_order_and_overwrites_keep_their_place() {
        let mut d = DictData::default();
        assert_eq!(d.insert(b(b"z"), b(b"1")), None);
        assert_eq!(d.insert(b(b"a"), b(b"2")), None);
        assert_eq!(d.insert(b(b"z"), b(b"3")), Some(b(b"1")));
        let order: Vec<_> = d.ordered().into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(order, vec![(b"z".to_vec(), b"3".to_vec()), (b"a".to_vec(), b"2".to_vec())]);
    }

    #[test]
    fn list_ops_follow_python() {
        let mut l = vec![b(b"a"), b(b"b")];
        assert!(matches!(list(&mut l, ListOp::Insert(99, b(b"c"))), Response::Done));
        assert_eq!(l.last().unwrap().as_slice(), b"c");
        assert!(matches!(
            list(&mut l, ListOp::Pop(Some(7))),
            Response::Error(ServerError::IndexOutOfRange { index: 7, len: 3 })
        ));
        assert!(matches!(list(&mut l, ListOp::Remove(b(b"b"))), Response::Flag(true)));
        assert!(matches!(list(&mut l, ListOp::Remove(b(b"b"))), Response::Flag(false)));
        assert!(matches!(list(&mut l, ListOp::Index(b(b"c"))), Response::Index(Some(1))));
        assert!(matches!(list(&mut l, ListOp::Set(5, b(b"x"))), Response::Error(ServerError::IndexOutOfRange { .. })));
    }
}
