//! # multiproc
//!
//! Python's `multiprocessing` and `concurrent.futures` for Rust: processes, pipes,
//! queues, locks, shared memory, managers and pools that stay correct when a process is
//! killed at any instruction.
//!
//! This facade re-exports every crate of the workspace as a module
//! (`multiproc::process`, ...) and its headline types flat (`multiproc::Process`).
//! Pick a single crate instead if that is all you need.
//!
//! ```
//! use multiproc::{Process, StartMethod};
//!
//! fn cube(x: i64) -> i64 { x * x * x }
//!
//! let mut p = Process::new(cube, 3).with_start_method(StartMethod::Fork);
//! p.start()?;
//! assert_eq!(p.join()?, 27);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Call [`init()`] as the first line of `main` to use the spawn and forkserver start
//! methods (forkserver is the default); in test binaries use [`test_init!`].
//!
//! Pools live here, in the facade: [`Pool`] (Python's `multiprocessing.Pool`, with
//! [`AsyncResult`] and the lazy [`IMap`]), and [`futures`] (Python's
//! `concurrent.futures`: [`ProcessPoolExecutor`], [`ThreadPoolExecutor`], [`Future`],
//! [`futures::wait`], [`as_completed`]). A worker killed mid-task fails that task with
//! [`TaskError::WorkerDied`] and is replaced; a per-task timeout kills and replaces a
//! stuck worker; every failure is a [`TaskError`] value of the one task it hit. The
//! futures' `wait` is only in [`futures`], since `multiprocessing.connection.wait` owns
//! the flat name.

mod async_result;
mod error;
mod executor;
mod executor_map;
mod future;
pub mod futures;
mod pool;
mod thread_executor;
mod worker;

pub use async_result::{AsyncResult, GetTimeoutError};
pub use error::{PoolError, TaskError, TimeoutError};
pub use futures::{
    AsCompleted, ExecutorMap, Future, ProcessPoolExecutor, ProcessPoolExecutorBuilder, ReturnWhen, ThreadPoolExecutor,
    ThreadPoolExecutorBuilder, as_completed,
};
pub use pool::{IMap, Pool, PoolBuilder};

#[doc(inline)]
pub use multiproc_codec as codec;
#[doc(inline)]
pub use multiproc_manager as manager;
#[doc(inline)]
pub use multiproc_pipe as pipe;
#[doc(inline)]
pub use multiproc_process as process;
#[doc(inline)]
pub use multiproc_queue as queue;
#[doc(inline)]
pub use multiproc_shared as shared;
#[doc(inline)]
pub use multiproc_sync as sync;
#[doc(inline)]
pub use multiproc_sys as sys;

#[doc(inline)]
pub use multiproc_manager::{DictProxy, ListProxy, Manager, ValueProxy};
#[doc(inline)]
pub use multiproc_pipe::{Address, Client, Connection, Listener, Pipe};
#[doc(inline)]
pub use multiproc_process::{
    Context, JoinError, Process, Run, StartError, StartMethod, active_children, cpu_count, current_process,
    get_context, get_start_method, init, parent_process, set_start_method, test_init,
};
#[doc(inline)]
pub use multiproc_queue::{JoinableQueue, Queue, SimpleQueue};
#[doc(inline)]
pub use multiproc_shared::{Array, RawArray, RawValue, ShareableList, SharedMemory, Value};
#[doc(inline)]
pub use multiproc_sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, LockError, RLock, Semaphore};
