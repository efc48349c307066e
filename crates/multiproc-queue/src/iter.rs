//! Iterating over received items.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::Queue;
use crate::error::{RecvError, TryRecvError};

/// A blocking iterator over a queue's items: each `next` is a [`get`](Queue::get).
///
/// It ends when the queue is empty and closed (see the crate docs for the rule), so a
/// consumer loops until every producer is done. Items are `Result`s: a message that does
/// not decode, or corruption, is reported and iteration goes on; an operating-system
/// error is reported and ends it.
///
/// Made by [`Queue::iter`] or `for item in &queue`.
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
    done: bool,
}

/// A non-blocking iterator over the items a queue holds now: each `next` is a
/// [`get_nowait`](Queue::get_nowait), and it ends when the queue is empty.
///
/// Made by [`Queue::try_iter`].
pub struct TryIter<'a, T> {
    queue: &'a Queue<T>,
    done: bool,
}

impl<'a, T> Iter<'a, T> {
    pub(crate) fn new(queue: &'a Queue<T>) -> Self {
        Iter { queue, done: false }
    }
}

impl<'a, T> TryIter<'a, T> {
    pub(crate) fn new(queue: &'a Queue<T>) -> Self {
        TryIter { queue, done: false }
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("queue", self.queue).field("done", &self.done).finish()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter").field("queue", self.queue).field("done", &self.done).finish()
    }
}

impl<T: DeserializeOwned> Iterator for Iter<'_, T> {
    type Item = Result<T, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.queue.get() {
            Ok(item) => Some(Ok(item)),
            Err(RecvError::Closed) => {
                self.done = true;
                None
            }
            Err(e @ RecvError::Os(_)) => {
                self.done = true;
                Some(Err(e))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

impl<T: DeserializeOwned> Iterator for TryIter<'_, T> {
    type Item = Result<T, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.queue.get_nowait() {
            Ok(item) => Some(Ok(item)),
            Err(TryRecvError::Empty | TryRecvError::Closed) => {
                self.done = true;
                None
            }
            Err(TryRecvError::Os(e)) => {
                self.done = true;
                Some(Err(RecvError::Os(e)))
            }
            Err(TryRecvError::Decode(e)) => Some(Err(RecvError::Decode(e))),
            Err(TryRecvError::Corrupted(m)) => Some(Err(RecvError::Corrupted(m))),
        }
    }
}

impl<'a, T: DeserializeOwned> IntoIterator for &'a Queue<T> {
    type Item = Result<T, RecvError>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}
