//! Helpers shared by the multiproc-queue integration tests: a watchdog that turns a hang
//! into a clear failure and runs test bodies one at a time, a guard that kills and reaps
//! a child on every exit path, the start methods every scenario loops over, and checks
//! that nothing is left behind.
//!
//! Include with `#[path = "support/watchdog.rs"] mod watchdog;`. Each test file uses a
//! subset, hence the `dead_code` allowance.

use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use multiproc_process::{Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every start method, in the order the tests run them.
pub const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];

/// How long a test body may run before the watchdog calls it hung. Hang detection, not a
/// speed requirement: every body normally ends in a small fraction of it, even in a
/// debug build on a loaded two-core machine.
pub const HANG: Duration = Duration::from_secs(240);

// Bodies of one test binary run one at a time: the machine has two cores shared with
// other work, and a fork child started by one test would otherwise briefly hold copies
// of another test's descriptors.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

enum Report<T> {
    Started,
    Finished(std::thread::Result<T>),
}

/// Runs `body` on its own thread, after the bodies of earlier tests of this binary, and
/// fails with a message naming it if it has not finished within [`HANG`]. A panic in
/// `body` is re-raised with its message. Afterwards checks that the body left no zombie
/// child behind.
pub fn watchdog<T: Send + 'static>(name: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = tx.send(Report::Started);
            let result = catch_unwind(AssertUnwindSafe(body));
            let zombies = our_zombies();
            let result = match result {
                Ok(_) if !zombies.is_empty() => {
                    Err(Box::new(format!("left zombie children behind: {zombies:?}")) as Box<dyn std::any::Any + Send>)
                }
                other => other,
            };
            let _ = tx.send(Report::Finished(result));
        })
        .expect("cannot start the test thread");
    match rx.recv_timeout(Duration::from_secs(1800)) {
        Ok(Report::Started) => {}
        Ok(Report::Finished(_)) => unreachable!("a body reports that it started first"),
        Err(_) => panic!("watchdog: `{name}` never got its turn: an earlier test of this binary is hung"),
    }
    match rx.recv_timeout(HANG) {
        Ok(Report::Finished(Ok(value))) => {
            let _ = thread.join();
            value
        }
        Ok(Report::Finished(Err(panic))) => resume_unwind(panic),
        Ok(Report::Started) => unreachable!("a body reports that it started once"),
        Err(RecvTimeoutError::Timeout) => panic!(
            "watchdog: `{name}` did not finish within {HANG:?}; it is probably hung (a get or join that never returns)"
        ),
        Err(RecvTimeoutError::Disconnected) => panic!("watchdog: `{name}` ended without reporting a result"),
    }
}

/// Owns a started process and, when dropped, kills and reaps it, so a failing assertion
/// never leaves a child behind. Use it like the `Process` it wraps.
pub struct Reaped<R: Serialize + DeserializeOwned + 'static>(pub Process<R>);

impl<R: Serialize + DeserializeOwned + 'static> std::fmt::Debug for Reaped<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Reaped").field(&self.0).finish()
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Drop for Reaped<R> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Deref for Reaped<R> {
    type Target = Process<R>;
    fn deref(&self) -> &Process<R> {
        &self.0
    }
}

impl<R: Serialize + DeserializeOwned + 'static> DerefMut for Reaped<R> {
    fn deref_mut(&mut self) -> &mut Process<R> {
        &mut self.0
    }
}

/// Starts `target(args)` with `method`, wrapped in a [`Reaped`] guard.
pub fn start<A, R>(method: StartMethod, target: fn(A) -> R, args: A) -> Reaped<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let mut p = Reaped(Process::new(target, args).with_start_method(method));
    if let Err(e) = p.start() {
        panic!("[{method}] start failed: {e}");
    }
    assert_eq!(p.start_method(), method, "the child was not started with the requested method");
    p
}

/// Joins a child and returns its value, failing with the method and the child's error.
pub fn join<R: Serialize + DeserializeOwned + 'static>(method: StartMethod, p: &mut Reaped<R>) -> R {
    match p.join() {
        Ok(v) => v,
        Err(e) => panic!("[{method}] child {} failed: {e}", p.name()),
    }
}

/// Our zombie children: every process in state `Z` whose parent is this process.
pub fn our_zombies() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = rest.split_whitespace();
        if let (Some("Z"), Some(ppid)) = (fields.next(), fields.next()) {
            if ppid.parse::<u32>().ok() == Some(me) {
                out.push(pid);
            }
        }
    }
    out
}

/// A small deterministic generator (xorshift), so failures replay with their seed.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random number.
    #[allow(clippy::should_implement_trait, reason = "a test helper, not an iterator")]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A pseudo-random number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A seed that differs between runs, printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let s = std::env::var("QUEUE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("{test}: seed {s} (replay with QUEUE_TEST_SEED={s})");
    s
}
