use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use multiproc_sys::{poll, spin};

use crate::{Connection, Listener};

/// Something [`wait`] can wait on: it has a descriptor that becomes readable when the
/// object is ready, and may know it is ready without looking at the descriptor.
///
/// Implemented for [`Connection`] (ready: a message, or end-of-file, to receive),
/// [`Listener`] (a client is connecting), and raw descriptors ([`BorrowedFd`],
/// [`OwnedFd`], [`multiproc_codec::Fd`]) such as a process sentinel from
/// [`Process::sentinel`](multiproc_process::Process::sentinel) (ready: the process ended).
pub trait Waitable {
    /// The descriptor to poll for readability.
    fn wait_fd(&self) -> BorrowedFd<'_>;

    /// Whether the object is ready without its descriptor saying so (data already read
    /// into a user-space buffer). The default says no.
    fn ready_now(&self) -> bool {
        false
    }
}

impl Waitable for Connection {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }

    fn ready_now(&self) -> bool {
        Connection::ready_now(self)
    }
}

impl Waitable for Listener {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

impl Waitable for BorrowedFd<'_> {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        *self
    }
}

impl Waitable for OwnedFd {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

impl Waitable for multiproc_codec::Fd {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

impl<T: Waitable + ?Sized> Waitable for &T {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        (**self).wait_fd()
    }

    fn ready_now(&self) -> bool {
        (**self).ready_now()
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: no
/// limit), and returns the indices of the ready ones, in order; empty on timeout
/// (Python's `multiprocessing.connection.wait`, which returns the objects themselves).
///
/// Objects may be any mix of [`Waitable`]s: connections (ready when there is a message
/// or end-of-file), process sentinels (ready when the process has ended), listeners,
/// raw descriptors. Like every blocking call here it spins briefly before it blocks.
///
/// ```
/// use std::time::Duration;
/// use multiproc_pipe::{Pipe, wait};
///
/// let (a, a_peer) = Pipe::duplex()?;
/// let (b, b_peer) = Pipe::duplex()?;
/// assert!(wait(&[&a, &b], Duration::from_millis(1))?.is_empty());
/// b_peer.send(&"hi")?;
/// assert_eq!(wait(&[&a, &b], None)?, vec![1]);
/// drop(a_peer); // end-of-file is ready too
/// assert_eq!(wait(&[&a, &b], None)?, vec![0, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: impl Into<Option<Duration>>) -> io::Result<Vec<usize>> {
    let deadline = timeout.into().and_then(|t| Instant::now().checked_add(t));
    let fds: Vec<BorrowedFd<'_>> = objects.iter().map(|o| o.wait_fd()).collect();
    let check = |poll_timeout: Option<Duration>| -> io::Result<Vec<usize>> {
        let mut ready: Vec<usize> = (0..objects.len()).filter(|&i| objects[i].ready_now()).collect();
        let wait_for = if ready.is_empty() { poll_timeout } else { Some(Duration::ZERO) };
        ready.extend(poll::readable(&fds, wait_for)?);
        ready.sort_unstable();
        ready.dedup();
        Ok(ready)
    };
    let first = if deadline.is_some_and(|d| d <= Instant::now()) {
        check(Some(Duration::ZERO))?
    } else {
        spin::spin_until(|| match check(Some(Duration::ZERO)) {
            Ok(r) if r.is_empty() => None,
            other => Some(other),
        })
        .transpose()?
        .unwrap_or_default()
    };
    if !first.is_empty() {
        return Ok(first);
    }
    loop {
        let left = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Vec::new());
                }
                Some(left)
            }
        };
        let ready = check(left)?;
        if !ready.is_empty() {
            return Ok(ready);
        }
    }
}
