use std::io;

use multiproc_codec::{DecodeError, EncodeError};

use crate::StartMethod;

/// Why [`crate::Process::start`] failed. The process did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `start` was called a second time.
    #[error("process has already been started")]
    AlreadyStarted,
    /// spawn and forkserver re-enter this binary, which must cooperate.
    #[error(
        "the {0} start method needs `multiproc::init()` as the first line of `main` \
         (or `multiproc::test_init!()` in a test binary); only the fork start method works without it"
    )]
    NotInitialized(StartMethod),
    /// The arguments could not be encoded (spawn and forkserver encode them).
    #[error("cannot encode the process arguments: {0}")]
    Encode(#[from] EncodeError),
    /// The fork server did not answer.
    #[error("the fork server failed: {0}")]
    ForkServer(String),
    /// A system call failed (out of processes, descriptors or memory).
    #[error("cannot start process: {0}")]
    Io(#[from] io::Error),
}

/// Why [`crate::Process::join`] did not return the target's value.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The process was never started.
    #[error("process has not been started")]
    NotStarted,
    /// The value was already taken by an earlier `join`.
    #[error("process has already been joined")]
    AlreadyJoined,
    /// `join_timeout` elapsed while the process was still running. It can be joined again.
    #[error("process is still running after the timeout")]
    Timeout,
    /// The target panicked (Python: an exception escaped `run`); exit code 1.
    #[error("process panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The process exited without returning a value (e.g. it called `std::process::exit`).
    #[error("process exited with code {code} before returning a value")]
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The process was killed by a signal; Python's `exitcode` is `-signal`.
    #[error("process was killed by {} ({signal})", multiproc_sys::signal::name(*signal))]
    Killed {
        /// The signal number.
        signal: i32,
    },
    /// The child could not decode the arguments it was sent; exit code 1.
    #[error("process could not decode its arguments: {0}")]
    BadArguments(String),
    /// The child's return value could not be encoded; exit code 1.
    #[error("process could not send its return value: {0}")]
    ResultNotSent(String),
    /// The returned bytes did not decode as the expected type.
    #[error("cannot decode the process's return value: {0}")]
    Decode(#[from] DecodeError),
    /// A system call failed while waiting.
    #[error("cannot wait for process: {0}")]
    Io(#[from] io::Error),
}
