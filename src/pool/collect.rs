//! Where task outcomes go: the typed result of one `apply_async`, and the collectors of
//! the map family (all at once for `map_async`, one by one for `imap`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use multiproc_process::RemoteResult;
use serde::de::DeserializeOwned;

use crate::async_result::Slot;
use crate::error::TaskError;
use crate::pool::engine::{Helper, Sink};
use crate::worker::ItemFailure;

/// A callback run with a task's value (Python's `callback`).
pub(crate) type Callback<R> = Box<dyn FnOnce(&R) + Send>;
/// A callback run with a task's error (Python's `error_callback`).
pub(crate) type ErrorCallback = Box<dyn FnOnce(&TaskError) + Send>;

/// Decodes one task's outcome as an `R`.
pub(crate) fn decode_one<R: DeserializeOwned>(outcome: Result<RemoteResult, TaskError>) -> Result<R, TaskError> {
    Ok(outcome?.decode::<R>()?)
}

/// Decodes a chunk's outcome into one outcome per item (`len` items). A chunk that failed
/// as a whole (its worker died, it could not be sent) fails every item with that error.
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    outcome: Result<RemoteResult, TaskError>,
    len: usize,
) -> Vec<Result<R, TaskError>> {
    // The chunk runner returns a `RemoteResult` holding the encoded item results.
    let items = decode_one::<RemoteResult>(outcome).and_then(|r| Ok(r.decode::<Vec<Result<R, ItemFailure>>>()?));
    match items {
        Ok(items) if items.len() == len => items
            .into_iter()
            .map(|r| {
                r.map_err(|f| match f {
                    ItemFailure::Panicked(message) => TaskError::Panicked { message },
                    ItemFailure::NotSent(m) => TaskError::ResultNotSent(m),
                })
            })
            .collect(),
        Ok(items) => {
            let e = TaskError::Decode(format!("a chunk of {len} items came back with {} results", items.len()));
            (0..len).map(|_| Err(e.clone())).collect()
        }
        Err(e) => (0..len).map(|_| Err(e.clone())).collect(),
    }
}

/// The sink of `apply_async`: decode, run the callbacks, fill the slot.
pub(crate) struct ApplySink<R> {
    pub(crate) slot: Arc<Slot<R>>,
    pub(crate) callback: Option<Callback<R>>,
    pub(crate) error_callback: Option<ErrorCallback>,
}

impl<R: DeserializeOwned + Send> Sink for ApplySink<R> {
    fn finish(self: Box<Self>, outcome: Result<RemoteResult, TaskError>) {
        let this = *self;
        let value = decode_one::<R>(outcome);
        run_callbacks(&value, this.callback, this.error_callback);
        this.slot.set(value);
    }
}

/// Runs the callback matching the outcome. A panicking callback is reported and
/// ignored: the result must still be delivered (CPython's pool hangs there).
fn run_callbacks<R>(
    value: &Result<R, TaskError>,
    callback: Option<Callback<R>>,
    error_callback: Option<ErrorCallback>,
) {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match value {
        Ok(v) => {
            if let Some(cb) = callback {
                cb(v);
            }
        }
        Err(e) => {
            if let Some(cb) = error_callback {
                cb(e);
            }
        }
    }));
    if let Err(p) = ran {
        eprintln!("multiproc: a pool callback panicked (ignored): {}", multiproc_process::panic_message(p.as_ref()));
    }
}

/// Receives the outcomes of the items of a map, chunk by chunk.
pub(crate) trait Collector<R>: Send + Sync {
    /// Items `start..start + results.len()` finished.
    fn put(&self, start: usize, results: Vec<Result<R, TaskError>>);
}

/// The sink of one chunk of a map: `len` items starting at item `start`. A chunk of one
/// item is sent as a plain call of the function (`single`), without the chunk wrapper.
pub(crate) struct ChunkSink<R> {
    pub(crate) collector: Arc<dyn Collector<R>>,
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) single: bool,
}

impl<R: DeserializeOwned + Send> Sink for ChunkSink<R> {
    fn finish(self: Box<Self>, outcome: Result<RemoteResult, TaskError>) {
        let results = if self.single { vec![decode_one::<R>(outcome)] } else { decode_chunk::<R>(outcome, self.len) };
        self.collector.put(self.start, results);
    }
}

struct MapState<R> {
    values: Vec<Option<R>>,
    remaining: usize,
    done: bool,
    callback: Option<Callback<Vec<R>>>,
    error_callback: Option<ErrorCallback>,
}

/// Collects all the items of `map_async` into one [`Slot`]. As in Python, the first
/// failure (in time) fails the whole map at once; later outcomes are dropped.
pub(crate) struct MapCollector<R> {
    state: Mutex<MapState<R>>,
    slot: Arc<Slot<Vec<R>>>,
}

impl<R: Send> MapCollector<R> {
    pub(crate) fn new(
        len: usize,
        slot: Arc<Slot<Vec<R>>>,
        callback: Option<Callback<Vec<R>>>,
        error_callback: Option<ErrorCallback>,
    ) -> Arc<MapCollector<R>> {
        let mut values = Vec::with_capacity(len);
        values.resize_with(len, || None);
        let c = Arc::new(MapCollector {
            state: Mutex::new(MapState { values, remaining: len, done: false, callback, error_callback }),
            slot,
        });
        if len == 0 {
            c.put(0, Vec::new());
        }
        c
    }
}

impl<R: Send> Collector<R> for MapCollector<R> {
    fn put(&self, start: usize, results: Vec<Result<R, TaskError>>) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.done {
            return;
        }
        let mut failed = None;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(v) => {
                    if let Some(slot) = st.values.get_mut(start + i) {
                        if slot.replace(v).is_none() {
                            st.remaining -= 1;
                        }
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let outcome = match failed {
            Some(e) => Err(e),
            None if st.remaining == 0 => Ok(std::mem::take(&mut st.values).into_iter().flatten().collect::<Vec<R>>()),
            None => return,
        };
        st.done = true;
        let (callback, error_callback) = (st.callback.take(), st.error_callback.take());
        drop(st);
        run_callbacks(&outcome, callback, error_callback);
        self.slot.set(outcome);
    }
}

struct StreamState<R> {
    /// Ordered: outcomes by item index, waiting for their turn.
    by_index: HashMap<usize, Result<R, TaskError>>,
    /// Unordered: outcomes in the order they arrived.
    arrived: VecDeque<Result<R, TaskError>>,
}

/// Collects the items of `imap` / `imap_unordered` (and an executor's `map`) for an
/// iterator that takes them one by one.
pub(crate) struct StreamCollector<R> {
    ordered: bool,
    state: Mutex<StreamState<R>>,
    cond: Condvar,
    /// Bumped on every delivery, so a waiter can spin on it before it blocks.
    version: AtomicU64,
}

impl<R: Send> StreamCollector<R> {
    pub(crate) fn new(ordered: bool) -> Arc<StreamCollector<R>> {
        Arc::new(StreamCollector {
            ordered,
            state: Mutex::new(StreamState { by_index: HashMap::new(), arrived: VecDeque::new() }),
            cond: Condvar::new(),
            version: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, StreamState<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next outcome to yield: item `index` when ordered, any when not.
    fn take(st: &mut StreamState<R>, ordered: bool, index: usize) -> Option<Result<R, TaskError>> {
        if ordered { st.by_index.remove(&index) } else { st.arrived.pop_front() }
    }

    /// Waits for the next outcome until `deadline`; `None` if it did not come in time.
    pub(crate) fn next(
        &self,
        index: usize,
        deadline: Option<Instant>,
        helper: Option<&Helper>,
    ) -> Option<Result<R, TaskError>> {
        let seen = self.version.load(Ordering::Acquire);
        if let Some(v) = Self::take(&mut self.lock(), self.ordered, index) {
            return Some(v);
        }
        // Spin on the delivery counter before blocking (the shared policy), receiving
        // results from the workers meanwhile.
        let _ = multiproc_sys::spin::spin_until(|| {
            if let Some(h) = helper {
                h.help();
            }
            (self.version.load(Ordering::Acquire) != seen).then_some(())
        });
        let mut st = self.lock();
        loop {
            if let Some(v) = Self::take(&mut st, self.ordered, index) {
                return Some(v);
            }
            st = match deadline {
                None => self.cond.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.cond.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }
}

impl<R: Send> Collector<R> for StreamCollector<R> {
    fn put(&self, start: usize, results: Vec<Result<R, TaskError>>) {
        let mut st = self.lock();
        for (i, r) in results.into_iter().enumerate() {
            if self.ordered {
                st.by_index.insert(start + i, r);
            } else {
                st.arrived.push_back(r);
            }
        }
        self.version.fetch_add(1, Ordering::AcqRel);
        drop(st);
        self.cond.notify_all();
    }
}
