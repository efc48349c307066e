//! Issue 3's workloads: start and join a process that does nothing, one after another,
//! with each start method, and the raw references they are judged against.
//!
//! An operation is one whole child lifetime: create, start, wait for the exit, reap.
//! The raw references do the least the kernel allows for the same: fork (or fork + exec
//! of this binary, which exits at once) and `waitpid`. The difference is what multiproc
//! adds: the control socket, the pidfd, sending the target and the result, the
//! bookkeeping of children.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::{Duration, Instant};

use multiproc::{Process, StartMethod};

/// Set in the environment of the raw exec reference's child; `main` sees it and exits
/// before doing anything else.
pub(crate) const RAW_EXIT_ENV: &str = "MULTIPROC_BENCH_RAW_EXIT";

/// The target: nothing, so that only the cost of the process itself is measured.
fn trivial(_: ()) {}

fn start_join(method: StartMethod, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let mut p = Process::new(trivial, ()).with_start_method(method);
        p.start().unwrap_or_else(|e| panic!("starting a {} child: {e}", method.name()));
        // Forkserver quietly falls back to spawn when it has no server; a benchmark
        // of the wrong method must fail, not mislead.
        assert_eq!(p.start_method(), method, "the child was not started with the requested method");
        p.join().unwrap_or_else(|e| panic!("joining a {} child: {e}", method.name()));
    }
    start.elapsed()
}

/// `Process` start + join with the fork start method.
pub(crate) fn start_join_fork(iters: u64) -> Duration {
    start_join(StartMethod::Fork, iters)
}

/// `Process` start + join with the spawn start method.
pub(crate) fn start_join_spawn(iters: u64) -> Duration {
    start_join(StartMethod::Spawn, iters)
}

/// `Process` start + join with the forkserver start method.
pub(crate) fn start_join_forkserver(iters: u64) -> Duration {
    start_join(StartMethod::ForkServer, iters)
}

/// Waits for `pid` and checks that it exited with status 0.
fn wait_ok(pid: libc::pid_t) {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "waitpid({pid}): {err}");
    }
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "raw child ended with status {status:#x}");
}

/// Raw reference for fork and forkserver: `fork()`, the child `_exit(0)`s at once, the
/// parent `waitpid`s.
pub(crate) fn raw_fork_waitpid(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        // SAFETY: the child only calls `_exit`, which is async-signal-safe, so it cannot
        // trip over any lock copied from the parent.
        match unsafe { libc::fork() } {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            // SAFETY: `_exit` never returns and touches no state shared with the parent.
            0 => unsafe { libc::_exit(0) },
            pid => wait_ok(pid),
        }
    }
    start.elapsed()
}

/// Raw reference for spawn: `fork()`, the child `execve`s this binary (as spawn does,
/// through `/proc/self/exe`, with the same arguments and environment plus
/// [`RAW_EXIT_ENV`], so it exits as soon as `main` starts), the parent `waitpid`s.
pub(crate) fn raw_fork_exec_waitpid(iters: u64) -> Duration {
    // Built before the clock starts: the child may only make async-signal-safe calls.
    let cstr = |bytes: Vec<u8>| CString::new(bytes).expect("no NUL bytes in arguments or environment");
    let argv0 = std::env::args_os().next().unwrap_or_else(|| OsString::from("compare"));
    let args = [cstr(argv0.into_vec())];
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstr(kv)
        })
        .collect();
    env.push(cstr(format!("{RAW_EXIT_ENV}=1").into_bytes()));
    let argv: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();
    let envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();

    let start = Instant::now();
    for _ in 0..iters {
        // SAFETY: the child only calls `execve` and `_exit` (async-signal-safe) on
        // pointers into memory prepared above, which the fork copied.
        match unsafe { libc::fork() } {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            // SAFETY: as above; the arrays are NUL-terminated and outlive the call.
            0 => unsafe {
                libc::execve(c"/proc/self/exe".as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127)
            },
            pid => wait_ok(pid),
        }
    }
    start.elapsed()
}
