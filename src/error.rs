//! The errors of pools and executors: one for a task, one for the pool itself, and one
//! for a wait that ran out of time.

use std::time::Duration;

use multiproc_process::{CallError, StartError};

/// Why a task of a [`Pool`](crate::Pool), [`ProcessPoolExecutor`](crate::ProcessPoolExecutor)
/// or [`ThreadPoolExecutor`](crate::ThreadPoolExecutor) produced no value.
///
/// Python raises the task's exception (or `BrokenProcessPool`, or hangs); here every way
/// a task can fail is a value of this enum, and only that task is affected: the pool goes
/// on serving the others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's function panicked (Python: it raised an exception).
    #[error("the task panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The worker process running the task died before it finished: killed by a signal
    /// (SIGKILL from the OOM killer or a user, SIGSEGV, SIGABRT) or exited early
    /// (`std::process::exit` in the task). The pool started a replacement worker.
    #[error(
        "the worker process (pid {pid}) running this task {}; the pool started a new worker and \
         goes on (if the task itself crashes the process, fix it; if it was SIGKILL, check the \
         system log for the out-of-memory killer)",
        describe_exit(*exitcode)
    )]
    WorkerDied {
        /// The worker's pid.
        pid: u32,
        /// Python's `exitcode`: `-N` if killed by signal `N`, else the exit code.
        exitcode: i32,
    },
    /// The task ran longer than the pool's per-task timeout; its worker was killed and
    /// replaced.
    #[error(
        "the task was still running after its {limit:?} timeout; its worker was killed and \
         replaced (raise `task_timeout` if the task legitimately takes longer)"
    )]
    Timeout {
        /// The timeout that was exceeded.
        limit: Duration,
    },
    /// The task's arguments could not be encoded, or are larger than the pool's message
    /// size limit; nothing was sent.
    #[error("cannot send the task's arguments to a worker: {0}; the task was not run")]
    Encode(String),
    /// The worker could not decode the task's arguments.
    #[error("the worker could not decode the task's arguments: {0}")]
    BadArguments(String),
    /// The task's return value could not be encoded in the worker, or is larger than the
    /// pool's message size limit.
    #[error(
        "the task ran but its result could not be sent back: {0} (return less data, or raise \
         the limit with `max_message_size`)"
    )]
    ResultNotSent(String),
    /// The returned bytes did not decode as the expected type.
    #[error("cannot decode the task's result: {0}")]
    Decode(String),
    /// The pool's initializer failed in a worker, so the pool cannot run tasks (Python's
    /// `BrokenProcessPool`).
    #[error(
        "the pool's initializer failed in a worker: {message}; the pool is broken and runs no \
         more tasks (fix the initializer and create a new pool)"
    )]
    InitializerFailed {
        /// What the initializer's failure said.
        message: String,
    },
    /// A worker process could not be started.
    #[error("cannot start a worker process: {0}")]
    WorkerStart(String),
    /// The task was submitted after `close()` / `shutdown()`.
    #[error("the pool is closed and accepts no new tasks (create a new pool)")]
    PoolClosed,
    /// The pool was terminated (or dropped) before the task finished.
    #[error("the pool was terminated before the task finished")]
    PoolTerminated,
    /// The task was cancelled before it started ([`Future::cancel`](crate::Future::cancel),
    /// `shutdown(cancel_futures)`).
    #[error("the task was cancelled before it started")]
    Cancelled,
    /// [`ProcessPoolExecutor::map_with`](crate::ProcessPoolExecutor::map_with) or
    /// [`ThreadPoolExecutor::map_with`](crate::ThreadPoolExecutor::map_with) ran past the
    /// timeout given to it; the tasks that had not started were cancelled.
    #[error("no result within the {timeout:?} given to map; the tasks not yet started were cancelled")]
    MapTimeout {
        /// The timeout given to `map_with`.
        timeout: Duration,
    },
}

fn describe_exit(code: i32) -> String {
    if code < 0 {
        format!("was killed by {} (signal {})", multiproc_sys::signal::name(-code), -code)
    } else {
        format!("exited with code {code} before finishing it")
    }
}

impl TaskError {
    /// The signal that killed the worker, for [`TaskError::WorkerDied`].
    pub fn signal(&self) -> Option<i32> {
        match self {
            TaskError::WorkerDied { exitcode, .. } if *exitcode < 0 => Some(-exitcode),
            _ => None,
        }
    }
}

impl From<CallError> for TaskError {
    fn from(e: CallError) -> TaskError {
        match e {
            CallError::Panicked { message } => TaskError::Panicked { message },
            CallError::BadArguments(m) => TaskError::BadArguments(m),
            CallError::ResultNotSent(m) => TaskError::ResultNotSent(m),
            CallError::Decode(e) => TaskError::Decode(e.to_string()),
        }
    }
}

/// Why a pool or executor could not be created, or an operation on the pool itself
/// (rather than on one task) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A worker process could not be started.
    #[error("cannot start a worker process: {0}")]
    Start(#[from] StartError),
    /// The pool was asked for zero workers.
    #[error("a pool needs at least one worker (got 0)")]
    NoWorkers,
    /// The initializer's arguments could not be encoded.
    #[error("cannot encode the initializer's arguments: {0}")]
    Initializer(String),
    /// `join` was called on a pool that is still accepting tasks (Python: `ValueError:
    /// Pool is still running`).
    #[error("the pool is still running: call close() or terminate() before join()")]
    StillRunning,
    /// A system call failed (out of descriptors or threads).
    #[error("pool setup failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A wait with a timeout ran out of time before the result was ready. The task goes on;
/// wait again, or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out waiting for the result; the task goes on and can be waited for again")]
pub struct TimeoutError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_died_names_the_signal() {
        let e = TaskError::WorkerDied { pid: 7, exitcode: -9 };
        assert!(e.to_string().contains("SIGKILL"), "{e}");
        assert_eq!(e.signal(), Some(9));
        let e = TaskError::WorkerDied { pid: 7, exitcode: 3 };
        assert!(e.to_string().contains("exited with code 3"), "{e}");
        assert_eq!(e.signal(), None);
    }
}
