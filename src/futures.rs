//! Python's `concurrent.futures` namespace: the executors, [`Future`], and the free
//! functions [`wait`] and [`as_completed`].
//!
//! `wait` lives here rather than flat in `multiproc` because `multiprocessing.connection.wait`
//! (`multiproc::pipe::wait`) has the same name; everything else is also re-exported flat
//! (`multiproc::{Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed, ReturnWhen}`).
//!
//! ```
//! use std::time::Duration;
//! use multiproc::futures::{ReturnWhen, ThreadPoolExecutor, as_completed, wait};
//!
//! let ex = ThreadPoolExecutor::new(3);
//! let futures: Vec<_> = [30u64, 10, 20]
//!     .into_iter()
//!     .map(|ms| ex.submit(move || { std::thread::sleep(Duration::from_millis(ms)); ms }))
//!     .collect();
//! let (done, not_done) = wait(&futures, ReturnWhen::AllCompleted, None);
//! assert_eq!((done.len(), not_done.len()), (3, 0));
//! let mut order = Vec::new();
//! for f in as_completed(&futures, None) {
//!     order.push(*f?.result()?);
//! }
//! order.sort();
//! assert_eq!(order, [10, 20, 30]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::error::{TaskError, TimeoutError};
pub use crate::executor::{ProcessPoolExecutor, ProcessPoolExecutorBuilder};
pub use crate::executor_map::ExecutorMap;
pub use crate::future::Future;
pub use crate::thread_executor::{ThreadPoolExecutor, ThreadPoolExecutorBuilder};

use crate::future::Waiter;

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnWhen {
    /// As soon as any future is done (or cancelled).
    FirstCompleted,
    /// As soon as any future fails (cancellation included), or when all are done.
    FirstException,
    /// When every future is done (the default, as in Python).
    #[default]
    AllCompleted,
}

/// Registers one waiter with many futures, and unregisters it when dropped.
struct Registration<'a, R> {
    futures: Vec<&'a Future<R>>,
    waiter: Arc<Waiter>,
}

impl<'a, R> Registration<'a, R> {
    fn new(futures: Vec<&'a Future<R>>) -> Registration<'a, R> {
        let waiter = Arc::new(Waiter::default());
        for f in &futures {
            f.core().add_waiter(&waiter);
        }
        Registration { futures, waiter }
    }
}

impl<R> Drop for Registration<'_, R> {
    fn drop(&mut self) {
        for f in &self.futures {
            f.core().remove_waiter(&self.waiter);
        }
    }
}

/// Distinct futures (Python works on sets), in the order given.
fn distinct<'a, R>(futures: impl IntoIterator<Item = &'a Future<R>>) -> Vec<&'a Future<R>> {
    let mut seen = HashSet::new();
    futures.into_iter().filter(|f| seen.insert(Arc::as_ptr(f.core()) as usize)).collect()
}

/// Waits for futures (Python's `concurrent.futures.wait`): returns `(done, not_done)`
/// once `return_when` is satisfied or `timeout` passes (`None`: no limit), each in the
/// order given.
pub fn wait<'a, R>(
    futures: impl IntoIterator<Item = &'a Future<R>>,
    return_when: ReturnWhen,
    timeout: impl Into<Option<Duration>>,
) -> (Vec<&'a Future<R>>, Vec<&'a Future<R>>) {
    let futures = distinct(futures);
    let deadline = timeout.into().and_then(|t| Instant::now().checked_add(t));
    let reg = Registration::new(futures);
    loop {
        let seen = reg.waiter.seen();
        let (done, not_done): (Vec<_>, Vec<_>) = reg.futures.iter().copied().partition(|f| f.done());
        let satisfied = match return_when {
            ReturnWhen::FirstCompleted => !done.is_empty(),
            ReturnWhen::FirstException => done.iter().any(|f| f.core().failed()) || not_done.is_empty(),
            ReturnWhen::AllCompleted => not_done.is_empty(),
        };
        if satisfied || deadline.is_some_and(|d| Instant::now() >= d) {
            return (done, not_done);
        }
        reg.waiter.wait_past(seen, deadline);
    }
}

/// Yields the futures as they complete (Python's `concurrent.futures.as_completed`):
/// those already done first, then each as it finishes. If `timeout` (counted from this
/// call) passes first, the iterator yields one `Err(TimeoutError)` and ends.
pub fn as_completed<'a, R>(
    futures: impl IntoIterator<Item = &'a Future<R>>,
    timeout: impl Into<Option<Duration>>,
) -> AsCompleted<'a, R> {
    let futures = distinct(futures);
    let deadline = timeout.into().and_then(|t| Instant::now().checked_add(t));
    AsCompleted { reg: Registration::new(futures.clone()), pending: futures, deadline, timed_out: false }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<'a, R> {
    reg: Registration<'a, R>,
    pending: Vec<&'a Future<R>>,
    deadline: Option<Instant>,
    timed_out: bool,
}

impl<'a, R> Iterator for AsCompleted<'a, R> {
    type Item = Result<&'a Future<R>, TimeoutError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.timed_out || self.pending.is_empty() {
            return None;
        }
        loop {
            let seen = self.reg.waiter.seen();
            if let Some(i) = self.pending.iter().position(|f| f.done()) {
                return Some(Ok(self.pending.remove(i)));
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.timed_out = true;
                return Some(Err(TimeoutError));
            }
            self.reg.waiter.wait_past(seen, self.deadline);
        }
    }
}

impl<R> fmt::Debug for AsCompleted<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted").field("pending", &self.pending.len()).field("deadline", &self.deadline).finish()
    }
}
