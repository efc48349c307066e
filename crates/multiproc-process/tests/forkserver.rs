//! The fork server: it is a child of ours, and a killed server is reaped and replaced,
//! in a single-threaded child as in this multi-threaded test binary (the server is an
//! exec of the binary, so starting one is safe from any thread).
//!
//! Killing the binary's fork server changes what every later forkserver request does,
//! so this file holds a single test.

multiproc_process::test_init!();

#[path = "support/procfs.rs"]
pub mod procfs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::Duration;

use multiproc_process::{Process, StartMethod, current_process, fork_server_pid};
use multiproc_sys::Pid;
use multiproc_sys::signal::{SIGKILL, kill};
use watchdog::{METHODS, started, watchdog};

fn add_one(x: u32) -> u32 {
    x + 1
}

fn started_by(_: ()) -> Option<StartMethod> {
    current_process().started_by
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Restart {
    first: Option<u32>,
    second: Option<u32>,
    methods: (StartMethod, StartMethod),
    results: (u32, u32),
    zombies: Vec<u32>,
}

/// In a (single-threaded) child: start a forkserver grandchild (which starts this
/// process's own fork server), kill that server, and start another.
fn restart_inside(_: ()) -> Restart {
    let mut a = Process::new(add_one, 1).with_start_method(StartMethod::ForkServer);
    a.start().expect("first forkserver start");
    let ra = a.join().expect("first join");
    let first = fork_server_pid();
    if let Some(pid) = first {
        kill(Pid::from_raw(pid as i32), SIGKILL).expect("kill the fork server");
    }
    let mut b = Process::new(add_one, 2).with_start_method(StartMethod::ForkServer);
    b.start().expect("forkserver start after the server was killed");
    let rb = b.join().expect("second join");
    Restart {
        first,
        second: fork_server_pid(),
        methods: (a.start_method(), b.start_method()),
        results: (ra, rb),
        zombies: procfs::our_zombies(),
    }
}

#[test]
fn fork_server_restart() {
    watchdog("fork_server_restart", || {
        // A single-threaded process replaces a killed server and reaps the old one.
        for m in METHODS {
            let mut p = started(Process::new(restart_inside, ()).with_start_method(m));
            let r = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
            assert_eq!(r.results, (2, 3), "[{m}]");
            assert_eq!(r.methods, (StartMethod::ForkServer, StartMethod::ForkServer), "[{m}] {r:?}");
            assert!(r.first.is_some() && r.second.is_some(), "[{m}] {r:?}");
            assert_ne!(r.first, r.second, "[{m}] the killed server is still in use: {r:?}");
            assert_eq!(r.zombies, Vec::<u32>::new(), "[{m}] the killed server was not reaped: {r:?}");
        }

        // This binary is multi-threaded; its server is replaced all the same.
        let server = fork_server_pid().expect("test_init! starts a fork server");
        assert_eq!(procfs::stat(server).map(|s| s.1), Some(std::process::id()), "the server is our child");
        kill(Pid::from_raw(server as i32), SIGKILL).unwrap();
        let me = std::process::id();
        assert!(
            procfs::eventually(Duration::from_secs(30), || procfs::stat(server) == Some(('Z', me))),
            "the killed fork server never died: {:?}",
            procfs::stat(server)
        );
        for i in 0..3 {
            let mut p = started(Process::new(started_by, ()).with_start_method(StartMethod::ForkServer));
            assert_eq!(p.start_method(), StartMethod::ForkServer, "#{i}");
            assert_eq!(p.join().unwrap(), Some(StartMethod::ForkServer), "#{i}");
        }
        let replacement = fork_server_pid().expect("a new fork server");
        assert_ne!(replacement, server, "the dead server is forgotten");
        assert_eq!(procfs::stat(server), None, "the dead fork server {server} was not reaped");
        assert_eq!(procfs::our_zombies(), Vec::<u32>::new());
    });
}
