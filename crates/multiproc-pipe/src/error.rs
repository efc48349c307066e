//! One error type per family of operations.

use std::fmt;
use std::io;
use std::time::Duration;

use multiproc_codec::{DecodeError, EncodeError, human_size};

use crate::Address;

fn size_u64(bytes: u64) -> String {
    human_size(usize::try_from(bytes).unwrap_or(usize::MAX))
}

/// Why a message was not sent ([`Connection::send`](crate::Connection::send),
/// [`send_bytes`](crate::Connection::send_bytes) and their `_timeout` forms).
///
/// Sends borrow the message, so nothing is lost: the caller still holds it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer closed its end (or died); nothing more can be sent. Python: `BrokenPipeError`.
    #[error("peer closed the connection; the message was not sent")]
    Disconnected,
    /// The message is larger than the connection's limit; nothing was sent.
    #[error(
        "message of {} exceeds the {} limit set by `max_message_size`; nothing was sent \
         (raise the limit with `Connection::set_max_message_size` on both ends)",
        size_u64(*size),
        human_size(*limit)
    )]
    TooLarge {
        /// The message size in bytes.
        size: u64,
        /// The connection's limit in bytes.
        limit: usize,
    },
    /// The value could not be encoded; nothing was sent.
    #[error("cannot encode the message: {0}")]
    Encode(EncodeError),
    /// The timeout of `send_timeout` / `send_deadline` expired before any of the message
    /// was written; nothing was sent and the connection is still usable.
    #[error("timed out waiting for the peer to make room for the message; nothing was sent")]
    Timeout,
    /// A send was cut off in the middle of a message (its timeout expired after part of it
    /// was written, or a system call failed), so this connection can send no more: its
    /// sending side was shut down and the peer will see a truncated message.
    #[error(
        "the connection can no longer send: an earlier message was cut off mid-way \
         (the peer will see a truncated message); open a new connection"
    )]
    Broken,
    /// This end only receives (the reading end of [`Pipe::simplex`](crate::Pipe::simplex)).
    #[error("this connection is the receiving end of a one-way pipe; send on the other end")]
    NotWritable,
    /// The message holds handles (file descriptors), which only Unix-socket connections
    /// can carry.
    #[error(
        "the message holds {count} file descriptor handle(s), which only Unix-socket \
         connections can carry, not TCP; send handles over a Pipe or a Unix-socket Listener"
    )]
    CannotPassFds {
        /// How many descriptors the message holds.
        count: usize,
    },
    /// A system call failed.
    #[error("cannot send: {0}")]
    Io(#[from] io::Error),
}

impl From<EncodeError> for SendError {
    fn from(e: EncodeError) -> SendError {
        match e {
            EncodeError::TooLarge { size, limit } => SendError::TooLarge { size: size as u64, limit },
            other => SendError::Encode(other),
        }
    }
}

/// Why no message was received ([`Connection::recv`](crate::Connection::recv),
/// the `recv_bytes` family and [`Connection::poll`](crate::Connection::poll)).
///
/// After [`TooLarge`](RecvError::TooLarge), [`Decode`](RecvError::Decode),
/// [`BufferTooShort`](RecvError::BufferTooShort) and [`Timeout`](RecvError::Timeout)
/// the connection is still usable: the next call receives the next message.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The peer closed its end (or died) and every message it sent has been received.
    /// Python: `EOFError`.
    #[error("peer closed the connection (all messages it sent have been received)")]
    Disconnected,
    /// The peer closed its end (or died) in the middle of a message; the part that
    /// arrived is discarded, never returned as if it were whole.
    #[error(
        "peer closed the connection in the middle of a message ({received} of {expected} bytes \
         arrived; was it killed?); the partial message was discarded"
    )]
    Truncated {
        /// Bytes of the message that arrived (header included while it was incomplete).
        received: u64,
        /// Bytes the message should have had.
        expected: u64,
    },
    /// The message is larger than allowed (the connection's `max_message_size`, or the
    /// `maxlength` of [`recv_bytes_max`](crate::Connection::recv_bytes_max)). It is
    /// skipped without being stored: the next receive gets the next message.
    #[error(
        "message of {} exceeds the {} limit; it was skipped and the next message can be received \
         (raise the limit with `Connection::set_max_message_size` if it was legitimate)",
        size_u64(*size),
        human_size(*limit)
    )]
    TooLarge {
        /// The message size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// The buffer given to [`recv_bytes_into`](crate::Connection::recv_bytes_into) is
    /// shorter than the message. The whole message is here (Python's `BufferTooShort`
    /// carries it the same way), so nothing is lost.
    #[error("buffer of {buffer} bytes is too short for a message of {} bytes; the message is in the error", .message.len())]
    BufferTooShort {
        /// The complete message.
        message: Vec<u8>,
        /// The length of the buffer that was given.
        buffer: usize,
    },
    /// The message arrived whole but is not a valid encoding of the expected type (the
    /// two ends disagree on the type, or the peer sent garbage). It is consumed.
    #[error("received a message that does not decode as the expected type: {0}")]
    Decode(#[from] DecodeError),
    /// No message arrived within the timeout. A message that had started to arrive is
    /// kept and completed by the next receive.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The bytes on the connection are not frames of this protocol (the peer is not a
    /// multiproc connection, or something wrote to the socket directly). The connection
    /// cannot be used to receive any more.
    #[error("the connection carries bytes that are not multiproc messages ({0}); it can no longer receive")]
    Corrupt(String),
    /// This end only sends (the writing end of [`Pipe::simplex`](crate::Pipe::simplex)).
    #[error("this connection is the sending end of a one-way pipe; receive on the other end")]
    NotReadable,
    /// A system call failed.
    #[error("cannot receive: {0}")]
    Io(#[from] io::Error),
}

impl fmt::Debug for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Disconnected => f.write_str("Disconnected"),
            RecvError::Truncated { received, expected } => {
                f.debug_struct("Truncated").field("received", received).field("expected", expected).finish()
            }
            RecvError::TooLarge { size, limit } => {
                f.debug_struct("TooLarge").field("size", size).field("limit", limit).finish()
            }
            // A message can be huge: show its length, not its bytes.
            RecvError::BufferTooShort { message, buffer } => f
                .debug_struct("BufferTooShort")
                .field("message", &format_args!("<{} bytes>", message.len()))
                .field("buffer", buffer)
                .finish(),
            RecvError::Decode(e) => f.debug_tuple("Decode").field(e).finish(),
            RecvError::Timeout => f.write_str("Timeout"),
            RecvError::Corrupt(m) => f.debug_tuple("Corrupt").field(m).finish(),
            RecvError::NotReadable => f.write_str("NotReadable"),
            RecvError::Io(e) => f.debug_tuple("Io").field(e).finish(),
        }
    }
}

/// Why the authentication handshake of [`Listener::accept`](crate::Listener::accept) or
/// [`Client::connect`](crate::Client::connect) failed (Python's `AuthenticationError`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticationError {
    /// The two sides do not hold the same authkey. Both sides see this error.
    #[error(
        "authentication failed: {0}; both sides must use the same authkey (the default is the \
         process authkey, which children inherit: see `multiproc_process::set_authkey`)"
    )]
    WrongKey(&'static str),
    /// The peer did not complete the handshake in time (it connected and said nothing,
    /// or is too slow).
    #[error("the peer did not complete the authentication handshake within {0:?}")]
    Timeout(Duration),
    /// The peer sent something that is not this protocol's handshake.
    #[error("the peer does not speak the multiproc connection protocol: {0}")]
    Protocol(String),
    /// The peer closed the connection during the handshake.
    #[error("the peer closed the connection during the authentication handshake")]
    Closed,
    /// A system call failed during the handshake.
    #[error("authentication handshake failed: {0}")]
    Io(#[from] io::Error),
}

/// Why [`Listener::bind`](crate::Listener::bind) failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source}{}", bind_hint(source, address))]
pub struct ListenError {
    /// The address that was asked for.
    pub address: Address,
    /// The system's reason.
    #[source]
    pub source: io::Error,
}

fn bind_hint(e: &io::Error, address: &Address) -> &'static str {
    match (e.kind(), address) {
        (io::ErrorKind::AddrInUse, Address::Unix(_)) => {
            " (a file exists at that path: another listener uses it, or one that died left it \
             behind; remove it if so)"
        }
        (io::ErrorKind::AddrInUse, _) => " (another listener uses it; pick another, or port 0 for any free port)",
        _ => "",
    }
}

/// Why [`Listener::accept`](crate::Listener::accept) did not produce a connection. The
/// listener is still usable: call `accept` again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// [`accept_timeout`](crate::Listener::accept_timeout) expired with no client.
    #[error("no client connected within the timeout")]
    Timeout,
    /// A client connected but failed to authenticate; it was disconnected.
    #[error("a client connected but {0}")]
    Authentication(#[from] AuthenticationError),
    /// A system call failed (out of descriptors, ...).
    #[error("cannot accept a connection: {0}")]
    Io(#[from] io::Error),
}

/// Why [`Client::connect`](crate::Client::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Nothing accepted the connection.
    #[error("cannot connect to {address}: {source} (is a Listener bound to it?)")]
    Connect {
        /// The address.
        address: Address,
        /// The system's reason.
        #[source]
        source: io::Error,
    },
    /// The connection was made but the handshake failed.
    #[error("connected to {address} but {source}")]
    Authentication {
        /// The address.
        address: Address,
        /// What went wrong.
        #[source]
        source: AuthenticationError,
    },
}

/// Why a string is not an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not an address: expected a Unix socket path (`/run/app.sock`, `unix:rel/path`), \
     an abstract Unix name (`@name`) or an IP address with port (`127.0.0.1:5000`, `[::1]:0`)"
)]
pub struct AddressParseError {
    /// The text that was given.
    pub input: String,
}
