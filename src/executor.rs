//! [`ProcessPoolExecutor`]: Python's `concurrent.futures.ProcessPoolExecutor`, on the
//! same workers and manager as [`Pool`](crate::Pool).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use multiproc_codec::DEFAULT_MAX_MESSAGE_SIZE;
use multiproc_process::{RemoteCall, RemoteResult, StartMethod, cpu_count};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{PoolError, TaskError};
use crate::executor_map::ExecutorMap;
use crate::future::{Core, Future, Promise};
use crate::pool::collect::{ChunkSink, StreamCollector, decode_one};
use crate::pool::engine::{ChunkJob, Config, Engine, Sink};
use crate::pool::imap::feeder;
use crate::pool::target::Unary;

/// A pool of worker processes that returns a [`Future`] per task (Python's
/// `concurrent.futures.ProcessPoolExecutor`).
///
/// | Python | here |
/// |---|---|
/// | `ProcessPoolExecutor(max_workers, mp_context, initializer, initargs, max_tasks_per_child)` | [`ProcessPoolExecutor::new`], [`ProcessPoolExecutor::builder`] |
/// | `submit(fn, *args)` | [`submit`](ProcessPoolExecutor::submit)`(f, args)` |
/// | `map(fn, *iterables, timeout, chunksize)` | [`map`](ProcessPoolExecutor::map), [`map_with`](ProcessPoolExecutor::map_with) |
/// | `shutdown(wait, cancel_futures)`, `with ... as ex:` | [`shutdown`](ProcessPoolExecutor::shutdown); dropping it is `shutdown(wait=True)` |
/// | `terminate_workers()`, `kill_workers()` | the same |
///
/// Unlike Python's, a worker that dies does not break the executor
/// (`BrokenProcessPool`): only the future of the task it was running fails, with
/// [`TaskError::WorkerDied`], and a new worker takes its place.
///
/// ```
/// use multiproc::{ProcessPoolExecutor, StartMethod};
///
/// fn fib(n: u32) -> u64 { if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) } }
///
/// let ex = ProcessPoolExecutor::builder().max_workers(2).start_method(StartMethod::Fork).build()?;
/// let futures: Vec<_> = (20..24).map(|n| ex.submit(fib, n)).collect();
/// let values: Vec<u64> = futures.iter().map(|f| *f.result().unwrap()).collect();
/// assert_eq!(values, [6765, 10946, 17711, 28657]);
/// let mapped: Vec<u64> = ex.map(fib, [10, 11]).collect::<Result<_, _>>()?;
/// assert_eq!(mapped, [55, 89]);
/// ex.shutdown(true, false);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ProcessPoolExecutor {
    engine: Engine,
    detached: AtomicBool,
}

/// Configures a [`ProcessPoolExecutor`].
pub struct ProcessPoolExecutorBuilder {
    max_workers: Option<usize>,
    initializer: Option<Result<RemoteCall, String>>,
    max_tasks_per_child: Option<u64>,
    start_method: Option<StartMethod>,
    task_timeout: Option<Duration>,
    max_message_size: usize,
}

impl fmt::Debug for ProcessPoolExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutorBuilder")
            .field("max_workers", &self.max_workers)
            .field("initializer", &self.initializer.is_some())
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("start_method", &self.start_method)
            .field("task_timeout", &self.task_timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

impl ProcessPoolExecutorBuilder {
    /// The number of worker processes (default: [`cpu_count`]).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// A function each worker runs once before its first task (Python's `initializer`,
    /// `initargs`); if it panics, every future fails with
    /// [`TaskError::InitializerFailed`] (Python's `BrokenProcessPool`).
    pub fn initializer<A, R>(mut self, f: fn(A) -> R, args: A) -> Self
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.initializer = Some(RemoteCall::new(f, &args).map_err(|e| e.to_string()));
        self
    }

    /// A worker exits after this many tasks and is replaced (Python's `max_tasks_per_child`).
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks_per_child = Some(n.max(1));
        self
    }

    /// The workers' start method (Python's `mp_context`).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Fails a task still running after `timeout` with [`TaskError::Timeout`], killing
    /// and replacing its worker (not in Python).
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// The largest argument and result message, in bytes (default 1 GiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Starts the workers.
    pub fn build(self) -> Result<ProcessPoolExecutor, PoolError> {
        let initializer = self.initializer.transpose().map_err(PoolError::Initializer)?;
        let engine = Engine::start(Config {
            processes: self.max_workers.unwrap_or_else(cpu_count),
            initializer,
            max_tasks: self.max_tasks_per_child,
            start_method: self.start_method,
            task_timeout: self.task_timeout,
            max_message_size: self.max_message_size,
            name: "ProcessPoolExecutor",
        })?;
        Ok(ProcessPoolExecutor { engine, detached: AtomicBool::new(false) })
    }
}

/// Completes a [`Future`] from a task outcome.
struct FutureSink<R> {
    promise: Promise<R>,
}

impl<R: DeserializeOwned + Send + Sync> Sink for FutureSink<R> {
    fn start(&mut self) -> bool {
        self.promise.set_running()
    }

    fn finish(self: Box<Self>, outcome: Result<RemoteResult, TaskError>) {
        self.promise.finish(decode_one::<R>(outcome));
    }
}

/// A chunk of an executor's map, skipped once the map's iterator is gone or timed out.
struct MapChunk<R> {
    inner: ChunkSink<R>,
    cancelled: Arc<AtomicBool>,
}

impl<R: DeserializeOwned + Send> Sink for MapChunk<R> {
    fn start(&mut self) -> bool {
        !self.cancelled.load(Ordering::Acquire)
    }

    fn finish(self: Box<Self>, outcome: Result<RemoteResult, TaskError>) {
        Box::new(self.inner).finish(outcome);
    }
}

impl ProcessPoolExecutor {
    /// An executor with `max_workers` worker processes.
    pub fn new(max_workers: usize) -> Result<ProcessPoolExecutor, PoolError> {
        ProcessPoolExecutor::builder().max_workers(max_workers).build()
    }

    /// A builder for the other settings.
    pub fn builder() -> ProcessPoolExecutorBuilder {
        ProcessPoolExecutorBuilder {
            max_workers: None,
            initializer: None,
            max_tasks_per_child: None,
            start_method: None,
            task_timeout: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// The number of worker processes.
    pub fn max_workers(&self) -> usize {
        self.engine.processes()
    }

    /// The pids of the live worker processes.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.engine.worker_pids()
    }

    /// Schedules `f(args)` and returns its [`Future`] (Python's `submit`). After
    /// [`shutdown`](ProcessPoolExecutor::shutdown) the future fails with
    /// [`TaskError::PoolClosed`] (Python raises `RuntimeError`).
    pub fn submit<A, R>(&self, f: fn(A) -> R, args: A) -> Future<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let core = Core::with_helper(self.engine.helper());
        let sink = FutureSink { promise: Promise::new(&core) };
        self.engine.submit([(RemoteCall::new(f, &args), Box::new(sink) as Box<dyn Sink>)]);
        Future::new(core)
    }

    /// Applies `f` to every item (all submitted now, one item per task) and yields the
    /// outcomes in order (Python's `map`).
    pub fn map<A, R>(&self, f: fn(A) -> R, iterable: impl IntoIterator<Item = A>) -> ExecutorMap<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_with(f, iterable, None, 1)
    }

    /// [`map`](ProcessPoolExecutor::map) with Python's `timeout` (counted from this call;
    /// `None`: no limit) and `chunksize` (items per task).
    pub fn map_with<A, R>(
        &self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A>,
        timeout: Option<Duration>,
        chunksize: usize,
    ) -> ExecutorMap<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let collector = StreamCollector::new(true);
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut feed = feeder(Unary(f), iterable, chunksize);
        let mut jobs: Vec<ChunkJob> = Vec::new();
        let mut start = 0;
        while let Some((call, len, single)) = feed() {
            let inner = ChunkSink::<R> { collector: collector.clone(), start, len, single };
            jobs.push((call, Box::new(MapChunk { inner, cancelled: cancelled.clone() })));
            start += len;
        }
        self.engine.submit(jobs);
        ExecutorMap::new(collector, start, timeout, cancelled, Some(self.engine.helper()))
    }

    /// Stops accepting tasks (Python's `shutdown`). With `cancel_futures`, tasks no
    /// worker has taken yet are cancelled; the others run to the end. With `wait`, returns
    /// once they have and every worker has exited; without, the workers finish in the
    /// background (and dropping the executor does not wait for them).
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        if cancel_futures {
            self.engine.cancel_backlog();
        }
        self.engine.close();
        if wait {
            self.engine.join();
        } else {
            self.detached.store(true, Ordering::Release);
            self.engine.detach_on_drop();
        }
    }

    /// Sends SIGTERM to every worker (SIGKILL after a grace period), reaps them, and
    /// fails every unfinished future with [`TaskError::PoolTerminated`] (Python 3.14's
    /// `terminate_workers`). The executor accepts no more tasks.
    pub fn terminate_workers(&self) {
        self.engine.terminate(multiproc_sys::signal::SIGTERM);
        self.engine.join();
    }

    /// Like [`terminate_workers`](ProcessPoolExecutor::terminate_workers) with SIGKILL
    /// (Python 3.14's `kill_workers`).
    pub fn kill_workers(&self) {
        self.engine.terminate(multiproc_sys::signal::SIGKILL);
        self.engine.join();
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        // Python's `with` block ends with shutdown(wait=True). While unwinding from a
        // panic, the engine's own drop kills the workers instead of waiting for them.
        if !std::thread::panicking() && !self.detached.load(Ordering::Acquire) {
            self.engine.close();
            self.engine.join();
        }
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor").field("engine", &self.engine).finish()
    }
}
