//! [`ExecutorMap`]: the ordered results of an executor's `map`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::TaskError;
use crate::pool::collect::StreamCollector;
use crate::pool::engine::Helper;

/// The results of [`ProcessPoolExecutor::map`](crate::ProcessPoolExecutor::map) or
/// [`ThreadPoolExecutor::map`](crate::ThreadPoolExecutor::map), in input order, one
/// `Result` per item (Python's `Executor.map` iterator, which raises at the first
/// exception instead).
///
/// Every item was submitted when `map` returned (Python does the same; for a lazy map
/// over an endless input use [`Pool::imap`](crate::Pool::imap)). With a timeout
/// (`map_with`), an item not ready by the deadline, counted from the call of `map`,
/// yields [`TaskError::MapTimeout`] and ends the iteration; the tasks that had not
/// started are cancelled, as they are when the iterator is dropped early.
pub struct ExecutorMap<R> {
    collector: Arc<StreamCollector<R>>,
    total: usize,
    yielded: usize,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
    ended: bool,
    helper: Option<Helper>,
}

impl<R: Send> ExecutorMap<R> {
    pub(crate) fn new(
        collector: Arc<StreamCollector<R>>,
        total: usize,
        timeout: Option<Duration>,
        cancelled: Arc<AtomicBool>,
        helper: Option<Helper>,
    ) -> ExecutorMap<R> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        ExecutorMap { collector, total, yielded: 0, timeout, deadline, cancelled, ended: false, helper }
    }
}

impl<R: Send> Iterator for ExecutorMap<R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Result<R, TaskError>> {
        if self.ended || self.yielded == self.total {
            return None;
        }
        match self.collector.next(self.yielded, self.deadline, self.helper.as_ref()) {
            Some(outcome) => {
                self.yielded += 1;
                Some(outcome)
            }
            None => {
                self.ended = true;
                self.cancelled.store(true, Ordering::Release);
                Some(Err(TaskError::MapTimeout { timeout: self.timeout.unwrap_or_default() }))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.ended { 0 } else { self.total - self.yielded };
        (left.min(1), Some(left))
    }
}

impl<R> Drop for ExecutorMap<R> {
    fn drop(&mut self) {
        // Python's map generator cancels the futures it did not yield.
        self.cancelled.store(true, Ordering::Release);
    }
}

impl<R> fmt::Debug for ExecutorMap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorMap")
            .field("total", &self.total)
            .field("yielded", &self.yielded)
            .field("timeout", &self.timeout)
            .finish()
    }
}
