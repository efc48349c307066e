//! Nothing leaks: a thousand processes started and joined one after another (and dozens
//! dropped without a join) leave no zombie and no extra descriptor in the parent, and a
//! child starts with no descriptor it was not meant to get.
//!
//! These tests compare process-wide state (open descriptors, zombies), so they take one
//! lock and run one at a time.

multiproc_process::test_init!();

#[path = "support/procfs.rs"]
pub mod procfs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use multiproc_codec::Fd;
use multiproc_process::{Process, StartMethod, active_children};
use procfs::{describe_fds, open_fds, our_zombies};
use watchdog::{METHODS, THREAD_SAFE_METHODS, started, watchdog, watchdog_for};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn add_one(x: u32) -> u32 {
    x + 1
}

/// Measured on the two-core test machine, debug build: about 0.4 ms per process for
/// fork and forkserver and 1.3 ms for spawn, so all three run the full thousand.
const SEQUENTIAL: u32 = 1000;

#[test]
fn thousand_sequential_processes_leave_no_zombie_and_no_descriptor() {
    let _serial = serial();
    // A hang detector only: the whole test normally takes a few seconds.
    watchdog_for("thousand_sequential_processes", Duration::from_secs(600), || {
        for m in METHODS {
            // The first process may set things up for good (thread-locals, the codec).
            let mut warm = Process::new(add_one, 0).with_start_method(m);
            warm.start().unwrap();
            assert_eq!(warm.join().unwrap(), 1);
            drop(warm);
            let fds_before = open_fds();
            assert_eq!(our_zombies(), Vec::<u32>::new(), "[{m}] zombies before the run");
            for i in 0..SEQUENTIAL {
                let mut p = Process::new(add_one, i).with_start_method(m);
                p.start().unwrap_or_else(|e| panic!("[{m}] start #{i}: {e}"));
                assert_eq!(p.join().unwrap_or_else(|e| panic!("[{m}] join #{i}: {e}")), i + 1, "[{m}] #{i}");
            }
            let fds_after = open_fds();
            assert_eq!(
                fds_after,
                fds_before,
                "[{m}] descriptors differ after {SEQUENTIAL} processes:\nbefore {:?}\nafter  {:?}",
                describe_fds(&fds_before),
                describe_fds(&fds_after)
            );
            assert_eq!(our_zombies(), Vec::<u32>::new(), "[{m}] zombies after {SEQUENTIAL} processes");
        }
    });
}

#[test]
fn joined_and_dropped_processes_release_their_descriptors() {
    let _serial = serial();
    watchdog("joined_and_dropped_processes_release_their_descriptors", || {
        for m in METHODS {
            // Nothing else starts a process in between: the descriptors must be closed
            // when the handles go, not at some later start() or active_children().
            let before = open_fds();
            let mut ps: Vec<_> = (0..20).map(|i| Process::new(add_one, i).with_start_method(m)).collect();
            for p in &mut ps {
                p.start().unwrap();
            }
            for (i, p) in ps.iter_mut().enumerate() {
                assert_eq!(p.join().unwrap(), i as u32 + 1, "[{m}]");
            }
            drop(ps);
            let after = open_fds();
            assert_eq!(
                after,
                before,
                "[{m}] descriptors still open after 20 processes were joined and dropped:\nbefore {:?}\nafter  {:?}",
                describe_fds(&before),
                describe_fds(&after)
            );
        }
    });
}

#[test]
fn dropped_processes_leave_no_zombie_and_no_descriptor() {
    let _serial = serial();
    watchdog("dropped_processes_leave_no_zombie_and_no_descriptor", || {
        for m in METHODS {
            let fds_before = open_fds();
            let mut pids = Vec::new();
            for i in 0..50 {
                let mut p = Process::new(add_one, i).with_start_method(m);
                p.start().unwrap();
                pids.push(p.pid().unwrap());
                // Dropped unjoined, running or not.
            }
            // Wait until every one has ended (a zombie of ours, or reaped by a later start).
            let me = std::process::id();
            let ended = |pid: &u32| procfs::stat(*pid).is_none_or(|(s, ppid)| s == 'Z' && ppid == me);
            assert!(
                procfs::eventually(Duration::from_secs(30), || pids.iter().all(ended)),
                "[{m}] children never ended"
            );
            assert!(active_children().iter().all(|c| !pids.contains(&c.pid)), "[{m}] ended children listed");
            assert_eq!(our_zombies(), Vec::<u32>::new(), "[{m}] zombies left after active_children()");
            let fds_after = open_fds();
            assert_eq!(
                fds_after,
                fds_before,
                "[{m}] descriptors differ after 50 dropped processes:\nbefore {:?}\nafter  {:?}",
                describe_fds(&fds_before),
                describe_fds(&fds_after)
            );
        }
    });
}

/// Bytes serialized in one piece (a plain `Vec<u8>` goes through serde byte by byte).
struct Blob(Vec<u8>);

impl serde::Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        serde::Deserialize::deserialize(d).map(|v: Vec<u8>| Blob(v))
    }
}

fn big_result(n: usize) -> Blob {
    Blob(vec![1; n])
}

#[test]
fn dropped_process_with_a_large_result_still_ends() {
    let _serial = serial();
    watchdog("dropped_process_with_a_large_result_still_ends", || {
        for m in METHODS {
            let fds_before = open_fds();
            let mut p = Process::new(big_result, 2 << 20).with_start_method(m);
            p.start().unwrap();
            let pid = p.pid().unwrap();
            // Nobody will read its 2 MiB: dropping the handle closes our end of the
            // channel, so the child's write fails and it exits instead of blocking.
            drop(p);
            let me = std::process::id();
            let ended = procfs::eventually(Duration::from_secs(30), || {
                procfs::stat(pid).is_none_or(|(s, ppid)| s == 'Z' && ppid == me)
            });
            assert!(ended, "[{m}] child {pid} blocked after its Process was dropped: {:?}", procfs::stat(pid));
            assert!(active_children().iter().all(|c| c.pid != pid), "[{m}]");
            assert_eq!(procfs::stat(pid), None, "[{m}] not reaped");
            assert_eq!(open_fds(), fds_before, "[{m}] descriptors left behind");
        }
    });
}

/// What a process has open: `(number, what it points at)`.
type FdList = Vec<(i32, String)>;

fn my_fds(_: ()) -> FdList {
    let fds = multiproc_sys::fd::open_fds().unwrap_or_default();
    fds.into_iter()
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|p| p.display().to_string());
            (fd, target.unwrap_or_default())
        })
        .collect()
}

fn fds_with(held: Fd) -> FdList {
    let list = my_fds(());
    drop(held);
    list
}

/// Descriptors this test binary itself inherited without `O_CLOEXEC` from whatever
/// started it (a jobserver pipe, a harness's spare descriptors): they pass through every
/// exec and fork under the same numbers, so a child has them too through no fault of
/// ours. Python's spawn closes them; we do not (see the report on issue 3).
fn inherited_from_our_parent() -> Vec<i32> {
    open_fds().into_iter().filter(|&fd| fd > 2 && !multiproc_sys::fd::is_cloexec(borrow(fd)).unwrap_or(true)).collect()
}

fn borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used on descriptors just listed as open, for an fcntl query, while
    // this test holds the lock that keeps other tests of this binary from closing any.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Checks that a child has only the standard streams, what our own parent gave us, one
/// control socket and, if it was handed one, one pipe.
fn child_fds_problem(list: &FdList, passed_pipe: bool) -> Option<String> {
    let env = inherited_from_our_parent();
    let extra: Vec<_> = list.iter().filter(|(fd, _)| *fd > 2 && !env.contains(fd)).collect();
    let sockets = extra.iter().filter(|(_, t)| t.starts_with("socket:")).count();
    let pipes = extra.iter().filter(|(_, t)| t.starts_with("pipe:")).count();
    let ok = sockets == 1 && pipes == usize::from(passed_pipe) && extra.len() == 1 + usize::from(passed_pipe);
    (!ok).then(|| {
        format!(
            "expected the control socket{} and nothing else, found {extra:?} (all: {list:?}; inherited by this test binary: {env:?})",
            if passed_pipe { " and one pipe" } else { "" }
        )
    })
}

fn check_child_fds(tag: &str, list: &FdList, passed_pipe: bool) {
    if let Some(problem) = child_fds_problem(list, passed_pipe) {
        panic!("{tag} {problem}");
    }
}

#[test]
fn children_get_only_their_own_descriptors() {
    let _serial = serial();
    watchdog("children_get_only_their_own_descriptors", || {
        // fork children inherit everything by design (as in Python); the other two get
        // the standard streams, their control socket and what they were handed.
        for m in THREAD_SAFE_METHODS {
            let mut p = started(Process::new(my_fds, ()).with_start_method(m));
            check_child_fds(&format!("[{m}]"), &p.join().unwrap(), false);
            let (_r, w) = procfs::pipe_fds();
            let mut p = started(Process::new(fds_with, w).with_start_method(m));
            check_child_fds(&format!("[{m}] handed a pipe"), &p.join().unwrap(), true);
        }
    });
}

/// Holds a pipe end (as a program holding some handle would), then starts a grandchild
/// with `inner` that reports what it has open.
fn grandchild_fds((inner, held): (StartMethod, Fd)) -> FdList {
    let mut p = Process::new(my_fds, ()).with_start_method(inner);
    p.start().expect("grandchild start");
    let list = p.join().expect("grandchild join");
    drop(held);
    list
}

fn grandchild_fd_problems(inners: &[StartMethod]) -> Vec<String> {
    let mut problems = Vec::new();
    for outer in METHODS {
        for &inner in inners {
            let (_r, w) = procfs::pipe_fds();
            let mut p = started(Process::new(grandchild_fds, (inner, w)).with_start_method(outer));
            let list = p.join().unwrap_or_else(|e| panic!("[{outer} -> {inner}] {e}"));
            if let Some(problem) = child_fds_problem(&list, false) {
                problems.push(format!("[{outer} -> {inner}] {problem}"));
            }
        }
    }
    problems
}

#[test]
fn spawned_grandchildren_get_only_their_own_descriptors() {
    let _serial = serial();
    watchdog("spawned_grandchildren_get_only_their_own_descriptors", || {
        let problems = grandchild_fd_problems(&[StartMethod::Spawn]);
        assert!(
            problems.is_empty(),
            "grandchildren with descriptors they were not meant to get:\n{}",
            problems.join("\n")
        );
    });
}

/// Known bug, reported on issue 3: a child process has no fork server of its own until
/// its first forkserver start, which forks one from the child as it is at that moment.
/// That server, and every grandchild it forks, holds a copy of every descriptor the
/// child had then: its control socket to us, handles it was given (the pipe here), its
/// other children's pidfds and sockets. Fixing it means starting such a server with an
/// exec (as Python does), not a fork.
#[test]
fn forkserver_grandchildren_get_only_their_own_descriptors() {
    let _serial = serial();
    watchdog("forkserver_grandchildren_get_only_their_own_descriptors", || {
        let problems = grandchild_fd_problems(&[StartMethod::ForkServer]);
        assert!(
            problems.is_empty(),
            "grandchildren with descriptors they were not meant to get:\n{}",
            problems.join("\n")
        );
    });
}

/// Starts a forkserver grandchild that waits for a word on `release` and returns its
/// pid, without joining it; drops `held` (its only copy of a pipe's write end) on return.
fn leave_grandchild_running((held, release): (Fd, Fd)) -> u32 {
    fn wait_word(rx: Fd) -> u32 {
        procfs::read_u32(&mut procfs::file(rx)).unwrap_or(0)
    }
    let mut p = Process::new(wait_word, release).with_start_method(StartMethod::ForkServer);
    p.start().expect("grandchild start");
    let pid = p.pid().expect("pid");
    drop(held);
    pid
}

/// What the descriptor leak above does to a program: a pipe whose only writer (a child)
/// exited never reports end of file while that child's forkserver grandchild runs, so
/// "the peer closed" is never seen. Known bug, see above.
#[test]
fn end_of_file_is_not_held_up_by_forkserver_grandchildren() {
    use std::io::Read;
    let _serial = serial();
    watchdog("end_of_file_is_not_held_up_by_forkserver_grandchildren", || {
        for outer in THREAD_SAFE_METHODS {
            let (mut r, w) = procfs::pipe();
            let (release_r, mut release_w) = procfs::pipe();
            let args = (Fd::new(w.into()), Fd::new(release_r.into()));
            let mut mid = started(Process::new(leave_grandchild_running, args).with_start_method(outer));
            let gpid = mid.join().unwrap_or_else(|e| panic!("[{outer}] {e}"));
            let grandchild = multiproc_sys::proc::PidFd::open(multiproc_sys::Pid::from_raw(gpid as i32)).ok();
            // The writer is gone; give the middle's own fork server time to die with it.
            let eof = procfs::eventually(Duration::from_secs(10), || {
                multiproc_sys::poll::readable(&[std::os::fd::AsFd::as_fd(&r)], Some(Duration::ZERO))
                    .is_ok_and(|ready| !ready.is_empty())
            });
            let still_running = grandchild.as_ref().is_some_and(|g| !g.has_exited().unwrap_or(true));
            procfs::write_u32(&mut release_w, 1);
            if let Some(g) = &grandchild {
                let _ = procfs::eventually(Duration::from_secs(10), || g.has_exited().unwrap_or(true));
            }
            assert!(eof, "[{outer} -> forkserver] no end of file while the grandchild runs (running: {still_running})");
            let mut rest = Vec::new();
            assert_eq!(r.read_to_end(&mut rest).unwrap(), 0, "[{outer}]");
        }
    });
}

#[test]
fn fork_server_is_a_live_child() {
    let _serial = serial();
    let pid = multiproc_process::fork_server_pid().expect("test_init! starts a fork server");
    let (state, ppid) = procfs::stat(pid).expect("fork server exists");
    assert_eq!(ppid, std::process::id(), "the fork server is our child");
    assert_ne!(state, 'Z', "the fork server is alive");
    // Not a child the user started.
    assert!(active_children().iter().all(|c| c.pid != pid));
    let _ = StartMethod::ForkServer;
}
