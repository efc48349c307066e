//! [`ThreadPoolExecutor`]: Python's `concurrent.futures.ThreadPoolExecutor`, threads of
//! this process with the same [`Future`] as the process executor.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::TaskError;
use crate::executor_map::ExecutorMap;
use crate::future::{Core, Future, Promise};
use crate::pool::collect::{Collector, StreamCollector};
use multiproc_process::panic_message;

type Initializer = Arc<dyn Fn() + Send + Sync>;

/// A queued task: run it, or tell its owner it was cancelled.
struct Job {
    run: Box<dyn FnOnce() + Send>,
    cancel: Box<dyn FnOnce(TaskError) + Send>,
}

struct State {
    queue: VecDeque<Job>,
    threads: Vec<JoinHandle<()>>,
    idle: usize,
    shutdown: bool,
    broken: Option<TaskError>,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    max_workers: usize,
    name: String,
    initializer: Option<Initializer>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A pool of threads in this process that returns a [`Future`] per task (Python's
/// `concurrent.futures.ThreadPoolExecutor`).
///
/// Tasks are closures (`FnOnce() -> R + Send`), so unlike a process pool they may
/// capture anything sendable. Threads start on demand, up to `max_workers` (Python's
/// default: `min(32, cpu_count + 4)`), and are reused. A task's panic becomes its
/// future's [`TaskError::Panicked`]. Dropping the executor waits for the submitted tasks
/// (Python's `with` block); threads cannot be killed, so there is no `terminate`.
///
/// ```
/// use multiproc::ThreadPoolExecutor;
///
/// let ex = ThreadPoolExecutor::new(4);
/// let greeting = String::from("hello");
/// let f = ex.submit(move || format!("{greeting}, world"));
/// assert_eq!(f.result()?, "hello, world");
/// let lengths: Vec<usize> = ex.map(|s: &str| s.len(), ["a", "bb", "ccc"]).collect::<Result<_, _>>()?;
/// assert_eq!(lengths, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ThreadPoolExecutor {
    shared: Arc<Shared>,
}

/// Configures a [`ThreadPoolExecutor`].
pub struct ThreadPoolExecutorBuilder {
    max_workers: Option<usize>,
    name: String,
    initializer: Option<Initializer>,
}

impl fmt::Debug for ThreadPoolExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolExecutorBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.name)
            .field("initializer", &self.initializer.is_some())
            .finish()
    }
}

impl ThreadPoolExecutorBuilder {
    /// The most threads it starts (default `min(32, cpu_count + 4)`, as in Python).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n.max(1));
        self
    }

    /// The threads' name prefix (Python's `thread_name_prefix`).
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// Runs on each new thread before its first task (Python's `initializer`). If it
    /// panics, the executor is broken: pending and later tasks fail with
    /// [`TaskError::InitializerFailed`].
    pub fn initializer(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.initializer = Some(Arc::new(f));
        self
    }

    /// Makes the executor (threads start with the first tasks).
    pub fn build(self) -> ThreadPoolExecutor {
        let max_workers = self.max_workers.unwrap_or_else(|| (crate::cpu_count() + 4).min(32));
        ThreadPoolExecutor {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: Vec::new(),
                    idle: 0,
                    shutdown: false,
                    broken: None,
                }),
                cond: Condvar::new(),
                max_workers,
                name: self.name,
                initializer: self.initializer,
            }),
        }
    }
}

fn worker_loop(shared: Arc<Shared>) {
    if let Some(init) = &shared.initializer {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| init())) {
            let err = TaskError::InitializerFailed { message: format!("it panicked: {}", panic_message(p.as_ref())) };
            let jobs: Vec<Job> = {
                let mut st = shared.lock();
                st.broken.get_or_insert(err.clone());
                st.queue.drain(..).collect()
            };
            for job in jobs {
                (job.cancel)(err.clone());
            }
            return;
        }
    }
    loop {
        let job = {
            let mut st = shared.lock();
            loop {
                if let Some(job) = st.queue.pop_front() {
                    break Some(job);
                }
                if st.shutdown || st.broken.is_some() {
                    break None;
                }
                st.idle += 1;
                st = shared.cond.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.idle -= 1;
            }
        };
        match job {
            Some(job) => (job.run)(),
            None => return,
        }
    }
}

impl ThreadPoolExecutor {
    /// An executor of at most `max_workers` threads.
    pub fn new(max_workers: usize) -> ThreadPoolExecutor {
        ThreadPoolExecutor::builder().max_workers(max_workers).build()
    }

    /// A builder for the other settings.
    pub fn builder() -> ThreadPoolExecutorBuilder {
        ThreadPoolExecutorBuilder { max_workers: None, name: "ThreadPoolExecutor".to_owned(), initializer: None }
    }

    /// The most threads it starts.
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    fn enqueue(&self, job: Job) {
        let mut st = self.shared.lock();
        if let Some(err) = st.broken.clone().or_else(|| st.shutdown.then_some(TaskError::PoolClosed)) {
            drop(st);
            (job.cancel)(err);
            return;
        }
        st.queue.push_back(job);
        if st.idle < st.queue.len() && st.threads.len() < self.shared.max_workers {
            let shared = self.shared.clone();
            let name = format!("{}_{}", self.shared.name, st.threads.len());
            match std::thread::Builder::new().name(name).spawn(move || worker_loop(shared)) {
                Ok(h) => st.threads.push(h),
                Err(e) if st.threads.is_empty() => {
                    // No thread to run anything: fail what is queued rather than hang.
                    let jobs: Vec<Job> = st.queue.drain(..).collect();
                    let err = TaskError::WorkerStart(e.to_string());
                    st.broken = Some(err.clone());
                    drop(st);
                    for job in jobs {
                        (job.cancel)(err.clone());
                    }
                    return;
                }
                Err(_) => {}
            }
        }
        drop(st);
        self.shared.cond.notify_one();
    }

    /// Schedules `f()` on a thread and returns its [`Future`] (Python's `submit`). After
    /// [`shutdown`](ThreadPoolExecutor::shutdown) the future fails with
    /// [`TaskError::PoolClosed`].
    pub fn submit<R: Send + Sync + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Future<R> {
        let core = Core::new();
        let (run_promise, cancel_promise) = (Promise::new(&core), Promise::new(&core));
        self.enqueue(Job {
            run: Box::new(move || {
                if !run_promise.set_running() {
                    return;
                }
                let outcome = catch_unwind(AssertUnwindSafe(f))
                    .map_err(|p| TaskError::Panicked { message: panic_message(p.as_ref()) });
                run_promise.finish(outcome);
            }),
            cancel: Box::new(move |err| cancel_promise.finish(Err(err))),
        });
        Future::new(core)
    }

    /// Applies `f` to every item on the threads (all submitted now) and yields the
    /// outcomes in order (Python's `map`).
    pub fn map<T, R>(
        &self,
        f: impl Fn(T) -> R + Send + Sync + 'static,
        iterable: impl IntoIterator<Item = T>,
    ) -> ExecutorMap<R>
    where
        T: Send + 'static,
        R: Send + 'static,
    {
        self.map_with(f, iterable, None)
    }

    /// [`map`](ThreadPoolExecutor::map) with Python's `timeout`, counted from this call.
    pub fn map_with<T, R>(
        &self,
        f: impl Fn(T) -> R + Send + Sync + 'static,
        iterable: impl IntoIterator<Item = T>,
        timeout: Option<Duration>,
    ) -> ExecutorMap<R>
    where
        T: Send + 'static,
        R: Send + 'static,
    {
        let f = Arc::new(f);
        let collector = StreamCollector::new(true);
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut total = 0;
        for (i, item) in iterable.into_iter().enumerate() {
            total += 1;
            let (f, c1, c2, flag) = (f.clone(), collector.clone(), collector.clone(), cancelled.clone());
            self.enqueue(Job {
                run: Box::new(move || {
                    if flag.load(Ordering::Acquire) {
                        return;
                    }
                    let outcome = catch_unwind(AssertUnwindSafe(|| f(item)))
                        .map_err(|p| TaskError::Panicked { message: panic_message(p.as_ref()) });
                    c1.put(i, vec![outcome]);
                }),
                cancel: Box::new(move |err| c2.put(i, vec![Err(err)])),
            });
        }
        ExecutorMap::new(collector, total, timeout, cancelled, None)
    }

    /// Stops accepting tasks (Python's `shutdown`); with `cancel_futures`, cancels the
    /// tasks no thread has started; with `wait`, returns once every thread has finished.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let (cancelled, threads) = {
            let mut st = self.shared.lock();
            st.shutdown = true;
            let cancelled: Vec<Job> = if cancel_futures { st.queue.drain(..).collect() } else { Vec::new() };
            let threads = if wait { std::mem::take(&mut st.threads) } else { Vec::new() };
            (cancelled, threads)
        };
        self.shared.cond.notify_all();
        for job in cancelled {
            (job.cancel)(TaskError::Cancelled);
        }
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.shared.max_workers)
            .field("threads", &st.threads.len())
            .field("queued", &st.queue.len())
            .field("shutdown", &st.shutdown)
            .finish()
    }
}
