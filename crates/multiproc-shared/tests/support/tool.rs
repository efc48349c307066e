//! Runs the `shm_tool` example: a separate program that shares nothing with the test
//! (started with `std::process::Command`, no inherited descriptors, no common parent
//! state), for the "unrelated processes" tests of named segments.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// `target/<profile>/examples/shm_tool`, which `cargo test` builds beside the tests.
pub fn path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile_dir.join("examples").join("shm_tool");
    assert!(
        path.exists(),
        "the shm_tool example was not built at {}; run `cargo test -p multiproc-shared` \
         (which builds the examples) rather than a single test target",
        path.display()
    );
    path
}

/// Runs `shm_tool args...` to the end; returns (exit code, stdout).
pub fn run(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start shm_tool");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("output");
            return (status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shm_tool {args:?} hung for {LIMIT:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `shm_tool args...`, which must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let (code, out) = run(args);
    assert_eq!(code, 0, "shm_tool {args:?} failed: {out}");
    out
}

/// A running `shm_tool` that printed `ready`: killed and reaped on drop if still alive.
#[derive(Debug)]
pub struct Holder {
    /// The tool's process.
    pub child: Child,
    stdin: Option<ChildStdin>,
}

impl Holder {
    /// Starts `shm_tool args...` and waits for its `ready` line.
    pub fn start(args: &[&str]) -> Holder {
        let mut child = Command::new(path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start shm_tool");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read shm_tool's output");
        let holder = Holder { child, stdin };
        if line.trim() != "ready" {
            drop(holder);
            panic!("shm_tool {args:?} did not get ready: {line:?}");
        }
        holder
    }

    /// Closes its stdin, so it exits normally; returns its exit code.
    pub fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        self.child.wait().expect("wait for shm_tool").code().unwrap_or(-1)
    }

    /// SIGKILLs it and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let status = self.child.wait().expect("reap shm_tool");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "shm_tool ended otherwise: {status}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
