//! [`Future`]: the result of a task submitted to an executor (Python's
//! `concurrent.futures.Future`), shared by [`ProcessPoolExecutor`](crate::ProcessPoolExecutor)
//! and [`ThreadPoolExecutor`](crate::ThreadPoolExecutor).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::async_result::GetTimeoutError;
use crate::error::TaskError;
use crate::pool::engine::Helper;

/// A callback run when a future finishes.
type DoneCallback<R> = Box<dyn FnOnce(&Future<R>) + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    Finished,
}

struct State<R> {
    phase: Phase,
    callbacks: Vec<DoneCallback<R>>,
    waker: Option<Waker>,
    waiters: Vec<Arc<Waiter>>,
}

/// What a [`Future`] shares with whoever completes it.
pub(crate) struct Core<R> {
    state: Mutex<State<R>>,
    cond: Condvar,
    done: AtomicBool,
    outcome: OnceLock<Result<R, TaskError>>,
    /// For a process pool's future: receives results while a waiter spins.
    helper: Option<Helper>,
}

/// Wakes [`wait`](crate::futures::wait) and [`as_completed`](crate::futures::as_completed)
/// when any of the futures they watch finishes.
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    bumps: Mutex<u64>,
    cond: Condvar,
}

impl Waiter {
    fn bump(&self) {
        *self.bumps.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.cond.notify_all();
    }

    /// Waits until a bump after `seen` or `deadline`; returns the current count.
    pub(crate) fn wait_past(&self, seen: u64, deadline: Option<Instant>) -> u64 {
        let mut n = self.bumps.lock().unwrap_or_else(PoisonError::into_inner);
        while *n == seen {
            n = match deadline {
                None => self.cond.wait(n).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.cond.wait_timeout(n, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        *n
    }

    /// The current count.
    pub(crate) fn seen(&self) -> u64 {
        *self.bumps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R> Core<R> {
    pub(crate) fn new() -> Arc<Core<R>> {
        Core::make(None)
    }

    /// A future of a process pool, whose waiters help receive results.
    pub(crate) fn with_helper(helper: Helper) -> Arc<Core<R>> {
        Core::make(Some(helper))
    }

    fn make(helper: Option<Helper>) -> Arc<Core<R>> {
        Arc::new(Core {
            state: Mutex::new(State { phase: Phase::Pending, callbacks: Vec::new(), waker: None, waiters: Vec::new() }),
            cond: Condvar::new(),
            done: AtomicBool::new(false),
            outcome: OnceLock::new(),
            helper,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the task as running (Python's `set_running_or_notify_cancel`); `false` if it
    /// was cancelled and must not run.
    pub(crate) fn set_running(&self) -> bool {
        let mut st = self.lock();
        match st.phase {
            Phase::Pending => {
                st.phase = Phase::Running;
                true
            }
            Phase::Running => true,
            Phase::Finished => false,
        }
    }

    /// Delivers the outcome (the first one wins), wakes every waiter and runs the done
    /// callbacks on this thread.
    pub(crate) fn finish(self: &Arc<Self>, outcome: Result<R, TaskError>) {
        self.complete(outcome, false);
    }

    /// Cancels the task if it has not started; whether it did.
    pub(crate) fn cancel(self: &Arc<Self>) -> bool {
        self.complete(Err(TaskError::Cancelled), true)
    }

    fn complete(self: &Arc<Self>, outcome: Result<R, TaskError>, only_if_pending: bool) -> bool {
        let mut st = self.lock();
        if st.phase == Phase::Finished || (only_if_pending && st.phase != Phase::Pending) {
            return false;
        }
        let _ = self.outcome.set(outcome);
        st.phase = Phase::Finished;
        self.done.store(true, Ordering::Release);
        let callbacks = std::mem::take(&mut st.callbacks);
        let waker = st.waker.take();
        let waiters = std::mem::take(&mut st.waiters);
        drop(st);
        self.cond.notify_all();
        for w in waiters {
            w.bump();
        }
        if !callbacks.is_empty() {
            let me = Future { core: self.clone() };
            for cb in callbacks {
                if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&me))) {
                    eprintln!(
                        "multiproc: a done callback panicked (ignored): {}",
                        multiproc_process::panic_message(p.as_ref())
                    );
                }
            }
        }
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let spun = multiproc_sys::spin::spin_until(|| {
            if !self.is_done() {
                if let Some(h) = &self.helper {
                    h.help();
                }
            }
            self.is_done().then_some(())
        });
        if self.is_done() || spun.is_some() {
            return true;
        }
        let mut st = self.lock();
        while st.phase != Phase::Finished {
            st = match deadline {
                None => self.cond.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.cond.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        true
    }

    /// Registers `w` to be bumped when this future finishes; `false` if it already has.
    pub(crate) fn add_waiter(&self, w: &Arc<Waiter>) -> bool {
        let mut st = self.lock();
        if st.phase == Phase::Finished {
            return false;
        }
        st.waiters.push(w.clone());
        true
    }

    pub(crate) fn remove_waiter(&self, w: &Arc<Waiter>) {
        self.lock().waiters.retain(|x| !Arc::ptr_eq(x, w));
    }

    /// Whether it finished with an error (cancellation included).
    pub(crate) fn failed(&self) -> bool {
        matches!(self.outcome.get(), Some(Err(_)))
    }
}

/// The completing side's handle: does not keep the future's outcome alive for nobody,
/// and lets [`Future::into_result`] take the value without cloning it.
pub(crate) struct Promise<R> {
    core: Weak<Core<R>>,
}

impl<R> Promise<R> {
    pub(crate) fn new(core: &Arc<Core<R>>) -> Promise<R> {
        Promise { core: Arc::downgrade(core) }
    }

    /// See [`Core::set_running`]; a future nobody holds any more still runs (its effects
    /// may matter), as in Python.
    pub(crate) fn set_running(&self) -> bool {
        self.core.upgrade().is_none_or(|c| c.set_running())
    }

    /// See [`Core::finish`].
    pub(crate) fn finish(&self, outcome: Result<R, TaskError>) {
        if let Some(c) = self.core.upgrade() {
            c.finish(outcome);
        }
    }
}

/// The eventual result of a task submitted to a [`ProcessPoolExecutor`](crate::ProcessPoolExecutor)
/// or a [`ThreadPoolExecutor`](crate::ThreadPoolExecutor) (Python's
/// `concurrent.futures.Future`).
///
/// | Python | here |
/// |---|---|
/// | `result(timeout)` | [`result`](Future::result) (borrows the value), [`result_timeout`](Future::result_timeout), [`into_result`](Future::into_result) (takes it), `.await` |
/// | `exception(timeout)` | [`error`](Future::error), [`error_timeout`](Future::error_timeout) |
/// | `done()`, `running()`, `cancelled()`, `cancel()` | the same |
/// | `add_done_callback(fn)` | [`add_done_callback`](Future::add_done_callback) |
///
/// A future can be cancelled until a worker takes its task; after that it runs to the
/// end. It is a [`std::future::Future`] too, so async code can `.await` it. Dropping it
/// does not cancel the task.
///
/// ```
/// use multiproc::{StartMethod, ThreadPoolExecutor, ProcessPoolExecutor};
///
/// fn cube(x: i64) -> i64 { x * x * x }
///
/// let procs = ProcessPoolExecutor::builder().max_workers(1).start_method(StartMethod::Fork).build()?;
/// let f = procs.submit(cube, 3);
/// assert_eq!(*f.result()?, 27);
/// assert!(f.done() && !f.cancelled());
/// assert_eq!(f.error(), None);
///
/// // The same Future from a thread pool, with a closure.
/// let threads = ThreadPoolExecutor::new(2);
/// let g = threads.submit(|| "from a thread".to_uppercase());
/// assert_eq!(g.into_result()?, "FROM A THREAD");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Future<R> {
    core: Arc<Core<R>>,
}

impl<R> Future<R> {
    pub(crate) fn new(core: Arc<Core<R>>) -> Future<R> {
        Future { core }
    }

    pub(crate) fn core(&self) -> &Arc<Core<R>> {
        &self.core
    }

    /// Waits for the task and returns a reference to its value, or why there is none
    /// (Python's `result()`). [`into_result`](Future::into_result) takes the value.
    pub fn result(&self) -> Result<&R, TaskError> {
        self.core.wait_until(None);
        self.outcome_ref()
    }

    fn outcome_ref(&self) -> Result<&R, TaskError> {
        match self.core.outcome.get() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.clone()),
            None => Err(TaskError::Cancelled),
        }
    }

    /// Like [`result`](Future::result), waiting at most `timeout` (Python's
    /// `result(timeout)`); [`GetTimeoutError::Timeout`] if the task is not done by then.
    pub fn result_timeout(&self, timeout: Duration) -> Result<&R, GetTimeoutError> {
        if !self.core.wait_until(Instant::now().checked_add(timeout)) {
            return Err(GetTimeoutError::Timeout(()));
        }
        Ok(self.outcome_ref()?)
    }

    /// Waits for the task and returns its value itself (or why there is none). If done
    /// callbacks are still running on another thread, waits for them too.
    pub fn into_result(mut self) -> Result<R, TaskError> {
        self.core.wait_until(None);
        loop {
            // Whoever completed the future holds it only while it runs the callbacks.
            if let Some(core) = Arc::get_mut(&mut self.core) {
                return core.outcome.take().unwrap_or(Err(TaskError::Cancelled));
            }
            std::thread::yield_now();
        }
    }

    /// Waits for the task and returns its error, `None` if it succeeded (Python's
    /// `exception()`).
    pub fn error(&self) -> Option<TaskError> {
        self.result().err()
    }

    /// Like [`error`](Future::error), waiting at most `timeout`.
    pub fn error_timeout(&self, timeout: Duration) -> Result<Option<TaskError>, GetTimeoutError> {
        match self.result_timeout(timeout) {
            Ok(_) => Ok(None),
            Err(GetTimeoutError::Failed(e)) => Ok(Some(e)),
            Err(t) => Err(t),
        }
    }

    /// Whether the task has finished, or was cancelled (Python's `done()`).
    pub fn done(&self) -> bool {
        self.core.is_done()
    }

    /// Whether a worker is running the task now (Python's `running()`).
    pub fn running(&self) -> bool {
        self.core.lock().phase == Phase::Running
    }

    /// Whether the task was cancelled (Python's `cancelled()`).
    pub fn cancelled(&self) -> bool {
        self.done() && matches!(self.core.outcome.get(), Some(Err(TaskError::Cancelled)))
    }

    /// Cancels the task if no worker has taken it yet (Python's `cancel()`): `true` if it
    /// is now cancelled (or already was), `false` if it is running or done. The done
    /// callbacks run on this thread.
    pub fn cancel(&self) -> bool {
        self.core.cancel() || self.cancelled()
    }

    /// Calls `f` with this future once it is done (Python's `add_done_callback`): at once
    /// on this thread if it already is, otherwise on the thread that completes it (for a
    /// process pool: its manager thread, or a thread waiting for one of its results; for
    /// a thread pool: the thread that ran the task).
    pub fn add_done_callback(&self, f: impl FnOnce(&Future<R>) + Send + 'static) {
        let mut st = self.core.lock();
        if st.phase != Phase::Finished {
            st.callbacks.push(Box::new(f));
            return;
        }
        drop(st);
        f(self);
    }
}

impl<R> fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = self.core.lock().phase;
        let state = match phase {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::Finished if self.cancelled() => "cancelled",
            Phase::Finished if self.core.failed() => "failed",
            Phase::Finished => "finished",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

impl<R> std::future::Future for Future<R> {
    type Output = Result<R, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.core.is_done() {
            let mut st = self.core.lock();
            if st.phase != Phase::Finished {
                st.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        match Arc::get_mut(&mut self.core) {
            Some(core) => Poll::Ready(core.outcome.take().unwrap_or(Err(TaskError::Cancelled))),
            None => {
                // The completing thread still holds it for a moment (running callbacks).
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}
