//! Futex wait and wake on a 32-bit word that may live in memory shared between processes.
//!
//! These are the shared (not `FUTEX_PRIVATE_FLAG`) operations: the kernel keys the wait
//! queue on the physical page, so a waiter in one process is woken by a waker in another.

use std::io;
use std::ptr;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Why [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken by [`wake`], by a signal, or spuriously; re-check the word.
    Woken,
    /// The word did not hold `expected` when the call began.
    ValueChanged,
    /// The timeout elapsed.
    TimedOut,
}

/// Blocks while `*word == expected`, for at most `timeout` (forever if `None`).
///
/// Like every futex wait this may return spuriously; callers loop on their condition.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<WaitOutcome> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; the kernel only
    // reads it. The timespec (if any) lives on our stack until the call returns.
    let r = unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts_ptr, ptr::null::<u32>(), 0)
    };
    if r == 0 {
        return Ok(WaitOutcome::Woken);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) => Ok(WaitOutcome::ValueChanged),
        Some(libc::ETIMEDOUT) => Ok(WaitOutcome::TimedOut),
        Some(libc::EINTR) => Ok(WaitOutcome::Woken),
        _ => Err(err),
    }
}

/// Wakes at most `n` waiters blocked in [`wait`] on `word` (in any process).
/// Returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32) as i32;
    // SAFETY: FUTEX_WAKE only uses the address as a key; it never dereferences beyond it.
    let r = unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n, ptr::null::<u32>(), ptr::null::<u32>(), 0)
    };
    r.max(0) as usize
}

/// Wakes every waiter on `word`.
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    #[test]
    fn timeout_and_value_changed() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 2, None).unwrap(), WaitOutcome::ValueChanged);
        assert_eq!(wait(&w, 1, Some(Duration::from_millis(5))).unwrap(), WaitOutcome::TimedOut);
    }

    #[test]
    fn wake_across_threads() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::SeqCst) == 0 {
                wait(&w2, 0, None).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::SeqCst);
        wake_all(&w);
        t.join().unwrap();
    }
}
