//! [`Pool`]: Python's `multiprocessing.Pool`, a fixed set of worker processes running
//! `fn(A) -> R` tasks, where a worker that dies or hangs costs one task, not the pool.
//!
//! How the pieces fit: [`engine`] holds the workers and the manager thread,
//! [`collect`] turns task outcomes into [`AsyncResult`]s and map results, [`imap`] is the
//! lazy iterator, [`target`] encodes what the map family calls.

pub(crate) mod collect;
pub(crate) mod engine;
pub(crate) mod imap;
pub(crate) mod target;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use multiproc_codec::DEFAULT_MAX_MESSAGE_SIZE;
use multiproc_process::{RemoteCall, StartMethod, cpu_count};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::async_result::{AsyncResult, Slot};
use crate::error::{PoolError, TaskError};
use collect::{ApplySink, Callback, ErrorCallback, MapCollector};
use engine::{ChunkJob, Config, Engine};
pub use imap::IMap;
use target::{Binary, Target, Unary};

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// Tasks are plain functions `fn(A) -> R` whose argument and result are serde types,
/// as for [`Process`](crate::Process); they run in the workers, under the start method
/// of your choice.
///
/// | Python | here |
/// |---|---|
/// | `Pool(processes, initializer, initargs, maxtasksperchild)` | [`Pool::new`], [`Pool::builder`] |
/// | `apply(f, args)`, `apply_async(f, args, callback, error_callback)` | [`apply`](Pool::apply), [`apply_async`](Pool::apply_async), [`apply_async_with`](Pool::apply_async_with) |
/// | `map`, `map_async`, `starmap`, `starmap_async` (`chunksize=`) | the same names, `_chunked` forms take the chunk size |
/// | `imap`, `imap_unordered` (`chunksize=`) | the same names, lazy: an endless input is fine |
/// | `close()`, `terminate()`, `join()`, `with Pool() as p:` | the same; dropping the pool terminates it |
///
/// What differs from Python, on purpose:
/// - A worker killed in the middle of a task (SIGKILL, a segfault, `abort`) fails that
///   task with [`TaskError::WorkerDied`] naming the signal, and a new worker takes its
///   place (CPython's `Pool` hangs).
/// - A per-task timeout ([`PoolBuilder::task_timeout`]): a task still running past it
///   fails with [`TaskError::Timeout`], and its worker is killed and replaced.
/// - An argument or result that cannot be encoded, or is over the message size limit,
///   fails that task with a clear error; the pool goes on.
/// - [`terminate`](Pool::terminate) fails the pending results with
///   [`TaskError::PoolTerminated`] instead of leaving them to hang.
/// - `starmap` calls a two-parameter `fn(A, B) -> R` with each pair; a function that
///   takes a tuple, `fn((A, B, C)) -> R`, works with plain `map`.
///
/// Workers are daemon processes: they die with the pool's manager thread, and with the
/// parent even if it is SIGKILLed, so a pool never leaves orphans behind; dropping the
/// pool (also while unwinding from a panic) kills and reaps them.
///
/// ```
/// use multiproc::{Pool, TaskError};
///
/// fn square(x: u64) -> u64 { x * x }
/// fn add(a: u64, b: u64) -> u64 { a + b }
/// fn picky(x: u64) -> u64 { assert!(x != 3, "three is not allowed"); x }
///
/// // In a real program: `multiproc::init()` first in `main` (forkserver, the default).
/// let pool = Pool::builder().processes(2).start_method(multiproc::StartMethod::Fork).build()?;
/// assert_eq!(pool.apply(square, 4)?, 16);
/// assert_eq!(pool.map(square, 0..5)?, [0, 1, 4, 9, 16]);
/// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, [3, 7]);
///
/// let r = pool.apply_async(square, 9);
/// assert_eq!(r.get()?, 81);
///
/// // One failing item fails only itself.
/// let outcomes: Vec<Result<u64, TaskError>> = pool.imap(picky, 1..5).collect();
/// assert!(matches!(&outcomes[2], Err(TaskError::Panicked { message }) if message == "three is not allowed"));
/// assert_eq!(outcomes[3], Ok(4));
///
/// pool.close();
/// pool.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool {
    engine: Engine,
    chunksize: Option<usize>,
}

/// Configures a [`Pool`]: `Pool::builder().processes(4).maxtasksperchild(100).build()?`.
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<Result<RemoteCall, String>>,
    maxtasksperchild: Option<u64>,
    start_method: Option<StartMethod>,
    chunksize: Option<usize>,
    task_timeout: Option<Duration>,
    max_message_size: usize,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.initializer.is_some())
            .field("maxtasksperchild", &self.maxtasksperchild)
            .field("start_method", &self.start_method)
            .field("chunksize", &self.chunksize)
            .field("task_timeout", &self.task_timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

impl Default for PoolBuilder {
    fn default() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            initializer: None,
            maxtasksperchild: None,
            start_method: None,
            chunksize: None,
            task_timeout: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl PoolBuilder {
    /// The number of worker processes (default: [`cpu_count`]).
    pub fn processes(mut self, n: usize) -> PoolBuilder {
        self.processes = Some(n);
        self
    }

    /// A function each worker runs once, before its first task (Python's `initializer`
    /// and `initargs`). Arguments may hold handles (a lock, a queue) to share with every
    /// worker. If it panics, the pool is broken: every task fails with
    /// [`TaskError::InitializerFailed`] (CPython restarts failing workers forever).
    pub fn initializer<A, R>(mut self, f: fn(A) -> R, args: A) -> PoolBuilder
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.initializer = Some(RemoteCall::new(f, &args).map_err(|e| e.to_string()));
        self
    }

    /// A worker exits after this many tasks (a chunk of a map counts as one) and a fresh
    /// one replaces it (Python's `maxtasksperchild`), to contain leaks.
    pub fn maxtasksperchild(mut self, n: u64) -> PoolBuilder {
        self.maxtasksperchild = Some(n.max(1));
        self
    }

    /// The start method of the workers (default: [`get_start_method`](crate::get_start_method)).
    pub fn start_method(mut self, method: StartMethod) -> PoolBuilder {
        self.start_method = Some(method);
        self
    }

    /// The chunk size of the map family when a call does not give one (default: Python's
    /// rule, about four chunks per worker for `map` but at most 16 Ki items; 1 for
    /// `imap`).
    pub fn chunksize(mut self, n: usize) -> PoolBuilder {
        self.chunksize = Some(n.max(1));
        self
    }

    /// Fails a task still running `timeout` after it started with [`TaskError::Timeout`],
    /// killing its worker and starting a new one (pebble's `timeout`; a chunk of a map is
    /// one task).
    pub fn task_timeout(mut self, timeout: Duration) -> PoolBuilder {
        self.task_timeout = Some(timeout);
        self
    }

    /// The largest task message (arguments) and result message, in bytes (default
    /// 1 GiB). A task over it fails with [`TaskError::Encode`] or
    /// [`TaskError::ResultNotSent`]. The results of a map chunk travel as one message:
    /// if together they are too large, every item of that chunk fails (an item whose
    /// result cannot be encoded at all fails alone).
    pub fn max_message_size(mut self, bytes: usize) -> PoolBuilder {
        self.max_message_size = bytes;
        self
    }

    /// Starts the workers.
    pub fn build(self) -> Result<Pool, PoolError> {
        let initializer = self.initializer.transpose().map_err(PoolError::Initializer)?;
        let engine = Engine::start(Config {
            processes: self.processes.unwrap_or_else(cpu_count),
            initializer,
            max_tasks: self.maxtasksperchild,
            start_method: self.start_method,
            task_timeout: self.task_timeout,
            max_message_size: self.max_message_size,
            name: "Pool",
        })?;
        Ok(Pool { engine, chunksize: self.chunksize })
    }
}

/// The most items in a default chunk.
const MAX_DEFAULT_CHUNK: usize = 16 << 10;

/// The default chunk size for `map`: Python's rule (about four chunks per worker), but
/// at most [`MAX_DEFAULT_CHUNK`] items, so that results stream back while the workers
/// go on instead of every worker waiting for its multi-megabyte chunk to travel.
fn default_chunksize(items: usize, processes: usize) -> usize {
    items.div_ceil(processes.max(1) * 4).clamp(1, MAX_DEFAULT_CHUNK)
}

impl Pool {
    /// A pool of `processes` workers with the default settings (Python's `Pool(processes)`).
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        Pool::builder().processes(processes).build()
    }

    /// A builder for the other settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.engine.processes()
    }

    /// The pids of the live worker processes (for monitoring; they change as workers are
    /// replaced).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.engine.worker_pids()
    }

    /// Runs `f(args)` in a worker and waits for the result (Python's `apply`).
    pub fn apply<A, R>(&self, f: fn(A) -> R, args: A) -> Result<R, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, args).get()
    }

    /// Submits `f(args)` and returns at once (Python's `apply_async`).
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, args: A) -> AsyncResult<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_impl(f, args, None, None)
    }

    /// [`apply_async`](Pool::apply_async) with Python's `callback` (given the value) and
    /// `error_callback` (given the error). They run in this process, before the result
    /// is ready, on the thread that receives the result: the pool's manager thread, or a
    /// thread of yours that is waiting for one of the pool's results (waiting threads
    /// receive results themselves, which saves a thread hop), or this thread if the task
    /// fails before it is sent. Keep them short, and do not wait on the pool inside them.
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        args: A,
        callback: impl FnOnce(&R) + Send + 'static,
        error_callback: impl FnOnce(&TaskError) + Send + 'static,
    ) -> AsyncResult<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_impl(f, args, Some(Box::new(callback)), Some(Box::new(error_callback)))
    }

    fn apply_impl<A, R>(
        &self,
        f: fn(A) -> R,
        args: A,
        callback: Option<Callback<R>>,
        error_callback: Option<ErrorCallback>,
    ) -> AsyncResult<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let slot = Arc::new(Slot::new());
        let sink = ApplySink { slot: slot.clone(), callback, error_callback };
        self.engine.submit([(RemoteCall::new(f, &args), Box::new(sink) as Box<dyn engine::Sink>)]);
        AsyncResult::new(slot, self.engine.helper())
    }

    fn map_impl<A, R, T: Target<A>>(
        &self,
        target: T,
        iterable: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<R>>>,
        error_callback: Option<ErrorCallback>,
    ) -> AsyncResult<Vec<R>>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let items: Vec<A> = iterable.into_iter().collect();
        let len = items.len();
        let chunksize = chunksize.or(self.chunksize).unwrap_or_else(|| default_chunksize(len, self.processes()));
        let slot = Arc::new(Slot::new());
        let collector = MapCollector::new(len, slot.clone(), callback, error_callback);
        let mut feed = imap::feeder(target, items, chunksize);
        let mut jobs: Vec<ChunkJob> = Vec::new();
        let mut start = 0;
        // Large chunks go out as soon as they are encoded, so the workers start while the
        // rest is being encoded; small ones in batches of a few per lock.
        let batch = if chunksize >= 1024 { 1 } else { 64 };
        while let Some((call, n, single)) = feed() {
            let sink = collect::ChunkSink::<R> { collector: collector.clone(), start, len: n, single };
            jobs.push((call, Box::new(sink)));
            start += n;
            if jobs.len() >= batch {
                self.engine.submit(std::mem::take(&mut jobs));
            }
        }
        self.engine.submit(jobs);
        AsyncResult::new(slot, self.engine.helper())
    }

    /// Applies `f` to every item and returns the results in order (Python's `map`), or
    /// the first error. The input is split into chunks (see
    /// [`PoolBuilder::chunksize`]); each item's panic fails only that item, but `map`
    /// reports the first failure: use [`imap`](Pool::imap) for one outcome per item.
    pub fn map<A, R>(&self, f: fn(A) -> R, iterable: impl IntoIterator<Item = A>) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async(f, iterable).get()
    }

    /// [`map`](Pool::map) with chunks of `chunksize` items.
    pub fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async_chunked(f, iterable, chunksize).get()
    }

    /// [`map`](Pool::map) without waiting (Python's `map_async`). As in Python, the
    /// first item to fail fails the whole result at once.
    pub fn map_async<A, R>(&self, f: fn(A) -> R, iterable: impl IntoIterator<Item = A>) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_impl(Unary(f), iterable, None, None, None)
    }

    /// [`map_async`](Pool::map_async) with chunks of `chunksize` items.
    pub fn map_async_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_impl(Unary(f), iterable, Some(chunksize), None, None)
    }

    /// [`map_async`](Pool::map_async) with Python's `chunksize` (`None`: the default),
    /// `callback` (given the list of results) and `error_callback` (given the first
    /// error), which run as for [`apply_async_with`](Pool::apply_async_with).
    pub fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        callback: impl FnOnce(&Vec<R>) + Send + 'static,
        error_callback: impl FnOnce(&TaskError) + Send + 'static,
    ) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_impl(Unary(f), iterable, chunksize, Some(Box::new(callback)), Some(Box::new(error_callback)))
    }

    /// Calls a two-parameter `f(a, b)` for every pair and returns the results in order
    /// (Python's `starmap`, which unpacks each item into the arguments).
    ///
    /// Rust functions have a fixed number of parameters, so `starmap` takes
    /// `fn(A, B) -> R` and pairs; for three or more, write the function over a tuple,
    /// `fn f((a, b, c): (A, B, C)) -> R`, and use [`map`](Pool::map).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.starmap_async(f, iterable).get()
    }

    /// [`starmap`](Pool::starmap) with chunks of `chunksize` pairs.
    pub fn starmap_chunked<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
        chunksize: usize,
    ) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_impl(Binary(f), iterable, Some(chunksize), None, None).get()
    }

    /// [`starmap`](Pool::starmap) without waiting (Python's `starmap_async`).
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
    ) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_impl(Binary(f), iterable, None, None, None)
    }

    /// [`starmap_async`](Pool::starmap_async) with chunks of `chunksize` pairs.
    pub fn starmap_async_chunked<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
        chunksize: usize,
    ) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_impl(Binary(f), iterable, Some(chunksize), None, None)
    }

    /// A lazy, ordered map (Python's `imap`): yields each item's outcome in input order,
    /// pulling the input only as results are consumed (a bounded number of chunks ahead:
    /// four per worker, at least 32), so an endless iterator is fine. Chunks of one item unless the pool's
    /// [`chunksize`](PoolBuilder::chunksize) says otherwise.
    pub fn imap<'a, A, R>(&'a self, f: fn(A) -> R, iterable: impl IntoIterator<Item = A> + 'a) -> IMap<'a, R>
    where
        A: Serialize + DeserializeOwned + 'a,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let chunksize = self.chunksize.unwrap_or(1);
        self.imap_chunked(f, iterable, chunksize)
    }

    /// [`imap`](Pool::imap) with chunks of `chunksize` items.
    pub fn imap_chunked<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> IMap<'a, R>
    where
        A: Serialize + DeserializeOwned + 'a,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        IMap::new(&self.engine, imap::feeder(Unary(f), iterable, chunksize), chunksize, true)
    }

    /// Like [`imap`](Pool::imap), but yields outcomes as they complete (Python's
    /// `imap_unordered`).
    pub fn imap_unordered<'a, A, R>(&'a self, f: fn(A) -> R, iterable: impl IntoIterator<Item = A> + 'a) -> IMap<'a, R>
    where
        A: Serialize + DeserializeOwned + 'a,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let chunksize = self.chunksize.unwrap_or(1);
        self.imap_unordered_chunked(f, iterable, chunksize)
    }

    /// [`imap_unordered`](Pool::imap_unordered) with chunks of `chunksize` items.
    pub fn imap_unordered_chunked<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> IMap<'a, R>
    where
        A: Serialize + DeserializeOwned + 'a,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        IMap::new(&self.engine, imap::feeder(Unary(f), iterable, chunksize), chunksize, false)
    }

    /// Accepts no more tasks; the workers exit once the submitted ones are done
    /// (Python's `close`). Tasks submitted afterwards fail with [`TaskError::PoolClosed`].
    pub fn close(&self) {
        self.engine.close();
    }

    /// Kills the workers now (SIGKILL) and reaps them; every task not finished fails with
    /// [`TaskError::PoolTerminated`] (Python's `terminate`, which leaves them hanging).
    pub fn terminate(&self) {
        self.engine.terminate(multiproc_sys::signal::SIGKILL);
        self.engine.join();
    }

    /// Waits for the workers to exit, after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) (Python's `join`); on a pool still accepting tasks
    /// it returns [`PoolError::StillRunning`] at once, as Python raises `ValueError`.
    pub fn join(&self) -> Result<(), PoolError> {
        if self.engine.is_running() {
            return Err(PoolError::StillRunning);
        }
        self.engine.join();
        Ok(())
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("engine", &self.engine).field("chunksize", &self.chunksize).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::default_chunksize;

    #[test]
    fn python_default_chunksize() {
        // divmod(len, 4 * processes), rounded up; at least 1.
        assert_eq!(default_chunksize(100, 2), 13);
        assert_eq!(default_chunksize(8, 2), 1);
        assert_eq!(default_chunksize(0, 2), 1);
        assert_eq!(default_chunksize(1000, 4), 63);
        assert_eq!(default_chunksize(10_000_000, 2), 16 << 10);
    }
}
