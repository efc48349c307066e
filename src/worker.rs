//! The worker process of a [`Pool`](crate::Pool) or
//! [`ProcessPoolExecutor`](crate::ProcessPoolExecutor): the protocol it speaks with the
//! parent, its loop, and the chunk runner for the map family.
//!
//! A worker is a [`Process`](multiproc_process::Process) whose target is [`worker_main`];
//! its argument holds one end of a duplex [`Connection`], the parent's pool manager keeps
//! the other. The parent only ever sends a worker the tasks it has room for, so it always
//! knows which task a worker is running: the one it sent first and got no answer for.
//!
//! ```text
//! parent -> worker   Run { id, call }  |  Stop
//! worker -> parent   Ready (after the initializer)  |  InitFailed(message)  |  Done { id, result }
//! ```

use multiproc_process::panic_message;
use std::panic::{AssertUnwindSafe, catch_unwind};

use multiproc_codec::{Bincode, Fd, encode_with_fds, human_size};
use multiproc_pipe::{Connection, SendError};
use multiproc_process::{FnRef, RemoteCall, RemoteResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What the parent sends a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// Run this call and answer with `Done { id, .. }`.
    Run {
        /// The parent's id for the task.
        id: u64,
        /// The encoded call.
        call: RemoteCall,
    },
    /// Several tasks at once (the manager batches tasks for one worker into one write).
    RunMany(Vec<(u64, RemoteCall)>),
    /// Finish: exit after the tasks already received.
    Stop,
}

/// What a worker sends the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// The initializer (if any) ran; tasks start now.
    Ready,
    /// The initializer failed; the worker exits.
    InitFailed(String),
    /// A task finished.
    Done {
        /// The id the parent gave it.
        id: u64,
        /// What it produced.
        result: RemoteResult,
    },
}

/// A worker's argument.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    /// The worker's end of its connection to the manager.
    pub(crate) conn: Connection,
    /// Runs once before the first task.
    pub(crate) initializer: Option<RemoteCall>,
    /// Exit after this many tasks (Python's `maxtasksperchild`).
    pub(crate) max_tasks: Option<u64>,
}

/// The worker process's target: initializer, then tasks until told to stop.
pub(crate) fn worker_main(args: WorkerArgs) {
    let WorkerArgs { conn, initializer, max_tasks } = args;
    if let Some(init) = initializer {
        // SAFETY: the parent made this call with `RemoteCall::new` in this same binary and
        // it reached us as our own process argument.
        let result = unsafe { init.call() };
        if let Some(message) = failure_message(result) {
            let _ = conn.send(&FromWorker::InitFailed(message));
            return;
        }
    }
    if conn.send(&FromWorker::Ready).is_err() {
        return;
    }
    let mut done: u64 = 0;
    loop {
        let tasks = match conn.recv::<ToWorker>() {
            Ok(ToWorker::Run { id, call }) => vec![(id, call)],
            Ok(ToWorker::RunMany(tasks)) => tasks,
            // Stop, the parent is gone, or the stream is unusable: nothing more to do.
            Ok(ToWorker::Stop) | Err(_) => return,
        };
        for (id, call) in tasks {
            // SAFETY: only our parent holds the other end of this connection, and it
            // sends calls made with `RemoteCall::new` in this same binary.
            let result = unsafe { call.call() };
            if !send_result(&conn, id, result) {
                return;
            }
            done += 1;
            if max_tasks.is_some_and(|max| done >= max) {
                return;
            }
        }
    }
}

fn failure_message(result: RemoteResult) -> Option<String> {
    match result {
        RemoteResult::Returned { .. } => None,
        RemoteResult::Panicked(m) => Some(format!("it panicked: {m}")),
        RemoteResult::BadArguments(m) => Some(format!("its arguments did not decode: {m}")),
        RemoteResult::ResultNotSent(m) => Some(format!("its result could not be encoded: {m}")),
    }
}

/// Sends a task's result; a result that cannot be sent (too large, not encodable) is
/// replaced by an error saying so, so that the task fails and the worker goes on.
/// `false` if the parent is gone.
fn send_result(conn: &Connection, id: u64, result: RemoteResult) -> bool {
    let why = match conn.send(&FromWorker::Done { id, result }) {
        Ok(()) => return true,
        Err(SendError::TooLarge { size, limit }) => format!(
            "the result message of {} exceeds the pool's {} limit",
            human_size(usize::try_from(size).unwrap_or(usize::MAX)),
            human_size(limit)
        ),
        Err(SendError::Encode(e)) => e.to_string(),
        Err(_) => return false,
    };
    conn.send(&FromWorker::Done { id, result: RemoteResult::ResultNotSent(why) }).is_ok()
}

/// Why one item of a chunk has no value.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ItemFailure {
    /// The function panicked on it.
    Panicked(String),
    /// Its result could not be encoded.
    NotSent(String),
}

/// Runs `f` on each item of a chunk, catching each item's panic, so that one bad item
/// fails only itself. The results travel as one encoded `Vec<Result<R, ItemFailure>>`.
pub(crate) fn run_chunk<A, R>((f, items): (FnRef<A, R>, Vec<A>)) -> RemoteResult
where
    A: Serialize + DeserializeOwned,
    R: Serialize,
{
    // SAFETY: the parent made the FnRef with `FnRef::new` and these same types, in this
    // same binary, and it reached us inside a call only the parent can send.
    let f = unsafe { f.resolve() };
    encode_chunk(items.into_iter().map(|item| run_caught(move || f(item))).collect())
}

/// One call, with its panic caught.
pub(crate) fn run_caught<R>(call: impl FnOnce() -> R) -> Result<R, ItemFailure> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|p| ItemFailure::Panicked(panic_message(p.as_ref())))
}

/// Encodes the results of a chunk in one go; if that fails, finds the items that cannot
/// be encoded and fails only those.
pub(crate) fn encode_chunk<R: Serialize>(mut results: Vec<Result<R, ItemFailure>>) -> RemoteResult {
    let codec = Bincode::new();
    let mut bytes = Vec::new();
    if let Ok(fds) = encode_with_fds(&codec, &results, &mut bytes) {
        return RemoteResult::Returned { bytes, fds: fds.into_iter().map(Fd::new).collect() };
    }
    for r in &mut results {
        if let Ok(v) = r {
            if let Err(e) = encode_with_fds(&codec, &*v, &mut Vec::new()) {
                *r = Err(ItemFailure::NotSent(e.to_string()));
            }
        }
    }
    bytes.clear();
    match encode_with_fds(&codec, &results, &mut bytes) {
        Ok(fds) => RemoteResult::Returned { bytes, fds: fds.into_iter().map(Fd::new).collect() },
        Err(e) => RemoteResult::ResultNotSent(e.to_string()),
    }
}

/// Encodes the call of a chunk of items (consumed: they are only needed encoded).
pub(crate) fn chunk_call<A, R>(f: fn(A) -> R, items: Vec<A>) -> Result<RemoteCall, multiproc_codec::EncodeError>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    RemoteCall::new(run_chunk::<A, R>, &(FnRef::new(f), items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halve(x: u32) -> u32 {
        assert!(x % 2 == 0, "odd: {x}");
        x / 2
    }

    #[test]
    fn a_panicking_item_fails_alone() {
        let out = run_chunk((FnRef::new(halve), vec![2, 3, 4]));
        let decoded = out.decode::<Vec<Result<u32, ItemFailure>>>().unwrap();
        assert!(matches!(decoded[0], Ok(1)));
        assert!(matches!(&decoded[1], Err(ItemFailure::Panicked(m)) if m == "odd: 3"));
        assert!(matches!(decoded[2], Ok(2)));
    }
}
