//! [`IMap`]: the lazy iterator of [`Pool::imap`](crate::Pool::imap) and
//! [`Pool::imap_unordered`](crate::Pool::imap_unordered).
//!
//! The input iterator is pulled on the consumer's thread, one chunk at a time, and only
//! while fewer than a bounded number of items are submitted and not yet yielded (four
//! chunks per worker, at least 32 chunks). So an endless input is consumed lazily, memory stays bounded
//! even when an early item is slow (ordered results wait in a bounded buffer), and the
//! input iterator need not be `Send`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiproc_codec::EncodeError;
use multiproc_process::RemoteCall;
use serde::de::DeserializeOwned;

use crate::async_result::GetTimeoutError;
use crate::error::TaskError;
use crate::pool::collect::{ChunkSink, StreamCollector};
use crate::pool::engine::{ChunkJob, Engine, Helper};
use crate::pool::target::Target;

/// One encoded chunk: the call, how many items it holds, whether it is a plain call of
/// the function on a single item.
type Chunk = (Result<RemoteCall, EncodeError>, usize, bool);

/// How many chunks per worker may be submitted and not yet yielded (at least
/// [`MIN_CHUNKS`] in all).
const CHUNKS_PER_WORKER: usize = 4;
const MIN_CHUNKS: usize = 32;

/// Builds the next chunk from an input iterator.
pub(crate) fn feeder<'a, A: 'a, T: Target<A> + 'a>(
    target: T,
    iterable: impl IntoIterator<Item = A> + 'a,
    chunksize: usize,
) -> Box<dyn FnMut() -> Option<Chunk> + 'a> {
    let mut iter = iterable.into_iter();
    let chunksize = chunksize.max(1);
    Box::new(move || {
        let mut items: Vec<A> = iter.by_ref().take(chunksize).collect();
        match items.len() {
            0 => None,
            1 => items.pop().map(|item| (target.single(item), 1, true)),
            n => Some((target.chunk(items), n, false)),
        }
    })
}

/// The results of [`Pool::imap`](crate::Pool::imap) (in input order) or
/// [`Pool::imap_unordered`](crate::Pool::imap_unordered) (in completion order), one
/// `Result` per input item (Python's `IMapIterator`).
///
/// Each item is `Ok(value)` or the [`TaskError`] of that item alone: a failed item does
/// not end the iteration. [`next_timeout`](IMap::next_timeout) waits for the next item
/// at most a given time.
///
/// ```
/// use multiproc::{Pool, StartMethod};
///
/// fn double(x: u64) -> u64 { 2 * x }
///
/// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
/// // An endless input, consumed lazily: only what is needed is ever submitted.
/// let firsts: Vec<u64> = pool.imap(double, 0..).take(5).collect::<Result<_, _>>()?;
/// assert_eq!(firsts, [0, 2, 4, 6, 8]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct IMap<'a, R> {
    engine: &'a Engine,
    feed: Box<dyn FnMut() -> Option<Chunk> + 'a>,
    collector: Arc<StreamCollector<R>>,
    helper: Helper,
    submitted: usize,
    yielded: usize,
    limit: usize,
    exhausted: bool,
}

impl<'a, R> IMap<'a, R>
where
    R: DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(
        engine: &'a Engine,
        feed: Box<dyn FnMut() -> Option<Chunk> + 'a>,
        chunksize: usize,
        ordered: bool,
    ) -> IMap<'a, R> {
        let limit = chunksize.max(1) * (CHUNKS_PER_WORKER * engine.processes()).max(MIN_CHUNKS);
        IMap {
            engine,
            feed,
            collector: StreamCollector::new(ordered),
            helper: engine.helper(),
            submitted: 0,
            yielded: 0,
            limit,
            exhausted: false,
        }
    }

    /// Submits chunks up to the bound, once at most half of it is in flight (so that
    /// chunks go to the pool in batches, not one lock round per item).
    fn refill(&mut self) {
        if self.exhausted || self.submitted - self.yielded > self.limit / 2 {
            return;
        }
        let mut jobs: Vec<ChunkJob> = Vec::new();
        while !self.exhausted && self.submitted - self.yielded < self.limit {
            match (self.feed)() {
                None => self.exhausted = true,
                Some((call, len, single)) => {
                    let sink = ChunkSink { collector: self.collector.clone(), start: self.submitted, len, single };
                    jobs.push((call, Box::new(sink)));
                    self.submitted += len;
                }
            }
        }
        if !jobs.is_empty() {
            self.engine.submit(jobs);
        }
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Option<Result<R, GetTimeoutError>> {
        self.refill();
        if self.exhausted && self.yielded == self.submitted {
            return None;
        }
        match self.collector.next(self.yielded, deadline, Some(&self.helper)) {
            Some(outcome) => {
                self.yielded += 1;
                self.refill();
                Some(outcome.map_err(GetTimeoutError::Failed))
            }
            None => Some(Err(GetTimeoutError::Timeout(()))),
        }
    }

    /// Like [`Iterator::next`], but waits at most `timeout` (Python's `next(timeout)`):
    /// `None` when every item has been yielded, `Some(Err(GetTimeoutError::Timeout(())))`
    /// if the next item was not ready in time (the iterator stays usable).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R, GetTimeoutError>> {
        self.next_until(Instant::now().checked_add(timeout))
    }
}

impl<R> Iterator for IMap<'_, R>
where
    R: DeserializeOwned + Send + 'static,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Result<R, TaskError>> {
        match self.next_until(None)? {
            Ok(v) => Some(Ok(v)),
            Err(GetTimeoutError::Failed(e)) => Some(Err(e)),
            // No deadline: a wait without one only ends with an outcome.
            Err(GetTimeoutError::Timeout(())) => None,
        }
    }
}

impl<R> fmt::Debug for IMap<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("submitted", &self.submitted)
            .field("yielded", &self.yielded)
            .field("exhausted", &self.exhausted)
            .finish()
    }
}
