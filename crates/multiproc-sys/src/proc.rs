//! Creating, watching and ending processes: `fork`, `clone(CLONE_PARENT)`, `exec` of the
//! current binary, pidfd, `waitid`, and `PR_SET_PDEATHSIG`.
//!
//! A child is watched through a *pidfd* ([`PidFd`]): a descriptor that becomes readable
//! when the child exits, can be polled beside sockets, signals exactly that process even
//! after its pid has been reused, and reaps it with `waitid(P_PIDFD)`.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

pub use nix::unistd::Pid;

use crate::cvt;

/// Which side of a fork the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(Pid),
    /// In the new child.
    Child,
}

/// Forks the calling process.
///
/// # Safety
/// In a process with several threads, the child has a copy of only the calling thread;
/// locks held by other threads stay locked forever in the child. Until it calls `exec` or
/// exits, the child must only do things that cannot depend on such a lock (Python's
/// "fork is unsafe with threads" rule). The caller promises it does.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the post-fork contract documented above.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(Pid::from_raw(p))),
    }
}

/// Forks the calling process, but makes the new process a child of the caller's
/// *parent* (`clone(CLONE_PARENT)`), as a fork server does so that the process that asked
/// for the child can reap and signal it like any child of its own.
///
/// # Safety
/// As for [`fork`]. Additionally, `pthread_atfork` handlers do not run, so the caller must
/// be single-threaded (a fork server is).
pub unsafe fn fork_sibling() -> io::Result<Forked> {
    // A raw clone bypasses glibc's fork, which repairs two things in a child: glibc's
    // cached thread id (written into every pthread mutex the thread locks) and the
    // thread's robust-futex list, which the kernel does not copy. Without them a robust
    // mutex locked by the child would record the server's id and the child's death would
    // never be reported (see `crate::robust`). Repair both as glibc does: have the kernel
    // write the child's id into glibc's slot (the address glibc gave set_tid_address,
    // read back with PR_GET_TID_ADDRESS), and register the same, empty, list head again
    // in the child (the server holds no robust mutexes, so its list is empty).
    let mut tid_slot: *mut libc::c_int = std::ptr::null_mut();
    // SAFETY: PR_GET_TID_ADDRESS stores one pointer into the valid out-pointer.
    let have_slot = unsafe { libc::prctl(libc::PR_GET_TID_ADDRESS, &mut tid_slot as *mut *mut libc::c_int) } == 0
        && !tid_slot.is_null();
    let mut head: *mut libc::c_void = std::ptr::null_mut();
    let mut head_len: libc::size_t = 0;
    // SAFETY: get_robust_list(0, ...) writes the calling thread's registration into the
    // two valid out-pointers.
    let have_list =
        unsafe { libc::syscall(libc::SYS_get_robust_list, 0, &mut head, &mut head_len) } == 0 && !head.is_null();
    let mut flags = libc::CLONE_PARENT | libc::SIGCHLD;
    if have_slot {
        flags |= libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID;
    }
    // clone's 4th and 5th arguments are (child_tid, tls) on x86-64 and (tls, child_tid)
    // on most other architectures; tls is ignored without CLONE_SETTLS, so the slot is
    // passed in both places.
    // SAFETY: clone without CLONE_VM and with a null stack behaves like fork: the child
    // continues on a copy of the caller's stack. The caller is single-threaded (contract).
    // The tid slot, if any, is glibc's own field in this thread's control block, which
    // the child's copy of the address space has at the same address.
    let pid = unsafe {
        libc::syscall(libc::SYS_clone, flags as libc::c_ulong, 0usize, 0usize, tid_slot as usize, tid_slot as usize)
    };
    match cvt(pid)? {
        0 => {
            if have_list {
                // SAFETY: the head is glibc's list head for this (copied) thread, valid in
                // the child's address space; registering it is what glibc's fork does.
                unsafe { libc::syscall(libc::SYS_set_robust_list, head, head_len) };
            }
            Ok(Forked::Child)
        }
        p => Ok(Forked::Parent(Pid::from_raw(p as i32))),
    }
}

/// Ends the process at once with `code`, without running destructors or `atexit`
/// handlers (`_exit`), as a forked child must so as not to flush or tear down its copy
/// of the parent's state.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Asks the kernel to send `signal` to this process when the thread that created it
/// exits (`PR_SET_PDEATHSIG`); `None` clears it.
pub fn set_parent_death_signal(signal: Option<i32>) -> io::Result<()> {
    let sig = signal.unwrap_or(0) as libc::c_ulong;
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a plain integer argument.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

/// This process's pid.
pub fn current_pid() -> Pid {
    nix::unistd::getpid()
}

/// The parent's pid (1 or a subreaper's pid once the parent has died).
pub fn parent_pid() -> Pid {
    nix::unistd::getppid()
}

/// How many threads this process has (from `/proc/self/task`).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(1)
}

/// Removes an environment variable (used by a spawned child to consume the variable that
/// told it its role, so that programs it starts do not see it).
///
/// # Safety
/// No other thread may read or write the environment during the call (Rust 2024's
/// `std::env::remove_var` contract). A child calls it while starting up, before it runs
/// any user code.
pub unsafe fn remove_env(name: &str) {
    // SAFETY: forwarded from the caller.
    unsafe { std::env::remove_var(name) }
}

/// Flags a descriptor to survive `exec` (clears `O_CLOEXEC`). Only for descriptors that a
/// child is meant to inherit.
pub fn inherit_across_exec(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).map_err(crate::io_err)?;
    Ok(())
}

/// A ready-to-run `fork` + `exec` of the current binary (`/proc/self/exe`), prepared
/// in advance so that the child does nothing between `fork` and `exec` but
/// async-signal-safe system calls. That makes it safe from any thread of a
/// multi-threaded parent, whatever locks other threads hold.
#[derive(Debug)]
pub struct SpawnCommand {
    // The CStrings own the bytes the pointer arrays point into.
    _args: Vec<CString>,
    _env: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    keep_fd: RawFd,
    death_signal: libc::c_int,
}

// SAFETY: the raw pointers only point into the CStrings owned by the same value.
unsafe impl Send for SpawnCommand {}

impl SpawnCommand {
    /// Prepares an exec of this binary with the process's current arguments and
    /// environment plus `extra_env`, handing `keep_fd` to the child under the same
    /// number and, with `death_signal`, arming `PR_SET_PDEATHSIG` in the child.
    pub fn current_exe(
        extra_env: &[(&str, String)],
        remove_env: &[&str],
        keep_fd: BorrowedFd<'_>,
        death_signal: Option<i32>,
    ) -> io::Result<SpawnCommand> {
        let to_c = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
        };
        let mut args = Vec::new();
        for a in std::env::args_os().take(1) {
            args.push(to_c(&a)?);
        }
        if args.is_empty() {
            args.push(CString::from(c"multiproc-child"));
        }
        let mut env = Vec::new();
        for (k, v) in std::env::vars_os() {
            if remove_env.iter().any(|r| OsStr::new(r) == k) || extra_env.iter().any(|(r, _)| OsStr::new(r) == k) {
                continue;
            }
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            env.push(to_c(&kv)?);
        }
        for (k, v) in extra_env {
            env.push(to_c(OsStr::new(&format!("{k}={v}")))?);
        }
        let argv = args.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let envp = env.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        Ok(SpawnCommand {
            _args: args,
            _env: env,
            argv,
            envp,
            keep_fd: keep_fd.as_raw_fd(),
            death_signal: death_signal.unwrap_or(0),
        })
    }

    /// Forks and execs. Returns the child's pid; exec failures make the child exit
    /// with status 127.
    pub fn spawn(&self) -> io::Result<Pid> {
        let parent = current_pid().as_raw();
        // SAFETY: between fork and exec the child below only calls fcntl, prctl, getppid,
        // execve and _exit, all async-signal-safe, on data prepared before the fork.
        match unsafe { fork()? } {
            Forked::Parent(pid) => Ok(pid),
            Forked::Child => {
                // SAFETY: see above; all arguments are plain integers or pointers into
                // memory that the fork copied and nobody frees before exec.
                unsafe {
                    // Like Python's spawn, hand the child nothing but the standard streams
                    // and its control descriptor: anything this process inherited without
                    // close-on-exec stops here.
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
                    libc::fcntl(self.keep_fd, libc::F_SETFD, 0);
                    if self.death_signal != 0 {
                        libc::prctl(libc::PR_SET_PDEATHSIG, self.death_signal as libc::c_ulong, 0, 0, 0);
                        if libc::getppid() != parent {
                            libc::_exit(1);
                        }
                    }
                    libc::execve(c"/proc/self/exe".as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
                    libc::_exit(127)
                }
            }
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// Python's `exitcode`: the exit code, or `-N` for death by signal `N`.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => -s,
        }
    }
}

/// A process descriptor for a child: poll it, signal it, reap it.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: Pid,
}

impl PidFd {
    /// Opens a pidfd for `pid`. Race-free for our own unreaped children (their pid cannot
    /// be reused before we reap them).
    pub fn open(pid: Pid) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
        let r = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })?;
        // SAFETY: the kernel returned a fresh descriptor (pidfds are always O_CLOEXEC).
        let fd = unsafe { OwnedFd::from_raw_fd(r as RawFd) };
        Ok(PidFd { fd, pid })
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `signal`. `Ok(false)` if the process has already exited.
    pub fn send_signal(&self, signal: i32) -> io::Result<bool> {
        // SAFETY: pidfd_send_signal with a null siginfo and no flags.
        let r = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.fd.as_raw_fd(), signal, std::ptr::null::<u8>(), 0)
        };
        match cvt(r) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reaps the child if it has exited; `Ok(None)` if it is still running.
    /// Only the parent may call this, and only once it returned `Some`.
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        self.waitid(libc::WEXITED | libc::WNOHANG)
    }

    /// Whether the process has exited, without reaping it.
    pub fn has_exited(&self) -> io::Result<bool> {
        crate::poll::readable(&[self.fd.as_fd()], Some(Duration::ZERO)).map(|r| !r.is_empty())
    }

    /// Blocks until the child exits, then reaps it.
    pub fn wait(&self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.waitid(libc::WEXITED)? {
                return Ok(s);
            }
        }
    }

    /// Waits at most `timeout` for the child to exit, reaping it if it did.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            crate::poll::readable(&[self.fd.as_fd()], Some(left))?;
        }
    }

    fn waitid(&self, options: libc::c_int) -> io::Result<Option<ExitStatus>> {
        // SAFETY: an all-zero siginfo_t is a valid value of this plain C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `info` is a valid out-pointer; P_PIDFD takes our descriptor as id.
            let r = unsafe { libc::waitid(libc::P_PIDFD, self.fd.as_raw_fd() as libc::id_t, &mut info, options) };
            if r == -1 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            break;
        }
        // SAFETY: waitid filled `info` for a child state change (or left si_pid 0).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        Ok(Some(match info.si_code {
            libc::CLD_EXITED => ExitStatus::Exited(status),
            _ => ExitStatus::Signaled(status),
        }))
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(f: impl FnOnce() -> i32) -> PidFd {
        // SAFETY: the test child only computes and calls _exit.
        match unsafe { fork() }.unwrap() {
            Forked::Child => exit_now(f()),
            Forked::Parent(pid) => PidFd::open(pid).unwrap(),
        }
    }

    #[test]
    fn exit_codes_and_signals() {
        let p = child(|| 7);
        assert_eq!(p.wait().unwrap(), ExitStatus::Exited(7));
        let p = child(|| {
            std::thread::sleep(Duration::from_secs(30));
            0
        });
        assert_eq!(p.wait_timeout(Duration::from_millis(20)).unwrap(), None);
        assert!(p.send_signal(libc::SIGKILL).unwrap());
        let st = p.wait().unwrap();
        assert_eq!(st, ExitStatus::Signaled(libc::SIGKILL));
        assert_eq!(st.code(), -9);
        assert!(!p.send_signal(libc::SIGTERM).unwrap_or(false));
    }
}
