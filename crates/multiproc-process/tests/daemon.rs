//! Daemon children die with their parent, even when the parent is SIGKILLed and gets no
//! chance to clean up; non-daemon children outlive it (as in Python).
//!
//! The parent here is itself a child of the test (the "middle" process): it starts a
//! grandchild, sends the grandchild's pid back over a pipe passed as an argument, and
//! waits to be killed. Every pair of start methods (middle, grandchild) is tried.

multiproc_process::test_init!();

#[path = "support/procfs.rs"]
pub mod procfs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::fs::File;
use std::time::Duration;

use multiproc_codec::Fd;
use multiproc_process::{JoinError, Process, StartMethod};
use multiproc_sys::Pid;
use multiproc_sys::proc::PidFd;
use watchdog::{METHODS, started, watchdog};

/// Long enough to be killed first; bounded so that a grandchild orphaned by a failed run
/// still goes away by itself.
const LINGER: Duration = Duration::from_secs(120);

fn linger(_: ()) -> u32 {
    std::thread::sleep(LINGER);
    0
}

/// How the middle process ends once it has reported its grandchild.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
enum Then {
    WaitToBeKilled,
    /// Return (without joining the grandchild) once the test sends a word on `go`.
    ReturnWhenTold,
}

fn middle((inner, daemon, then, report, go): (StartMethod, bool, Then, Fd, Fd)) -> u32 {
    let mut p = Process::new(linger, ()).with_daemon(daemon).with_start_method(inner);
    p.start().unwrap_or_else(|e| panic!("middle process cannot start its grandchild: {e}"));
    let pid = p.pid().expect("started");
    procfs::write_u32(&mut procfs::file(report), pid);
    match then {
        Then::WaitToBeKilled => {
            std::thread::sleep(LINGER);
            // Only reached if the test failed to kill us: do not leave the grandchild.
            let _ = p.kill();
            let _ = p.join();
        }
        Then::ReturnWhenTold => {
            procfs::read_u32(&mut procfs::file(go));
        }
    }
    pid
}

/// Watches a process that is not our child (the grandchild) through a pidfd opened
/// while it is known to be alive, so a recycled pid can never be mistaken for it; kills
/// it on drop if it is still running (a failed test leaves nothing behind).
struct Watched {
    pid: u32,
    fd: PidFd,
}

impl Watched {
    fn new(pid: u32) -> Watched {
        let fd = PidFd::open(Pid::from_raw(pid as i32)).unwrap_or_else(|e| panic!("pidfd_open({pid}): {e}"));
        Watched { pid, fd }
    }

    fn has_exited(&self) -> bool {
        self.fd.has_exited().unwrap_or(true)
    }

    /// Dead by every account: its pidfd fired and `/proc` shows it gone or a zombie.
    fn is_dead(&self) -> bool {
        self.has_exited() && procfs::is_dead(self.pid)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.has_exited() {
            let _ = self.fd.send_signal(multiproc_sys::signal::SIGKILL);
        }
    }
}

/// Starts a middle process that starts a grandchild; returns both, and the pipe end
/// that tells a `ReturnWhenTold` middle process to return.
fn family(outer: StartMethod, inner: StartMethod, daemon: bool, then: Then) -> (watchdog::Reaped<u32>, Watched, File) {
    let tag = format!("[{outer} -> {inner}, daemon={daemon}]");
    let (r, w) = procfs::pipe();
    let (go_r, go_w) = procfs::pipe();
    let args = (inner, daemon, then, Fd::new(w.into()), Fd::new(go_r.into()));
    let mut mid = started(Process::new(middle, args).with_start_method(outer));
    let mut r: File = r;
    let Some(gpid) = procfs::read_u32(&mut r) else {
        panic!("{tag} the middle process sent no pid; it ended with {:?}", mid.join());
    };
    let g = Watched::new(gpid);
    let mid_pid = mid.pid().unwrap();
    match procfs::stat(gpid) {
        Some((state, ppid)) => {
            assert_ne!(state, 'Z', "{tag} grandchild already dead");
            assert_eq!(ppid, mid_pid, "{tag} the grandchild's parent is the middle process");
        }
        None => panic!("{tag} grandchild {gpid} does not exist"),
    }
    (mid, g, go_w)
}

#[test]
fn daemon_grandchild_dies_with_sigkilled_parent() {
    watchdog("daemon_grandchild_dies_with_sigkilled_parent", || {
        for outer in METHODS {
            for inner in METHODS {
                let tag = format!("[{outer} -> {inner}]");
                let (mut mid, g, _) = family(outer, inner, true, Then::WaitToBeKilled);
                mid.kill().unwrap();
                assert!(matches!(mid.join(), Err(JoinError::Killed { signal: 9 })), "{tag} middle process");
                // The kernel delivers the death signal asynchronously: poll, bounded.
                let dead = procfs::eventually(Duration::from_secs(30), || g.is_dead());
                assert!(
                    dead,
                    "{tag} daemon grandchild {} still alive after its parent was SIGKILLed: {:?}",
                    g.pid,
                    procfs::stat(g.pid)
                );
            }
        }
    });
}

#[test]
fn daemon_grandchild_dies_when_parent_returns() {
    watchdog("daemon_grandchild_dies_when_parent_returns", || {
        for outer in METHODS {
            for inner in METHODS {
                let tag = format!("[{outer} -> {inner}]");
                let (mut mid, g, mut go) = family(outer, inner, true, Then::ReturnWhenTold);
                procfs::write_u32(&mut go, 1);
                assert_eq!(mid.join().unwrap(), g.pid, "{tag}");
                let dead = procfs::eventually(Duration::from_secs(30), || g.is_dead());
                assert!(dead, "{tag} daemon grandchild {} outlived its parent: {:?}", g.pid, procfs::stat(g.pid));
            }
        }
    });
}

#[test]
fn non_daemon_grandchild_outlives_sigkilled_parent() {
    watchdog("non_daemon_grandchild_outlives_sigkilled_parent", || {
        for outer in METHODS {
            for inner in METHODS {
                let tag = format!("[{outer} -> {inner}]");
                let (mut mid, g, _) = family(outer, inner, false, Then::WaitToBeKilled);
                mid.kill().unwrap();
                assert!(matches!(mid.join(), Err(JoinError::Killed { signal: 9 })), "{tag}");
                // Give a (wrongly armed) death signal time to arrive: this can only make
                // the test pass wrongly, never fail wrongly.
                std::thread::sleep(Duration::from_millis(50));
                assert!(!g.has_exited(), "{tag} a non-daemon grandchild died with its parent");
                let reparented = procfs::stat(g.pid).map(|s| s.1);
                assert_ne!(reparented, Some(mid.pid().unwrap()), "{tag} orphan not re-parented");
                // Ours to clean up now (Watched's drop would do it too).
                g.fd.send_signal(multiproc_sys::signal::SIGKILL).unwrap();
                assert!(procfs::eventually(Duration::from_secs(30), || g.is_dead()), "{tag} orphan survived SIGKILL");
            }
        }
    });
}
