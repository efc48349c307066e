//! Signal numbers, names and sending.

use std::io;

pub use libc::{SIGABRT, SIGINT, SIGKILL, SIGSEGV, SIGTERM};

use crate::Pid;

/// The conventional name of a signal (`"SIGKILL"` for 9), or `"signal N"`.
pub fn name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(s) => s.as_str().to_owned(),
        Err(_) => format!("signal {signal}"),
    }
}

/// Ignores `SIGPIPE`, so that writing to a closed pipe or socket fails with `EPIPE`
/// instead of killing the process — what Rust's runtime does before `main`. A child
/// that runs before `main` (from a constructor) sets it itself.
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN involves no handler code; it cannot race with anything
    // that relies on a previous handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Sends `signal` to `pid` (prefer [`crate::proc::PidFd::send_signal`] for children,
/// which cannot hit a recycled pid).
pub fn kill(pid: Pid, signal: i32) -> io::Result<()> {
    let sig = nix::sys::signal::Signal::try_from(signal).map_err(crate::io_err)?;
    nix::sys::signal::kill(pid, sig).map_err(crate::io_err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(9), "SIGKILL");
        assert_eq!(super::name(15), "SIGTERM");
        assert_eq!(super::name(1000), "signal 1000");
    }
}
