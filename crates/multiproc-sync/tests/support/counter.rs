//! Shared counters for tests and benches: a few `u64` cells in a memfd segment that can
//! be passed to child processes like any handle.
//!
//! [`Counters::racy_increment`] is a load followed by a store, not an atomic add: two
//! processes doing it at once lose updates, so a correct total proves that a lock kept
//! them apart (without a data race in the Rust sense: every access is atomic).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use multiproc_codec::Fd;
use multiproc_sys::shm::Segment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const CELLS: usize = 8;

/// Eight shared `u64` cells, all zero at first.
#[derive(Clone, Debug)]
pub struct Counters {
    seg: Arc<Segment>,
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Counters {
    /// Creates the cells in a new shared segment.
    pub fn new() -> Counters {
        Counters { seg: Arc::new(Segment::create("test-counters", CELLS * 8).expect("create counter segment")) }
    }

    /// Cell `i` (`i < 8`).
    pub fn cell(&self, i: usize) -> &AtomicU64 {
        assert!(i < CELLS);
        // SAFETY: the mapping is page aligned and at least CELLS * 8 bytes long (created
        // so, or checked by `from_fd`); AtomicU64 is valid for any bytes, and the mapping
        // lives as long as `self`.
        unsafe { &*(self.seg.as_ptr() as *const AtomicU64).add(i) }
    }

    /// Load then store: correct only under mutual exclusion.
    pub fn racy_increment(&self, i: usize) {
        let c = self.cell(i);
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// The value of cell `i`.
    pub fn get(&self, i: usize) -> u64 {
        self.cell(i).load(Ordering::SeqCst)
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fd = self.seg.try_clone_fd().map_err(serde::ser::Error::custom)?;
        Fd::new(fd).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Counters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fd = Fd::deserialize(d)?;
        let seg = Segment::from_fd(fd.into_inner(), CELLS * 8).map_err(serde::de::Error::custom)?;
        Ok(Counters { seg: Arc::new(seg) })
    }
}
