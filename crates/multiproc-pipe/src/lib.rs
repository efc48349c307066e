//! Python's `multiprocessing.Pipe`, `Connection` and `multiprocessing.connection`
//! (`Listener`, `Client`, `wait`) for Rust: whole messages between processes, typed or
//! raw bytes, over Unix sockets or TCP.
//!
//! | Python | here |
//! |---|---|
//! | `a, b = Pipe()` / `r, w = Pipe(duplex=False)` | [`Pipe::duplex`] / [`Pipe::simplex`] |
//! | `conn.send(obj)`, `conn.recv()` | [`Connection::send`]`(&value)`, [`Connection::recv`]`::<T>()` (serde types, not pickle), with `_timeout` forms |
//! | `send_bytes(buf, offset, size)`, `recv_bytes(maxlength)`, `recv_bytes_into(buf, offset)` | [`Connection::send_bytes`]`(&buf[offset..offset + size])`, [`Connection::recv_bytes`], [`Connection::recv_bytes_max`], [`Connection::recv_bytes_into`]`(&mut buf[offset..])` |
//! | `conn.poll(timeout)`, `conn.fileno()`, `conn.close()` | [`Connection::poll`], [`AsRawFd`](std::os::fd::AsRawFd), [`Connection::close`] |
//! | `EOFError`, `BufferTooShort`, `AuthenticationError` | [`RecvError::Disconnected`], [`RecvError::BufferTooShort`], [`AuthenticationError`] |
//! | `Listener(address, authkey=...)`, `Client(address, authkey=...)` | [`Listener::bind`], [`Client::connect`], with an [`Address`] |
//! | `multiprocessing.connection.wait(objects, timeout)` | [`wait`], over any [`Waitable`]s |
//!
//! How the pieces fit: a [`Connection`] owns one stream socket (a socketpair for a pipe,
//! an accepted or connected socket for a listener). Each message is a frame (header,
//! payload, and any file descriptors the payload's handles need, sent with
//! `SCM_RIGHTS`); the receiver reads ahead into a buffer, checks every header, and
//! enforces a size limit before it allocates. Every wait spins for a few microseconds
//! before blocking, through the policy shared by all of multiproc
//! ([`multiproc_sys::spin`]). A `Connection` is itself `Serialize + Deserialize`, so
//! it can be a [`Process`](multiproc_process::Process) argument under every start method.
//!
//! Differences from Python, on purpose: typed messages are decoded against the type the
//! receiver names and can never run code; a too-long message leaves the connection
//! usable; a peer killed mid-message gives [`RecvError::Truncated`], never a hang;
//! sending never raises `SIGPIPE`; listeners always authenticate, in both directions,
//! with a handshake that has a size limit and a timeout.

mod address;
mod auth;
mod connection;
mod error;
mod frame;
mod listener;
mod pipe;
mod reader;
mod wait;
mod writer;

pub use address::Address;
pub use connection::Connection;
pub use error::{AcceptError, AddressParseError, AuthenticationError, ConnectError, ListenError, RecvError, SendError};
pub use listener::{Client, DEFAULT_HANDSHAKE_TIMEOUT, Listener};
pub use pipe::Pipe;
pub use wait::{Waitable, wait};
