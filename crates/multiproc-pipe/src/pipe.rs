use std::io;

use multiproc_sys::fd::{SocketKind, socket_pair};

use crate::Connection;
use crate::connection::Transport;

/// Makes a pair of connected [`Connection`]s (Python's `multiprocessing.Pipe`).
///
/// Both ends are Unix stream sockets, `O_CLOEXEC`, that can carry file descriptors. Give
/// one end to a child process as (part of) its argument and keep the other.
///
/// ```
/// use multiproc_pipe::Pipe;
/// use multiproc_process::{Process, StartMethod};
/// use multiproc_pipe::Connection;
///
/// fn child(conn: Connection) -> u64 {
///     let numbers: Vec<u64> = conn.recv().unwrap();
///     conn.send(&numbers.iter().sum::<u64>()).unwrap();
///     numbers.len() as u64
/// }
///
/// let (parent_end, child_end) = Pipe::duplex()?;
/// let mut p = Process::new(child, child_end).with_start_method(StartMethod::Fork);
/// p.start()?; // the child end moved into the child: our copy is closed
/// parent_end.send(&vec![1u64, 2, 3])?;
/// assert_eq!(parent_end.recv::<u64>()?, 6);
/// assert_eq!(p.join()?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Pipe {}

impl Pipe {
    /// Two ends that both send and receive (Python's `Pipe()`).
    pub fn duplex() -> io::Result<(Connection, Connection)> {
        let (a, b) = socket_pair(SocketKind::Stream)?;
        Ok((
            Connection::from_socket(a, true, true, Transport::Unix),
            Connection::from_socket(b, true, true, Transport::Unix),
        ))
    }

    /// A one-way pipe: `(receiving end, sending end)` (Python's `Pipe(duplex=False)`).
    pub fn simplex() -> io::Result<(Connection, Connection)> {
        let (r, w) = socket_pair(SocketKind::Stream)?;
        Ok((
            Connection::from_socket(r, true, false, Transport::Unix),
            Connection::from_socket(w, false, true, Transport::Unix),
        ))
    }

    /// Python's `Pipe(duplex)`: [`duplex`](Pipe::duplex) or [`simplex`](Pipe::simplex).
    pub fn pair(duplex: bool) -> io::Result<(Connection, Connection)> {
        if duplex { Pipe::duplex() } else { Pipe::simplex() }
    }
}
