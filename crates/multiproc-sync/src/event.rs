//! [`Event`]: Python's `multiprocessing.Event`, a flag that processes can wait for.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc_sys::futex;
use serde::{Deserialize, Serialize};

use crate::shared::{Handle, Kind, Layout};
use crate::wait::{deadline_after, wait_while_eq};

/// A flag shared between processes, which processes can wait for (Python's
/// `multiprocessing.Event`).
///
/// [`set`](Event::set) raises the flag and wakes every waiter; [`clear`](Event::clear)
/// lowers it; [`wait`](Event::wait) returns once it is raised. As in Python, a waiter
/// that was woken by `set` returns `true` even if the flag was cleared again before it
/// ran.
///
/// ```
/// use multiproc_sync::Event;
/// use std::time::Duration;
///
/// let ready = Event::new()?;
/// assert!(!ready.wait_timeout(Duration::from_millis(1)));   // not set: times out
/// ready.set();
/// assert!(ready.is_set());
/// ready.wait();                                              // returns at once
/// ready.clear();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Event {
    shared: Handle<EventLayout>,
}

#[repr(C)]
pub(crate) struct EventLayout {
    /// Futex word: bit 0 is the flag, the other bits count the `set`s that raised it, so
    /// a waiter can tell that it was set even if it was cleared again meanwhile.
    word: AtomicU32,
    /// How many processes may be asleep on `word` (a hint to skip the wake call).
    sleepers: AtomicU32,
}

// SAFETY: repr(C) atomics only.
unsafe impl Layout for EventLayout {
    const KIND: Kind = Kind::Event;
    const ROBUST: bool = false;
}

impl Event {
    /// Creates an event whose flag is not set.
    pub fn new() -> io::Result<Event> {
        Ok(Event { shared: Handle::create(|_: &EventLayout| Ok(()))? })
    }

    fn get(&self) -> &EventLayout {
        self.shared.get()
    }

    /// Whether the flag is set (Python: `is_set()`).
    pub fn is_set(&self) -> bool {
        self.get().word.load(Ordering::Acquire) & 1 == 1
    }

    /// Sets the flag and wakes every process waiting for it (Python: `set()`).
    pub fn set(&self) {
        let e = self.get();
        let mut w = e.word.load(Ordering::Relaxed);
        loop {
            if w & 1 == 1 {
                return;
            }
            let raised = (w | 1).wrapping_add(2);
            match e.word.compare_exchange_weak(w, raised, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        if e.sleepers.load(Ordering::SeqCst) > 0 {
            futex::wake_all(&e.word);
        }
    }

    /// Lowers the flag (Python: `clear()`).
    pub fn clear(&self) {
        self.get().word.fetch_and(!1, Ordering::SeqCst);
    }

    /// Blocks until the flag is set (Python: `wait()`).
    pub fn wait(&self) {
        self.wait_inner(None);
    }

    /// Blocks at most `timeout` for the flag; returns whether it was set (Python:
    /// `wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_inner(deadline_after(timeout))
    }

    /// Blocks until `deadline` for the flag; returns whether it was set.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.wait_inner(Some(deadline))
    }

    fn wait_inner(&self, deadline: Option<Instant>) -> bool {
        let e = self.get();
        let start = e.word.load(Ordering::Acquire);
        if start & 1 == 1 {
            return true;
        }
        // Register before sleeping so `set` knows to wake us; SeqCst pairs with the
        // SeqCst update and load in `set`.
        e.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut seen = start;
        let set = loop {
            let changed = wait_while_eq(&e.word, seen, deadline);
            let now = e.word.load(Ordering::Acquire);
            // Raised, or raised and lowered again since we looked (the count moved).
            if now & 1 == 1 || (now >> 1) != (start >> 1) {
                break true;
            }
            if !changed && deadline.is_some_and(|d| Instant::now() >= d) {
                break false;
            }
            seen = now;
        };
        e.sleepers.fetch_sub(1, Ordering::SeqCst);
        set
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish()
    }
}
