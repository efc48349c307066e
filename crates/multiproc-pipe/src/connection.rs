use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use multiproc_codec::{Bincode, DEFAULT_MAX_MESSAGE_SIZE, Fd, decode_with_fds, encode_with_fds};
use multiproc_sys::clofork::CloForkFd;
use parking_lot::{Mutex, MutexGuard};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::reader::{Body, Reader, ReaderState};
use crate::writer::{Writer, write_frame};
use crate::{RecvError, SendError};

/// What kind of socket a connection runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Transport {
    /// A Unix stream socket: can carry file descriptors.
    Unix,
    /// A TCP stream.
    Tcp,
}

/// One end of a connection between processes (Python's
/// `multiprocessing.connection.Connection`).
///
/// Made by [`Pipe::duplex`](crate::Pipe::duplex) / [`Pipe::simplex`](crate::Pipe::simplex),
/// [`Listener::accept`](crate::Listener::accept) and
/// [`Client::connect`](crate::Client::connect). It sends and receives whole messages:
///
/// - typed: [`send`](Connection::send)`(&value)` / [`recv`](Connection::recv)`::<T>()` for
///   any serde type (serde + bincode; decoding checks the bytes against `T` and never
///   runs code, unlike Python's pickle). Values may hold handles with file descriptors
///   (another `Connection`, a queue, a lock): those travel out of band over Unix sockets.
/// - bytes: [`send_bytes`](Connection::send_bytes) / [`recv_bytes`](Connection::recv_bytes),
///   [`recv_bytes_max`](Connection::recv_bytes_max), [`recv_bytes_into`](Connection::recv_bytes_into),
///   without any encoding.
///
/// Every message is framed, so it arrives whole or not at all: a peer that dies while
/// writing one gives [`RecvError::Truncated`], never part of a message. A peer that closed
/// its end gives [`RecvError::Disconnected`] once everything it sent has been received,
/// and [`SendError::Disconnected`] to a sender (never `SIGPIPE`). Messages up to
/// [`max_message_size`](Connection::max_message_size) (1 GiB by default) are accepted.
///
/// A `Connection` is `Send + Sync`: one thread may send while another receives; two
/// threads receiving take turns, message by message. Waiting spins for a few
/// microseconds before blocking (see [`multiproc_sys::spin`]), so a request/response
/// round trip between two busy processes costs microseconds, not the ~50 µs of two
/// process wake-ups.
///
/// ```
/// use multiproc_pipe::Pipe;
///
/// let (a, b) = Pipe::duplex()?;
/// a.send(&("hello", 42u32))?;
/// assert_eq!(b.recv::<(String, u32)>()?, ("hello".to_owned(), 42));
///
/// b.send_bytes(&b"raw bytes, no encoding"[4..9])?;
/// assert_eq!(a.recv_bytes()?, b"bytes");
///
/// assert!(!a.poll(std::time::Duration::ZERO)?); // nothing waiting
/// drop(b);
/// assert!(matches!(a.recv_bytes(), Err(multiproc_pipe::RecvError::Disconnected)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Passing a connection to another process
/// A `Connection` is `Serialize + Deserialize`: give it to
/// [`Process::new`](multiproc_process::Process::new) as (part of) the argument, under
/// any start method, or send it over another Unix-socket connection. Its descriptor
/// travels out of band; a fork child simply inherits it. As in Python, close (drop) your
/// copy of an end you handed over, or the peer never sees end-of-file.
///
/// A child started with [`StartMethod::Fork`] is a copy of the parent, but unlike
/// Python's fork method it keeps only the connections in its argument: the copies of
/// every other connection end (the parent's own end of the child's pipe, ends meant for
/// other children) are closed in the child as it starts, so end-of-file works the same
/// under every start method.
///
/// [`StartMethod::Fork`]: multiproc_process::StartMethod::Fork
///
/// # The descriptor
/// [`AsFd`] / [`AsRawFd`] give the socket (Python's `fileno()`), e.g. to register it with
/// an event loop. Messages are read ahead in user space, so a message can be waiting
/// while the socket is not readable: use [`poll`](Connection::poll) or [`wait`](crate::wait),
/// which look at both, or call `poll(Duration::ZERO)` before blocking on the descriptor.
pub struct Connection {
    fd: CloForkFd,
    readable: bool,
    writable: bool,
    transport: Transport,
    max_message_size: usize,
    reader: Mutex<Reader>,
    writer: Mutex<Writer>,
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    // A timeout too large to represent waits forever.
    Instant::now().checked_add(timeout)
}

fn lock_until<T>(m: &Mutex<T>, deadline: Option<Instant>) -> Option<MutexGuard<'_, T>> {
    match deadline {
        None => Some(m.lock()),
        Some(d) => m.try_lock_until(d),
    }
}

impl Connection {
    /// Wraps a connected stream socket.
    pub(crate) fn from_socket(fd: OwnedFd, readable: bool, writable: bool, transport: Transport) -> Connection {
        Connection {
            fd: CloForkFd::new(fd),
            readable,
            writable,
            transport,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            reader: Mutex::new(Reader::default()),
            writer: Mutex::new(Writer::default()),
        }
    }

    // ---- typed messages ----

    /// Sends a value, waiting as long as the peer needs to make room for it.
    ///
    /// The value is encoded with serde + bincode; any handles inside it (connections,
    /// other multiproc objects) have their descriptors sent along, which only a Unix
    /// socket can do ([`SendError::CannotPassFds`] over TCP).
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        self.send_until(value, None)
    }

    /// Like [`send`](Connection::send), but gives up after `timeout`.
    ///
    /// If the time runs out before any byte of the message was written, the result is
    /// [`SendError::Timeout`] and the connection is unchanged. A message cannot be taken
    /// back once part of it is written: if the time runs out then, the sending side is
    /// shut down (the peer sees a truncated message) and the result is
    /// [`SendError::Broken`].
    pub fn send_timeout<T: Serialize + ?Sized>(&self, value: &T, timeout: Duration) -> Result<(), SendError> {
        self.send_until(value, deadline_after(timeout))
    }

    /// Like [`send_timeout`](Connection::send_timeout) with a deadline.
    pub fn send_deadline<T: Serialize + ?Sized>(&self, value: &T, deadline: Instant) -> Result<(), SendError> {
        self.send_until(value, Some(deadline))
    }

    fn send_until<T: Serialize + ?Sized>(&self, value: &T, deadline: Option<Instant>) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::NotWritable);
        }
        let mut guard = lock_until(&self.writer, deadline).ok_or(SendError::Timeout)?;
        let w = &mut *guard;
        w.scratch.clear();
        let codec = Bincode::with_max_message_size(self.max_message_size);
        let fds = encode_with_fds(&codec, value, &mut w.scratch)?;
        if !fds.is_empty() && self.transport != Transport::Unix {
            return Err(SendError::CannotPassFds { count: fds.len() });
        }
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        let result = write_frame(self.fd.as_fd(), &mut w.broken, &w.scratch, &borrowed, deadline);
        w.trim();
        result
    }

    /// Receives a value, waiting as long as it takes.
    ///
    /// Fails with [`RecvError::Disconnected`] once the peer has closed its end and every
    /// message it sent was received; [`RecvError::Decode`] if the message is not a `T`
    /// (it is consumed; the connection stays usable).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        self.recv_until(None)
    }

    /// Receives a value if one is ready now; [`RecvError::Timeout`] if not.
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        self.recv_until(Some(Instant::now()))
    }

    /// Like [`recv`](Connection::recv), but gives up with [`RecvError::Timeout`] after
    /// `timeout`. A message that had started to arrive is kept: the next receive gets it.
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_until(deadline_after(timeout))
    }

    /// Like [`recv_timeout`](Connection::recv_timeout) with a deadline.
    pub fn recv_deadline<T: DeserializeOwned>(&self, deadline: Instant) -> Result<T, RecvError> {
        self.recv_until(Some(deadline))
    }

    fn recv_until<T: DeserializeOwned>(&self, deadline: Option<Instant>) -> Result<T, RecvError> {
        if !self.readable {
            return Err(RecvError::NotReadable);
        }
        let mut r = lock_until(&self.reader, deadline).ok_or(RecvError::Timeout)?;
        let (body, fds) = r.next(self.fd.as_fd(), deadline, self.max_message_size)?;
        let codec = Bincode::with_max_message_size(self.max_message_size);
        Ok(decode_with_fds(&codec, r.bytes(&body), fds)?)
    }

    // ---- byte messages ----

    /// Sends `bytes` as one message, without encoding (Python's `send_bytes`; its
    /// `offset` and `size` arguments are a slice here: `send_bytes(&buf[offset..offset + size])`).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
        self.send_bytes_until(bytes, None)
    }

    pub(crate) fn send_bytes_until(&self, bytes: &[u8], deadline: Option<Instant>) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::NotWritable);
        }
        if bytes.len() > self.max_message_size {
            return Err(SendError::TooLarge { size: bytes.len() as u64, limit: self.max_message_size });
        }
        let mut guard = lock_until(&self.writer, deadline).ok_or(SendError::Timeout)?;
        write_frame(self.fd.as_fd(), &mut guard.broken, bytes, &[], deadline)
    }

    /// Receives one message's bytes, waiting as long as it takes.
    ///
    /// A message sent with [`send`](Connection::send) comes back as its encoding.
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.recv_bytes_until(None, self.max_message_size)
    }

    /// Like [`recv_bytes`](Connection::recv_bytes), but gives up with
    /// [`RecvError::Timeout`] after `timeout`; a message that had started to arrive is
    /// kept for the next receive.
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.recv_bytes_until(deadline_after(timeout), self.max_message_size)
    }

    /// Receives one message's bytes if it is at most `maxlength` long (Python's
    /// `recv_bytes(maxlength)`).
    ///
    /// A longer message gives [`RecvError::TooLarge`] and is skipped without being
    /// stored; unlike Python, the connection stays usable and the next call receives the
    /// next message.
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>, RecvError> {
        self.recv_bytes_until(None, maxlength.min(self.max_message_size))
    }

    pub(crate) fn recv_bytes_until(&self, deadline: Option<Instant>, limit: usize) -> Result<Vec<u8>, RecvError> {
        if !self.readable {
            return Err(RecvError::NotReadable);
        }
        let mut r = lock_until(&self.reader, deadline).ok_or(RecvError::Timeout)?;
        let (body, _fds) = r.next(self.fd.as_fd(), deadline, limit)?;
        Ok(match body {
            Body::Owned(v) => v,
            buffered @ Body::Buffered(_) => r.bytes(&buffered).to_vec(),
        })
    }

    /// Receives one message into `buf` and returns its length (Python's
    /// `recv_bytes_into`; its `offset` argument is a slice here: `&mut buf[offset..]`).
    ///
    /// If the message is longer than `buf`, the result is [`RecvError::BufferTooShort`]
    /// holding the whole message, as in Python: nothing is lost.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        if !self.readable {
            return Err(RecvError::NotReadable);
        }
        let mut r = self.reader.lock();
        r.next_into(self.fd.as_fd(), buf, self.max_message_size)
    }

    // ---- waiting ----

    /// Whether there is something to receive (Python's `poll`): waits up to `timeout`
    /// (`None`: until something arrives; `Duration::ZERO`: just looks).
    ///
    /// `true` means a message (or part of one: the rest is on its way), or that the peer
    /// closed its end (a receive then reports it).
    pub fn poll(&self, timeout: impl Into<Option<Duration>>) -> Result<bool, RecvError> {
        if !self.readable {
            return Err(RecvError::NotReadable);
        }
        let deadline = timeout.into().and_then(deadline_after);
        let Some(mut r) = lock_until(&self.reader, deadline) else { return Ok(false) };
        if r.ready_now() {
            return Ok(true);
        }
        match r.fill(self.fd.as_fd(), deadline) {
            Ok(_) => Ok(true),
            Err(RecvError::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether a receive would find something without reading the socket (used by
    /// [`wait`](crate::wait)). `false` if another thread is receiving right now.
    pub(crate) fn ready_now(&self) -> bool {
        self.readable && self.reader.try_lock().is_some_and(|r| r.ready_now())
    }

    // ---- the rest ----

    /// Closes this end (Python's `close`); the same as dropping it. The peer sees
    /// end-of-file once every copy of this end (in children too) is closed.
    pub fn close(self) {
        drop(self);
    }

    /// Whether this end can receive (`false` for the sending end of a simplex pipe).
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send (`false` for the receiving end of a simplex pipe).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether messages on this connection can carry file descriptors (Unix sockets can,
    /// TCP cannot).
    pub fn can_pass_fds(&self) -> bool {
        self.transport == Transport::Unix
    }

    /// The largest message this end sends or receives, in bytes (1 GiB by default).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Sets the largest message this end sends or receives. Set the same limit on both
    /// ends: a receiver refuses (and skips) larger messages.
    pub fn set_max_message_size(&mut self, bytes: usize) {
        self.max_message_size = bytes;
    }

    /// Builder form of [`set_max_message_size`](Connection::set_max_message_size).
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> Connection {
        self.max_message_size = bytes;
        self
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_fd().as_raw_fd()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_fd().as_raw_fd())
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .field("transport", &self.transport)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

// The serialized form: the descriptor (out of band), the flags, and whatever the reader
// had read ahead, so that no message is lost on the way. Field order is the wire format.
#[derive(Serialize)]
struct WireRef<'a> {
    fd: &'a Fd,
    readable: bool,
    writable: bool,
    transport: Transport,
    max_message_size: u64,
    send_broken: bool,
    reader: ReaderState,
}

#[derive(Deserialize)]
struct WireOwned {
    fd: Fd,
    readable: bool,
    writable: bool,
    transport: Transport,
    max_message_size: u64,
    send_broken: bool,
    reader: ReaderState,
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let reader = self
            .reader
            .try_lock()
            .ok_or_else(|| S::Error::custom("cannot send a Connection while another thread is receiving on it"))?;
        let reader = reader.snapshot().map_err(|e| S::Error::custom(format!("cannot duplicate descriptor: {e}")))?;
        let send_broken = self.writer.try_lock().is_some_and(|w| w.broken);
        // A fork child that is given this connection keeps its descriptor; the others it
        // inherited are closed (see `multiproc_sys::clofork`).
        self.fd.mark_reachable();
        let fd = self
            .fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| S::Error::custom(format!("cannot duplicate descriptor: {e}")))?;
        WireRef {
            fd: &Fd::new(fd),
            readable: self.readable,
            writable: self.writable,
            transport: self.transport,
            max_message_size: self.max_message_size as u64,
            send_broken,
            reader,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Connection, D::Error> {
        let w = WireOwned::deserialize(d)?;
        let max_message_size = usize::try_from(w.max_message_size)
            .map_err(|_| D::Error::custom("max_message_size does not fit this platform"))?;
        Ok(Connection {
            fd: CloForkFd::new(w.fd.into_inner()),
            readable: w.readable,
            writable: w.writable,
            transport: w.transport,
            max_message_size,
            reader: Mutex::new(Reader::restore(w.reader)),
            writer: Mutex::new(Writer { scratch: Vec::new(), broken: w.send_broken }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pipe;
    use crate::frame::Header;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// A raw writer on the same socket as `conn`, to forge frames.
    fn raw(conn: &Connection) -> UnixStream {
        UnixStream::from(conn.as_fd().try_clone_to_owned().unwrap())
    }

    fn header(len: u64) -> [u8; 16] {
        Header { fds: 0, len }.encode()
    }

    #[test]
    fn truncated_header_and_body_are_reported() {
        let (a, b) = Pipe::duplex().unwrap();
        let mut w = raw(&a);
        w.write_all(&header(1 << 20)[..]).unwrap();
        w.write_all(b"only a few bytes").unwrap();
        drop((w, a));
        match b.recv_bytes() {
            Err(RecvError::Truncated { received, expected }) => assert_eq!((received, expected), (32, 16 + (1 << 20))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(b.recv_bytes(), Err(RecvError::Disconnected)));

        let (a, b) = Pipe::duplex().unwrap();
        raw(&a).write_all(&header(5)[..7]).unwrap();
        drop(a);
        assert!(matches!(b.recv::<u8>(), Err(RecvError::Truncated { received: 7, expected: 16 })));
        assert!(matches!(b.recv::<u8>(), Err(RecvError::Disconnected)));
    }

    #[test]
    fn garbage_breaks_the_stream_for_good() {
        let (a, b) = Pipe::duplex().unwrap();
        raw(&a).write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let e = b.recv_bytes().unwrap_err();
        assert!(matches!(&e, RecvError::Corrupt(m) if m.contains("GET / HTTP")), "{e:?}");
        a.send_bytes(b"valid").unwrap();
        assert!(matches!(b.recv_bytes(), Err(RecvError::Corrupt(_))));
        assert!(b.poll(Duration::ZERO).unwrap());
    }

    #[test]
    fn too_large_is_skipped_even_when_it_arrives_later() {
        let (a, b) = Pipe::duplex().unwrap();
        let mut w = raw(&a);
        // Header and a first part now, the rest after the refusal.
        w.write_all(&header(100_000)).unwrap();
        w.write_all(&[1u8; 10]).unwrap();
        let e = b.recv_bytes_max(50).unwrap_err();
        assert!(matches!(e, RecvError::TooLarge { size: 100_000, limit: 50 }), "{e:?}");
        assert!(e.to_string().contains("skipped"), "{e}");
        w.write_all(&vec![2u8; 100_000 - 10]).unwrap();
        a.send_bytes(b"next").unwrap();
        assert_eq!(b.recv_bytes().unwrap(), b"next");
    }

    #[test]
    fn timeout_mid_message_keeps_the_message() {
        let (a, b) = Pipe::duplex().unwrap();
        let mut w = raw(&a);
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        w.write_all(&header(body.len() as u64)).unwrap();
        w.write_all(&body[..150_000]).unwrap();
        assert!(matches!(b.recv_bytes_timeout(Duration::from_millis(10)), Err(RecvError::Timeout)));
        assert!(matches!(b.try_recv::<Vec<u8>>(), Err(RecvError::Timeout)));
        w.write_all(&body[150_000..]).unwrap();
        assert_eq!(b.recv_bytes().unwrap(), body);
    }

    #[test]
    fn into_too_short_keeps_everything() {
        let (a, b) = Pipe::duplex().unwrap();
        for m in [&b"0123456789"[..], b"abc", &[7u8; 100_000]] {
            a.send_bytes(m).unwrap();
        }
        let mut buf = [0u8; 5];
        match b.recv_bytes_into(&mut buf) {
            Err(RecvError::BufferTooShort { message, buffer: 5 }) => assert_eq!(message, b"0123456789"),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        let mut big = vec![0u8; 200_000];
        assert_eq!(b.recv_bytes_into(&mut big[1000..]).unwrap(), 100_000);
        assert!(big[1000..101_000].iter().all(|&x| x == 7));
    }

    #[test]
    fn simplex_ends_refuse_the_wrong_direction() {
        let (r, w) = Pipe::simplex().unwrap();
        assert!(matches!(r.send(&1u8), Err(SendError::NotWritable)));
        assert!(matches!(w.recv::<u8>(), Err(RecvError::NotReadable)));
        assert!(matches!(w.poll(Duration::ZERO), Err(RecvError::NotReadable)));
        w.send(&1u8).unwrap();
        assert_eq!(r.recv::<u8>().unwrap(), 1);
        assert!(r.readable() && !r.writable() && w.writable() && !w.readable());
    }

    #[test]
    fn limits_apply_on_both_sides() {
        let (a, b) = Pipe::duplex().unwrap();
        let a = a.with_max_message_size(8);
        assert!(matches!(a.send_bytes(&[0; 9]), Err(SendError::TooLarge { size: 9, limit: 8 })));
        assert!(matches!(a.send(&vec![0u8; 20]), Err(SendError::TooLarge { .. })));
        let mut b = b;
        b.set_max_message_size(4);
        a.send_bytes(&[1; 8]).unwrap();
        a.send(&3u8).unwrap();
        assert!(matches!(b.recv_bytes(), Err(RecvError::TooLarge { size: 8, limit: 4 })));
        assert_eq!(b.recv::<u8>().unwrap(), 3);
    }

    #[test]
    fn decode_errors_leave_the_connection_usable() {
        let (a, b) = Pipe::duplex().unwrap();
        a.send(&"not a number").unwrap();
        a.send(&5u64).unwrap();
        assert!(matches!(b.recv::<u64>(), Err(RecvError::Decode(_))));
        assert_eq!(b.recv::<u64>().unwrap(), 5);
    }

    #[test]
    fn a_connection_travels_inside_a_message_with_its_read_ahead() {
        let (a, b) = Pipe::duplex().unwrap();
        let (c, d) = Pipe::duplex().unwrap();
        // Three messages arrive in c's read-ahead buffer at once; we receive one.
        for i in 0..3u32 {
            d.send(&i).unwrap();
        }
        assert_eq!(c.recv::<u32>().unwrap(), 0);
        a.send(&c).unwrap();
        drop(c);
        let c2: Connection = b.recv().unwrap();
        assert_eq!(c2.recv::<u32>().unwrap(), 1);
        assert_eq!(c2.recv::<u32>().unwrap(), 2);
        c2.send(&"back").unwrap();
        assert_eq!(d.recv::<String>().unwrap(), "back");
    }

    #[test]
    fn send_to_a_closed_peer_is_an_error_not_sigpipe() {
        let (a, b) = Pipe::duplex().unwrap();
        b.close();
        assert!(matches!(a.send(&1u8), Err(SendError::Disconnected)));
        assert!(matches!(a.send_bytes(&[0; 1 << 20]), Err(SendError::Disconnected)));
        assert!(matches!(a.recv::<u8>(), Err(RecvError::Disconnected)));
    }

    #[test]
    fn send_timeout_before_and_during_a_message() {
        let (a, b) = Pipe::duplex().unwrap();
        // Fill the socket with messages nobody reads.
        let chunk = vec![0u8; 1024];
        let mut sent = 0;
        loop {
            match a.send_timeout(&chunk, Duration::from_millis(20)) {
                Ok(()) => sent += 1,
                Err(SendError::Timeout) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(sent > 0);
        // Still healthy: make room and the next send works.
        for _ in 0..sent {
            b.recv::<Vec<u8>>().unwrap();
        }
        a.send(&1u8).unwrap();
        assert_eq!(b.recv::<u8>().unwrap(), 1);
        // A message far larger than the socket buffer is cut off mid-way.
        let big = vec![0u8; 8 << 20];
        assert!(matches!(a.send_timeout(&big, Duration::from_millis(20)), Err(SendError::Broken)));
        assert!(matches!(a.send(&1u8), Err(SendError::Broken)));
        assert!(matches!(b.recv::<Vec<u8>>(), Err(RecvError::Truncated { .. })));
    }

    #[test]
    fn poll_reads_ahead_without_losing_anything() {
        let (a, b) = Pipe::duplex().unwrap();
        assert!(!b.poll(Duration::ZERO).unwrap());
        assert!(!b.poll(Duration::from_millis(5)).unwrap());
        let big = vec![9u8; 300_000];
        let t = std::thread::spawn(move || {
            a.send_bytes(&big).unwrap();
            a.send(&"after").unwrap();
            a
        });
        assert!(b.poll(None).unwrap());
        assert!(b.poll(Duration::ZERO).unwrap());
        assert_eq!(b.recv_bytes().unwrap(), vec![9u8; 300_000]);
        assert_eq!(b.recv::<String>().unwrap(), "after");
        drop(t.join().unwrap());
        assert!(b.poll(Duration::ZERO).unwrap());
        assert!(matches!(b.recv::<String>(), Err(RecvError::Disconnected)));
    }
}
