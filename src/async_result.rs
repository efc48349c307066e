//! [`AsyncResult`]: the result of a task that is still running (Python's
//! `multiprocessing.pool.AsyncResult`).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::TaskError;
use crate::pool::engine::Helper;

/// A one-shot slot a result is delivered into, with blocking and async waiting.
pub(crate) struct Slot<T> {
    ready: AtomicBool,
    value: Mutex<Option<Result<T, TaskError>>>,
    cond: Condvar,
    waker: Mutex<Option<Waker>>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Slot<T> {
        Slot { ready: AtomicBool::new(false), value: Mutex::new(None), cond: Condvar::new(), waker: Mutex::new(None) }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Result<T, TaskError>>> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers the outcome (the first delivery wins) and wakes every waiter.
    pub(crate) fn set(&self, outcome: Result<T, TaskError>) {
        {
            let mut v = self.lock();
            if self.ready.load(Ordering::Acquire) {
                return;
            }
            *v = Some(outcome);
            self.ready.store(true, Ordering::Release);
        }
        self.cond.notify_all();
        let waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Waits until the outcome is there or `deadline` passes; whether it is there.
    /// Spins briefly first (the shared policy of [`multiproc_sys::spin`]), receiving
    /// results from the pool's workers meanwhile if given a `helper`.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>, helper: Option<&Helper>) -> bool {
        let spun = multiproc_sys::spin::spin_until(|| {
            if !self.is_ready() {
                if let Some(h) = helper {
                    h.help();
                }
            }
            self.is_ready().then_some(())
        });
        if self.is_ready() || spun.is_some() {
            return true;
        }
        let mut v = self.lock();
        while !self.is_ready() {
            v = match deadline {
                None => self.cond.wait(v).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.cond.wait_timeout(v, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        true
    }

    /// Takes the outcome, once it is there.
    pub(crate) fn take(&self) -> Option<Result<T, TaskError>> {
        self.lock().take()
    }

    /// Whether the outcome is there and is a value; `None` while not ready.
    pub(crate) fn succeeded(&self) -> Option<bool> {
        if !self.is_ready() {
            return None;
        }
        self.lock().as_ref().map(Result::is_ok)
    }

    /// The async side: ready with the outcome, or registers the waker.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>> {
        if !self.is_ready() {
            *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            // Delivered between the check and the registration: do not sleep through it.
            if !self.is_ready() {
                return Poll::Pending;
            }
        }
        Poll::Ready(self.take().unwrap_or(Err(TaskError::Cancelled)))
    }
}

/// The result of a task submitted with [`Pool::apply_async`](crate::Pool::apply_async),
/// [`Pool::map_async`](crate::Pool::map_async) or
/// [`Pool::starmap_async`](crate::Pool::starmap_async) (Python's `AsyncResult`).
///
/// [`get`](AsyncResult::get) waits for the value and returns it, or the [`TaskError`]
/// saying why there is none; [`ready`](AsyncResult::ready),
/// [`successful`](AsyncResult::successful), [`wait`](AsyncResult::wait) and
/// [`wait_timeout`](AsyncResult::wait_timeout) look without taking it. An `AsyncResult`
/// is also a [`std::future::Future`], so async code can `.await` it.
///
/// Dropping it does not cancel the task; the result is discarded when it arrives.
///
/// ```
/// use multiproc::{Pool, StartMethod};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = Pool::builder().processes(1).start_method(StartMethod::Fork).build()?;
/// let r = pool.apply_async(square, 7);
/// r.wait();
/// assert!(r.ready());
/// assert_eq!(r.successful(), Some(true));
/// assert_eq!(r.get()?, 49);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncResult<R> {
    slot: Arc<Slot<R>>,
    helper: Helper,
}

impl<R> AsyncResult<R> {
    pub(crate) fn new(slot: Arc<Slot<R>>, helper: Helper) -> AsyncResult<R> {
        AsyncResult { slot, helper }
    }

    /// Waits for the task and returns its value, or why there is none.
    pub fn get(self) -> Result<R, TaskError> {
        self.slot.wait_until(None, Some(&self.helper));
        self.slot.take().unwrap_or(Err(TaskError::Cancelled))
    }

    /// Like [`get`](AsyncResult::get), but waits at most `timeout`. If the task has not
    /// finished by then, the `AsyncResult` comes back inside
    /// [`GetTimeoutError::Timeout`] so that it can be waited for again.
    pub fn get_timeout(self, timeout: Duration) -> Result<R, GetTimeoutError<AsyncResult<R>>> {
        if !self.slot.wait_until(Instant::now().checked_add(timeout), Some(&self.helper)) {
            return Err(GetTimeoutError::Timeout(self));
        }
        self.get().map_err(GetTimeoutError::Failed)
    }

    /// Waits until the task has finished (Python's `wait()`).
    pub fn wait(&self) {
        self.slot.wait_until(None, Some(&self.helper));
    }

    /// Waits at most `timeout`; whether the task has finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.slot.wait_until(Instant::now().checked_add(timeout), Some(&self.helper))
    }

    /// Whether the task has finished (Python's `ready()`).
    pub fn ready(&self) -> bool {
        self.slot.is_ready()
    }

    /// Whether the task finished with a value: `None` while it is still running (Python
    /// raises `ValueError` then).
    pub fn successful(&self) -> Option<bool> {
        self.slot.succeeded()
    }
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult").field("ready", &self.ready()).field("successful", &self.successful()).finish()
    }
}

impl<R> std::future::Future for AsyncResult<R> {
    type Output = Result<R, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.slot.poll_take(cx)
    }
}

/// A wait with a timeout ran out before the result was ready, or the task failed.
///
/// [`Timeout`](GetTimeoutError::Timeout) hands back whatever was being waited on, so
/// nothing is lost: wait on it again, or drop it.
#[derive(thiserror::Error)]
pub enum GetTimeoutError<T = ()> {
    /// The timeout passed first; the task goes on.
    #[error("timed out waiting for the result; the task goes on and can be waited for again")]
    Timeout(T),
    /// The task finished without a value.
    #[error(transparent)]
    Failed(#[from] TaskError),
}

impl<T> fmt::Debug for GetTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            GetTimeoutError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<T> GetTimeoutError<T> {
    /// Whether the wait timed out (rather than the task failing).
    pub fn is_timeout(&self) -> bool {
        matches!(self, GetTimeoutError::Timeout(_))
    }

    /// The task's error, if it failed.
    pub fn task_error(&self) -> Option<&TaskError> {
        match self {
            GetTimeoutError::Failed(e) => Some(e),
            GetTimeoutError::Timeout(_) => None,
        }
    }
}
