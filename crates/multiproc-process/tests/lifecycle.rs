//! A process's life from the parent's side: `is_alive`, `exitcode`, `join` and
//! `join_timeout`, `kill` / `terminate`, `close`, the sentinel, `active_children`, and
//! what happens to a `Process` dropped without a join.
//!
//! Children here wait on a pipe until the test releases them, so "running" is a fact,
//! not a guess about timing. They are released by writing a word, never by closing the
//! pipe: a fork child started by another test of this binary at the same moment holds
//! copies of all our descriptors, so an end of file could be delayed.

multiproc_process::test_init!();

#[path = "support/procfs.rs"]
pub mod procfs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::fs::File;
use std::time::{Duration, Instant};

use multiproc_codec::Fd;
use multiproc_process::{JoinError, Process, StartError, StartMethod, active_children};
use multiproc_sys::signal::{SIGKILL, SIGTERM};
use procfs::{pipe_fds, write_u32};
use watchdog::{METHODS, Reaped, started, watchdog};

/// Waits for the parent to send a word and returns it (or `u32::MAX` if the pipe closes).
fn wait_for_word(rx: Fd) -> u32 {
    procfs::read_u32(&mut procfs::file(rx)).unwrap_or(u32::MAX)
}

/// A child that blocks until released, with the write end that releases it.
fn blocked(method: StartMethod) -> (Reaped<u32>, File) {
    let (rx, tx) = pipe_fds();
    let p = started(Process::new(wait_for_word, rx).with_start_method(method));
    (p, procfs::file(tx))
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn is_alive_and_exitcode_transitions() {
    watchdog("is_alive_and_exitcode_transitions", || {
        for m in METHODS {
            let (rx, tx) = pipe_fds();
            let mut p = Reaped::new(Process::new(wait_for_word, rx).with_start_method(m));
            assert!(!p.is_alive(), "[{m}] alive before start");
            assert_eq!(p.exitcode(), None, "[{m}] exitcode before start");
            assert_eq!(p.pid(), None, "[{m}] pid before start");
            p.start().unwrap();
            assert!(p.pid().is_some(), "[{m}]");
            assert!(p.is_alive(), "[{m}] not alive while blocked");
            assert_eq!(p.exitcode(), None, "[{m}] exitcode while running");
            write_u32(&mut procfs::file(tx), 7);
            assert_eq!(p.join().unwrap(), 7, "[{m}]");
            assert!(!p.is_alive(), "[{m}] alive after join");
            assert_eq!(p.exitcode(), Some(0), "[{m}] exitcode after join");
        }
    });
}

#[test]
fn is_alive_polling_sees_the_end_without_join() {
    watchdog("is_alive_polling_sees_the_end_without_join", || {
        for m in METHODS {
            let (mut p, mut tx) = blocked(m);
            write_u32(&mut tx, 11);
            // Ends when the child does: is_alive reaps it. The watchdog catches a hang.
            while p.is_alive() {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(p.exitcode(), Some(0), "[{m}]");
            // The value sent before the exit is still there.
            assert_eq!(p.join().unwrap(), 11, "[{m}] join after is_alive turned false");
        }
    });
}

#[test]
fn join_timeout_on_a_running_child() {
    watchdog("join_timeout_on_a_running_child", || {
        for m in METHODS {
            // Release it afterwards: the value still comes back.
            let (mut p, mut tx) = blocked(m);
            let t0 = Instant::now();
            match p.join_timeout(Duration::from_millis(50)) {
                Err(JoinError::Timeout) => {}
                other => panic!("[{m}] expected Timeout, got {other:?}"),
            }
            assert!(t0.elapsed() >= Duration::from_millis(50), "[{m}] join_timeout returned early");
            assert!(p.is_alive(), "[{m}] a timed-out join must not stop the child");
            assert!(matches!(p.join_timeout(Duration::ZERO), Err(JoinError::Timeout)), "[{m}] zero timeout");
            let past = Instant::now() - Duration::from_millis(1);
            assert!(matches!(p.join_deadline(past), Err(JoinError::Timeout)), "[{m}] past deadline");
            write_u32(&mut tx, 5);
            assert_eq!(p.join().unwrap(), 5, "[{m}] join after a timeout");

            // Kill it afterwards.
            let (mut p, _tx) = blocked(m);
            assert!(matches!(p.join_timeout(Duration::from_millis(20)), Err(JoinError::Timeout)), "[{m}]");
            p.kill().unwrap();
            assert!(matches!(p.join(), Err(JoinError::Killed { signal: 9 })), "[{m}] join after kill");

            // A child that finishes within the timeout.
            let mut p = started(Process::new(sleep_ms, 10).with_start_method(m));
            assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), 10, "[{m}]");
        }
    });
}

#[test]
fn kill_and_terminate() {
    watchdog("kill_and_terminate", || {
        for m in METHODS {
            let (mut p, _tx) = blocked(m);
            p.kill().unwrap();
            match p.join() {
                Err(JoinError::Killed { signal }) => assert_eq!(signal, SIGKILL, "[{m}]"),
                other => panic!("[{m}] expected Killed by SIGKILL, got {other:?}"),
            }
            assert_eq!(p.exitcode(), Some(-9), "[{m}] exitcode after kill");
            assert!(!p.is_alive(), "[{m}]");
            // Signalling an ended (and reaped) process does nothing.
            p.kill().unwrap();
            p.terminate().unwrap();

            let (mut p, _tx) = blocked(m);
            p.terminate().unwrap();
            let err = p.join().unwrap_err();
            assert!(matches!(err, JoinError::Killed { signal: 15 }), "[{m}] got {err:?}");
            assert_eq!(err.to_string(), "process was killed by SIGTERM (15)", "[{m}]");
            assert_eq!(p.exitcode(), Some(-SIGTERM), "[{m}] exitcode after terminate");

            let (mut p, _tx) = blocked(m);
            p.signal(multiproc_sys::signal::SIGINT).unwrap();
            assert!(matches!(p.join(), Err(JoinError::Killed { signal: 2 })), "[{m}] SIGINT");
            assert_eq!(p.exitcode(), Some(-2), "[{m}]");
        }
    });
}

#[test]
fn signals_before_start_are_errors() {
    let p = Process::new(sleep_ms, 1).with_start_method(StartMethod::Fork);
    assert!(p.kill().is_err());
    assert!(p.terminate().is_err());
}

#[test]
fn join_twice_and_start_twice() {
    watchdog("join_twice_and_start_twice", || {
        for m in METHODS {
            let mut p = Reaped::new(Process::new(sleep_ms, 0).with_start_method(m));
            assert!(matches!(p.join(), Err(JoinError::NotStarted)), "[{m}] join before start");
            p.start().unwrap();
            assert!(matches!(p.start(), Err(StartError::AlreadyStarted)), "[{m}] start while running");
            assert_eq!(p.join().unwrap(), 0, "[{m}]");
            assert!(matches!(p.join(), Err(JoinError::AlreadyJoined)), "[{m}] second join");
            assert!(matches!(p.join_timeout(Duration::ZERO), Err(JoinError::AlreadyJoined)), "[{m}]");
            assert!(matches!(p.start(), Err(StartError::AlreadyStarted)), "[{m}] start after join");
            assert_eq!(p.exitcode(), Some(0), "[{m}] exitcode survives a second join");

            // The same after a failure: the error is reported once.
            let (mut p, _tx) = blocked(m);
            p.kill().unwrap();
            assert!(matches!(p.join(), Err(JoinError::Killed { .. })), "[{m}]");
            assert!(matches!(p.join(), Err(JoinError::AlreadyJoined)), "[{m}] second join after kill");
        }
    });
}

#[test]
fn close_running_and_finished() {
    watchdog("close_running_and_finished", || {
        for m in METHODS {
            let (p, mut tx) = blocked(m);
            let name = p.name().to_owned();
            // Take the process out of its guard; the CloseError hands it back.
            let p = p.into_inner();
            let err = match p.close() {
                Err(e) => e,
                Ok(()) => panic!("[{m}] close() succeeded on a running process"),
            };
            assert!(err.to_string().contains(&name), "[{m}] {err}");
            assert!(err.to_string().contains("still running"), "[{m}] {err}");
            let mut p = Reaped::new(*err.0);
            assert!(p.is_alive(), "[{m}] the process handed back still runs");
            write_u32(&mut tx, 3);
            assert_eq!(p.join().unwrap(), 3, "[{m}]");
            let p = p.into_inner();
            assert!(p.close().is_ok(), "[{m}] close after join");

            // Never started: nothing to close.
            let p = Process::new(sleep_ms, 0).with_start_method(m);
            assert!(p.close().is_ok(), "[{m}] close before start");
        }
    });
}

#[test]
fn sentinel_becomes_readable_when_the_child_ends() {
    watchdog("sentinel_becomes_readable_when_the_child_ends", || {
        for m in METHODS {
            let (mut p, mut tx) = blocked(m);
            let s = p.sentinel().expect("a started process has a sentinel");
            let ready = multiproc_sys::poll::readable(&[s], Some(Duration::ZERO)).unwrap();
            assert!(ready.is_empty(), "[{m}] sentinel readable while the child runs");
            write_u32(&mut tx, 1);
            let s = p.sentinel().unwrap();
            // Blocks until the child ends; the watchdog catches a sentinel that never fires.
            assert_eq!(multiproc_sys::poll::readable(&[s], None).unwrap(), vec![0], "[{m}]");
            assert_eq!(p.join().unwrap(), 1, "[{m}]");
        }
    });
}

#[test]
fn active_children_lists_running_not_joined() {
    watchdog("active_children_lists_running_not_joined", || {
        for m in METHODS {
            let mut kids: Vec<_> =
                (0..3).map(|i| blocked_named(m, &format!("kid-{m}-{i}"), i == 1)).collect::<Vec<_>>();
            let pids: Vec<u32> = kids.iter().map(|(p, _)| p.pid().unwrap()).collect();
            let listed = active_children();
            for (i, pid) in pids.iter().enumerate() {
                let c = listed.iter().find(|c| c.pid == *pid);
                let c = c.unwrap_or_else(|| panic!("[{m}] running child {pid} missing from {listed:?}"));
                assert_eq!(c.name, format!("kid-{m}-{i}"), "[{m}]");
                assert_eq!(c.daemon, i == 1, "[{m}] daemon flag");
            }
            // Join the first: it disappears from the list, the others stay.
            write_u32(&mut kids[0].1, 0);
            assert_eq!(kids[0].0.join().unwrap(), 0);
            let listed: Vec<u32> = active_children().iter().map(|c| c.pid).collect();
            assert!(!listed.contains(&pids[0]), "[{m}] joined child still listed");
            assert!(listed.contains(&pids[1]) && listed.contains(&pids[2]), "[{m}] {listed:?}");
            // Let the second end without joining it: it is not listed either.
            write_u32(&mut kids[1].1, 1);
            assert!(procfs::eventually(Duration::from_secs(30), || !active_children()
                .iter()
                .any(|c| c.pid == pids[1])));
            assert_eq!(kids[1].0.exitcode(), Some(0), "[{m}]");
            for (p, tx) in &mut kids {
                if p.is_alive() {
                    write_u32(tx, 9);
                }
            }
            for (p, _) in &mut kids {
                let _ = p.join();
            }
            let listed: Vec<u32> = active_children().iter().map(|c| c.pid).collect();
            assert!(pids.iter().all(|p| !listed.contains(p)), "[{m}] ended children listed: {listed:?}");
        }
    });
}

fn blocked_named(method: StartMethod, name: &str, daemon: bool) -> (Reaped<u32>, File) {
    let (rx, tx) = pipe_fds();
    let p = Process::new(wait_for_word, rx).with_start_method(method).with_name(name).with_daemon(daemon);
    (started(p), procfs::file(tx))
}

#[test]
fn dropped_unjoined_process_is_reaped() {
    watchdog("dropped_unjoined_process_is_reaped", || {
        for m in METHODS {
            let (p, mut tx) = blocked(m);
            let pid = p.pid().unwrap();
            // Dropping the handle does not stop the child.
            drop(p.into_inner());
            assert!(!procfs::is_dead(pid), "[{m}] dropping the Process killed the child");
            assert!(active_children().iter().any(|c| c.pid == pid), "[{m}] dropped child not listed while running");
            write_u32(&mut tx, 0);
            // It ends and waits for us as a zombie (unless another test's start() of
            // this binary reaps it first, as it should)...
            let ended = procfs::eventually(Duration::from_secs(30), || gone_or_zombie(pid));
            assert!(ended, "[{m}] child {pid} did not end: {:?}", procfs::stat(pid));
            // ...until active_children() reaps it.
            assert!(!active_children().iter().any(|c| c.pid == pid), "[{m}]");
            assert_eq!(procfs::stat(pid), None, "[{m}] dropped child {pid} still a zombie after active_children()");

            // Dropped after it ended: the next start reaps it.
            let (p, mut tx) = blocked(m);
            let pid = p.pid().unwrap();
            write_u32(&mut tx, 0);
            assert!(procfs::eventually(Duration::from_secs(30), || gone_or_zombie(pid)), "[{m}] child did not end");
            drop(p.into_inner());
            let mut next = started(Process::new(sleep_ms, 0).with_start_method(m));
            assert_eq!(procfs::stat(pid), None, "[{m}] start() did not reap the dropped child {pid}");
            next.join().unwrap();
        }
    });
}

/// Ended: a zombie of ours, or already reaped.
fn gone_or_zombie(pid: u32) -> bool {
    match procfs::stat(pid) {
        None => true,
        Some((state, ppid)) => state == 'Z' && ppid == std::process::id(),
    }
}
