//! A program that never called `init()` (this file has no `test_init!`): fork works,
//! spawn and forkserver refuse to start with an error that says how to fix it.

#[path = "support/watchdog.rs"]
pub mod watchdog;

use multiproc_process::{Process, StartError, StartMethod, active_children, current_process, fork_server_pid};
use watchdog::{THREAD_SAFE_METHODS, started, watchdog};

fn add_one(x: u32) -> u32 {
    x + 1
}

fn whoami(_: ()) -> (String, Option<StartMethod>) {
    let me = current_process();
    (me.name, me.started_by)
}

#[test]
fn fork_works_without_init() {
    watchdog("fork_works_without_init", || {
        let mut p = started(Process::new(add_one, 41).with_start_method(StartMethod::Fork));
        assert_eq!(p.join().unwrap(), 42);
        assert_eq!(p.exitcode(), Some(0));
        let mut p = started(Process::new(whoami, ()).with_start_method(StartMethod::Fork).with_name("forked"));
        assert_eq!(p.join().unwrap(), ("forked".to_owned(), Some(StartMethod::Fork)));
    });
}

fn check_not_initialized(p: &mut Process<u32>, method: StartMethod) {
    match p.start() {
        Err(StartError::NotInitialized(m)) => assert_eq!(m, method),
        other => panic!("[{method}] expected NotInitialized, got {other:?}"),
    }
    assert_eq!(p.pid(), None, "[{method}] a process was created");
    assert!(!p.is_alive(), "[{method}]");
}

#[test]
fn spawn_and_forkserver_name_the_fix() {
    assert_eq!(fork_server_pid(), None, "no init, no fork server");
    for m in THREAD_SAFE_METHODS {
        let mut p = Process::new(add_one, 1).with_start_method(m);
        check_not_initialized(&mut p, m);
        let msg = p.start().unwrap_err().to_string();
        assert!(msg.contains("multiproc::init()"), "[{m}] the error does not name the fix: {msg}");
        assert!(msg.contains("test_init!"), "[{m}] the error does not name the test fix: {msg}");
        assert!(msg.contains(m.name()), "[{m}] the error does not name the method: {msg}");
        assert!(msg.contains("fork start method works"), "[{m}] {msg}");
    }
    // The default method is forkserver, so a plain Process::new fails the same way.
    let mut p = Process::new(add_one, 1);
    check_not_initialized(&mut p, StartMethod::ForkServer);
    assert!(active_children().is_empty() || active_children().iter().all(|c| c.name != p.name()));
}

/// A fork child of a program without init cannot use spawn or forkserver either.
fn try_spawn(m: StartMethod) -> String {
    match Process::new(add_one, 1).with_start_method(m).start() {
        Err(e) => e.to_string(),
        Ok(()) => "started".to_owned(),
    }
}

#[test]
fn fork_child_of_uninitialised_program() {
    watchdog("fork_child_of_uninitialised_program", || {
        for m in THREAD_SAFE_METHODS {
            let mut p = started(Process::new(try_spawn, m).with_start_method(StartMethod::Fork));
            let msg = p.join().unwrap();
            assert!(msg.contains("multiproc::init()"), "[fork -> {m}] {msg}");
        }
    });
}
