//! Descriptors that a `fork` child keeps only if it was handed their owner (the
//! "close-on-fork" flag Linux does not have).
//!
//! Some descriptors mean something by merely being open: a queue counts the copies of a
//! pipe's write end that exist anywhere to know whether anybody can still put into it.
//! A child made with `fork` gets a copy of *every* descriptor of its parent, including
//! those owned by handles it was never given (the parent's locals, handles meant for
//! other children), and keeps them until it exits, so for that long the count is wrong.
//! Spawned and fork-server children do not have the problem: they only receive the
//! descriptors in their arguments.
//!
//! A [`CloForkFd`] registers its descriptor number in a process-wide table. A fork child
//! calls [`retain_reachable`] with a function that visits its arguments (in practice:
//! encodes them as if they were sent to a spawned child); every [`CloForkFd`] the visit
//! reaches calls [`CloForkFd::mark_reachable`], and every registered descriptor that was
//! not reached is *neutralised*: `/dev/null` is duplicated over its number, so the
//! original file loses this reference while the number stays owned by the (unreachable)
//! handle, which may still close it one day without closing anything else. A process
//! that must keep none of them (a fork server) calls [`neutralize_all`].
//!
//! The table is a lock-free bitmap, so a fork taken while another thread registers or
//! unregisters a descriptor leaves the child a consistent table. Limits, both harmless in
//! the sense that the descriptor is then simply kept, as without this module:
//! - descriptors numbered [`MAX_TRACKED`] or above are not tracked;
//! - a descriptor duplicated by another thread at the very moment of the fork (between
//!   `dup` and registration) is not neutralised in that child.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Descriptors numbered below this are tracked; higher ones are always kept.
pub const MAX_TRACKED: RawFd = (WORDS * 64) as RawFd;

const WORDS: usize = 1024;

static REGISTERED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

thread_local! {
    static MARKING: Cell<bool> = const { Cell::new(false) };
    static MARKED: RefCell<Vec<RawFd>> = const { RefCell::new(Vec::new()) };
}

fn slot(fd: RawFd) -> Option<(usize, u64)> {
    (0..MAX_TRACKED).contains(&fd).then(|| (fd as usize / 64, 1u64 << (fd as usize % 64)))
}

/// An owned descriptor that a fork child keeps only if [`retain_reachable`] reaches it.
///
/// Behaves like the [`OwnedFd`] it wraps: closed on drop, `O_CLOEXEC` as all of ours.
#[derive(Debug)]
pub struct CloForkFd {
    fd: OwnedFd,
}

impl CloForkFd {
    /// Takes ownership of `fd` and registers it.
    pub fn new(fd: OwnedFd) -> CloForkFd {
        if let Some((word, bit)) = slot(fd.as_raw_fd()) {
            REGISTERED[word].fetch_or(bit, Ordering::SeqCst);
        }
        CloForkFd { fd }
    }

    /// Duplicates the descriptor into a new, separately registered one.
    pub fn try_clone(&self) -> io::Result<CloForkFd> {
        Ok(CloForkFd::new(self.fd.try_clone()?))
    }

    /// Records that this descriptor is reachable from the arguments being visited by
    /// [`retain_reachable`] on this thread; does nothing at any other time. Call it from
    /// the owner's `Serialize` implementation.
    pub fn mark_reachable(&self) {
        if MARKING.with(Cell::get) {
            MARKED.with(|m| m.borrow_mut().push(self.fd.as_raw_fd()));
        }
    }
}

impl AsFd for CloForkFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for CloForkFd {
    fn drop(&mut self) {
        // Unregister before the number is closed (by the field's drop) and can be reused.
        if let Some((word, bit)) = slot(self.fd.as_raw_fd()) {
            REGISTERED[word].fetch_and(!bit, Ordering::SeqCst);
        }
    }
}

/// In a fork child: runs `visit` (which should serialize the child's arguments), then
/// neutralises every registered descriptor that `visit` did not reach through
/// [`CloForkFd::mark_reachable`]. If `visit` returns `false` (it could not visit
/// everything) nothing is neutralised, which is always safe.
///
/// Returns how many descriptors were neutralised.
pub fn retain_reachable(visit: impl FnOnce() -> bool) -> io::Result<usize> {
    MARKED.with(|m| m.borrow_mut().clear());
    MARKING.with(|m| m.set(true));
    let complete = visit();
    MARKING.with(|m| m.set(false));
    let keep = MARKED.with(|m| std::mem::take(&mut *m.borrow_mut()));
    if !complete {
        return Ok(0);
    }
    neutralize_except(&keep)
}

/// Neutralises every registered descriptor (for a process that must hold none of them,
/// such as a fork server). Returns how many there were.
pub fn neutralize_all() -> io::Result<usize> {
    neutralize_except(&[])
}

fn neutralize_except(keep: &[RawFd]) -> io::Result<usize> {
    let mut placeholder: Option<OwnedFd> = None;
    let mut count = 0;
    for (word, bits) in REGISTERED.iter().enumerate() {
        let mut bits = bits.load(Ordering::SeqCst);
        while bits != 0 {
            let fd = (word * 64 + bits.trailing_zeros() as usize) as RawFd;
            bits &= bits - 1;
            if keep.contains(&fd) {
                continue;
            }
            let null = match &placeholder {
                Some(p) => p,
                None => placeholder.insert(open_placeholder()?),
            };
            // SAFETY: dup3 only changes which file the number `fd` refers to; the number
            // stays open and owned by its `CloForkFd`, whose later drop closes the
            // placeholder copy. `fd != null` because `null` was opened after `fd` was
            // registered and is not registered itself.
            if unsafe { libc::dup3(null.as_raw_fd(), fd, libc::O_CLOEXEC) } == -1 {
                return Err(io::Error::last_os_error());
            }
            count += 1;
        }
    }
    Ok(count)
}

fn open_placeholder() -> io::Result<OwnedFd> {
    match std::fs::File::open("/dev/null") {
        Ok(f) => Ok(f.into()),
        // No /dev/null (a bare chroot): any descriptor that means nothing will do.
        Err(_) => crate::fd::pipe().map(|(r, _w)| r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::{ExitStatus, Forked, PidFd, exit_now, fork};

    fn write_end_open(read_end: &OwnedFd) -> bool {
        // A pipe's read end reports POLLHUP once every write end is closed.
        crate::poll::readable(&[read_end.as_fd()], Some(std::time::Duration::ZERO)).unwrap().is_empty()
    }

    #[test]
    fn fork_child_keeps_only_reachable_descriptors() {
        let (r1, w1) = crate::fd::pipe().unwrap();
        let (r2, w2) = crate::fd::pipe().unwrap();
        let (r3, w3) = crate::fd::pipe().unwrap();
        let kept = CloForkFd::new(w1);
        let dropped = CloForkFd::new(w2);
        let untracked = w3;
        // SAFETY: the child only calls async-signal-safe-enough code of this module
        // (no locks) and exits.
        match unsafe { fork() }.unwrap() {
            Forked::Child => {
                let n = retain_reachable(|| {
                    kept.mark_reachable();
                    true
                });
                let ok = n.is_ok_and(|n| n >= 1);
                // Hold the kept descriptor while the parent looks, then exit.
                std::thread::sleep(std::time::Duration::from_millis(300));
                drop(kept);
                exit_now(if ok { 0 } else { 1 })
            }
            Forked::Parent(pid) => {
                let child = PidFd::open(pid).unwrap();
                drop((kept, dropped, untracked));
                // The child neutralised its copy of `dropped`, kept `kept`, and holds the
                // untracked one as any fork child would.
                let hup_seen = (0..200).any(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    !write_end_open(&r2)
                });
                assert!(hup_seen, "the unreachable descriptor stayed open in the fork child");
                assert!(write_end_open(&r1), "the reachable descriptor was neutralised");
                assert!(write_end_open(&r3), "an untracked descriptor was touched");
                assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
                assert!(!write_end_open(&r1));
            }
        }
    }

    #[test]
    fn marking_only_counts_inside_retain() {
        let (_r, w) = crate::fd::pipe().unwrap();
        let fd = CloForkFd::new(w);
        fd.mark_reachable();
        assert!(MARKED.with(|m| m.borrow().is_empty()));
        let raw = fd.as_fd().as_raw_fd();
        let (word, bit) = slot(raw).unwrap();
        assert_ne!(REGISTERED[word].load(Ordering::SeqCst) & bit, 0);
        let copy = fd.try_clone().unwrap();
        drop(fd);
        assert_eq!(REGISTERED[word].load(Ordering::SeqCst) & bit, 0);
        drop(copy);
        // An incomplete visit neutralises nothing.
        assert_eq!(retain_reachable(|| false).unwrap(), 0);
    }
}
