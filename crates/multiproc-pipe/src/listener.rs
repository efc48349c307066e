use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use multiproc_codec::DEFAULT_MAX_MESSAGE_SIZE;
use multiproc_sys::clofork::CloForkFd;

use crate::auth::{self, HANDSHAKE_LIMIT};
use crate::connection::Transport;
use crate::{AcceptError, Address, ConnectError, Connection, ListenError};

/// How long the authentication handshake of a new connection may take by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Unix,
    Tcp,
}

/// The socket file a listener created, removed when it is dropped if it is still the
/// same file and we are the process that made it (a fork child's copy leaves it alone).
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    owner: u32,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Accepts authenticated connections on a Unix socket path, a Linux abstract socket or
/// a TCP address (Python's `multiprocessing.connection.Listener`).
///
/// Every accepted connection has first passed a mutual HMAC-SHA256 challenge–response
/// with the listener's authkey (by default the process authkey,
/// [`multiproc_process::authkey`], which child processes inherit). A client with another
/// key, or one that sends garbage or nothing, makes [`accept`](Listener::accept) return
/// an error after at most the [handshake timeout](Listener::set_handshake_timeout), and
/// the listener stays usable.
///
/// A Unix socket file is removed when the listener is dropped.
///
/// ```
/// use multiproc_pipe::{Address, Client, Listener};
///
/// let listener = Listener::bind(&Address::localhost_any_port(), None)?;
/// let address = listener.address().clone(); // the port that was given
/// let client = std::thread::spawn(move || -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
///     let conn = Client::connect(&address, None)?;
///     conn.send(&"ping")?;
///     Ok(conn.recv::<String>()?)
/// });
/// let conn = listener.accept()?;
/// let got: String = conn.recv()?;
/// conn.send(&format!("{got} pong"))?;
/// assert_eq!(client.join().unwrap().unwrap(), "ping pong");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Listener {
    // Registered close-on-fork: a fork child, which cannot be handed the listener, does
    // not keep its address bound once the listener is closed.
    socket: CloForkFd,
    family: Family,
    address: Address,
    authkey: Vec<u8>,
    handshake_timeout: Duration,
    max_message_size: usize,
    _file: Option<SocketFile>,
}

impl Listener {
    /// Listens on `address` (Python's `Listener(address, authkey=...)`).
    ///
    /// `authkey: None` uses the process authkey ([`multiproc_process::authkey`]); unlike
    /// Python, connections are always authenticated. A Unix path must not exist yet.
    pub fn bind(address: &Address, authkey: Option<&[u8]>) -> Result<Listener, ListenError> {
        let fail = |source: io::Error| ListenError { address: address.clone(), source };
        let (socket, family, bound, file): (OwnedFd, _, _, _) = match address {
            Address::Unix(path) => {
                let l = UnixListener::bind(path).map_err(fail)?;
                let meta = std::fs::symlink_metadata(path).map_err(fail)?;
                let file =
                    SocketFile { path: path.clone(), dev: meta.dev(), ino: meta.ino(), owner: std::process::id() };
                // Accepting never blocks inside the call: we wait in poll, with a deadline.
                l.set_nonblocking(true).map_err(fail)?;
                (l.into(), Family::Unix, address.clone(), Some(file))
            }
            Address::Abstract(name) => {
                let addr = UnixSocketAddr::from_abstract_name(name).map_err(fail)?;
                let l = UnixListener::bind_addr(&addr).map_err(fail)?;
                l.set_nonblocking(true).map_err(fail)?;
                (l.into(), Family::Unix, address.clone(), None)
            }
            Address::Tcp(addr) => {
                let l = TcpListener::bind(addr).map_err(fail)?;
                let bound = Address::Tcp(l.local_addr().map_err(fail)?);
                l.set_nonblocking(true).map_err(fail)?;
                (l.into(), Family::Tcp, bound, None)
            }
        };
        Ok(Listener {
            socket: CloForkFd::new(socket),
            family,
            address: bound,
            authkey: authkey.map_or_else(multiproc_process::authkey, <[u8]>::to_vec),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            _file: file,
        })
    }

    /// The address clients connect to (for `127.0.0.1:0`, with the port that was given).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// How long a new connection may take to authenticate
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`] unless set).
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Sets how long a new connection may take to authenticate before `accept` gives up
    /// on it with [`AuthenticationError::Timeout`](crate::AuthenticationError::Timeout).
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// Sets the [`max_message_size`](Connection::max_message_size) of accepted connections.
    pub fn set_max_message_size(&mut self, bytes: usize) {
        self.max_message_size = bytes;
    }

    /// Waits for a client and authenticates it (Python's `accept`).
    ///
    /// A client that fails to authenticate is disconnected and reported as
    /// [`AcceptError::Authentication`]; call `accept` again for the next one.
    /// Authentication runs inside this call, so a client that stalls delays the next
    /// accept by up to the handshake timeout.
    pub fn accept(&self) -> Result<Connection, AcceptError> {
        self.accept_until(None)
    }

    /// Like [`accept`](Listener::accept), but returns [`AcceptError::Timeout`] if no
    /// client connects within `timeout` (the handshake has its own timeout).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection, AcceptError> {
        self.accept_until(Instant::now().checked_add(timeout))
    }

    fn accept_until(&self, deadline: Option<Instant>) -> Result<Connection, AcceptError> {
        let (fd, transport) = loop {
            // std's listeners own their descriptor, so accept through a duplicate (one
            // extra system call per connection; the socket is the same).
            let dup = self.socket.as_fd().try_clone_to_owned()?;
            let accepted = match self.family {
                Family::Unix => UnixListener::from(dup).accept().map(|(s, _)| (OwnedFd::from(s), Transport::Unix)),
                Family::Tcp => TcpListener::from(dup).accept().and_then(|(s, _)| {
                    s.set_nodelay(true)?;
                    Ok((OwnedFd::from(s), Transport::Tcp))
                }),
            };
            match accepted {
                Ok(x) => break x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The client gave up before we got to it: wait for the next one.
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => continue,
                Err(e) => return Err(AcceptError::Io(e)),
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(AcceptError::Timeout),
                },
            };
            multiproc_sys::poll::readable(&[self.as_fd()], left)?;
        };
        let conn = Connection::from_socket(fd, true, true, transport).with_max_message_size(HANDSHAKE_LIMIT);
        auth::server(&conn, &self.authkey, self.handshake_timeout)?;
        Ok(conn.with_max_message_size(self.max_message_size))
    }

    /// Stops listening (Python's `close`); the same as dropping it. A Unix socket file is
    /// removed.
    pub fn close(self) {
        drop(self);
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("fd", &self.as_raw_fd())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("authkey", &format_args!("<{} bytes>", self.authkey.len()))
            .finish()
    }
}

/// Connects to a [`Listener`] (Python's `multiprocessing.connection.Client`).
///
/// See [`Listener`] for an example.
#[derive(Debug)]
pub enum Client {}

impl Client {
    /// Connects to `address` and authenticates with `authkey` (`None`: the process
    /// authkey, [`multiproc_process::authkey`]), giving the handshake
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn connect(address: &Address, authkey: Option<&[u8]>) -> Result<Connection, ConnectError> {
        Client::connect_timeout(address, authkey, DEFAULT_HANDSHAKE_TIMEOUT)
    }

    /// Like [`connect`](Client::connect), with a timeout for connecting (TCP) and for the
    /// handshake.
    pub fn connect_timeout(
        address: &Address,
        authkey: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let fail = |source: io::Error| ConnectError::Connect { address: address.clone(), source };
        let (fd, transport) = match address {
            Address::Unix(path) => (OwnedFd::from(UnixStream::connect(path).map_err(fail)?), Transport::Unix),
            Address::Abstract(name) => {
                let addr = UnixSocketAddr::from_abstract_name(name).map_err(fail)?;
                (OwnedFd::from(UnixStream::connect_addr(&addr).map_err(fail)?), Transport::Unix)
            }
            Address::Tcp(addr) => {
                let s = TcpStream::connect_timeout(addr, timeout).map_err(fail)?;
                s.set_nodelay(true).map_err(fail)?;
                (OwnedFd::from(s), Transport::Tcp)
            }
        };
        let conn = Connection::from_socket(fd, true, true, transport).with_max_message_size(HANDSHAKE_LIMIT);
        let key = authkey.map_or_else(multiproc_process::authkey, <[u8]>::to_vec);
        auth::client(&conn, &key, timeout)
            .map_err(|source| ConnectError::Authentication { address: address.clone(), source })?;
        Ok(conn.with_max_message_size(DEFAULT_MAX_MESSAGE_SIZE))
    }
}
