//! The client side: one pool of connections per process and server, and the reference
//! every proxy holds.
//!
//! A process talks to a server through one [`Client`]: a pool of authenticated
//! connections sharing one session id. A call takes an idle connection (or opens one),
//! sends its request, waits for the answer and puts the connection back, so any number
//! of threads can use the same proxies at once, each blocking call on a connection of
//! its own. The server keeps an object alive while some session that uses it has a
//! connection open, so a process that dies (SIGKILL included) releases its objects when
//! the kernel closes its sockets.
//!
//! A `fork` child never uses its parent's pool (the parent's sockets are neutralised in
//! the child, see `multiproc_sys::clofork`): every proxy looks up the pool of the
//! process it is used in.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, TryLockError, Weak};
use std::time::Duration;

use multiproc_codec::DEFAULT_MAX_MESSAGE_SIZE;
use multiproc_pipe::{Address, AuthenticationError, Connection, RecvError, SendError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::encoding::{decode, encode};
use crate::error::{ConnectError, ProxyError};
use crate::mailbox::{Broken, Incoming, Mailbox};
use crate::wire::{Hello, Op, PROTOCOL, Request, Response, ServerError, SessionId, Welcome};

/// How long connecting and the greeting may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections a pool keeps for later calls; more are closed when returned.
const MAX_IDLE: usize = 8;

/// Where a server is and the key to authenticate with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) address: Address,
    pub(crate) authkey: Vec<u8>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Target").field("address", &self.address).finish_non_exhaustive()
    }
}

/// How often a client sleeping in a mailbox looks whether the server is still there.
const CLIENT_TICK: Duration = Duration::from_millis(100);

/// One authenticated connection of a pool.
pub(crate) struct Link {
    conn: Connection,
    /// The shared-memory fast path, on a Unix socket (see `crate::mailbox`).
    mailbox: Option<Mailbox>,
    /// This connection proved that we run the server's executable (`update_with` over
    /// TCP).
    pub(crate) proven: bool,
}

fn send_error(e: SendError) -> ProxyError {
    match e {
        SendError::TooLarge { size, limit } => ProxyError::TooLarge { size, limit: limit as u64 },
        SendError::Encode(e) => ProxyError::from(e),
        SendError::CannotPassFds { .. } => ProxyError::Unsupported(
            "shared-memory handles (locks, queues) cannot be sent to a manager over TCP; \
             use a manager on a Unix socket for them"
                .to_owned(),
        ),
        e => ProxyError::ServerGone { reason: e.to_string() },
    }
}

/// A send that failed after the mailbox announced it: the server waits for a message
/// that will not come, so this connection is done for.
fn out_of_step(e: SendError) -> ProxyError {
    ProxyError::ServerGone { reason: format!("a message announced in the mailbox could not be sent ({e})") }
}

impl Link {
    /// Sends `req` and waits for the answer.
    ///
    /// Errors that leave the connection usable (too large, cannot encode) are returned
    /// as such; the others are [`ProxyError::ServerGone`] or [`ProxyError::Protocol`],
    /// after which the connection is dropped.
    pub(crate) fn round_trip(&mut self, req: &Request) -> Result<Response, ProxyError> {
        self.send(req)?;
        self.recv()
    }

    fn send(&mut self, req: &Request) -> Result<(), ProxyError> {
        let Some(mailbox) = &self.mailbox else { return self.conn.send(req).map_err(send_error) };
        let gone = |e: std::io::Error| ProxyError::ServerGone { reason: format!("its mailbox failed: {e}") };
        if !req.carries_fds() {
            let bytes = encode(req, self.conn.max_message_size())?;
            if Mailbox::fits(bytes.len()) {
                return mailbox.post(Some(&bytes)).map_err(gone);
            }
            mailbox.post(None).map_err(gone)?;
            return self.conn.send_bytes(&bytes).map_err(out_of_step);
        }
        // Descriptors travel on the socket (a mailbox only exists on a Unix socket).
        mailbox.post(None).map_err(gone)?;
        self.conn.send(req).map_err(out_of_step)
    }

    fn recv(&mut self) -> Result<Response, ProxyError> {
        let from_socket = |conn: &Connection| match conn.recv::<Response>() {
            Ok(r) => Ok(r),
            Err(RecvError::TooLarge { size, limit }) => Err(ProxyError::TooLarge { size, limit: limit as u64 }),
            Err(RecvError::Decode(e)) => Err(ProxyError::Protocol(format!("undecodable response: {e}"))),
            Err(e) => Err(ProxyError::ServerGone { reason: e.to_string() }),
        };
        let conn = &self.conn;
        let Some(mailbox) = &mut self.mailbox else { return from_socket(conn) };
        // The server sends nothing on the socket unannounced: anything readable there
        // while we wait is its end-of-file.
        match mailbox.receive(CLIENT_TICK, || matches!(conn.poll(Duration::ZERO), Ok(false))) {
            Ok(Incoming::Bytes(bytes)) => decode(&bytes, conn.max_message_size())
                .map_err(|e| ProxyError::Protocol(format!("undecodable response: {e}"))),
            Ok(Incoming::OnSocket) => from_socket(conn),
            Err(Broken::Gone) => Err(ProxyError::ServerGone { reason: "it closed the connection".to_owned() }),
            Err(Broken::Garbage(m)) => Err(ProxyError::Protocol(m)),
        }
    }

    /// Whether the connection can carry file descriptors (a Unix socket).
    pub(crate) fn can_pass_fds(&self) -> bool {
        self.conn.can_pass_fds()
    }
}

/// This process's connections to one server.
pub(crate) struct Client {
    pid: u32,
    target: Target,
    session: SessionId,
    idle: Mutex<Vec<Link>>,
    max_message_size: AtomicUsize,
    /// The server's instance number, once known (0 before the first connection).
    instance: AtomicU64,
    server_pid: AtomicU32,
    /// The server at our address was replaced by another: this pool is useless.
    stale: AtomicBool,
}

static CLIENTS: StdMutex<Vec<Weak<Client>>> = StdMutex::new(Vec::new());
/// The process whose threads last used `CLIENTS`.
static CLIENTS_PID: AtomicU32 = AtomicU32::new(0);

/// Locks the registry of pools, or returns `None` in a fork child whose copy of it was
/// locked by a thread of the parent when it forked (and so stays locked for ever).
fn registry(pid: u32) -> Option<MutexGuard<'static, Vec<Weak<Client>>>> {
    loop {
        match CLIENTS.try_lock() {
            Ok(mut list) => {
                if CLIENTS_PID.swap(pid, Ordering::AcqRel) != pid {
                    // Inherited from a parent: its pools are not ours.
                    list.clear();
                }
                return Some(list);
            }
            Err(TryLockError::Poisoned(p)) => {
                CLIENTS_PID.store(pid, Ordering::Release);
                return Some(p.into_inner());
            }
            // No thread of this process has had the lock yet: whoever holds it is a
            // thread of the parent we were forked from.
            Err(TryLockError::WouldBlock) if CLIENTS_PID.load(Ordering::Acquire) != pid => return None,
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("target", &self.target).field("pid", &self.pid).finish_non_exhaustive()
    }
}

fn new_session() -> SessionId {
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        // Uniqueness is what matters (the authkey guards the server): pid + time + counter.
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        id[..4].copy_from_slice(&std::process::id().to_le_bytes());
        id[4..12].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        id[12..].copy_from_slice(&(COUNTER.fetch_add(1, Ordering::Relaxed) as u32).to_le_bytes());
    }
    id
}

impl Client {
    /// This process's pool for `target`, shared by every proxy of that server.
    pub(crate) fn get(target: &Target) -> Arc<Client> {
        let pid = std::process::id();
        let Some(mut list) = registry(pid) else {
            // A fork child whose parent had a thread inside the registry at the moment
            // of the fork: that lock is never released here. A pool of our own works
            // just as well (it is merely not shared with other proxies).
            return Arc::new(Client::new(pid, target));
        };
        list.retain(|w| w.strong_count() > 0);
        let usable = |c: &Arc<Client>| c.pid == pid && c.target == *target && !c.stale.load(Ordering::Relaxed);
        if let Some(c) = list.iter().filter_map(Weak::upgrade).find(usable) {
            return c;
        }
        let c = Arc::new(Client::new(pid, target));
        list.push(Arc::downgrade(&c));
        c
    }

    fn new(pid: u32, target: &Target) -> Client {
        Client {
            pid,
            target: target.clone(),
            session: new_session(),
            idle: Mutex::new(Vec::new()),
            max_message_size: AtomicUsize::new(DEFAULT_MAX_MESSAGE_SIZE),
            instance: AtomicU64::new(0),
            server_pid: AtomicU32::new(0),
            stale: AtomicBool::new(false),
        }
    }

    /// Whether this pool belongs to the calling process (not to the parent of a fork
    /// child).
    pub(crate) fn is_current(&self) -> bool {
        self.pid == std::process::id()
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The server's message limit (known after the first connection).
    pub(crate) fn max_message_size(&self) -> usize {
        self.max_message_size.load(Ordering::Relaxed)
    }

    /// Opens and greets a new connection.
    pub(crate) fn open_link(&self) -> Result<Link, ConnectError> {
        let address = &self.target.address;
        let mut conn = multiproc_pipe::Client::connect_timeout(address, Some(&self.target.authkey), CONNECT_TIMEOUT)?;
        let greeting = |reason: String| ConnectError::Greeting { address: address.clone(), reason };
        conn.send(&Hello { protocol: PROTOCOL, session: self.session }).map_err(|e| greeting(e.to_string()))?;
        let welcome: Welcome = conn.recv_timeout(CONNECT_TIMEOUT).map_err(|e| greeting(e.to_string()))?;
        if welcome.protocol != PROTOCOL {
            return Err(ConnectError::Version { address: address.clone(), ours: PROTOCOL, theirs: welcome.protocol });
        }
        if let Err(known) = self.instance.compare_exchange(0, welcome.instance, Ordering::AcqRel, Ordering::Acquire) {
            if known != welcome.instance {
                self.stale.store(true, Ordering::Relaxed);
                return Err(greeting(
                    "another server now runs at this address: the one this proxy's objects lived in is gone".to_owned(),
                ));
            }
        }
        let limit = usize::try_from(welcome.max_message_size).unwrap_or(usize::MAX);
        conn.set_max_message_size(limit);
        self.max_message_size.store(limit, Ordering::Relaxed);
        self.server_pid.store(welcome.server_pid, Ordering::Relaxed);
        let mut link = Link { conn, mailbox: None, proven: false };
        if link.can_pass_fds() {
            // A server that cannot make one (out of memory) answers with an error, and
            // the connection simply stays on the socket.
            if let Ok(Response::Mailbox(fd)) = link.round_trip(&Request::OpenMailbox) {
                link.mailbox = Mailbox::attach(fd.into_inner()).ok();
            }
        }
        Ok(link)
    }

    /// Opens a connection now (and keeps it for later calls), to find out early
    /// whether the server can be reached. If another server now runs at the address,
    /// this pool becomes stale ([`is_stale`](Client::is_stale)) and the caller should
    /// get a fresh one.
    pub(crate) fn warm(&self) -> Result<(), ConnectError> {
        let link = self.open_link()?;
        self.checkin(link);
        Ok(())
    }

    /// Whether this pool was found to belong to a server that was replaced.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// The server's pid, once connected.
    pub(crate) fn server_pid(&self) -> Option<u32> {
        Some(self.server_pid.load(Ordering::Relaxed)).filter(|&p| p != 0)
    }

    /// Closes the idle connections (after a shutdown).
    pub(crate) fn close_idle(&self) {
        let links = std::mem::take(&mut *self.idle.lock());
        drop(links);
    }

    fn checkout(&self) -> Result<Link, ProxyError> {
        if let Some(link) = self.idle.lock().pop() {
            return Ok(link);
        }
        self.open_link().map_err(|e| match e {
            // A wrong key, or not a manager at all: say so.
            ConnectError::Pipe(multiproc_pipe::ConnectError::Authentication {
                source: AuthenticationError::WrongKey(_) | AuthenticationError::Protocol(_),
                ..
            })
            | ConnectError::Version { .. } => ProxyError::Connect(e),
            // Nothing listens any more, or it hung up on us (dying as we connected).
            other => ProxyError::ServerGone { reason: other.to_string() },
        })
    }

    fn checkin(&self, link: Link) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(link);
        }
    }

    /// Runs `f` with a connection of the pool; the connection goes back to the pool
    /// unless `f` reported it broken.
    pub(crate) fn with_link<R, E>(&self, f: impl FnOnce(&mut Link) -> Result<R, E>) -> Result<R, E>
    where
        E: From<ProxyError> + AsProxyError,
    {
        let mut link = self.checkout()?;
        let result = f(&mut link);
        match &result {
            Err(e) if e.as_proxy_error().is_some_and(breaks_link) => {}
            _ => self.checkin(link),
        }
        result
    }

    /// One request, one answer.
    pub(crate) fn call(&self, req: &Request) -> Result<Response, ProxyError> {
        self.with_link(|link| link.round_trip(req))
    }

    /// Sends a request whose answer does not matter (used from `Drop`).
    pub(crate) fn call_ignoring_errors(&self, req: &Request) {
        let _ = self.call(req);
    }
}

fn breaks_link(e: &ProxyError) -> bool {
    matches!(e, ProxyError::ServerGone { .. } | ProxyError::Protocol(_))
}

/// Errors that may wrap a [`ProxyError`], so [`Client::with_link`] can tell whether the
/// connection broke.
pub(crate) trait AsProxyError {
    fn as_proxy_error(&self) -> Option<&ProxyError>;
}

impl AsProxyError for ProxyError {
    fn as_proxy_error(&self) -> Option<&ProxyError> {
        Some(self)
    }
}

impl AsProxyError for crate::UpdateError {
    fn as_proxy_error(&self) -> Option<&ProxyError> {
        match self {
            crate::UpdateError::Proxy(e) => Some(e),
            _ => None,
        }
    }
}

/// What every proxy holds: the object's id on the server and the pool to reach it.
///
/// The server counts one reference per proxy (per process) that has used the object;
/// dropping the last clone of a proxy releases it. A proxy that was serialized (passed
/// to another process) keeps its reference until this process has no more connections
/// to the server (it exits, or drops every proxy and manager handle), so the receiver
/// always finds the object, however soon the sender drops its copy.
pub(crate) struct ObjectRef {
    id: u64,
    fingerprint: String,
    target: Target,
    client: Mutex<Arc<Client>>,
    /// The process `client` belongs to.
    client_pid: AtomicU32,
    /// The pid of the process in which this reference was counted by the server (0:
    /// none yet).
    attached_in: AtomicU32,
    shared_out: AtomicBool,
}

impl std::fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRef")
            .field("id", &self.id)
            .field("type", &self.fingerprint)
            .field("manager", &self.target.address)
            .finish()
    }
}

/// The serialized form of a proxy: where the server is, which object, and the key
/// (omitted when it is the process authkey, which children inherit).
#[derive(Serialize, Deserialize)]
pub(crate) struct WireRef {
    address: Address,
    authkey: Option<ByteBuf>,
    id: u64,
    fingerprint: String,
}

impl ObjectRef {
    /// A reference the server already counts for this process (just created or looked
    /// up).
    pub(crate) fn attached(client: Arc<Client>, id: u64, fingerprint: String) -> Arc<ObjectRef> {
        Arc::new(ObjectRef {
            id,
            fingerprint,
            target: client.target.clone(),
            client_pid: AtomicU32::new(client.pid),
            client: Mutex::new(client),
            attached_in: AtomicU32::new(std::process::id()),
            shared_out: AtomicBool::new(false),
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The manager the object lives in.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The pool of the calling process.
    pub(crate) fn client(&self) -> Arc<Client> {
        let me = std::process::id();
        if self.client_pid.load(Ordering::Acquire) == me {
            return self.client.lock().clone();
        }
        // First use in this process (a fork child): a thread of the parent may have held
        // the lock when it forked, and then it stays locked here for good; the pool is
        // found through the registry instead.
        match self.client.try_lock() {
            Some(mut c) => {
                if !c.is_current() {
                    *c = Client::get(&self.target);
                }
                self.client_pid.store(me, Ordering::Release);
                c.clone()
            }
            None => Client::get(&self.target),
        }
    }

    /// The server's message limit, which values are encoded under.
    pub(crate) fn limit(&self) -> usize {
        self.client().max_message_size()
    }

    /// Runs `op` on the object.
    pub(crate) fn call(&self, op: Op) -> Result<Response, ProxyError> {
        self.call_with(op, |link, req| link.round_trip(req))
    }

    /// Runs `op` with a custom exchange (`update_with` may need to prove the binary).
    pub(crate) fn call_with<E>(
        &self,
        op: Op,
        exchange: impl FnOnce(&mut Link, &Request) -> Result<Response, E>,
    ) -> Result<Response, E>
    where
        E: From<ProxyError> + AsProxyError,
    {
        let me = std::process::id();
        let current = self.attached_in.load(Ordering::Acquire);
        // Claim the attachment before the call, so two threads do not both attach.
        let attach = current != me
            && self.attached_in.compare_exchange(current, me, Ordering::AcqRel, Ordering::Acquire).is_ok();
        let req = Request::Call { id: self.id, attach, op };
        self.client().with_link(|link| exchange(link, &req))
    }

    /// The form a proxy takes when it is sent to another process.
    pub(crate) fn to_wire(&self) -> WireRef {
        self.shared_out.store(true, Ordering::Release);
        let key = &self.target.authkey;
        let authkey = (*key != multiproc_process::authkey()).then(|| ByteBuf::from(key.clone()));
        WireRef { address: self.target.address.clone(), authkey, id: self.id, fingerprint: self.fingerprint.clone() }
    }

    /// A reference received from another process; fails if it names another type.
    pub(crate) fn from_wire(w: WireRef, expected: &str) -> Result<Arc<ObjectRef>, String> {
        if w.fingerprint != expected {
            return Err(format!(
                "this proxy refers to a {} on the manager but is received as a {expected}; \
                 receive it with the types it was created with",
                w.fingerprint
            ));
        }
        let authkey = w.authkey.map_or_else(multiproc_process::authkey, ByteBuf::into_vec);
        let target = Target { address: w.address, authkey };
        let client = Client::get(&target);
        Ok(Arc::new(ObjectRef {
            id: w.id,
            fingerprint: w.fingerprint,
            target,
            client_pid: AtomicU32::new(client.pid),
            client: Mutex::new(client),
            attached_in: AtomicU32::new(0),
            shared_out: AtomicBool::new(false),
        }))
    }
}

impl Drop for ObjectRef {
    fn drop(&mut self) {
        let me = std::process::id();
        if self.attached_in.load(Ordering::Acquire) != me || self.shared_out.load(Ordering::Acquire) {
            return;
        }
        let client = self.client.get_mut();
        if client.is_current() {
            client.call_ignoring_errors(&Request::Release { id: self.id });
        }
    }
}

/// Turns an error answer into the proxy error it stands for.
pub(crate) fn server_error(e: ServerError) -> ProxyError {
    match e {
        ServerError::ObjectGone => ProxyError::ObjectGone,
        ServerError::WrongKind { expected, found } => ProxyError::TypeMismatch { expected, found },
        ServerError::TypeMismatch { expected, found } => ProxyError::TypeMismatch { expected, found },
        ServerError::NotRegistered(typeid) => ProxyError::NotRegistered { typeid },
        ServerError::IndexOutOfRange { index, len } => ProxyError::IndexOutOfRange { index, len },
        ServerError::Panicked(message) => ProxyError::Panicked { message },
        ServerError::Unsupported(m) => ProxyError::Unsupported(m),
        ServerError::TooLarge { size, limit } => ProxyError::TooLarge { size, limit },
        ServerError::TaskDone => ProxyError::TaskDone,
        ServerError::Queue(m) => ProxyError::Queue(m),
        other => ProxyError::Protocol(format!("{other:?}")),
    }
}

/// The error for an answer of the wrong shape.
pub(crate) fn unexpected(r: Response) -> ProxyError {
    match r {
        Response::Error(e) => server_error(e),
        other => ProxyError::Protocol(format!("unexpected answer {}", other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_in_a_mailbox_drops_only_that_connection() {
        let m = crate::Manager::builder().serve().unwrap();
        let d: crate::DictProxy<u8, u8> = m.dict().unwrap();
        let mut link = d.obj.client().open_link().unwrap();
        let conn = &link.conn;
        let mailbox = link.mailbox.as_mut().expect("a Unix-socket link has a mailbox");
        mailbox.post(Some(b"\xff\xfe\xfd not a request")).unwrap();
        let answer = mailbox.receive(Duration::from_millis(20), || matches!(conn.poll(Duration::ZERO), Ok(false)));
        assert!(matches!(answer, Err(Broken::Gone)), "{answer:?}");
        d.insert(1, 2).unwrap();
        assert_eq!(d.get(&1).unwrap(), Some(2));
    }

    #[test]
    fn messages_larger_than_a_mailbox_slot_go_through_the_socket() {
        let m = crate::Manager::builder().serve().unwrap();
        let l: crate::ListProxy<Vec<u8>> = m.list().unwrap();
        let target = Target { address: m.address().clone(), authkey: multiproc_process::authkey() };
        assert!(Client::get(&target).open_link().unwrap().mailbox.is_some(), "the links of this pool have mailboxes");
        let big = vec![7u8; crate::mailbox::CAPACITY * 3];
        l.push(big.clone()).unwrap();
        l.push(vec![1]).unwrap();
        assert_eq!(l.to_vec().unwrap(), [big, vec![1]]);
        assert_eq!(l.len().unwrap(), 2);
    }
}
