//! Process-shared *robust* mutexes: POSIX `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED`
//! and `PTHREAD_MUTEX_ROBUST`, the one lock on Linux whose holder's death the kernel
//! itself reports.
//!
//! How owner death is detected: while a thread holds a robust mutex, glibc keeps the
//! mutex on the thread's *robust list*, registered with the kernel (`set_robust_list`).
//! The lock word holds the owner's thread id. When the thread ends for any reason,
//! SIGKILL included, the kernel walks that list during the exit, and for each mutex
//! whose word still holds the dying thread's id it sets `FUTEX_OWNER_DIED` and wakes a
//! waiter. The next locker gets `EOWNERDEAD` instead of blocking forever. A half-done
//! lock or unlock at the moment of death is covered too (glibc announces it in the
//! list's `list_op_pending` slot first). Nothing here ever asks "is pid N alive?", so a
//! recycled pid cannot fool it: the marking happens inside the owner's own exit, before
//! its id can be handed to anyone else.
//!
//! [`RobustMutex`] is `#[repr(C)]` so it can be embedded in a shared-memory layout; it is
//! initialised in place with [`RobustMutex::init`]. Its methods return raw outcomes
//! ([`Locked`], `io::Error` with the errno); the safe lock types with owner-death
//! reporting are built on it in `multiproc-sync`.
//!
//! Rules for whoever embeds one:
//! - every process that maps the mutex must be trusted not to scribble over it (true of
//!   any shared memory: a peer that overwrites the bytes can break any lock);
//! - a mutex must stay mapped in a process for as long as a thread of that process holds
//!   it, because glibc links held mutexes into the thread's list through pointers
//!   ([`RobustMutex::held_by_this_process`] tells whether unmapping is safe);
//! - like every pthread mutex, it must be unlocked by the thread that locked it
//!   (unlocking from another thread fails with `EPERM`).

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Mask of the owner's thread id in a robust futex word (the kernel's `FUTEX_TID_MASK`).
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// What kind of robust mutex [`RobustMutex::init`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutexKind {
    /// `PTHREAD_MUTEX_ERRORCHECK`: locking it again from the owning thread fails with
    /// `EDEADLK` instead of deadlocking.
    ErrorCheck,
    /// `PTHREAD_MUTEX_RECURSIVE`: the owning thread may lock it again; it is released
    /// when unlocked as many times as it was locked.
    Recursive,
}

/// How a successful lock went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The mutex was free (or released normally).
    Normal,
    /// The previous owner died holding it (`EOWNERDEAD`). The caller now holds it, and
    /// must call [`RobustMutex::make_consistent`] before unlocking, or glibc marks the
    /// mutex permanently unusable (`ENOTRECOVERABLE`).
    OwnerDied,
}

/// A `pthread_mutex_t` made process-shared and robust, to be placed in shared memory.
///
/// There is no constructor: the bytes live in a mapping, and [`RobustMutex::init`]
/// initialises them in place. All-zero bytes (a fresh segment) are a valid but
/// non-robust, process-private mutex to glibc, so a mutex must be initialised before it
/// is shared.
#[repr(C)]
pub struct RobustMutex {
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: a process-shared pthread mutex is made to be operated on concurrently from any
// thread of any process that maps it; all access goes through the pthread functions,
// which synchronise internally.
unsafe impl Sync for RobustMutex {}
// SAFETY: the value is plain bytes owned by no thread in particular (ownership of the
// *lock* is tracked inside the bytes, by thread id).
unsafe impl Send for RobustMutex {}

impl fmt::Debug for RobustMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustMutex").field("locked", &self.is_locked()).finish()
    }
}

/// Turns a pthread return code (0 or an errno value) into a result.
fn check(code: libc::c_int) -> io::Result<()> {
    if code == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(code)) }
}

#[cfg(target_env = "gnu")]
unsafe extern "C" {
    // glibc >= 2.30; the `libc` crate does not declare it yet.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

impl RobustMutex {
    /// Initialises the mutex in place: process-shared, robust, of the given kind,
    /// unlocked.
    ///
    /// # Safety
    /// No other thread or process may use this mutex (or be inside any of its methods)
    /// until `init` returns, and it must not be held. In practice: call it on a freshly
    /// created, not yet shared segment.
    pub unsafe fn init(&self, kind: MutexKind) -> io::Result<()> {
        let kind = match kind {
            MutexKind::ErrorCheck => libc::PTHREAD_MUTEX_ERRORCHECK,
            MutexKind::Recursive => libc::PTHREAD_MUTEX_RECURSIVE,
        };
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is a valid out-pointer; it is initialised by
        // pthread_mutexattr_init before any other use and destroyed at the end. The mutex
        // bytes are ours alone (caller's contract), so (re)initialising them is allowed.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let result = check(libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED))
                .and_then(|()| check(libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST)))
                .and_then(|()| check(libc::pthread_mutexattr_settype(attr.as_mut_ptr(), kind)))
                .and_then(|()| check(libc::pthread_mutex_init(self.inner.get(), attr.as_ptr())));
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            result
        }
    }

    /// Blocks until the calling thread holds the mutex.
    ///
    /// Errors carry the errno: `EDEADLK` (an error-checking mutex already held by this
    /// thread), `EAGAIN` (recursion count overflow), `ENOTRECOVERABLE` (a previous owner
    /// died and the thread that inherited it unlocked without
    /// [`make_consistent`](RobustMutex::make_consistent)), `EINVAL` (not initialised).
    #[inline]
    pub fn lock(&self) -> io::Result<Locked> {
        // SAFETY: the pointer is to a pthread_mutex_t inside `self`, valid while `self` is.
        Self::outcome(unsafe { libc::pthread_mutex_lock(self.inner.get()) })
    }

    /// Takes the mutex if that can be done without blocking; `Ok(None)` if another
    /// thread holds it. Errors as for [`lock`](RobustMutex::lock).
    #[inline]
    pub fn try_lock(&self) -> io::Result<Option<Locked>> {
        // SAFETY: as in `lock`.
        match unsafe { libc::pthread_mutex_trylock(self.inner.get()) } {
            libc::EBUSY => Ok(None),
            code => Self::outcome(code).map(Some),
        }
    }

    /// Like [`lock`](RobustMutex::lock), but gives up at `deadline` with `Ok(None)`.
    /// The deadline is measured on the monotonic clock, so changing the wall clock does
    /// not stretch or cut the wait.
    pub fn lock_until(&self, deadline: Instant) -> io::Result<Option<Locked>> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        #[cfg(target_env = "gnu")]
        let clock = libc::CLOCK_MONOTONIC;
        #[cfg(not(target_env = "gnu"))]
        let clock = libc::CLOCK_REALTIME;
        // SAFETY: `now` is a valid out-pointer for clock_gettime.
        if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut nsec = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
        let mut sec = (now.tv_sec as u64).saturating_add(left.as_secs());
        if nsec >= 1_000_000_000 {
            nsec -= 1_000_000_000;
            sec = sec.saturating_add(1);
        }
        let abs =
            libc::timespec { tv_sec: sec.min(libc::time_t::MAX as u64) as libc::time_t, tv_nsec: nsec as libc::c_long };
        // SAFETY: the mutex pointer is valid (as in `lock`); `abs` lives on our stack for
        // the duration of the call.
        #[cfg(target_env = "gnu")]
        let code = unsafe { pthread_mutex_clocklock(self.inner.get(), clock, &abs) };
        // SAFETY: as above.
        #[cfg(not(target_env = "gnu"))]
        let code = unsafe { libc::pthread_mutex_timedlock(self.inner.get(), &abs) };
        match code {
            libc::ETIMEDOUT => Ok(None),
            code => Self::outcome(code).map(Some),
        }
    }

    /// Marks the protected state consistent again after [`Locked::OwnerDied`], so that
    /// unlocking leaves a usable mutex. Only the owning thread may call it (`EINVAL`
    /// otherwise, or if the mutex was not inherited from a dead owner).
    pub fn make_consistent(&self) -> io::Result<()> {
        // SAFETY: as in `lock`.
        check(unsafe { libc::pthread_mutex_consistent(self.inner.get()) })
    }

    /// Releases the mutex (one level of a recursive one). Fails with `EPERM`, changing
    /// nothing, if the calling thread does not hold it.
    #[inline]
    pub fn unlock(&self) -> io::Result<()> {
        // SAFETY: as in `lock`. glibc checks ownership of robust mutexes before touching
        // anything, so a call from a non-owner is harmless.
        check(unsafe { libc::pthread_mutex_unlock(self.inner.get()) })
    }

    /// Whether some thread (in any process) holds the mutex right now. A hint for
    /// spinning: by the time the caller looks at the answer it may have changed.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.owner_tid() != 0
    }

    /// Whether a thread of *this* process holds the mutex, in which case the memory it
    /// lives in must not be unmapped (glibc links it into that thread's robust list).
    /// Costs a system call when the mutex is held.
    pub fn held_by_this_process(&self) -> bool {
        let tid = self.owner_tid();
        if tid == 0 {
            return false;
        }
        // SAFETY: tgkill with signal 0 only checks that thread `tid` exists in our own
        // thread group; it sends nothing.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::pid_t, 0) == 0 }
    }

    /// The owner's thread id from the lock word, 0 when free. On glibc the word is the
    /// first field of `pthread_mutex_t` on every Linux architecture (it is part of the
    /// ABI: static initialisers depend on it); elsewhere we do not know, and say 0
    /// ("maybe free"), which only makes spinners try the lock.
    #[inline]
    fn owner_tid(&self) -> u32 {
        #[cfg(target_env = "gnu")]
        {
            // SAFETY: the lock word is a 4-byte aligned int at offset 0 of the mutex,
            // which glibc only ever changes with atomic instructions; reading it through
            // an atomic is therefore not a data race.
            let word = unsafe { &*(self.inner.get() as *const AtomicU32) };
            word.load(Ordering::Relaxed) & FUTEX_TID_MASK
        }
        #[cfg(not(target_env = "gnu"))]
        {
            0
        }
    }

    #[inline]
    fn outcome(code: libc::c_int) -> io::Result<Locked> {
        match code {
            0 => Ok(Locked::Normal),
            libc::EOWNERDEAD => Ok(Locked::OwnerDied),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

thread_local! {
    // The thread id for which `check_current_thread` last succeeded (0 = never).
    static CHECKED_TID: Cell<i32> = const { Cell::new(0) };
}

/// Checks that robust mutexes can work on the calling thread: glibc's cached thread id
/// is the real one and a robust list is registered with the kernel.
///
/// Both hold in any thread made by `pthread_create`, `fork` or `exec`. They can fail in
/// a process made by a raw `clone` system call that did not repair them (see
/// [`crate::proc::fork_sibling`], which does); without them a lock would record the
/// wrong owner and the kernel would not report the owner's death. The result is cached
/// per thread, so calling it often is cheap (one `gettid`).
pub fn check_current_thread() -> io::Result<()> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    if CHECKED_TID.with(Cell::get) == tid {
        return Ok(());
    }
    let mut head: *mut libc::c_void = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: get_robust_list(0, ...) reads the calling thread's registration into the
    // two valid out-pointers.
    let r = unsafe { libc::syscall(libc::SYS_get_robust_list, 0, &mut head, &mut len) };
    if r != 0 || head.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this thread has no robust-futex list registered with the kernel (was the process \
             made by a raw clone()?), so the death of a lock holder could not be detected",
        ));
    }
    // Ask glibc which id it writes into lock words: lock a private robust mutex.
    let probe = Box::new(RobustMutex { inner: UnsafeCell::new(zeroed_mutex()) });
    // SAFETY: `probe` is ours alone and not held.
    unsafe { probe.init(MutexKind::ErrorCheck)? };
    probe.lock()?;
    let cached = probe.owner_tid();
    probe.unlock()?;
    // SAFETY: the probe is initialised and unlocked, and nobody else can see it.
    unsafe { libc::pthread_mutex_destroy(probe.inner.get()) };
    #[cfg(target_env = "gnu")]
    if cached != tid as u32 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "glibc believes this thread's id is {cached} but it is {tid} (the process was \
                 made by a raw clone() that did not update glibc), so locks would record the \
                 wrong owner"
            ),
        ));
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = cached;
    CHECKED_TID.with(|c| c.set(tid));
    Ok(())
}

fn zeroed_mutex() -> libc::pthread_mutex_t {
    // SAFETY: pthread_mutex_t is a plain C union of integers and bytes, for which all-zero
    // is a valid value (glibc's PTHREAD_MUTEX_INITIALIZER is all zero).
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::{Forked, exit_now, fork};
    use crate::shm::Segment;
    use std::time::Duration;

    fn shared_mutex(kind: MutexKind) -> (Segment, &'static RobustMutex) {
        let seg = Segment::create("robust-test", std::mem::size_of::<RobustMutex>()).unwrap();
        // SAFETY: the mapping is page aligned, large enough, zero-filled, and outlives the
        // reference in these tests (the segment is leaked below).
        let m = unsafe { &*(seg.as_ptr() as *const RobustMutex) };
        // SAFETY: fresh segment, nobody else uses it yet.
        unsafe { m.init(kind).unwrap() };
        (seg, m)
    }

    #[test]
    fn lock_unlock_and_errors() {
        check_current_thread().unwrap();
        let (seg, m) = shared_mutex(MutexKind::ErrorCheck);
        assert_eq!(m.lock().unwrap(), Locked::Normal);
        assert!(m.is_locked());
        assert!(m.held_by_this_process());
        assert_eq!(m.lock().unwrap_err().raw_os_error(), Some(libc::EDEADLK));
        assert_eq!(m.try_lock().unwrap_err().raw_os_error(), Some(libc::EDEADLK));
        m.unlock().unwrap();
        assert_eq!(m.unlock().unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert!(!m.is_locked());
        assert_eq!(m.lock_until(Instant::now() + Duration::from_millis(1)).unwrap(), Some(Locked::Normal));
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(m.try_lock().unwrap(), None);
                assert_eq!(m.lock_until(Instant::now() + Duration::from_millis(20)).unwrap(), None);
                assert_eq!(m.unlock().unwrap_err().raw_os_error(), Some(libc::EPERM));
            });
        });
        m.unlock().unwrap();
        drop(seg);
    }

    #[test]
    fn recursive() {
        let (_seg, m) = shared_mutex(MutexKind::Recursive);
        m.lock().unwrap();
        m.lock().unwrap();
        assert_eq!(m.try_lock().unwrap(), Some(Locked::Normal));
        m.unlock().unwrap();
        m.unlock().unwrap();
        assert!(m.is_locked());
        m.unlock().unwrap();
        assert!(!m.is_locked());
        assert!(m.unlock().is_err());
    }

    #[test]
    fn owner_death_is_reported() {
        let (_seg, m) = shared_mutex(MutexKind::ErrorCheck);
        // SAFETY: the child only locks and exits without unlocking.
        match unsafe { fork() }.unwrap() {
            Forked::Child => {
                let ok = m.lock().is_ok();
                exit_now(if ok { 0 } else { 1 })
            }
            Forked::Parent(pid) => {
                let st = crate::proc::PidFd::open(pid).unwrap().wait().unwrap();
                assert_eq!(st, crate::proc::ExitStatus::Exited(0));
            }
        }
        assert_eq!(m.lock().unwrap(), Locked::OwnerDied);
        m.make_consistent().unwrap();
        m.unlock().unwrap();
        assert_eq!(m.lock().unwrap(), Locked::Normal);
        m.unlock().unwrap();
    }
}
