//! Waiting until any of several descriptors is readable (or hung up).

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// Waits until at least one of `fds` is readable, hung up or in error, or `timeout`
/// elapses (`None` waits forever). Returns the indices of the ready descriptors, empty
/// on timeout. Interrupted waits are resumed with the remaining time.
pub fn readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(*f, PollFlags::POLLIN)).collect();
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so that a sub-millisecond remainder still waits.
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        match nix::poll::poll(&mut pfds, wait) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(crate::io_err(e)),
        }
    }
    Ok(pfds.iter().enumerate().filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty())).map(|(i, _)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn ready_and_timeout() {
        let (r1, _w1) = crate::fd::pipe().unwrap();
        let (r2, w2) = crate::fd::pipe().unwrap();
        assert!(readable(&[r1.as_fd(), r2.as_fd()], Some(Duration::from_millis(5))).unwrap().is_empty());
        nix::unistd::write(&w2, b"x").unwrap();
        assert_eq!(readable(&[r1.as_fd(), r2.as_fd()], None).unwrap(), vec![1]);
    }
}
